//! Worker-local pickers (SPEC §5.2): picks that never touch the registry.
//!
//! The registry publishes, per service, an immutable [`PickTable`] (the
//! candidates in order, their weights, their running sums when uneven, the instances' hash
//! inputs, the smooth-WRR period, the panic flag) and a generation counter
//! shared with every picker of the service. A [`Picker`] keeps its own
//! round-robin and smooth-WRR positions and its own RNG stream, reads only
//! its table, and asks to be refreshed (under whatever lock the host keeps
//! around the registry) when the generation moved. Outcomes wait in the
//! picker until the next refresh; in-flight counts are atomic counters
//! shared by every picker.
//!
//! A picker made with options (zone preference, required tags and
//! metadata) reads a table of the candidates `pick` would draw from with
//! the same options; the registry keeps one table per set of options in
//! use. Every table carries its members' registered fields, so a host gets
//! the fields of what it picked from the table it picked from.

use crate::prelude::*;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::publication::{BaseLoad, Member, Members};
use super::service::RoundRobin;
use super::smooth_groups::SmoothGroups;
use super::table_parts::Parts;
use super::{Handle, Pick, PickOptions, Registry};
use crate::balancer::{
    key_bucket, rejection_draw_by, rendezvous, running_sum_draw, smooth_wrr, two_choices,
    weighted_draw, SmoothPeriod, Strategy, BUCKET_BITS,
};
use crate::config::{MAX_ID_BYTES, MAX_KEY_BYTES};
use crate::error::{Error, Result};
use crate::instance::{check_name, Instance};
use crate::rng::{mix64, Rng};

/// Outcomes a picker holds before it asks to be refreshed.
pub const PICKER_OUTCOME_BATCH: usize = 64;
/// How long (ms) a picker holds its first unreported outcome before it
/// asks to be refreshed.
pub const PICKER_OUTCOME_DELAY_MS: u64 = 100;
/// Outcomes a picker holds at most; later ones are dropped (and counted)
/// until the host refreshes it.
pub const PICKER_OUTCOME_CAP: usize = 4096;

/// Tables alive in this process (a diagnostic for leak tests).
static TABLES_ALIVE: AtomicUsize = AtomicUsize::new(0);

/// One published, immutable candidate table of a service.
#[derive(Debug)]
pub struct PickTable {
    pub(super) service: u32,
    pub(super) name: Arc<str>,
    /// The zone and filter it was built for; `None`: every candidate.
    pub(super) options: Option<Arc<PickOptions>>,
    /// Unique per registry: picker-local caches are keyed by it.
    pub(super) id: u64,
    /// The signal value it was built at.
    pub(super) generation: u64,
    /// When the weights were computed (registry clock).
    pub(super) weights_at: u64,
    /// The registry's membership epoch at publication.
    pub(super) membership_epoch: u64,
    /// Some weight is still ramping (slow start): stale once time moves.
    pub(super) ramping: bool,
    /// The service has members (else picks fail with `unknown_service`).
    pub(super) known: bool,
    pub(super) panic: bool,
    /// The candidates, in id order, and their weights (at most
    /// 10 000 × 1 000 each): parts shared with the table before.
    pub(super) parts: Parts,
    /// The registry's candidate-table change the parts include.
    pub(super) edits_at: u64,
    pub(super) total: u64,
    /// The rejection draw's bound over the weights (0: running sums draw).
    pub(super) bound: u64,
    /// Running sums of the weights when `bound` is 0: always in a table
    /// built with options; in one of every candidate (weights too uneven
    /// for the rejection draw) once some picker of the service drew
    /// weighted random, else empty (a picker then sums the weights itself).
    pub(super) prefix: Vec<u64>,
    /// Every member's generation, in-flight counter, revision, registered
    /// fields and hash input: shared with later tables while the service's
    /// members and their fields are unchanged.
    pub(super) members: Arc<Members>,
    /// Calls begun through the registry per member at publication.
    pub(super) base_load: Arc<BaseLoad>,
    pub(super) period: Option<Arc<SmoothPeriod>>,
    /// The period was built or judged too large: pickers stop asking.
    pub(super) period_settled: bool,
}

