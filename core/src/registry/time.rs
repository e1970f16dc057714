//! Time: advancing the clock applies due expiries, evictions and ejection
//! ends in (deadline, id) order; self-preservation holds expiries back.

use crate::prelude::*;
use alloc::sync::Arc;
use core::cmp::Reverse;

use super::entry::NO_TIMER;
use super::{Registry, Timer};
use crate::events::{Event, EventKind};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    Lease,
    Ejection,
}

/// The live instances sources removed lately, as `(at, count)` batches in
/// time order (one per distinct `at`), with their sum: each counts in the
/// self-preservation population while `clock ≤ at +
/// self_preservation_window_ms` (SPEC §10.3).
#[derive(Debug, Clone)]
pub(crate) struct RecentRemovals {
    pub(crate) batches: Vec<(u64, u64)>,
    pub(crate) total: u64,
    /// When the oldest batch leaves the window (`u64::MAX`: no batch, or
    /// never): one comparison on the clock's fast path.
    pub(crate) due: u64,
}

impl Default for RecentRemovals {
    fn default() -> Self {
        RecentRemovals {
            batches: Vec::new(),
            total: 0,
            due: u64::MAX,
        }
    }
}

impl RecentRemovals {
    /// Takes the batches a snapshot held, for a window of `window`.
    pub(crate) fn restore(&mut self, batches: Vec<(u64, u64)>, window: u64) {
        self.total = batches
            .iter()
            .fold(0u64, |sum, &(_, n)| sum.saturating_add(n));
        self.batches = batches;
        self.set_due(window);
    }

    fn set_due(&mut self, window: u64) {
        self.due = self.batches.first().map_or(u64::MAX, |&(at, _)| {
            at.saturating_add(window).saturating_add(1)
        });
    }

    /// Counts one removal at `at` (never before the last one recorded).
    pub(crate) fn record(&mut self, at: u64, window: u64) {
        match self.batches.last_mut() {
            Some(last) if last.0 == at => last.1 = last.1.saturating_add(1),
            _ => self.batches.push((at, 1)),
        }
        self.total = self.total.saturating_add(1);
        self.set_due(window);
    }

    /// What makes these batches impossible for a registry at `clock` to
    /// hold: batches out of time order, empty or after the clock, or a sum
    /// that disagrees or passes 2^53 − 1. (Batches out of the window may
    /// stay until the population is next measured; a snapshot leaves them
    /// out.)
    pub(crate) fn problem(&self, clock: u64) -> Option<&'static str> {
        let mut sum = 0u64;
        let mut previous: Option<u64> = None;
        for &(at, count) in &self.batches {
            if previous.is_some_and(|p| p >= at) || count == 0 || at > clock {
                return Some("recent_removals: a batch out of order or after the clock");
            }
            previous = Some(at);
            sum = sum.saturating_add(count);
        }
        if sum != self.total || sum > crate::events::MAX_EVENT_INDEX {
            return Some("recent_removals: count out of range");
        }
        None
    }

    /// Drops the batches out of the window at `clock`; whether any left.
    fn age(&mut self, clock: u64, window: u64) -> bool {
        let mut gone = 0;
        for &(at, count) in &self.batches {
            if at.saturating_add(window) >= clock {
                break;
            }
            self.total = self.total.saturating_sub(count);
            gone += 1;
        }
        if gone == 0 {
            return false;
        }
        let len = self.batches.len();
        self.batches.copy_within(gone.., 0);
        self.batches.truncate(len - gone);
        self.set_due(window);
        true
    }
}

impl Registry {
    /// Advances the clock to `now` (never backwards) and returns the events
    /// that advancing produced.
    pub fn tick(&mut self, now: u64) -> Vec<Event> {
        self.events.start_capture();
        self.advance(now);
        self.events.take_capture()
    }

