//! Per-service state: members in id order, health counts, panic, caches.

use crate::prelude::*;
use alloc::sync::Arc;

#[cfg(feature = "pickers")]
use super::publication::Publication;

/// Without pickers there is nothing to publish.
#[cfg(not(feature = "pickers"))]
#[derive(Debug, Clone, Default)]
pub(crate) struct Publication;

#[cfg(not(feature = "pickers"))]
impl Publication {
    #[inline(always)]
    pub fn changed(&self) {}
    #[inline(always)]
    pub fn members_changed(&mut self, _slot: u32) {}
}
use super::candidates::Rule;
use super::id_index::{IdIndex, IdSearch};
use super::smooth_index::Held;
#[cfg(feature = "large-services")]
use super::smooth_index::{hold, SmoothIndex, WALKED_INDEX_MIN};
use super::{Entry, Registry};
use crate::balancer::{SmoothPeriod, WeightClasses};
use crate::events::EventKind;
use crate::health::Health;
use crate::metrics::ServiceMetrics;

/// The cached candidate table of unfiltered picks. A change to one
/// instance updates it in place (see `candidates.rs`): a binary search and
/// a move of the entries after the instance's position.
#[derive(Debug, Clone, Default)]
pub(crate) struct Candidates {
    /// Slots in id order.
    pub slots: Vec<u32>,
    /// Effective weights (thousandths), parallel to `slots`: at most
    /// 10 000 × 1 000, so `u32` holds them, and a change moves half as
    /// many bytes of them.
    pub weights: Vec<u32>,
    /// Sum of `weights`.
    pub total: u64,
    /// How many weights fall in each power-of-two class: the rejection
    /// draw's bound follows a change without a walk.
    pub classes: WeightClasses,
    /// The rejection draw's bound (0: weights too uneven for it); `None`
    /// until the first weighted-random pick after a change.
    pub draw_bound: Option<u64>,
    /// Running sums of `weights`, for the weighted-random draw of weights
    /// too uneven for the rejection draw, valid while `prefix_fresh`: made
    /// at the first such pick after a change.
    pub prefix: Vec<u64>,
    pub prefix_fresh: bool,
    /// Smooth-WRR `current`, parallel to `slots`; empty (all zeros) until
    /// the first smooth-WRR pick, so a service that never makes one does
    /// not move it on every change.
    pub current: Vec<i64>,
    /// Until when some weight is still ramping (slow start); weights are
    /// recomputed per pick before then.
    pub ramp_until: u64,
    /// When `weights` were last computed.
    pub weights_at: u64,
    /// Consistent-hash winner per key bucket: `(slot, seq)`, the winner
    /// among the candidates as of sequence number `seq` (`u32::MAX` slot:
    /// not computed yet).
    pub buckets: Vec<(u32, u32)>,
    /// Sequence number of the latest join or weight change in the table.
    pub seq: u32,
    /// The slots that joined or changed weight, numbered from `log_start`:
    /// a bucket memo checks only the candidates that came after it.
    pub log: Vec<u32>,
    pub log_start: u32,
    /// Which members the table holds.
    pub rule: Rule,
    /// The smooth-WRR period of `weights`, once built.
    pub period: PeriodState,
    /// While `Some(p)`, the smooth-WRR state is step `p` of `period` and
    /// `current` is out of date ([`Candidates::settle_wrr`] writes it).
    pub wrr_at: Option<usize>,
    /// While `Some`, the smooth-WRR state of a table too large for a
    /// period table, kept by weight (`smooth_index.rs`); `current` is
    /// then empty. Joins, leaves and weight changes update it.
    pub smooth: Option<Held>,
    /// The index was refused for these weights (too many distinct ones):
    /// walk until they change.
    #[cfg(feature = "large-services")]
    pub smooth_refused: bool,
    /// The changes made to `slots` and `weights`, for picker tables.
    #[cfg(feature = "pickers")]
    pub edits: super::table_parts::EditLog,
}

