//! What `restore` checks beyond the shape of a document: a snapshot must be
//! one a registry could have written. Fields that follow from others (the
//! event log's extent, a service's panic flag, self-preservation, what was
//! due at the clock) are recomputed and compared, and a document that
//! contradicts itself is `invalid_snapshot` naming the field, because a
//! registry restored from it would misbehave later (indexes that wrap or
//! skip, a watcher that silently misses events, time running backwards).
//!
//! Kept apart from the reader in `snapshot.rs`: the reader says what a
//! document holds, this file says which documents make sense.

use crate::prelude::*;

use super::{bad, SnapshotDoc};
use crate::error::Result;
use crate::events::MAX_EVENT_INDEX;
use crate::registry::Registry;

/// The event log: indexes within the limit, the retained events the exact
/// contiguous tail ending at `last_index` (as many as the retention keeps),
/// times in order and not after the clock.
pub(super) fn check_events(doc: &SnapshotDoc) -> Result<()> {
    // Messages are plain strings where they can be: this runs in the
    // WebAssembly module too, whose size is budgeted.
    if doc.last_index > MAX_EVENT_INDEX {
        return Err(bad("last_index: above 2^53 - 1".into()));
    }
    let retention = u64::from(doc.config.event_retention.max(1));
    let kept = doc.last_index.min(retention);
    if doc.events.len() as u64 != kept {
        return Err(bad("events: not the retained tail".into()));
    }
    // The first retained index follows from the count: every later one is
    // the one before plus one, and the last is `last_index`.
    let first = doc.last_index - kept + 1;
    let mut at = 0;
    for (i, (expected, e)) in (first..).zip(&doc.events).enumerate() {
        if e.index != expected {
            return Err(bad(text!("events[", i, "].index out of sequence")));
        }
        if e.at < at || e.at > doc.clock {
            return Err(bad("events: at out of order".into()));
        }
        at = e.at;
    }
    Ok(())
}

impl Registry {
    /// The restored registry against what its instances imply.
    pub(super) fn check_restored(&mut self) -> Result<()> {
        self.check_restored_counters()?;
        self.check_restored_instances()?;
        self.check_restored_services()?;
        self.check_nothing_due()
    }

    /// Counters that only ever grow by one: like event indexes, at most
    /// 2^53 − 1, so the next increment cannot overflow (a debug build
    /// would panic, a release build wrap and invalidate nothing).
    fn check_restored_counters(&self) -> Result<()> {
        let services = self.services.iter().map(|s| &s.metrics).any(|m| {
            [
                m.pick_failures,
                m.registrations,
                m.deregistrations,
                m.heartbeats,
                m.expiries,
                m.evictions,
                m.ejections,
            ]
            .iter()
            .chain(&m.picks)
            .any(|&n| n > MAX_EVENT_INDEX)
        });
        if services
            || self.membership_epoch > MAX_EVENT_INDEX
            || self.metrics.unknown_service_picks > MAX_EVENT_INDEX
        {
            return Err(bad("counters: above 2^53 - 1".into()));
        }
        Ok(())
    }

    /// Each instance's times and indexes in the order a registry sets them.
    fn check_restored_instances(&self) -> Result<()> {
        let clock = self.clock;
        let wrong = self
            .slots
            .iter()
            .filter_map(|s| s.entry.as_deref())
            .any(|e| {
                e.lease.registered_at > e.lease.last_renewal
                    || e.lease.last_renewal > clock
                    || e.lease.registered_at > e.healthy_since
                    || e.healthy_since > clock
                    || e.revision > e.modify_index
                    || (e.inputs.lease_expired && clock <= e.deadline())
            });
        if wrong {
            return Err(bad("instances: state times out of order".into()));
        }
        Ok(())
    }

    /// Panic flags from the health counts; candidate tables of members only,
    /// in id order.
    fn check_restored_services(&self) -> Result<()> {
        let threshold = self.config.panic_threshold;
        for (i, s) in self.services.iter().enumerate() {
            let mut sorted = s.panic == s.below_threshold(threshold);
            let mut previous: Option<&str> = None;
            for &slot in &s.candidates.slots {
                let e = self.entry(slot);
                let id = &*e.instance.id;
                sorted &= e.service_idx as usize == i && previous.is_none_or(|p| p < id);
                previous = Some(id);
            }
            if !sorted {
                return Err(bad("services: panic or candidates".into()));
            }
        }
        Ok(())
    }

    /// Every operation applies what is due at the clock before it returns,
    /// so in a written snapshot nothing is due except the expiries that
    /// self-preservation holds back. Advancing to the clock again must
    /// change nothing and find the same self-preservation state.
    fn check_nothing_due(&mut self) -> Result<()> {
        // With sources, self-preservation also holds source removals back
        // (SPEC §10.3), under rules of their own checked where the
        // snapshot's source state is read: this check covers leases only.
        if !self.held_ids.is_empty() || !self.source_names.is_empty() {
            return Ok(());
        }
        let (held, blocked, last) = (
            self.self_preservation,
            self.lease_blocked,
            self.events.last_index(),
        );
        self.lease_blocked = false;
        self.advance(self.clock);
        if self.events.last_index() != last
            || self.self_preservation != held
            || self.lease_blocked != blocked
        {
            return Err(bad("self_preservation: due at clock".into()));
        }
        Ok(())
    }
}
