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

use super::service::{PeriodState, RoundRobin};
use super::{Handle, Pick, PickOptions, Registry};
use crate::balancer::{
    key_bucket, rejection_bound, rejection_draw, rendezvous, running_sum_draw, running_sums,
    smooth_wrr, two_choices, weighted_draw, SmoothPeriod, Strategy, BUCKET_BITS,
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

/// What the registry keeps per service for its pickers. A cloned registry
/// starts without pickers, so the copy gets an empty publication.
#[derive(Debug, Default)]
pub(crate) struct Publication {
    /// Moves on every change to the service's candidate set.
    signal: Option<Arc<AtomicU64>>,
    /// The latest table handed out for each set of options (none: the
    /// unfiltered one); a table no picker holds is dropped at the next
    /// publication.
    tables: Vec<Arc<PickTable>>,
    /// Some picker asked for smooth WRR: tables carry the period.
    wrr_used: bool,
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
}

/// One published, immutable candidate table of a service.
#[derive(Debug)]
pub struct PickTable {
    service: u32,
    name: Arc<str>,
    /// The zone and filter it was built for; `None`: every candidate.
    options: Option<Arc<PickOptions>>,
    /// Unique per registry: picker-local caches are keyed by it.
    id: u64,
    /// The signal value it was built at.
    generation: u64,
    /// When the weights were computed (registry clock).
    weights_at: u64,
    /// The registry's membership epoch at publication.
    membership_epoch: u64,
    /// Some weight is still ramping (slow start): stale once time moves.
    ramping: bool,
    /// The service has members (else picks fail with `unknown_service`).
    known: bool,
    panic: bool,
    /// The candidates, in id order.
    handles: Vec<Handle>,
    weights: Vec<u64>,
    total: u64,
    /// The rejection draw's bound over `weights` (0: `prefix` draws).
    bound: u64,
    /// Running sums of `weights` when `bound` is 0 (a table built with
    /// options, or weights too uneven for the rejection draw), else empty.
    prefix: Vec<u64>,
    id_hashes: Vec<u64>,
    /// Calls begun through the registry at publication, parallel to `slots`.
    base_load: Vec<u64>,
    /// Each candidate's position in `members` (its in-flight counter).
    candidate_member: Vec<u32>,
    /// Member slot → position in `members` (`u32::MAX`: not a member).
    by_slot: Vec<u32>,
    /// Every member's generation and in-flight counter.
    members: Vec<(u32, Arc<AtomicU64>)>,
    /// Every member's revision and registered fields, parallel to
    /// `members`: shared with later tables while unchanged.
    fields: Vec<(u64, Arc<Instance>)>,
    period: Option<Arc<SmoothPeriod>>,
    /// The period was built or judged too large: pickers stop asking.
    period_settled: bool,
}

impl Drop for PickTable {
    fn drop(&mut self) {
        TABLES_ALIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

impl PickTable {
    /// Candidates in the table.
    pub fn len(&self) -> usize {
        self.handles.len()
    }
    /// True when no instance is a candidate.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
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
        self.handles.get(position).copied()
    }
    /// The registered fields of the candidate at `position`, as they were
    /// when the table was published: they stay readable when the instance
    /// is removed or replaced later.
    pub fn instance(&self, position: usize) -> Option<&Arc<Instance>> {
        self.member_fields(position).map(|(_, f)| f)
    }
    /// The revision of the candidate at `position` (it changes only when
    /// the instance's fields do): with its handle, a host-side cache key.
    pub fn revision(&self, position: usize) -> Option<u64> {
        self.member_fields(position).map(|(r, _)| *r)
    }

    #[inline]
    fn member_fields(&self, position: usize) -> Option<&(u64, Arc<Instance>)> {
        let member = *self.candidate_member.get(position)?;
        self.fields.get(member as usize)
    }

    fn counter(&self, handle: Handle) -> Option<&AtomicU64> {
        let at = *self.by_slot.get(handle.index as usize)?;
        match self.members.get(at as usize) {
            Some((generation, counter)) if *generation == handle.generation => Some(counter),
            _ => None,
        }
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
    /// Smooth-WRR `current` when the table has no period (id of its table).
    walk: Vec<i64>,
    walk_table: u64,
    /// Consistent-hash winners per bucket (id of their table).
    buckets: Vec<u32>,
    buckets_table: u64,
    /// The table has no period yet and smooth WRR was asked for.
    wants_period: bool,
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
        let len = self.table.handles.len();
        let pos = if strategy == Strategy::RoundRobin && len > 0 {
            Some(self.rr.next(len))
        } else {
            self.pick_other(strategy, key.filter(|k| !k.is_empty()))?
        };
        match pos.and_then(|p| Some((p, *self.table.handles.get(p)?))) {
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
        let len = t.handles.len();
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
                rejection_draw(&mut self.rng, &t.weights, t.bound)
                    .or_else(|| running_sum_draw(&mut self.rng, &t.weights))
            }
            Strategy::WeightedRandom => weighted_draw(&mut self.rng, &t.prefix),
            Strategy::WeightedRoundRobin => match &t.period {
                Some(period) => period.get(self.wrr.next(period.len())),
                None => {
                    if !t.period_settled {
                        self.wants_period = true;
                        self.local = true;
                    }
                    if self.walk_table != t.id {
                        self.walk.clear();
                        self.walk.resize(len, 0);
                        self.walk_table = t.id;
                    }
                    smooth_wrr(&t.weights, &mut self.walk, t.total)
                }
            },
            Strategy::FirstAvailable => Some(0),
            Strategy::LeastRequest => two_choices(&mut self.rng, len, |i| {
                let base = t.base_load.get(i).copied().unwrap_or(0);
                let shared = t
                    .candidate_member
                    .get(i)
                    .and_then(|&m| t.members.get(m as usize))
                    .map_or(0, |(_, c)| c.load(Ordering::Relaxed));
                (
                    base.saturating_add(shared),
                    t.weights.get(i).copied().unwrap_or(0),
                )
            }),
            Strategy::ConsistentHash => {
                let Some(key) = key else {
                    return Err(Error::invalid("key", "consistent_hash needs a key"));
                };
                let bucket = key_bucket(key);
                let memo = !t.ramping;
                if memo && self.buckets_table != t.id {
                    self.buckets.clear();
                    self.buckets.resize(1 << BUCKET_BITS, u32::MAX);
                    self.buckets_table = t.id;
                }
                match self.buckets.get(bucket as usize) {
                    Some(&cached) if memo && cached != u32::MAX => Some(cached as usize),
                    _ => {
                        let pos = rendezvous(
                            bucket,
                            t.id_hashes.iter().copied().zip(t.weights.iter().copied()),
                        );
                        if let (true, Some(p), Some(slot)) =
                            (memo, pos, self.buckets.get_mut(bucket as usize))
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
            walk: Vec::new(),
            walk_table: 0,
            buckets: Vec::new(),
            buckets_table: 0,
            wants_period: false,
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
        let force = core::mem::take(&mut picker.wants_period);
        if force {
            svc.publication.wrr_used = true;
        }
        let options = picker.table.options.clone();
        let (_, table) = self.publish(idx, options.as_ref(), force);
        picker.local = table.ramping;
        picker.seen = table.generation;
        picker.table = table;
        Ok(())
    }

    /// The latest table of service `idx` for `options`, built anew when
    /// the service changed since the last one (or `force`d, to add a period).
    fn publish(
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
        let wrr_used = svc.publication.wrr_used;
        let at = svc
            .publication
            .tables
            .iter()
            .position(|t| t.options.as_deref() == options.map(|o| &**o));
        let current = at.and_then(|i| svc.publication.tables.get(i));
        if force && current.is_some_and(|t| !t.period_settled) {
            // A table with a period replaces one of the same candidates:
            // move the signal so every picker takes it.
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
        let table =
            Arc::new(self.build_table(idx, options, generation, previous.as_deref(), wrr_used));
        let publication = &mut self.services[idx as usize].publication;
        // Tables no picker holds any more are dropped (built again if asked for).
        publication.tables.retain(|t| Arc::strong_count(t) > 1);
        publication.tables.push(table.clone());
        (signal, table)
    }

    fn build_table(
        &mut self,
        idx: u32,
        options: Option<&Arc<PickOptions>>,
        generation: u64,
        previous: Option<&PickTable>,
        wrr_used: bool,
    ) -> PickTable {
        let clock = self.clock;
        let members = self.services[idx as usize].members.clone();
        for &s in &members {
            let e = self.entry_mut(s);
            if e.load.shared_inflight.is_none() {
                e.load.shared_inflight = Some(Arc::new(AtomicU64::new(0)));
            }
        }
        let mut by_slot =
            vec![u32::MAX; members.iter().map(|&s| s as usize + 1).max().unwrap_or(0)];
        let mut member_counters = Vec::with_capacity(members.len());
        let mut fields = Vec::with_capacity(members.len());
        // Fields are rendered once per revision: later tables share them.
        let donor = previous.or_else(|| {
            self.services[idx as usize]
                .publication
                .tables
                .first()
                .map(|t| &**t)
        });
        for (i, &s) in members.iter().enumerate() {
            if let Some(b) = by_slot.get_mut(s as usize) {
                *b = i as u32;
            }
            let generation = self.slots.get(s as usize).map_or(0, |x| x.generation);
            let entry = self.entry(s);
            let counter = entry.load.shared_inflight.clone().unwrap_or_default();
            let kept = donor.and_then(|d| {
                let at = *d.by_slot.get(s as usize)? as usize;
                match (d.members.get(at), d.fields.get(at)) {
                    (Some((g, _)), Some((r, f))) if *g == generation && *r == entry.revision => {
                        Some(f.clone())
                    }
                    _ => None,
                }
            });
            let fields_now = kept.unwrap_or_else(|| Arc::new(entry.instance.clone()));
            fields.push((entry.revision, fields_now));
            member_counters.push((generation, counter));
        }
        let prefix = match options {
            None => self.services[idx as usize].candidates.prefix_for_tables(),
            Some(_) => Vec::new(),
        };
        let c = &self.services[idx as usize].candidates;
        let (slots, weights, prefix, ramping, weights_at) = match options {
            None => (
                c.slots.clone(),
                c.weights.iter().map(|&w| u64::from(w)).collect(),
                prefix,
                c.ramp_until > clock,
                c.weights_at,
            ),
            Some(o) => {
                let subset = self.subset(idx, o);
                let (slots, weights) = self.subset_weights(idx, &subset);
                let window = self.config.slow_start_ms;
                let ramping = window > 0
                    && slots
                        .iter()
                        .any(|&s| self.entry(s).healthy_since.saturating_add(window) > clock);
                let prefix = running_sums(&weights);
                (slots, weights, prefix, ramping, clock)
            }
        };
        let c = &self.services[idx as usize].candidates;
        let (period, period_settled) = if ramping {
            (None, true)
        } else {
            match (&c.period, previous) {
                (PeriodState::Table(p), _) if options.is_none() => (Some(p.clone()), true),
                (_, Some(p)) if p.weights == weights && (p.period_settled || !wrr_used) => {
                    (p.period.clone(), p.period_settled)
                }
                _ if wrr_used => (SmoothPeriod::build(&weights).map(Arc::new), true),
                _ => (None, false),
            }
        };
        let total = weights.iter().sum();
        let max = weights.iter().copied().max().unwrap_or(0);
        self.publications += 1;
        TABLES_ALIVE.fetch_add(1, Ordering::Relaxed);
        let svc = &self.services[idx as usize];
        PickTable {
            service: idx,
            name: svc.name.clone(),
            options: options.cloned(),
            id: self.publications,
            generation,
            weights_at,
            membership_epoch: self.membership_epoch,
            ramping,
            known: !members.is_empty(),
            panic: svc.panic,
            handles: slots
                .iter()
                .map(|&index| Handle {
                    index,
                    generation: self.slots.get(index as usize).map_or(0, |x| x.generation),
                })
                .collect(),
            total,
            bound: match options {
                None => rejection_bound(weights.len(), total, max),
                Some(_) => None,
            }
            .unwrap_or(0),
            weights,
            prefix,
            id_hashes: slots.iter().map(|&s| self.entry(s).id_hash).collect(),
            base_load: slots.iter().map(|&s| self.entry(s).load.inflight).collect(),
            candidate_member: slots
                .iter()
                .map(|&s| by_slot.get(s as usize).copied().unwrap_or(u32::MAX))
                .collect(),
            by_slot,
            members: member_counters,
            fields,
            period,
            period_settled,
        }
    }
}

#[cfg(test)]
#[path = "picker_tests.rs"]
mod tests;