/// Whether a candidate table has its smooth-WRR period table.
#[derive(Debug, Clone, Default)]
pub(crate) enum PeriodState {
    /// Not built for these weights yet.
    #[default]
    Unknown,
    /// Past the size line (or slow start moves the weights): walk.
    Walk,
    /// Built.
    Table(Arc<SmoothPeriod>),
}

impl Candidates {
    /// The slot of the next smooth-WRR winner (without the index, every
    /// table walks or steps through its period table).
    #[cfg(not(feature = "large-services"))]
    #[inline(always)]
    pub fn smooth_slot(&mut self, ramping: bool) -> Option<u32> {
        let pos = self.smooth_next(ramping)?;
        self.slots.get(pos).copied()
    }

    /// The slot of the next smooth-WRR winner: from the index of a large
    /// table (built at its first pick), else as [`Candidates::smooth_next`]
    /// finds it. Every path gives the walk's answers.
    #[cfg(feature = "large-services")]
    #[inline(always)]
    pub fn smooth_slot(&mut self, ramping: bool) -> Option<u32> {
        match self.period_next() {
            Some(winner) => winner.and_then(|p| self.slots.get(p).copied()),
            None => self.smooth_slot_off_period(ramping),
        }
    }

    /// [`Candidates::smooth_slot`] when the state is not a step of the
    /// period table.
    #[cfg(feature = "large-services")]
    #[inline(never)]
    fn smooth_slot_off_period(&mut self, ramping: bool) -> Option<u32> {
        if ramping {
            self.settle_index();
        } else if let Some(index) = &mut self.smooth {
            return index.pick(self.total);
        } else if self.wants_index() {
            self.use_current();
            match SmoothIndex::build(&self.slots, &self.weights, &self.current) {
                Some(index) => {
                    self.current = Vec::new();
                    return self.smooth.insert(hold(index)).pick(self.total);
                }
                None => self.smooth_refused = true,
            }
        }
        let pos = self.smooth_next(ramping)?;
        self.slots.get(pos).copied()
    }

    /// Whether a smooth-WRR index should be tried: for a table no period
    /// table can serve (past 4 096 candidates, or past 256 once the period
    /// table was refused for these weights), unless refused
    /// for these weights already.
    #[cfg(feature = "large-services")]
    fn wants_index(&self) -> bool {
        let n = self.slots.len();
        let walks = matches!(self.period, PeriodState::Walk);
        (n >= index_min() || (walks && n >= WALKED_INDEX_MIN)) && !self.smooth_refused
    }

    /// The weights changed: an index refused for the old ones may fit.
    #[inline(always)]
    pub fn index_may_fit(&mut self) {
        #[cfg(feature = "large-services")]
        {
            self.smooth_refused = false;
        }
    }

    /// Writes the index's state back into `current` and drops the index
    /// (before `slots` or `weights` change in a way it does not follow).
    #[inline]
    pub fn settle_index(&mut self) {
        if let Some(index) = self.smooth.take() {
            self.current = index.materialize(&self.slots, &self.weights);
        }
    }

    /// The smooth-WRR `current` of position `pos` (a filtered pick reads
    /// the candidates it draws from).
    pub fn wrr_state_at(&self, pos: usize) -> i64 {
        match (&self.smooth, self.slots.get(pos), self.weights.get(pos)) {
            (Some(index), Some(&s), Some(&w)) => index.current(s, w).unwrap_or(0),
            _ => self.current.get(pos).copied().unwrap_or(0),
        }
    }

    /// Sets the smooth-WRR `current` of position `pos`.
    pub fn set_wrr_state_at(&mut self, pos: usize, value: i64) {
        match (&mut self.smooth, self.slots.get(pos), self.weights.get(pos)) {
            (Some(index), Some(&s), Some(&w)) => {
                let kept = index.set_current(s, w, value);
                debug_assert!(kept, "a candidate missing from the smooth-WRR index");
            }
            _ => {
                if let Some(x) = self.current.get_mut(pos) {
                    *x = value;
                }
            }
        }
    }

