//! Publishing a service's candidate tables for its pickers (SPEC §5.2).
//!
//! A table has two kinds of parts. What depends on the candidate set (the
//! candidates' handles and weights, the draw bound, running sums and period) is copied
//! from the registry's own candidate table, whose arrays are contiguous
//! and already up to date (`candidates.rs`). What depends only on the
//! service's members — the slot index, every member's generation,
//! in-flight counter, revision, registered fields and hash input — is
//! [`Members`], shared by consecutive tables while the service's member
//! version holds: it moves only when an instance joins or leaves the
//! service or its registered fields are replaced, so a drain, a health
//! change, an ejection or panic publishes a table without touching one
//! member entry. The calls begun through the registry, read by
//! `least_request`, are shared the same way while no call began or ended
//! through the registry.

use crate::prelude::*;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};

use super::candidates::table_weight;
use super::picker::{table_born, PickTable};
use super::service::PeriodState;
use super::slot_trie::SlotTrie;
use super::table_parts::Parts;
use super::{Handle, PickOptions, Registry};
use crate::balancer::{running_sums, SmoothPeriod};
use crate::instance::Instance;

/// What the registry keeps per service for its pickers. A cloned registry
/// starts without pickers, so the copy gets an empty publication.
#[derive(Debug, Default)]
pub(crate) struct Publication {
    /// Moves on every change to the service's candidate set.
    pub signal: Option<Arc<AtomicU64>>,
    /// The latest table handed out for each set of options (none: the
    /// unfiltered one); a table no picker holds is dropped at the next
    /// publication.
    pub tables: Vec<Arc<PickTable>>,
    /// Some picker asked for smooth WRR: tables carry the period.
    pub wrr_used: bool,
    /// Some picker drew weighted random from every candidate: unfiltered
    /// tables of weights too uneven for the rejection draw carry the
    /// running sums.
    pub sums_used: bool,
    /// Moves when an instance joins or leaves the service or its
    /// registered fields are replaced: [`Members`] built at another
    /// version are stale.
    members: u64,
    /// The slots whose membership or fields changed, with the version each
    /// change made, from version `log_floor` on: [`Members`] of a later
    /// version than the floor are brought up to date by setting those
    /// slots alone.
    log: Vec<(u64, u32)>,
    log_floor: u64,
}

/// Member changes logged at most; past it, tables build their members
/// again (which costs about as much as applying that many changes).
const LOG_MAX: usize = 256;

impl Clone for Publication {
    fn clone(&self) -> Publication {
        Publication::default()
    }
}

impl Publication {
    /// The candidate set may have changed.
    #[inline]
    pub fn changed(&self) {
        if let Some(signal) = &self.signal {
            signal.fetch_add(1, Ordering::Release);
        }
    }

    /// Member `slot` joined or left, or its registered fields changed.
    #[inline]
    pub fn members_changed(&mut self, slot: u32) {
        self.members += 1;
        if self.tables.is_empty() || self.log.len() >= LOG_MAX {
            self.log.clear();
            self.log_floor = self.members;
        } else {
            self.log.push((self.members, slot));
        }
    }

    /// Forgets logged changes every table's members already include.
    fn trim_log(&mut self) {
        let oldest = self.tables.iter().map(|t| t.members.version).min();
        let seen = oldest.unwrap_or(self.members);
        let stale = self.log.iter().take_while(|(v, _)| *v <= seen).count();
        if stale > 0 {
            self.log.drain(..stale);
        }
    }
}

/// The parts of a table that depend only on the service's members and
/// their registered fields, by slot.
#[derive(Debug, Default)]
pub(crate) struct Members {
    /// The member version of the service it was built at.
    version: u64,
    by_slot: SlotTrie<Member>,
}

/// One member as a table keeps it.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub generation: u32,
    /// Calls in flight begun through pickers (shared by every picker).
    pub counter: Arc<AtomicU64>,
    /// Its revision: with the handle, a host-side cache key for `fields`.
    pub revision: u64,
    /// Its registered fields, rendered once per revision.
    pub fields: Arc<Instance>,
    /// Its consistent-hash input.
    pub id_hash: u64,
}