impl Drop for PickTable {
    fn drop(&mut self) {
        TABLES_ALIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

impl PickTable {
    /// Candidates in the table.
    pub fn len(&self) -> usize {
        self.parts.len()
    }
    /// True when no instance is a candidate.
    pub fn is_empty(&self) -> bool {
        self.parts.len() == 0
    }
    /// Whether smooth WRR reads a period table (O(1)) rather than walking.
    pub fn has_period(&self) -> bool {
        self.period.is_some()
    }
    /// The generation it was published at.
    pub fn generation(&self) -> u64 {
        self.generation
    }
    /// The registry's membership epoch when it was published: a host-side
    /// cache keyed by slot index is valid for this table's handles while
    /// the epoch it was filled at is this one.
    pub fn membership_epoch(&self) -> u64 {
        self.membership_epoch
    }

    /// Unique per registry: a host-side cache keyed by candidate position
    /// is valid for the table with this id.
    pub fn id(&self) -> u64 {
        self.id
    }
    /// The zone and filter it was built for; `None` for every candidate.
    pub fn options(&self) -> Option<&PickOptions> {
        self.options.as_deref()
    }
    /// The candidate at `position`.
    pub fn handle(&self, position: usize) -> Option<Handle> {
        self.parts.handle(position)
    }
    /// The registered fields of the candidate at `position`, as they were
    /// when the table was published: they stay readable when the instance
    /// is removed or replaced later.
    pub fn instance(&self, position: usize) -> Option<&Arc<Instance>> {
        self.member(position).map(|m| &m.fields)
    }
    /// The revision of the candidate at `position` (it changes only when
    /// the instance's fields do): with its handle, a host-side cache key.
    pub fn revision(&self, position: usize) -> Option<u64> {
        self.member(position).map(|m| m.revision)
    }
    /// What a host object built from the candidate at `position` is built
    /// from (SPEC §5.4, [`InstanceObjects::get_at`](crate::InstanceObjects::get_at)).
    pub fn stamp(&self, position: usize) -> Option<crate::InstanceStamp> {
        let handle = self.parts.handle(position)?;
        let revision = self.members.get(handle)?.revision;
        Some(crate::InstanceStamp::new(
            handle,
            revision,
            self.membership_epoch,
        ))
    }

    #[inline]
    fn member(&self, position: usize) -> Option<&Member> {
        self.members.get(self.parts.handle(position)?)
    }

    fn counter(&self, handle: Handle) -> Option<&AtomicU64> {
        self.members.get(handle).map(|m| &*m.counter)
    }

    /// Whether it lacks a period or running sums that pickers asked for.
    pub(super) fn lacks(&self, wrr_used: bool, sums_used: bool) -> bool {
        (wrr_used && !self.period_settled)
            || (sums_used && self.bound == 0 && self.prefix.is_empty() && !self.is_empty())
    }
}

/// A table was made (see [`pick_tables_alive`]).
pub(super) fn table_born() {
    TABLES_ALIVE.fetch_add(1, Ordering::Relaxed);
}

/// A picker's smooth-WRR state over a table without a period table, from
/// zeros: by weight (O(D) per pick) unless the table has too many distinct
/// weights, which walk every candidate.
#[derive(Debug, Clone, Default)]
enum Walk {
    #[default]
    None,
    Groups(SmoothGroups),
    Every {
        current: Vec<i64>,
        weights: Vec<u32>,
    },
}

impl Walk {
    fn of(weights: &[u32]) -> Walk {
        match SmoothGroups::build(weights) {
            Some(groups) => Walk::Groups(groups),
            None => Walk::Every {
                current: vec![0; weights.len()],
                weights: weights.to_vec(),
            },
        }
    }

    fn next(&mut self, total: u64) -> Option<usize> {
        match self {
            Walk::None => None,
            Walk::Groups(groups) => groups.next(),
            Walk::Every { current, weights } => smooth_wrr(weights, current, total),
        }
    }
}

/// What a picker works out from one table, each part at its first use,
/// and forgets when the table changes.
#[derive(Debug, Default)]
struct Memos {
    /// The id of the table they belong to.
    table: u64,
    /// Smooth-WRR state when the table has no period.
    walk: Walk,
    /// Consistent-hash winners per bucket.
    buckets: Vec<u32>,
    /// The in-flight counters of the positions least_request looked at,
    /// by position: a second look skips the member map.
    counters: Vec<Option<Arc<AtomicU64>>>,
}

impl Memos {
    /// The memos of table `id`, emptied first if they were another's.
    #[inline]
    fn of(&mut self, id: u64) -> &mut Memos {
        if self.table != id {
            self.table = id;
            self.walk = Walk::None;
            self.buckets.clear();
            self.counters.clear();
        }
        self
    }
}

/// A worker-local picker for one service: see the module documentation and
/// SPEC §5.2. `Send`, not shared: one thread at a time uses it. Aligned to
/// a cache line, so pickers of different threads placed side by side in
/// memory do not share one.
#[derive(Debug)]
#[repr(align(64))]
pub struct Picker {
    table: Arc<PickTable>,
    signal: Arc<AtomicU64>,
    seen: u64,
    number: u64,
    rng: Rng,
    rr: RoundRobin,
    wrr: RoundRobin,
    /// What the picker worked out from its current table.
    memos: Memos,
    /// The table has no period yet and smooth WRR was asked for.
    wants_period: bool,
    /// A weighted-random draw asked for the running sums its table lacks.
    wants_sums: bool,
    /// Something besides the signal may call for a refresh (a wish for
    /// the period, a ramping weight, held outcomes): one test on the hot path.
    local: bool,
    outcomes: Vec<(Handle, bool)>,
    outcomes_since: u64,
    dropped: u64,
    picks: [u64; 7],
    failures: u64,
}

impl Picker {
    /// Its number in the registry that made it (1, 2, …): with the
    /// registry's seed, it fixes the picker's RNG stream and start positions.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// The table it reads.
    pub fn table(&self) -> &PickTable {
        &self.table
    }

    /// Whether the host should refresh it (under the registry's lock)
    /// before the next pick: the service changed since its table was
    /// published, a weight is ramping and time moved, or outcomes are due
    /// (a batch, or one older than [`PICKER_OUTCOME_DELAY_MS`]).
    #[inline(always)]
    pub fn needs_refresh(&self, now: u64) -> bool {
        self.signal.load(Ordering::Acquire) != self.seen || (self.local && self.local_due(now))
    }

    #[inline(never)]
    fn local_due(&self, now: u64) -> bool {
        self.wants_period
            || self.wants_sums
            || (self.table.ramping && now > self.table.weights_at)
            || (!self.outcomes.is_empty()
                && (self.outcomes.len() >= PICKER_OUTCOME_BATCH
                    || now >= self.outcomes_since.saturating_add(PICKER_OUTCOME_DELAY_MS)))
    }

    /// Picks one candidate of its table with `strategy` (`key` for
    /// `consistent_hash`; `Some("")` is no key, as everywhere, SPEC §5).
    /// Reads only the picker and its table.
    ///
    /// # Errors
    /// `invalid_argument` for `consistent_hash` without a key or a key
    /// over 65 536 bytes; `unknown_service` when the table lists no
    /// members; `no_eligible_instance` when none is a candidate.
    #[inline]
    pub fn pick(&mut self, strategy: Strategy, key: Option<&str>) -> Result<Pick> {
        self.pick_entry(strategy, key).map(|p| p.pick)
    }

    /// [`Picker::pick`], with the position of the candidate in the table it
    /// was picked from (and so its fields): one pick, one step of the
    /// picker's sequences.
    ///
    /// # Errors
    /// As [`Picker::pick`].
    #[inline(always)]
    pub fn pick_entry(&mut self, strategy: Strategy, key: Option<&str>) -> Result<Picked<'_>> {
        let len = self.table.parts.len();
        let key = key.filter(|k| !k.is_empty());
        // The usual picks without a key answer here; every other case (and
        // the key's checks) in `pick_other`, with the same answers.
        // (A key is checked there for every strategy, as the registry's own
        // pick checks it.)
        let pos = match (strategy, &self.table.period) {
            _ if len == 0 || key.is_some() => self.pick_other(strategy, key)?,
            (Strategy::RoundRobin, _) => Some(self.rr.next(len)),
            (Strategy::Random, _) => Some(self.rng.below(len as u64) as usize),
            (Strategy::WeightedRoundRobin, Some(period)) => period.get(self.wrr.next(period.len())),
            _ => self.pick_other(strategy, key)?,
        };
        match pos.and_then(|p| Some((p, self.table.parts.handle(p)?))) {
            Some((position, handle)) => {
                if let Some(n) = self.picks.get_mut(strategy as usize) {
                    *n += 1;
                }
                let table = &*self.table;
                Ok(Picked {
                    pick: Pick {
                        handle,
                        panic: table.panic,
                    },
                    position,
                    table,
                })
            }
            None => Err(self.failed()),
        }
    }

    #[cold]
    #[inline(never)]
    fn failed(&mut self) -> Error {
        if self.table.known {
            self.failures += 1;
            Error::NoEligibleInstance {
                service: String::from(&*self.table.name),
                detail: String::new(),
            }
        } else {
            Error::unknown_service(&self.table.name)
        }
    }

    #[inline(never)]
    fn pick_other(&mut self, strategy: Strategy, key: Option<&str>) -> Result<Option<usize>> {
        if let Some(k) = key {
            if k.len() > MAX_KEY_BYTES {
                return Err(crate::instance::too_long("key", MAX_KEY_BYTES));
            }
        }
        let t = &*self.table;
        let len = t.parts.len();
        if len == 0 {
            if strategy == Strategy::ConsistentHash && key.is_none() {
                return Err(Error::invalid("key", "consistent_hash needs a key"));
            }
            return Ok(None);
        }
        Ok(match strategy {
            Strategy::RoundRobin => Some(self.rr.next(len)),
            Strategy::Random => Some(self.rng.below(len as u64) as usize),
            Strategy::WeightedRandom if t.bound > 0 => {
                rejection_draw_by(&mut self.rng, len, t.bound, |i| {
                    t.parts.weight(i).map_or(0, u64::from)
                })
                .or_else(|| running_sum_draw(&mut self.rng, &t.parts.weights()))
            }
            Strategy::WeightedRandom if t.prefix.is_empty() => {
                // The same answer as the running sums the table lacks.
                self.wants_sums = true;
                self.local = true;
                running_sum_draw(&mut self.rng, &t.parts.weights())
            }
            Strategy::WeightedRandom => weighted_draw(&mut self.rng, &t.prefix),
            Strategy::WeightedRoundRobin => match &t.period {
                Some(period) => period.get(self.wrr.next(period.len())),
                None => {
                    if !t.period_settled {
                        self.wants_period = true;
                        self.local = true;
                    }
                    let memos = self.memos.of(t.id);
                    if let Walk::None = memos.walk {
                        memos.walk = Walk::of(&t.parts.weights());
                    }
                    memos.walk.next(t.total)
                }
            },
            Strategy::FirstAvailable => Some(0),
            Strategy::LeastRequest => {
                let counters = &mut self.memos.of(t.id).counters;
                if counters.is_empty() {
                    counters.resize(len, None);
                }
                two_choices(&mut self.rng, len, |i| {
                    let counter = counters.get_mut(i).and_then(|known| {
                        if known.is_none() {
                            let member = t.parts.handle(i).and_then(|h| t.members.get(h));
                            *known = member.map(|m| m.counter.clone());
                        }
                        known.as_deref()
                    });
                    let mut load = counter.map_or(0, |c| c.load(Ordering::Relaxed));
                    if !t.base_load.is_empty() {
                        let base = t.parts.handle(i).map_or(0, |h| t.base_load.get(h));
                        load = load.saturating_add(base);
                    }
                    (load, t.parts.weight(i).map_or(0, u64::from))
                })
            }
            Strategy::ConsistentHash => {
                let Some(key) = key else {
                    return Err(Error::invalid("key", "consistent_hash needs a key"));
                };
                let bucket = key_bucket(key);
                let memo = !t.ramping;
                let buckets = &mut self.memos.of(t.id).buckets;
                if memo && buckets.is_empty() {
                    buckets.resize(1 << BUCKET_BITS, u32::MAX);
                }
                match buckets.get(bucket as usize) {
                    Some(&cached) if memo && cached != u32::MAX => Some(cached as usize),
                    _ => {
                        let pos = rendezvous(
                            bucket,
                            t.parts.iter().map(|(h, w)| {
                                (t.members.get(h).map_or(0, |m| m.id_hash), u64::from(w))
                            }),
                        );
                        if let (true, Some(p), Some(slot)) =
                            (memo, pos, buckets.get_mut(bucket as usize))
                        {
                            *slot = p as u32;
                        }
                        pos
                    }
                }
            }
        })
    }

    /// Notes a call to `handle` as started (`least_request`): an atomic
    /// counter every picker of the registry reads at once. False when the
    /// handle is not a member in this picker's table.
    #[inline]
    pub fn begin(&self, handle: Handle) -> bool {
        match self.table.counter(handle) {
            Some(c) => {
                c.fetch_add(1, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Notes a call to `handle` as finished; the count never goes below
    /// zero. False when the handle is not a member in this picker's table.
    #[inline]
    pub fn end(&self, handle: Handle) -> bool {
        match self.table.counter(handle) {
            Some(c) => {
                let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
                true
            }
            None => false,
        }
    }

    /// Records the outcome of a call to `handle` for outlier detection; it
    /// reaches the registry at the next refresh (see
    /// [`Picker::needs_refresh`]). Returns `needs_refresh(now)`.
    pub fn report_outcome(&mut self, handle: Handle, success: bool, now: u64) -> bool {
        if self.outcomes.len() >= PICKER_OUTCOME_CAP {
            self.dropped += 1;
        } else {
            if self.outcomes.is_empty() {
                self.outcomes_since = now;
            }
            self.outcomes.push((handle, success));
            self.local = true;
        }
        self.needs_refresh(now)
    }

    /// Outcomes dropped because the picker held [`PICKER_OUTCOME_CAP`].
    pub fn dropped_outcomes(&self) -> u64 {
        self.dropped
    }

    /// Outcomes waiting for the next refresh.
    pub fn pending_outcomes(&self) -> usize {
        self.outcomes.len()
    }
}

/// A picker's pick with where it came from.
#[derive(Debug, Clone, Copy)]
pub struct Picked<'a> {
    /// The pick.
    pub pick: Pick,
    /// The candidate's position in `table`.
    pub position: usize,
    /// The table it was picked from.
    pub table: &'a PickTable,
}

impl<'a> Picked<'a> {
    /// The picked instance's registered fields, from its table.
    pub fn instance(&self) -> Option<&'a Arc<Instance>> {
        self.table.instance(self.position)
    }
}

/// Candidate tables alive in this process, every registry together: a
/// diagnostic for tests that check old tables are freed.
pub fn pick_tables_alive() -> usize {
    TABLES_ALIVE.load(Ordering::Relaxed)
}

impl Registry {
    /// A worker-local picker for `service` (which need not have instances
    /// yet): see SPEC §5.2. Pickers are numbered 1, 2, … per registry; the
    /// number and the configured seed fix its RNG stream and the start of
    /// its round-robin and smooth-WRR positions.
    ///
    /// # Errors
    /// `invalid_argument` for a malformed service name.
    pub fn picker(&mut self, service: &str) -> Result<Picker> {
        self.picker_with(service, &PickOptions::default())
    }

    /// [`Registry::picker`] whose picks draw from the candidates `pick`
    /// draws from with `options`' zone and filter (SPEC §5.2); the key
    /// comes with each pick.
    ///
    /// # Errors
    /// `invalid_argument` for a malformed service name, zone or filter, or
    /// a key in `options`.
    pub fn picker_with(&mut self, service: &str, options: &PickOptions) -> Result<Picker> {
        check_name("service", service, MAX_ID_BYTES)?;
        if options.key().is_some() {
            return Err(Error::invalid(
                "key",
                "a picker takes its key with each pick",
            ));
        }
        Self::validate_pick(Strategy::RoundRobin, options)?;
        let options = (options.zone().is_some() || !options.filter.is_empty()).then(|| {
            Arc::new(PickOptions {
                key: None,
                zone: options.zone().map(String::from),
                filter: options.filter.clone(),
            })
        });
        let idx = self.service_index_or_insert(service);
        self.pickers += 1;
        let number = self.pickers;
        let (signal, table) = self.publish(idx, options.as_ref(), false);
        let mut rng = Rng::from_seed(mix64(self.config.seed ^ mix64(number)));
        let rr = RoundRobin::at(rng.next_u64());
        let wrr = RoundRobin::at(rng.next_u64());
        let local = table.ramping;
        Ok(Picker {
            seen: table.generation,
            table,
            signal,
            number,
            rng,
            rr,
            wrr,
            memos: Memos::default(),
            wants_period: false,
            wants_sums: false,
            local,
            outcomes: Vec::new(),
            outcomes_since: 0,
            dropped: 0,
            picks: [0; 7],
            failures: 0,
        })
    }

    /// Brings a picker up to date at `now`: moves the clock (applying what
    /// fell due), folds the picker's outcomes and pick counts into the
    /// registry, and hands it the service's latest table (publishing one if
    /// the service changed). Call it under the lock that guards the
    /// registry when [`Picker::needs_refresh`] says so.
    ///
    /// # Errors
    /// `invalid_argument` when the picker was made by another registry.
    pub fn refresh_picker(&mut self, picker: &mut Picker, now: u64) -> Result<()> {
        let idx = picker.table.service;
        let ours = self
            .services
            .get(idx as usize)
            .and_then(|s| s.publication.signal.as_ref())
            .is_some_and(|s| Arc::ptr_eq(s, &picker.signal));
        if !ours {
            return Err(Error::invalid("picker", "made by another registry"));
        }
        self.advance(now);
        for (handle, success) in picker.outcomes.drain(..) {
            if let Ok(slot) = self.slot_of_handle(handle) {
                self.outcome_slot(slot, success);
            }
        }
        let svc = &mut self.services[idx as usize];
        for (total, n) in svc.metrics.picks.iter_mut().zip(&mut picker.picks) {
            *total += core::mem::take(n);
        }
        svc.metrics.pick_failures += core::mem::take(&mut picker.failures);
        let wants_period = core::mem::take(&mut picker.wants_period);
        let wants_sums = core::mem::take(&mut picker.wants_sums);
        svc.publication.wrr_used |= wants_period;
        svc.publication.sums_used |= wants_sums;
        let force = wants_period || wants_sums;
        let options = picker.table.options.clone();
        let (_, table) = self.publish(idx, options.as_ref(), force);
        picker.local = table.ramping;
        picker.seen = table.generation;
        picker.table = table;
        Ok(())
    }
}

#[cfg(test)]
#[path = "picker_tests.rs"]
mod tests;