    /// The next smooth-WRR winner: from the period table in O(1) while the
    /// state is a step of it, else by the walk. The walk hands over to the
    /// table whenever its state is back at all zeros (the start of the
    /// period), so both give the same sequence.
    #[inline]
    pub fn smooth_next(&mut self, ramping: bool) -> Option<usize> {
        if let Some(winner) = self.period_next() {
            return winner;
        }
        self.use_current();
        if !ramping && self.current.iter().all(|&c| c == 0) && self.enter_period() {
            return self.smooth_next(ramping);
        }
        crate::balancer::smooth_wrr(&self.weights, &mut self.current, self.total)
    }

    /// The next step of the period table while the state is one of its
    /// steps (`None`: it is not).
    #[inline(always)]
    fn period_next(&mut self) -> Option<Option<usize>> {
        let (Some(pos), PeriodState::Table(period)) = (self.wrr_at, &self.period) else {
            return None;
        };
        let winner = period.get(pos);
        let next = pos + 1;
        self.wrr_at = Some(if next == period.len() { 0 } else { next });
        Some(winner)
    }

    /// Builds the period table if it was not tried for these weights, and
    /// starts at its first step; false when the table does not apply.
    #[inline(never)]
    fn enter_period(&mut self) -> bool {
        #[cfg(test)]
        if tests::WALK_ONLY.load(core::sync::atomic::Ordering::Relaxed) {
            return false;
        }
        if let PeriodState::Unknown = self.period {
            self.period = match SmoothPeriod::build(&self.weights) {
                Some(p) => PeriodState::Table(Arc::new(p)),
                None => PeriodState::Walk,
            };
        }
        match &self.period {
            PeriodState::Table(p) if p.len() > 0 && self.current.len() == self.weights.len() => {
                self.wrr_at = Some(0);
                true
            }
            _ => false,
        }
    }

    /// Gives `current` its place for every candidate (zeros) if it has none
    /// and no index holds the state.
    #[inline]
    pub fn use_current(&mut self) {
        if self.current.len() != self.slots.len()
            && self.current.is_empty()
            && self.smooth.is_none()
        {
            self.current = vec![0; self.slots.len()];
        }
    }

    /// Writes the smooth-WRR state back into `current` (before anything
    /// reads or changes `current` or the weights), from the period table
    /// or the index.
    #[inline]
    pub fn settle_wrr(&mut self) {
        self.settle_period();
        self.settle_index();
    }

    /// Writes the period table's step back into `current`.
    #[inline]
    pub fn settle_period(&mut self) {
        if let Some(pos) = self.wrr_at.take() {
            if let PeriodState::Table(p) = &self.period {
                self.current = p.state_at(pos, &self.weights);
            }
        }
    }

    /// The smooth-WRR `current`, parallel to `slots`, without changing
    /// the table (for snapshots).
    pub fn wrr_current(&self) -> alloc::borrow::Cow<'_, [i64]> {
        if let Some(index) = &self.smooth {
            return alloc::borrow::Cow::Owned(index.materialize(&self.slots, &self.weights));
        }
        match (self.wrr_at, &self.period) {
            (Some(pos), PeriodState::Table(p)) => {
                alloc::borrow::Cow::Owned(p.state_at(pos, &self.weights))
            }
            _ if self.current.is_empty() => alloc::borrow::Cow::Owned(vec![0; self.slots.len()]),
            _ => alloc::borrow::Cow::Borrowed(&self.current),
        }
    }
}

/// The fewest candidates a table keeps a smooth-WRR index for (tests
/// lower it, to hold the index to the walk on small tables).
#[cfg(feature = "large-services")]
#[inline(always)]
fn index_min() -> usize {
    #[cfg(test)]
    return tests::INDEX_FROM.with(|n| n.get());
    #[cfg(not(test))]
    super::smooth_index::INDEX_MIN
}