impl Members {
    /// The member `handle` names.
    #[inline]
    pub fn get(&self, handle: Handle) -> Option<&Member> {
        let m = self.by_slot.get(handle.index())?;
        (m.generation == handle.generation()).then_some(m)
    }
}

/// Calls begun through the registry per member with any (by handle), as
/// they were at the registry's load version `at`.
#[derive(Debug, Default)]
pub(crate) struct BaseLoad {
    at: u64,
    load: Vec<(Handle, u64)>,
}

impl BaseLoad {
    /// No call begun through the registry is in flight.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.load.is_empty()
    }

    #[inline]
    pub fn get(&self, handle: Handle) -> u64 {
        match self.load.binary_search_by_key(&handle, |&(h, _)| h) {
            Ok(i) => self.load.get(i).map_or(0, |&(_, l)| l),
            Err(_) => 0,
        }
    }
}

/// What a new table is built from besides the registry.
pub(super) struct Wanted<'a> {
    pub options: Option<&'a Arc<PickOptions>>,
    pub generation: u64,
    /// The table it replaces, if any: parts that did not change are taken
    /// from it.
    pub previous: Option<&'a PickTable>,
}

impl Registry {
    /// The latest table of service `idx` for `options`, built anew when
    /// the service changed since the last one (or `force`d, to add a
    /// period or running sums some picker asked for).
    pub(super) fn publish(
        &mut self,
        idx: u32,
        options: Option<&Arc<PickOptions>>,
        force: bool,
    ) -> (Arc<AtomicU64>, Arc<PickTable>) {
        self.ensure_candidates(idx);
        let clock = self.clock;
        let svc = &mut self.services[idx as usize];
        let signal = svc
            .publication
            .signal
            .get_or_insert_with(|| Arc::new(AtomicU64::new(1)))
            .clone();
        let (wrr_used, sums_used) = (svc.publication.wrr_used, svc.publication.sums_used);
        let at = svc
            .publication
            .tables
            .iter()
            .position(|t| t.options.as_deref() == options.map(|o| &**o));
        let current = at.and_then(|i| svc.publication.tables.get(i));
        if force && current.is_some_and(|t| t.lacks(wrr_used, sums_used)) {
            // A table with a period or running sums replaces one of the
            // same candidates: move the signal so every picker takes it.
            svc.publication.changed();
        }
        let generation = signal.load(Ordering::Acquire);
        if let Some(t) = current {
            let weights_fresh = match options {
                None => t.weights_at == svc.candidates.weights_at,
                Some(_) => !t.ramping || t.weights_at == clock,
            };
            if t.generation == generation && weights_fresh {
                return (signal, t.clone());
            }
        }
        let previous = at.map(|i| svc.publication.tables.swap_remove(i));
        let wanted = Wanted {
            options,
            generation,
            previous: previous.as_deref(),
        };
        let table = Arc::new(self.build_table(idx, &wanted));
        let publication = &mut self.services[idx as usize].publication;
        // Tables no picker holds any more are dropped (built again if asked for).
        publication.tables.retain(|t| Arc::strong_count(t) > 1);
        publication.tables.push(table.clone());
        publication.trim_log();
        (signal, table)
    }