    /// The earliest time at which advancing the clock would change state
    /// (an expiry, eviction or ejection end; in self-preservation, a source
    /// removal leaving the window), so a host can sleep until then; `None`
    /// when nothing is scheduled. Held-back expiries do not count.
    pub fn next_deadline(&mut self) -> Option<u64> {
        self.repair_lease_top();
        let lease = if self.lease_blocked {
            None
        } else {
            self.leases.peek().map(|t| t.0 .0)
        };
        let ejection = self.ejections.peek().map(|t| t.0 .0);
        // While something is held, removals leaving the window may release it.
        let ageing = match self.recent_removals.due {
            due if self.self_preservation && due != u64::MAX => due,
            _ => u64::MAX,
        };
        match (lease, ejection) {
            (Some(a), Some(b)) => Some(a.min(b).min(ageing)),
            (Some(a), None) | (None, Some(a)) => Some(a.min(ageing)),
            (None, None) => (ageing != u64::MAX).then_some(ageing),
        }
    }

    /// Instances whose active check should run now, in (due, id) order. Each
    /// one returned is rescheduled `check_interval_ms` later, so a host that
    /// runs what it is given never runs a check twice.
    pub fn due_checks(&mut self, now: u64) -> Vec<Arc<str>> {
        self.advance(now);
        let now = self.clock;
        let mut due: Vec<(u64, Arc<str>, u32)> = Vec::new();
        while let Some(&Reverse((at, slot, generation))) = self.checks.peek() {
            if at > now {
                break;
            }
            self.checks.pop();
            let Some(entry) = self.live_entry(slot, generation) else {
                continue;
            };
            if entry.checks.next_at != Some(at) {
                continue;
            }
            due.push((at, entry.instance.id.clone(), slot));
        }
        crate::sort::sort_by(&mut due, |a, b| (a.0, &a.1) < (b.0, &b.1));
        for (_, _, slot) in &due {
            let generation = self.slots[*slot as usize].generation;
            let entry = self.entry_mut(*slot);
            if let Some(interval) = entry.instance.check_interval_ms {
                let next = now.saturating_add(interval);
                entry.checks.next_at = Some(next);
                self.checks.push(Reverse((next, *slot, generation)));
            }
        }
        due.into_iter().map(|(_, id, _)| id).collect()
    }

    pub(crate) fn live_entry(&self, slot: u32, generation: u32) -> Option<&super::Entry> {
        let s = self.slots.get(slot as usize)?;
        if s.generation != generation {
            return None;
        }
        s.entry.as_deref()
    }

    /// Makes sure the lease heap holds an entry no later than the true due
    /// time of `slot` (entries later than needed are fixed lazily on pop).
    pub(crate) fn schedule_lease(&mut self, slot: u32) {
        let generation = self.slots[slot as usize].generation;
        let evict_after = self.config.evict_after_ms;
        let entry = self.entry_mut(slot);
        match entry.lease_due(evict_after) {
            Some(due) if due < entry.lease.timer => {
                entry.lease.timer = due;
                self.leases.push(Reverse((due, slot, generation)));
            }
            Some(_) => {}
            None => entry.lease.timer = NO_TIMER,
        }
    }

    /// Drops stale lease-heap tops and moves early ones to their true due time.
    fn repair_lease_top(&mut self) {
        while let Some(&Reverse((due, slot, generation))) = self.leases.peek() {
            let evict_after = self.config.evict_after_ms;
            let Some(entry) = self.live_entry(slot, generation) else {
                self.leases.pop();
                continue;
            };
            if entry.lease.timer != due {
                self.leases.pop();
                continue;
            }
            match entry.lease_due(evict_after) {
                Some(true_due) if true_due == due => return,
                Some(true_due) => {
                    // One sift-down in place instead of a pop and a push.
                    self.entry_mut(slot).lease.timer = true_due;
                    if let Some(mut top) = self.leases.peek_mut() {
                        *top = Reverse((true_due, slot, generation));
                    }
                }
                None => {
                    self.leases.pop();
                    self.entry_mut(slot).lease.timer = NO_TIMER;
                }
            }
        }
    }