/// The round-robin counter `c` of SPEC §5, with `c mod len` kept so the
/// hot path needs no division while the candidate count is unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RoundRobin {
    pub count: u64,
    pos: usize,
    /// The `len` that `pos` belongs to (0: not known).
    len: usize,
}

impl RoundRobin {
    pub fn at(count: u64) -> RoundRobin {
        RoundRobin {
            count,
            pos: 0,
            len: 0,
        }
    }

    /// Round robin over `len` candidates: `c mod len`, then `c += 1`.
    #[inline(always)]
    pub fn next(&mut self, len: usize) -> usize {
        let pos = if self.len == len {
            self.pos
        } else {
            (self.count % len as u64) as usize
        };
        self.count = self.count.wrapping_add(1);
        let next = pos + 1;
        // After a wrap of the u64 counter the position restarts from the division.
        if self.count == 0 {
            self.len = 0;
        } else {
            self.pos = if next == len { 0 } else { next };
            self.len = len;
        }
        pos
    }
}

/// Changes held for the next pick beyond which the caches are rebuilt
/// instead (each applied change costs a search and a move of the table).
pub(crate) const PENDING_MAX: usize = 128;

#[derive(Debug, Clone)]
pub(crate) struct Service {
    pub name: Arc<str>,
    /// Member slots in id order.
    pub members: Vec<u32>,
    /// The members' ids, parallel to `members` (`id_index.rs`).
    pub member_ids: IdIndex,
    /// Members by public health, indexed by `Health as usize`.
    pub counts: [u32; 5],
    /// Instances with an ejection in force (outlier detection).
    pub ejected: u32,
    pub panic: bool,
    pub modify_index: u64,
    /// Round-robin counter `c` of SPEC §5.
    pub rr: RoundRobin,
    /// Caches need updating before the next pick or discover.
    pub dirty: bool,
    /// ... by a full rebuild (else by applying `pending`).
    pub full: bool,
    /// Members changed since the caches were last brought up to date
    /// (repeats allowed). Applied at the next pick or discover, so the
    /// table moves from one pick to the next as a rebuild would.
    pub pending: Vec<u32>,
    /// Healthy members in id order (discover's default answer). With
    /// pickers, kept only from the service's first such discover on
    /// (`healthy_kept`): a service read through picks and pickers alone
    /// moves no list for it on a join or leave.
    pub healthy: Vec<u32>,
    #[cfg(feature = "pickers")]
    pub healthy_kept: bool,
    pub candidates: Candidates,
    pub metrics: ServiceMetrics,
    /// What pickers of this service read (empty until the first picker).
    pub publication: Publication,
}

impl Service {
    /// Whether the healthy list is kept up to date (always without
    /// pickers).
    #[inline(always)]
    pub fn keeps_healthy(&self) -> bool {
        #[cfg(feature = "pickers")]
        return self.healthy_kept;
        #[cfg(not(feature = "pickers"))]
        true
    }

    pub fn new(name: Arc<str>) -> Service {
        Service {
            name,
            members: Vec::new(),
            member_ids: IdIndex::default(),
            counts: [0; 5],
            ejected: 0,
            panic: false,
            modify_index: 0,
            rr: RoundRobin::default(),
            dirty: true,
            full: true,
            pending: Vec::new(),
            healthy: Vec::new(),
            #[cfg(feature = "pickers")]
            healthy_kept: false,
            candidates: Candidates::default(),
            metrics: ServiceMetrics::default(),
            publication: Default::default(),
        }
    }

