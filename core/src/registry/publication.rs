//! Publishing a service's candidate tables for its pickers (SPEC §5.2).
//!
//! A table has two kinds of parts. What depends on the candidate set (the
//! candidates' handles and weights, the alias and period tables) is copied
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

use super::picker::{table_born, PickTable};
use super::service::PeriodState;
use super::{Handle, PickOptions, Registry};
use crate::balancer::SmoothPeriod;
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
    /// tables carry the alias table.
    pub alias_used: bool,
    /// Moves when an instance joins or leaves the service or its
    /// registered fields are replaced: [`Members`] built at another
    /// version are stale.
    members: u64,
}

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

    /// The member list, or a member's registered fields, changed.
    #[inline]
    pub fn members_changed(&mut self) {
        self.members = self.members.wrapping_add(1);
    }
}

/// The parts of a table that depend only on the service's members and
/// their registered fields, in member (id) order.
#[derive(Debug, Default)]
pub(crate) struct Members {
    /// The member version of the service it was built at.
    version: u64,
    /// Member slot → position in `list` (`u32::MAX`: not a member).
    by_slot: Vec<u32>,
    list: Vec<Member>,
}

/// One member as a table keeps it.
#[derive(Debug)]
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
    /// The member `handle` names and its position in member order.
    #[inline]
    pub fn find(&self, handle: Handle) -> Option<(usize, &Member)> {
        let at = *self.by_slot.get(handle.index() as usize)? as usize;
        let m = self.list.get(at)?;
        (m.generation == handle.generation()).then_some((at, m))
    }

    /// The member `handle` names.
    #[inline]
    pub fn get(&self, handle: Handle) -> Option<&Member> {
        self.find(handle).map(|(_, m)| m)
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// Calls begun through the registry per member (parallel to the members'
/// list) when it was built; empty when every count was zero.
#[derive(Debug, Default)]
pub(crate) struct BaseLoad {
    /// The member version and the registry's load version it was read at.
    members: u64,
    at: u64,
    load: Vec<u64>,
}

impl BaseLoad {
    #[inline]
    pub fn get(&self, member: usize) -> u64 {
        self.load.get(member).copied().unwrap_or(0)
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
    /// period or an alias table some picker asked for).
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
        let (wrr_used, alias_used) = (svc.publication.wrr_used, svc.publication.alias_used);
        let at = svc
            .publication
            .tables
            .iter()
            .position(|t| t.options.as_deref() == options.map(|o| &**o));
        let current = at.and_then(|i| svc.publication.tables.get(i));
        if force && current.is_some_and(|t| t.lacks(wrr_used, alias_used)) {
            // A table with a period or an alias table replaces one of the
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
        let base_load = self.table_load(idx, &members, donor);
        let publication = &self.services[idx as usize].publication;
        let (wrr_used, alias_used) = (publication.wrr_used, publication.alias_used);
        let (handles, weights, total, prefix, ramping, weights_at) = match wanted.options {
            None => {
                let c = &self.services[idx as usize].candidates;
                debug_assert!(
                    c.slots.len() == c.generations.len()
                        && c.slots.iter().zip(&c.generations).all(|(&s, &g)| {
                            self.slots.get(s as usize).map(|x| x.generation) == Some(g)
                        }),
                    "the candidate table's generations are stale"
                );
                let handles = c
                    .slots
                    .iter()
                    .zip(&c.generations)
                    .map(|(&index, &generation)| Handle { index, generation })
                    .collect();
                let ramping = c.ramp_until > clock;
                let total = c.total;
                (
                    handles,
                    c.weights.clone(),
                    total,
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
                let prefix: Vec<u64> = weights
                    .iter()
                    .scan(0u64, |sum, &w| {
                        *sum += w;
                        Some(*sum)
                    })
                    .collect();
                let total = prefix.last().copied().unwrap_or(0);
                let handles = slots
                    .iter()
                    .map(|&index| Handle {
                        index,
                        generation: self.slots.get(index as usize).map_or(0, |x| x.generation),
                    })
                    .collect();
                // Weights are at most 10 000 × 1 000: `u32` holds them.
                let weights = weights
                    .iter()
                    .map(|&w| u32::try_from(w).unwrap_or(u32::MAX))
                    .collect();
                (handles, weights, total, prefix, ramping, clock)
            }
        };
        let alias = match (wanted.options, wanted.previous) {
            (Some(_), _) => None,
            _ if !alias_used => None,
            (None, Some(p)) if p.alias.is_some() && p.weights == weights => p.alias.clone(),
            (None, _) => {
                let c = &mut self.services[idx as usize].candidates;
                c.ensure_alias();
                Some(Arc::new(c.alias.clone()))
            }
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
                        && p.weights == weights =>
                {
                    (p.period.clone(), p.period_settled)
                }
                _ if wrr_used => (SmoothPeriod::build(&weights).map(Arc::new), true),
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
            known: !members.is_empty(),
            panic: svc.panic,
            handles,
            total,
            weights,
            alias,
            prefix,
            members,
            base_load,
            period,
            period_settled,
        }
    }

    /// The service's [`Members`]: the donor's while the member version
    /// holds, else built again (fields whose revision held are shared).
    fn table_members(&mut self, idx: u32, donor: Option<&PickTable>) -> Arc<Members> {
        let version = self.services[idx as usize].publication.members;
        let donor = donor.map(|d| &d.members);
        if let Some(kept) = donor.filter(|m| m.version == version) {
            debug_assert!(
                self.members_match(idx, kept),
                "a member changed without moving the service's member version"
            );
            return kept.clone();
        }
        let members = core::mem::take(&mut self.services[idx as usize].members);
        let mut by_slot =
            vec![u32::MAX; members.iter().map(|&s| s as usize + 1).max().unwrap_or(0)];
        let mut list = Vec::with_capacity(members.len());
        for (i, &s) in members.iter().enumerate() {
            if let Some(b) = by_slot.get_mut(s as usize) {
                *b = i as u32;
            }
            let generation = self.slots.get(s as usize).map_or(0, |x| x.generation);
            let e = self.entry_mut(s);
            let counter = e
                .load
                .shared_inflight
                .get_or_insert_with(|| Arc::new(AtomicU64::new(0)))
                .clone();
            let (revision, id_hash) = (e.revision, e.id_hash);
            let kept = donor.and_then(|d| {
                match d.get(Handle {
                    index: s,
                    generation,
                }) {
                    Some(m) if m.revision == revision => Some(m.fields.clone()),
                    _ => None,
                }
            });
            let fields = kept.unwrap_or_else(|| Arc::new(self.entry(s).instance.clone()));
            list.push(Member {
                generation,
                counter,
                revision,
                fields,
                id_hash,
            });
        }
        self.services[idx as usize].members = members;
        Arc::new(Members {
            version,
            by_slot,
            list,
        })
    }

    /// Whether `kept` still describes service `idx`'s members (a check of
    /// the member version in debug builds).
    fn members_match(&self, idx: u32, kept: &Members) -> bool {
        let members = &self.services[idx as usize].members;
        members.len() == kept.list.len()
            && members
                .iter()
                .zip(&kept.list)
                .enumerate()
                .all(|(i, (&s, m))| {
                    let e = self.entry(s);
                    let generation = self.slots.get(s as usize).map(|x| x.generation);
                    kept.by_slot.get(s as usize) == Some(&(i as u32))
                        && generation == Some(m.generation)
                        && e.revision == m.revision
                        && e.id_hash == m.id_hash
                        && *m.fields == e.instance
                        && e.load
                            .shared_inflight
                            .as_ref()
                            .is_some_and(|c| Arc::ptr_eq(c, &m.counter))
                })
    }

    /// The calls begun through the registry per member: the donor's while
    /// neither the members nor any registry count moved.
    fn table_load(&self, idx: u32, members: &Members, donor: Option<&PickTable>) -> Arc<BaseLoad> {
        let moves = self.load_moves;
        let kept = donor
            .map(|d| &d.base_load)
            .filter(|b| b.members == members.version && b.at == moves);
        let fresh = || {
            let load: Vec<u64> = self.services[idx as usize]
                .members
                .iter()
                .map(|&s| self.entry(s).load.inflight)
                .collect();
            if load.iter().all(|&l| l == 0) {
                Vec::new()
            } else {
                load
            }
        };
        match kept {
            Some(b) => {
                debug_assert!(b.load == fresh(), "a registry count moved unseen");
                b.clone()
            }
            None => Arc::new(BaseLoad {
                members: members.version,
                at: moves,
                load: fresh(),
            }),
        }
    }
}