    fn build_table(&mut self, idx: u32, wanted: &Wanted<'_>) -> PickTable {
        let clock = self.clock;
        // Parts shared with the table it replaces, or with another table
        // of the service.
        let other = match wanted.previous {
            Some(_) => None,
            None => self.services[idx as usize]
                .publication
                .tables
                .first()
                .cloned(),
        };
        let donor = wanted.previous.or(other.as_deref());
        let members = self.table_members(idx, donor);
        let base_load = self.table_load(idx, donor);
        let publication = &self.services[idx as usize].publication;
        let (wrr_used, sums_used) = (publication.wrr_used, publication.sums_used);
        let (parts, edits_at, total, prefix, ramping, weights_at) = match wanted.options {
            None => {
                let c = &mut self.services[idx as usize].candidates;
                c.edits.on = true;
                let c = &*c;
                let edits = wanted
                    .previous
                    .and_then(|p| Some((p, c.edits.since(p.edits_at)?)));
                let parts = match edits {
                    Some((p, edits)) => p.parts.brought_forward(edits),
                    // A candidate is always a live member (a removal leaves
                    // the table at once), so its slot's generation is its.
                    None => Parts::cut(
                        c.slots.iter().map(|&index| Handle {
                            index,
                            generation: self.slots.get(index as usize).map_or(0, |x| x.generation),
                        }),
                        &c.weights,
                    ),
                };
                debug_assert!(
                    parts.len() == c.slots.len()
                        && parts.iter().zip(c.slots.iter().zip(&c.weights)).all(
                            |((h, w), (&s, &cw))| {
                                h.index == s
                                    && w == cw
                                    && self.slots.get(s as usize).map(|x| x.generation)
                                        == Some(h.generation)
                            }
                        ),
                    "a table's parts differ from the registry's candidates"
                );
                let ramping = c.ramp_until > clock;
                (
                    parts,
                    c.edits.seq(),
                    c.total,
                    Vec::new(),
                    ramping,
                    c.weights_at,
                )
            }
            Some(o) => {
                let subset = self.subset(idx, o);
                let (slots, weights) = self.subset_weights(idx, &subset);
                let window = self.config.slow_start_ms;
                let ramping = window > 0
                    && slots
                        .iter()
                        .any(|&s| self.entry(s).healthy_since.saturating_add(window) > clock);
                let prefix = running_sums(&weights);
                let total = prefix.last().copied().unwrap_or(0);
                let handles = slots.iter().map(|&index| Handle {
                    index,
                    generation: self.slots.get(index as usize).map_or(0, |x| x.generation),
                });
                let weights: Vec<u32> = weights.iter().map(|&w| table_weight(w)).collect();
                let parts = Parts::cut(handles, &weights);
                (parts, 0, total, prefix, ramping, clock)
            }
        };
        let (bound, prefix) = match wanted.options {
            None => {
                let c = &mut self.services[idx as usize].candidates;
                match c.rejection_bound() {
                    0 if sums_used => (0, c.prefix_for_tables()),
                    bound => (bound, Vec::new()),
                }
            }
            Some(_) => (0, prefix),
        };
        let c = &self.services[idx as usize].candidates;
        let (period, period_settled) = if ramping {
            (None, true)
        } else {
            match (&c.period, wanted.previous) {
                (PeriodState::Table(p), _) if wanted.options.is_none() => (Some(p.clone()), true),
                // (Weights are compared only where the answer matters.)
                (_, Some(p))
                    if (p.period_settled || (p.period.is_some() && !wrr_used))
                        && p.parts.same_weights(&parts) =>
                {
                    (p.period.clone(), p.period_settled)
                }
                _ if wrr_used => (SmoothPeriod::build(&parts.weights()).map(Arc::new), true),
                _ => (None, false),
            }
        };
        self.publications += 1;
        let svc = &self.services[idx as usize];
        table_born();
        PickTable {
            service: idx,
            name: svc.name.clone(),
            options: wanted.options.cloned(),
            id: self.publications,
            generation: wanted.generation,
            weights_at,
            membership_epoch: self.membership_epoch,
            ramping,
            known: !svc.members.is_empty(),
            panic: svc.panic,
            parts,
            edits_at,
            total,
            bound,
            prefix,
            members,
            base_load,
            period,
            period_settled,
        }
    }