    /// The candidate set may have changed in any way: rebuild the caches
    /// before the next pick, and tell this service's pickers their table
    /// is stale.
    #[inline(never)]
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
        self.full = true;
        self.pending = Vec::new();
        self.publication.changed();
    }

    /// Member `slot` may have changed (health, priority, weight, or it is
    /// new): update the caches for it before the next pick, and tell this
    /// service's pickers their table is stale. Past [`PENDING_MAX`] changes
    /// a rebuild is cheaper.
    pub fn note(&mut self, slot: u32) {
        if !self.full {
            if self.pending.len() < PENDING_MAX {
                self.pending.push(slot);
            } else {
                self.full = true;
                self.pending = Vec::new();
            }
        }
        self.dirty = true;
        self.publication.changed();
    }

    /// Whether healthy / non-draining is below `threshold`.
    pub fn below_threshold(&self, threshold: f64) -> bool {
        if threshold <= 0.0 {
            return false;
        }
        let non_draining = self.members.len() as u32 - self.counts[Health::Draining as usize];
        if non_draining == 0 {
            return false;
        }
        f64::from(self.counts[Health::Healthy as usize]) / f64::from(non_draining) < threshold
    }
}

impl Registry {
    /// Where `id` is or would go among a service's members (id order);
    /// appending past the last member, the usual case, skips the search.
    fn member_position(&self, service_idx: u32, id: &str) -> Result<usize, usize> {
        self.services[service_idx as usize].member_ids.search(id)
    }

    pub(crate) fn service_add_member(&mut self, service_idx: u32, slot: u32, index: u64) {
        let id = self.entry(slot).instance.id.clone();
        let pos = match self.member_position(service_idx, &id) {
            Ok(p) | Err(p) => p,
        };
        let health = self.entry(slot).health;
        let service = &mut self.services[service_idx as usize];
        service.members.insert(pos, slot);
        service.member_ids.insert(pos, id);
        service.counts[health as usize] += 1;
        service.modify_index = index;
        service.publication.members_changed(slot);
        self.note_member(service_idx, slot);
    }

    /// Member `slot` of service `service_idx` may have changed.
    #[inline(never)]
    pub(crate) fn note_member(&mut self, service_idx: u32, slot: u32) {
        #[cfg(test)]
        if self.reference {
            return self.services[service_idx as usize].mark_dirty();
        }
        self.services[service_idx as usize].note(slot);
    }

    pub(crate) fn service_remove_member(
        &mut self,
        service_idx: u32,
        slot: u32,
        entry: &Entry,
        index: u64,
    ) {
        let found = self.member_position(service_idx, &entry.instance.id);
        debug_assert!(
            found.is_ok(),
            "a removed instance was not among its service's members"
        );
        if let Ok(pos) = found {
            let service = &mut self.services[service_idx as usize];
            debug_assert_eq!(
                service.members[pos], slot,
                "members and member ids disagree"
            );
            if service.members[pos] == slot {
                service.members.remove(pos);
                service.member_ids.remove(pos);
            }
        }
        let service = &mut self.services[service_idx as usize];
        service.counts[entry.health as usize] -= 1;
        if entry.inputs.ejected {
            service.ejected -= 1;
        }
        service.modify_index = index;
        service.publication.members_changed(slot);
        self.unlist_candidate(service_idx, slot, entry);
        #[cfg(test)]
        if self.reference {
            self.services[service_idx as usize].mark_dirty();
        }
    }

    /// The fields of member `slot` were replaced.
    pub(crate) fn service_touch(&mut self, service_idx: u32, slot: u32, index: u64) {
        let service = &mut self.services[service_idx as usize];
        service.modify_index = index;
        service.publication.members_changed(slot);
        self.note_member(service_idx, slot);
    }