    fn next_due(&mut self) -> Option<u64> {
        let lease = if self.lease_blocked {
            None
        } else {
            self.repair_lease_top();
            self.leases.peek().map(|t| t.0 .0)
        };
        let ejection = self.ejections.peek().map(|t| t.0 .0);
        match (lease, ejection) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Moves the clock to `max(clock, now)` and applies everything due.
    ///
    /// Every operation starts here, so the common case (nothing due: two
    /// heap peeks) is inlined into its caller and the rest stays out of line.
    #[inline]
    pub(crate) fn advance(&mut self, now: u64) {
        let from = self.clock;
        if now > self.clock {
            self.clock = now;
        }
        let clock = self.clock;
        let lease_top = if self.lease_blocked {
            u64::MAX
        } else {
            self.leases.peek().map_or(u64::MAX, |t| t.0 .0)
        };
        let ejection_top = self.ejections.peek().map_or(u64::MAX, |t| t.0 .0);
        if lease_top > clock && ejection_top > clock {
            if self.self_preservation {
                self.advance_held(from, clock);
            }
            return;
        }
        self.apply_due(from, clock);
    }

    /// [`Registry::advance`] in self-preservation with no timer due:
    /// source removals leaving the window may release what is held, else
    /// self-preservation may end. (Outside it, removals leave the window
    /// lazily, when the population is next measured.)
    #[inline(never)]
    fn advance_held(&mut self, from: u64, clock: u64) {
        if self.recent_removals.due <= clock {
            self.apply_due(from, clock);
        } else if !self.lease_blocked {
            self.check_self_preservation_exit(clock);
        }
    }

    /// Drops the source removals that left the window at `clock`. The
    /// population shrank: in self-preservation, held lease expiries are
    /// looked at again (and held removals, at the end of the advance).
    pub(crate) fn age_removals(&mut self, clock: u64) {
        let window = self.config.self_preservation_window_ms;
        if self.recent_removals.age(clock, window) && self.self_preservation {
            self.lease_blocked = false;
        }
    }

    /// Applies every timer due at or before `clock`, in due order; `from`
    /// is the clock before this advance.
    #[inline(never)]
    fn apply_due(&mut self, from: u64, clock: u64) {
        self.age_removals(clock);
        let mut batch: Vec<(Arc<str>, TimerKind, Timer)> = Vec::new();
        while let Some(due) = self.next_due() {
            if due > clock {
                break;
            }
            batch.clear();
            self.collect_batch(due, &mut batch);
            crate::sort::sort_by(&mut batch, |a, b| (&a.0, a.1) < (&b.0, b.1));
            let mut held = false;
            for (_, kind, timer) in batch.drain(..) {
                let Reverse((due, slot, generation)) = timer;
                match kind {
                    TimerKind::Ejection => self.end_ejection(slot, generation, due.max(from)),
                    TimerKind::Lease if held => self.leases.push(timer),
                    TimerKind::Lease => {
                        if !self.lease_fire(slot, generation, due, due.max(from)) {
                            held = true;
                            self.lease_blocked = true;
                            self.leases.push(timer);
                        }
                    }
                }
            }
        }
        self.release_held_removals();
        self.check_self_preservation_exit(clock);
    }

    /// Pops every valid entry due exactly at `due` from both heaps.
    fn collect_batch(&mut self, due: u64, batch: &mut Vec<(Arc<str>, TimerKind, Timer)>) {
        if !self.lease_blocked {
            loop {
                self.repair_lease_top();
                match self.leases.peek() {
                    Some(&t) if t.0 .0 == due => {
                        self.leases.pop();
                        let id = self.entry(t.0 .1).instance.id.clone();
                        batch.push((id, TimerKind::Lease, t));
                    }
                    _ => break,
                }
            }
        }
        while let Some(&t) = self.ejections.peek() {
            if t.0 .0 != due {
                break;
            }
            self.ejections.pop();
            let Reverse((_, slot, generation)) = t;
            if let Some(entry) = self.live_entry(slot, generation) {
                if entry.inputs.ejected && entry.outlier.ejected_until == due {
                    let id = entry.instance.id.clone();
                    batch.push((id, TimerKind::Ejection, t));
                }
            }
        }
    }

    /// Applies a due lease timer: expiry or eviction. Returns false when
    /// self-preservation holds the expiry back.
    /// `at` is when it takes effect: its due time, or the start of this
    /// advance for an expiry self-preservation held back earlier.
    fn lease_fire(&mut self, slot: u32, generation: u32, due: u64, at: u64) -> bool {
        if self.live_entry(slot, generation).is_none() {
            return true;
        }
        let entry = self.entry_mut(slot);
        entry.lease.timer = NO_TIMER;
        if entry.inputs.lease_expired {
            let service_idx = entry.service_idx;
            self.services[service_idx as usize].metrics.evictions += 1;
            self.remove(slot, EventKind::Evicted, at);
            return true;
        }
        let draining = entry.inputs.is_draining();
        if !draining && self.would_breach_self_preservation() {
            if !self.self_preservation {
                self.self_preservation = true;
                self.events
                    .push(EventKind::SelfPreservationEntered, at, None, None, None);
            }
            let entry = self.entry_mut(slot);
            entry.lease.timer = due;
            return false;
        }
        let entry = self.entry_mut(slot);
        entry.inputs.lease_expired = true;
        let service_idx = entry.service_idx;
        if !draining {
            self.live_non_draining -= 1;
        }
        self.services[service_idx as usize].metrics.expiries += 1;
        self.refresh(slot, at);
        self.schedule_lease(slot);
        true
    }

    /// After a change that may release expiries self-preservation held back
    /// (a renewal, registration, removal or drain), applies them at once and
    /// leaves self-preservation when nothing stays held.
    pub(crate) fn settle(&mut self) {
        if self.self_preservation && !self.lease_blocked {
            self.advance(self.clock);
        }
        self.release_held_removals();
    }

    /// The population the live fraction is measured against: instances
    /// not draining, and the live ones sources removed within the window
    /// (their instances are gone, but a mass loss must still show, as
    /// expired leases stay counted until evicted).
    fn preservation_population(&self) -> u64 {
        self.non_draining.saturating_add(self.recent_removals.total)
    }

    /// Whether losing one more live instance (a lease expiry or a source's
    /// removal) would take the live fraction below the threshold. Held
    /// removals count as lost, and the removals still in the window count
    /// in the population.
    pub(super) fn would_breach_self_preservation(&mut self) -> bool {
        self.age_removals(self.clock);
        let threshold = self.config.self_preservation_threshold;
        if threshold <= 0.0 || self.total < u64::from(self.config.self_preservation_min_instances) {
            return false;
        }
        let population = self.preservation_population();
        if population == 0 {
            return false;
        }
        let after = self
            .live_non_draining
            .saturating_sub(1 + self.held_ids.len() as u64);
        (after as f64) / (population as f64) < threshold
    }

    /// Whether the live fraction, held removals counted as lost, is at or
    /// above the threshold (or protection does not apply): the held
    /// removals may go. Measured against the same population as
    /// [`Registry::would_breach_self_preservation`], so a removal just held
    /// stays held until the fleet recovers or the window passes.
    pub(super) fn fraction_recovered(&mut self) -> bool {
        self.age_removals(self.clock);
        let threshold = self.config.self_preservation_threshold;
        if threshold <= 0.0 || self.total < u64::from(self.config.self_preservation_min_instances) {
            return true;
        }
        let population = self.preservation_population();
        if population == 0 {
            return true;
        }
        let live = self
            .live_non_draining
            .saturating_sub(self.held_ids.len() as u64);
        (live as f64) / (population as f64) >= threshold
    }

    pub(super) fn check_self_preservation_exit(&mut self, at: u64) {
        if !self.self_preservation || self.lease_blocked || !self.held_ids.is_empty() {
            return;
        }
        // Not blocked: every due expiry was applied, none is held back.
        self.self_preservation = false;
        self.events
            .push(EventKind::SelfPreservationExited, at, None, None, None);
    }

    fn end_ejection(&mut self, slot: u32, generation: u32, at: u64) {
        if self.live_entry(slot, generation).is_none() {
            return;
        }
        let entry = self.entry_mut(slot);
        entry.inputs.ejected = false;
        entry.outlier.probation = true;
        let service_idx = entry.service_idx;
        self.services[service_idx as usize].ejected -= 1;
        self.refresh(slot, at);
        // Returning from ejection changes the candidate set even when the
        // public health was masked by a stronger state.
        self.note_member(service_idx, slot);
    }
}