    /// The service's [`Members`]: the donor's while the member version
    /// holds, the donor's with the logged changes applied while the log
    /// reaches back to it, else built again (fields whose revision held
    /// are shared).
    fn table_members(&mut self, idx: u32, donor: Option<&PickTable>) -> Arc<Members> {
        let publication = &self.services[idx as usize].publication;
        let version = publication.members;
        let donor = donor.map(|d| &d.members);
        let members = match donor {
            Some(kept) if kept.version == version => kept.clone(),
            Some(kept) if kept.version >= publication.log_floor => {
                let changed: Vec<u32> = publication
                    .log
                    .iter()
                    .filter(|(v, _)| *v > kept.version)
                    .map(|&(_, s)| s)
                    .collect();
                let mut by_slot = kept.by_slot.clone();
                for s in changed {
                    let member = self.table_member(idx, s, Some(kept));
                    by_slot.set(s, member);
                }
                Arc::new(Members { version, by_slot })
            }
            _ => {
                let slots = core::mem::take(&mut self.services[idx as usize].members);
                let mut by_slot = SlotTrie::default();
                for &s in &slots {
                    by_slot.set(s, self.table_member(idx, s, donor.map(|d| &**d)));
                }
                self.services[idx as usize].members = slots;
                Arc::new(Members { version, by_slot })
            }
        };
        debug_assert!(
            self.members_match(idx, &members),
            "a member changed without moving the service's member version"
        );
        members
    }

    /// Slot `s` as a table keeps it, if it holds a member of service `idx`
    /// (its fields taken from `donor` while its revision holds).
    fn table_member(&mut self, idx: u32, s: u32, donor: Option<&Members>) -> Option<Member> {
        let slot = self.slots.get_mut(s as usize)?;
        let generation = slot.generation;
        let e = slot.entry.as_deref_mut().filter(|e| e.service_idx == idx)?;
        let counter = e
            .load
            .shared_inflight
            .get_or_insert_with(|| Arc::new(AtomicU64::new(0)))
            .clone();
        let kept = donor.and_then(|d| {
            d.get(Handle {
                index: s,
                generation,
            })
        });
        let fields = match kept {
            Some(m) if m.revision == e.revision => m.fields.clone(),
            _ => Arc::new(e.instance.clone()),
        };
        Some(Member {
            generation,
            counter,
            revision: e.revision,
            fields,
            id_hash: e.id_hash,
        })
    }

    /// Whether `members` describes service `idx`'s members (a check of
    /// the member version and log in debug builds).
    fn members_match(&self, idx: u32, members: &Members) -> bool {
        let slots = &self.services[idx as usize].members;
        slots.len() == members.by_slot.len()
            && slots.iter().all(|&s| {
                let e = self.entry(s);
                let generation = self.slots.get(s as usize).map_or(0, |x| x.generation);
                members
                    .get(Handle {
                        index: s,
                        generation,
                    })
                    .is_some_and(|m| {
                        e.revision == m.revision
                            && e.id_hash == m.id_hash
                            && *m.fields == e.instance
                            && e.load
                                .shared_inflight
                                .as_ref()
                                .is_some_and(|c| Arc::ptr_eq(c, &m.counter))
                    })
            })
    }

    /// The calls begun through the registry per member: the donor's while
    /// no registry count moved (an instance that joins starts at none; one
    /// that leaves is not looked up again, its handle being gone).
    fn table_load(&self, idx: u32, donor: Option<&PickTable>) -> Arc<BaseLoad> {
        let moves = self.load_moves;
        let fresh = || {
            let mut load: Vec<(Handle, u64)> = self.services[idx as usize]
                .members
                .iter()
                .filter_map(|&s| {
                    let inflight = self.entry(s).load.inflight;
                    let generation = self.slots.get(s as usize)?.generation;
                    (inflight > 0).then_some((
                        Handle {
                            index: s,
                            generation,
                        },
                        inflight,
                    ))
                })
                .collect();
            crate::sort::sort_by(&mut load, |a, b| a.0 < b.0);
            load
        };
        match donor.map(|d| &d.base_load).filter(|b| b.at == moves) {
            Some(b) => {
                debug_assert!(
                    self.services[idx as usize].members.iter().all(|&s| {
                        let generation = self.slots.get(s as usize).map_or(0, |x| x.generation);
                        b.get(Handle {
                            index: s,
                            generation,
                        }) == self.entry(s).load.inflight
                    }),
                    "a registry count moved unseen"
                );
                b.clone()
            }
            None => Arc::new(BaseLoad {
                at: moves,
                load: fresh(),
            }),
        }
    }
}