    /// Enters or leaves panic when the service's health counts cross the threshold.
    pub(crate) fn update_panic(&mut self, service_idx: u32, at: u64) {
        let threshold = self.config.panic_threshold;
        let service = &self.services[service_idx as usize];
        let panic = service.below_threshold(threshold);
        if panic == service.panic {
            return;
        }
        let name = service.name.clone();
        let kind = if panic {
            EventKind::PanicEntered
        } else {
            EventKind::PanicExited
        };
        let index = self.events.push(kind, at, None, Some(name), None);
        let service = &mut self.services[service_idx as usize];
        service.panic = panic;
        service.modify_index = index;
        service.mark_dirty();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{InstanceSpec, PickOptions, Strategy};
    use core::sync::atomic::{AtomicBool, Ordering};

    /// Makes every candidate table walk (the reference the period table
    /// must match). Both modes give the same answers, so other tests
    /// running meanwhile are unaffected.
    pub(crate) static WALK_ONLY: AtomicBool = AtomicBool::new(false);

    std::thread_local! {
        /// The fewest candidates given a smooth-WRR index on this thread.
        pub(crate) static INDEX_FROM: core::cell::Cell<usize> =
            const { core::cell::Cell::new(super::super::smooth_index::INDEX_MIN) };
    }

    fn transcript(seed: u64) -> Vec<String> {
        let mut rng = crate::rng::Rng::from_seed(seed);
        let mut reg = Registry::default();
        let mut out = Vec::new();
        for step in 0..400u64 {
            let id = format!("i{}", rng.below(8));
            match rng.below(12) {
                0 => {
                    let mut spec = InstanceSpec::new(&id, "svc", "10.0.0.1", 80);
                    spec.weight = 1 + rng.below(4) as u32;
                    spec.zone = Some(if rng.below(2) == 0 { "a" } else { "b" }.into());
                    out.push(format!("{:?}", reg.register(spec, step).is_ok()));
                }
                1 => out.push(format!("{:?}", reg.deregister(&id, step).is_ok())),
                2 => {
                    let options = PickOptions {
                        zone: Some("a".into()),
                        ..PickOptions::default()
                    };
                    let p = reg.pick("svc", Strategy::WeightedRoundRobin, &options, step);
                    out.push(format!("{:?}", p.map(|p| p.handle)));
                }
                3 => {
                    let snap = reg.snapshot();
                    out.push(snap.clone());
                    if let Ok(r) = Registry::restore(&snap) {
                        reg = r;
                    }
                }
                _ => {
                    let p = reg.pick(
                        "svc",
                        Strategy::WeightedRoundRobin,
                        &PickOptions::default(),
                        step,
                    );
                    out.push(format!("{:?}", p.map(|p| p.handle)));
                }
            }
        }
        out
    }

    /// A table the period table was refused for gets the index past 256
    /// candidates; one the period table serves keeps it.
    #[cfg(feature = "large-services")]
    #[test]
    fn a_refused_period_hands_large_tables_to_the_index() {
        // Weights 1, 11, 21, …: 300 of them sum to about 95 000, a period
        // of 95 000 steps × 300 candidates, past the table's limit; 7
        // distinct ones sum to about 9 000, within it.
        for (n, weights, indexed) in [(300, 64, true), (300, 7, false), (250, 64, false)] {
            let mut reg = Registry::default();
            for i in 0..n {
                let mut spec = InstanceSpec::new(format!("i{i:04}"), "svc", "10.0.0.1", 80);
                spec.weight = 1 + 10 * (i % weights) as u32;
                assert!(reg.register(spec, 0).is_ok());
            }
            for _ in 0..3 {
                let p = reg.pick(
                    "svc",
                    Strategy::WeightedRoundRobin,
                    &PickOptions::default(),
                    0,
                );
                assert!(p.is_ok());
            }
            let c = &reg.services[0].candidates;
            assert_eq!(
                c.smooth.is_some(),
                indexed,
                "{n} candidates, {weights} weights"
            );
            // The period table was refused exactly where the weights are 64.
            let refused = matches!(c.period, PeriodState::Walk) || c.smooth.is_some();
            assert_eq!(refused, weights == 64, "{n} candidates, {weights} weights");
        }
    }

    #[test]
    fn the_period_table_answers_as_the_walk_does() {
        for seed in 0..40 {
            WALK_ONLY.store(true, Ordering::Relaxed);
            let walked = transcript(seed);
            WALK_ONLY.store(false, Ordering::Relaxed);
            let tabled = transcript(seed);
            assert_eq!(walked, tabled, "seed {seed}");
        }
    }
}
