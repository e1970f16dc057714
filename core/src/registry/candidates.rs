//! Keeping a service's candidate table, healthy list and consistent-hash
//! memo up to date in place (SPEC §5).
//!
//! A change to one member is noted on its service and applied at the next
//! pick or discover: a binary search by id and a move of the entries after
//! the member's position, in each list it enters or leaves. The table then
//! holds exactly what a rebuild from scratch at that moment would hold —
//! the same candidates, weights and smooth-WRR state (a candidate that left
//! and came back between two picks keeps its state, as it did when every
//! change rebuilt the table at the next pick) — so picks do not change.
//! What cannot be updated in place is rebuilt lazily: the running sums of
//! weights too uneven for the rejection draw at the first weighted-random
//! pick after a change (every sum after a changed weight moves), the smooth-WRR period table when the state next passes
//! through zero (§5.1). A change of the rule that chooses the candidates
//! (another priority tier, a tier without healthy members, panic) rebuilds
//! the table.

use crate::prelude::*;
use core::cmp::Ordering;

use super::entry::NOT_CANDIDATE;
use super::service::{Candidates, PeriodState, PENDING_MAX};
use super::{Entry, Registry, Slot};
use crate::balancer::{
    rejection_draw, rendezvous, rendezvous_score, running_sums, weighted_draw, WeightClasses,
    BUCKET_BITS, WEIGHT_SCALE,
};
use crate::health::Health;
use crate::rng::Rng;

/// Which members a service's candidate table holds (SPEC §5 without a
/// zone or filter), chosen by the members per tier and health and by the
/// panic flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Rule {
    /// No member is usable.
    #[default]
    Nothing,
    /// The healthy members of this priority tier.
    Healthy(u8),
    /// The degraded members of this tier, which has no healthy one.
    Degraded(u8),
    /// In panic: the non-draining members of this tier.
    Panic(u8),
}

impl Rule {
    /// Whether a member of this priority and health is a candidate.
    pub fn admits(self, priority: u8, health: Health) -> bool {
        match self {
            Rule::Nothing => false,
            Rule::Healthy(p) => priority == p && health == Health::Healthy,
            Rule::Degraded(p) => priority == p && health == Health::Degraded,
            Rule::Panic(p) => priority == p && health != Health::Draining,
        }
    }

    /// The rule one member alone would give.
    pub fn of(priority: u8, health: Health, panic: bool) -> Rule {
        match health {
            Health::Draining => Rule::Nothing,
            _ if panic => Rule::Panic(priority),
            Health::Healthy => Rule::Healthy(priority),
            Health::Degraded => Rule::Degraded(priority),
            _ => Rule::Nothing,
        }
    }

    /// Lower wins: the lowest tier, healthy before degraded (SPEC §5).
    fn rank(self) -> u16 {
        match self {
            Rule::Nothing => u16::MAX,
            Rule::Healthy(p) | Rule::Panic(p) => 2 * u16::from(p),
            Rule::Degraded(p) => 2 * u16::from(p) + 1,
        }
    }

    /// The better of two rules.
    pub fn min(self, other: Rule) -> Rule {
        if other.rank() < self.rank() {
            other
        } else {
            self
        }
    }
}

/// Slots that joined or changed weight kept for the hash memo; a bucket
/// older than those is computed again.
const LOG_MAX: usize = 256;

/// The entry in slot `s` if it is a member of service `idx`.
pub(super) fn member(slots: &[Slot], s: u32, idx: u32) -> Option<&Entry> {
    let e = slots.get(s as usize)?.entry.as_deref()?;
    (e.service_idx == idx).then_some(e)
}

fn member_mut(slots: &mut [Slot], s: u32, idx: u32) -> Option<&mut Entry> {
    let e = slots.get_mut(s as usize)?.entry.as_deref_mut()?;
    (e.service_idx == idx).then_some(e)
}

/// Where the instance with `id` is or would go in `list` (slots in id
/// order). `gone` is a slot whose entry was just taken out: it is the one
/// searched for.
fn position(list: &[u32], slots: &[Slot], id: &str, gone: Option<u32>) -> Result<usize, usize> {
    list.binary_search_by(|&s| {
        if Some(s) == gone {
            return Ordering::Equal;
        }
        match slots.get(s as usize).and_then(|x| x.entry.as_deref()) {
            Some(e) => (*e.instance.id).cmp(id),
            None => {
                debug_assert!(false, "slot {s} in a candidate list has no entry");
                Ordering::Less
            }
        }
    })
}

/// Weighted rendezvous over candidate slots with parallel weights.
#[inline(never)]
pub(super) fn rendezvous_among<W: Copy + Into<u64>>(
    bucket: u32,
    list: &[u32],
    weights: &[W],
    slots: &[Slot],
) -> Option<usize> {
    rendezvous(
        bucket,
        list.iter().zip(weights).map(|(&s, &w)| {
            let e = slots.get(s as usize).and_then(|x| x.entry.as_deref());
            (e.map_or(0, |e| e.id_hash), w.into())
        }),
    )
}

/// A weight as the table keeps it (weights are at most 10 000 × 1 000).
pub(super) fn table_weight(w: u64) -> u32 {
    u32::try_from(w).unwrap_or(u32::MAX)
}

/// Puts `slot` into or out of an id-ordered list as `want` says.
fn place(list: &mut Vec<u32>, slots: &[Slot], slot: u32, id: &str, want: bool) {
    match (position(list, slots, id, None), want) {
        (Err(p), true) if p <= list.len() => list.insert(p, slot),
        (Ok(p), false) if p < list.len() => {
            list.remove(p);
        }
        _ => {}
    }
}

impl Candidates {
    /// Whether the parallel lists have one length (always, unless an
    /// internal index is corrupt; a rebuild then repairs them).
    fn is_parallel(&self) -> bool {
        let n = self.slots.len();
        self.weights.len() == n && (self.current.len() == n || self.current.is_empty())
    }

    /// The weights are about to change: the smooth-WRR state leaves the
    /// period table (written back first, with the old weights), and the
    /// weight-derived tables are stale.
    fn weights_change(&mut self) {
        self.settle_period();
        self.index_may_fit();
        self.period = PeriodState::Unknown;
        self.prefix_fresh = false;
        self.draw_bound = None;
    }

    fn insert_at(&mut self, pos: usize, slot: u32, generation: u32, weight: u32) {
        if pos > self.slots.len() || !self.is_parallel() {
            return;
        }
        self.weights_change();
        if let Some(index) = &mut self.smooth {
            let left = pos.checked_sub(1).and_then(|p| self.slots.get(p)).copied();
            if !index.insert(left, self.slots.get(pos).copied(), slot, weight) {
                self.settle_index();
            }
        }
        #[cfg(feature = "pickers")]
        self.edits.push(super::table_parts::Edit::Insert(
            pos as u32,
            super::Handle {
                index: slot,
                generation,
            },
            weight,
        ));
        #[cfg(not(feature = "pickers"))]
        let _ = generation;
        self.slots.insert(pos, slot);
        self.weights.insert(pos, weight);
        self.classes.add(weight);
        if !self.current.is_empty() {
            self.current.insert(pos, 0);
        }
        self.total += u64::from(weight);
    }

    /// Removes position `pos` from every list that has it (a restored
    /// table has no weights until its rebuild).
    fn remove_at(&mut self, pos: usize) {
        if pos >= self.slots.len() {
            return;
        }
        self.weights_change();
        if let (Some(index), Some(&s), Some(&w)) =
            (&mut self.smooth, self.slots.get(pos), self.weights.get(pos))
        {
            if !index.remove(s, w) {
                debug_assert!(false, "a candidate missing from the smooth-WRR index");
                self.smooth = None;
            }
        }
        #[cfg(feature = "pickers")]
        self.edits
            .push(super::table_parts::Edit::Remove(pos as u32));
        self.slots.remove(pos);
        if pos < self.weights.len() {
            let w = self.weights.remove(pos);
            self.classes.remove(w);
            self.total = self.total.saturating_sub(u64::from(w));
        }
        if pos < self.current.len() {
            self.current.remove(pos);
        }
    }

    fn reweight_at(&mut self, pos: usize, weight: u32) -> bool {
        match self.weights.get(pos) {
            Some(&w) if w != weight => {
                self.weights_change();
                if let (Some(index), Some(&s)) = (&mut self.smooth, self.slots.get(pos)) {
                    if !index.reweight(s, w, weight) {
                        self.settle_index();
                    }
                }
                #[cfg(feature = "pickers")]
                self.edits
                    .push(super::table_parts::Edit::Reweight(pos as u32, weight));
                self.total = self.total - u64::from(w) + u64::from(weight);
                self.classes.remove(w);
                self.classes.add(weight);
                if let Some(x) = self.weights.get_mut(pos) {
                    *x = weight;
                }
                true
            }
            _ => false,
        }
    }

    /// Numbers a join or weight change, for the hash memo.
    fn stamp(&mut self, slot: u32) -> u32 {
        self.seq += 1;
        if !self.buckets.is_empty() {
            self.log.push(slot);
            if self.log.len() > LOG_MAX {
                // The older half goes: memos older than the rest are made
                // again when next used (a key in use keeps up).
                let (keep, len) = (LOG_MAX / 2, self.log.len());
                self.log.copy_within(len - keep.., 0);
                self.log.truncate(keep);
                self.log_start += (len - keep) as u32;
            }
        }
        self.seq
    }

    /// Forgets every hash memo.
    pub fn clear_memo(&mut self) {
        self.buckets.fill((u32::MAX, 0));
        self.log.clear();
        self.log_start = self.seq + 1;
    }

    /// A weighted-random position (SPEC §5.3): the rejection draw while
    /// the weights are within its bound, else (or after too many refusals)
    /// the running sums, made again if the weights changed since.
    #[inline]
    pub fn weighted_draw(&mut self, rng: &mut Rng) -> Option<usize> {
        let bound = self.rejection_bound();
        if bound > 0 {
            if let Some(i) = rejection_draw(rng, &self.weights, bound) {
                return Some(i);
            }
        }
        self.ensure_prefix();
        weighted_draw(rng, &self.prefix)
    }

    /// The rejection draw's bound of the current weights (0: too uneven
    /// for it).
    #[inline]
    pub fn rejection_bound(&mut self) -> u64 {
        match self.draw_bound {
            Some(b) => b,
            None => {
                let b = self.classes.bound(self.weights.len(), self.total);
                self.draw_bound = Some(b);
                b
            }
        }
    }

    /// A copy of the running sums for a published table (made if the
    /// weights changed since).
    #[cfg(feature = "pickers")]
    pub fn prefix_for_tables(&mut self) -> Vec<u64> {
        self.ensure_prefix();
        self.prefix.clone()
    }

    /// Makes the running sums if the weights changed since they were made.
    #[inline(never)]
    fn ensure_prefix(&mut self) {
        if !self.prefix_fresh {
            self.prefix = running_sums(&self.weights);
            self.prefix_fresh = true;
        }
    }
}

impl Registry {
    /// Brings service `idx`'s caches up to date: applies the noted changes,
    /// or rebuilds when that is cheaper or the rule changed.
    #[inline(never)]
    pub(super) fn update_candidates(&mut self, idx: u32) {
        let Some(svc) = self.services.get_mut(idx as usize) else {
            return;
        };
        let pending = core::mem::take(&mut svc.pending);
        if svc.full || svc.candidates.seq > u32::MAX - 2 * PENDING_MAX as u32 {
            return self.rebuild_candidates(idx);
        }
        let mut pending = pending;
        // Repeats side by side, counted once (the crate's small sort: the
        // standard one is large in the WebAssembly module).
        crate::sort::sort_by(&mut pending, |a, b| a < b);
        // The rule stays while no changed member would give a better one
        // and the table keeps a member (checked before anything moves, so
        // a rebuild still finds every survivor).
        let (rule, panic) = (svc.candidates.rule, svc.panic);
        let (mut better, mut stays, mut leaving) = (false, false, 0);
        let mut last = None;
        for &s in &pending {
            let Some(e) = member(&self.slots, s, idx).filter(|_| last != Some(s)) else {
                continue;
            };
            last = Some(s);
            let (priority, health) = (e.instance.priority, e.health);
            better |= rule.min(Rule::of(priority, health, panic)) != rule;
            if rule.admits(priority, health) {
                stays = true;
            } else if position(&svc.candidates.slots, &self.slots, &e.instance.id, None).is_ok() {
                leaving += 1;
            }
        }
        let emptied = !stays && leaving >= svc.candidates.slots.len() && rule != Rule::Nothing;
        if better || emptied || !svc.candidates.is_parallel() {
            return self.rebuild_candidates(idx);
        }
        let mut c = core::mem::take(&mut svc.candidates);
        let mut healthy = core::mem::take(&mut svc.healthy);
        let keep_healthy = svc.keeps_healthy();
        let (clock, window) = (self.clock, self.config.slow_start_ms);
        for &s in &pending {
            let Some(e) = member(&self.slots, s, idx) else {
                continue;
            };
            let id = &*e.instance.id;
            let want = rule.admits(e.instance.priority, e.health);
            let weight = table_weight(e.effective_weight(&self.config, clock));
            let joined = match position(&c.slots, &self.slots, id, None) {
                Ok(p) if want => c.reweight_at(p, weight),
                Ok(p) => {
                    c.remove_at(p);
                    if let Some(e) = member_mut(&mut self.slots, s, idx) {
                        e.cand_since = NOT_CANDIDATE;
                    }
                    false
                }
                Err(p) if want => {
                    let generation = self.slots.get(s as usize).map_or(0, |x| x.generation);
                    c.insert_at(p, s, generation, weight);
                    true
                }
                Err(_) => false,
            };
            let Some(e) = member(&self.slots, s, idx) else {
                continue;
            };
            if keep_healthy {
                let is_healthy = e.health == Health::Healthy;
                place(&mut healthy, &self.slots, s, &e.instance.id, is_healthy);
            }
            if joined {
                let seq = c.stamp(s);
                if let Some(e) = member_mut(&mut self.slots, s, idx) {
                    e.cand_since = seq;
                }
            }
        }
        c.weights_at = clock;
        let svc = &mut self.services[idx as usize];
        svc.candidates = c;
        svc.healthy = healthy;
        svc.dirty = false;
        // Slow start moves weights with time: they are all computed again.
        if window > 0 {
            self.reweigh(idx);
        }
    }

    /// Takes member `slot` (its entry, already out of the slot, is
    /// `entry`) out of its service's lists at once, so they never name a
    /// removed instance.
    pub(crate) fn unlist_candidate(&mut self, idx: u32, slot: u32, entry: &Entry) {
        let Some(svc) = self.services.get_mut(idx as usize) else {
            return;
        };
        // Even before a rebuild: the rebuild finds survivors in order.
        let id = &*entry.instance.id;
        let c = &mut svc.candidates;
        if let Ok(p) = position(&c.slots, &self.slots, id, Some(slot)) {
            c.remove_at(p);
        }
        if svc.keeps_healthy() {
            if let Ok(p) = position(&svc.healthy, &self.slots, id, Some(slot)) {
                if p < svc.healthy.len() {
                    svc.healthy.remove(p);
                }
            }
        }
        // The rule may have changed (and with slow start, the ramp end).
        svc.dirty = true;
        svc.publication.changed();
    }

    /// Rebuilds a service's caches from its members. The old table is a
    /// subsequence of the members (both in id order; a removal leaves it at
    /// once), so one walk finds the survivors, which keep their smooth-WRR
    /// state; newcomers start from zero.
    #[inline(never)]
    pub(super) fn rebuild_candidates(&mut self, idx: u32) {
        let mut healthy = Vec::new();
        let mut rule = Rule::Nothing;
        let Some(svc) = self.services.get_mut(idx as usize) else {
            return;
        };
        let members = core::mem::take(&mut svc.members);
        let mut old = core::mem::take(&mut svc.candidates);
        let (panic, keep_healthy) = (svc.panic, svc.keeps_healthy());
        for &s in &members {
            if let Some(e) = member(&self.slots, s, idx) {
                rule = rule.min(Rule::of(e.instance.priority, e.health, panic));
                if keep_healthy && e.health == Health::Healthy {
                    healthy.push(s);
                }
            }
        }
        old.settle_wrr();
        let mut c = Candidates {
            // The period and running sums depend on the weights alone:
            // `reweigh` keeps them when they come out the same.
            weights: core::mem::take(&mut old.weights),
            prefix: core::mem::take(&mut old.prefix),
            prefix_fresh: old.prefix_fresh,
            period: core::mem::take(&mut old.period),
            ramp_until: old.ramp_until,
            buckets: core::mem::take(&mut old.buckets),
            rule,
            #[cfg(feature = "pickers")]
            edits: core::mem::take(&mut old.edits),
            ..Candidates::default()
        };
        #[cfg(feature = "pickers")]
        c.edits.reset();
        let mut next = 0;
        for &s in &members {
            let survivor = old.slots.get(next) == Some(&s);
            let state = old.current.get(next).copied().filter(|_| survivor);
            next += usize::from(survivor);
            let Some(e) = member_mut(&mut self.slots, s, idx) else {
                continue;
            };
            e.cand_since = NOT_CANDIDATE;
            if rule.admits(e.instance.priority, e.health) {
                e.cand_since = 0;
                c.slots.push(s);
                c.current.push(state.unwrap_or(0));
            }
        }
        debug_assert_eq!(
            next,
            old.slots.len(),
            "the old table was not among the members"
        );
        // A table that never served a smooth-WRR pick keeps no state.
        if old.current.is_empty() {
            c.current = Vec::new();
        }
        c.clear_memo();
        let svc = &mut self.services[idx as usize];
        svc.members = members;
        svc.healthy = healthy;
        svc.candidates = c;
        svc.dirty = false;
        svc.full = false;
        svc.pending = Vec::new();
        self.reweigh(idx);
    }

    /// Recomputes every weight (slow start moves them with time).
    pub(super) fn reweigh(&mut self, idx: u32) {
        let clock = self.clock;
        let window = self.config.slow_start_ms;
        let mut c = core::mem::take(&mut self.services[idx as usize].candidates);
        c.settle_period();
        // The index follows the weights only while they stay as they are.
        let index = c.smooth.take();
        let old_weights = core::mem::take(&mut c.weights);
        c.weights = Vec::with_capacity(old_weights.len());
        let was_ramping = c.ramp_until > 0;
        c.ramp_until = 0;
        let mut sum = 0u64;
        for &s in &c.slots {
            let entry = self.entry(s);
            let w = table_weight(entry.effective_weight(&self.config, clock));
            if window > 0 {
                let end = entry.healthy_since.saturating_add(window);
                if end > clock {
                    c.ramp_until = c.ramp_until.max(end);
                }
            }
            sum += u64::from(w);
            c.weights.push(w);
        }
        c.total = sum;
        c.classes = WeightClasses::of(&c.weights);
        c.draw_bound = None;
        let changed = c.weights != old_weights;
        if let Some(index) = index {
            if changed || c.ramp_until > 0 {
                c.current = index.materialize(&c.slots, &old_weights);
            } else {
                c.smooth = Some(index);
            }
        }
        if changed || c.weights_at != clock || c.ramp_until > 0 {
            c.clear_memo();
        }
        c.weights_at = clock;
        if was_ramping || changed {
            c.period = PeriodState::Unknown;
        }
        if c.ramp_until > 0 {
            c.period = PeriodState::Walk;
        }
        if changed {
            c.prefix_fresh = false;
            c.index_may_fit();
            #[cfg(feature = "pickers")]
            c.edits.reset();
        }
        self.services[idx as usize].candidates = c;
    }

    /// The consistent-hash winner of `bucket` among service `idx`'s
    /// candidates, remembered per bucket while no weight ramps: a memo
    /// stays right while its winner stays, and only the candidates that
    /// joined (or changed weight) since it was made need a look.
    pub(super) fn hash_winner(&mut self, idx: u32, bucket: u32) -> Option<u32> {
        let (clock, slots) = (self.clock, &self.slots);
        let c = &mut self.services.get_mut(idx as usize)?.candidates;
        let scan = |c: &Candidates| {
            let pos = rendezvous_among(bucket, &c.slots, &c.weights, slots)?;
            c.slots.get(pos).copied()
        };
        // Bucket winners are remembered unless slow start is still
        // moving the weights.
        if c.ramp_until > clock {
            return scan(c);
        }
        if c.buckets.is_empty() {
            c.buckets = vec![(u32::MAX, 0); 1 << BUCKET_BITS];
            c.clear_memo();
        }
        let (memo, seen) = c.buckets.get(bucket as usize).copied()?;
        // No weight ramps while memos are kept: every weight is full.
        let score = |e: &Entry| {
            rendezvous_score(
                e.id_hash,
                bucket,
                u64::from(e.instance.weight) * WEIGHT_SCALE,
            )
        };
        let kept = member(slots, memo, idx)
            .filter(|e| e.cand_since <= seen && seen.saturating_add(1) >= c.log_start);
        let winner = match kept {
            Some(mut best) if seen < c.seq => {
                let mut best_slot = memo;
                let mut best_score = score(best);
                let from = (seen + 1 - c.log_start) as usize;
                for (k, &s) in c.log.iter().enumerate().skip(from) {
                    let at = c.log_start + k as u32;
                    let Some(e) = member(slots, s, idx).filter(|e| e.cand_since == at) else {
                        continue;
                    };
                    let x = score(e);
                    if x > best_score || (x == best_score && e.instance.id < best.instance.id) {
                        (best, best_slot, best_score) = (e, s, x);
                    }
                }
                best_slot
            }
            Some(_) => memo,
            None => scan(c)?,
        };
        let seq = c.seq;
        if let Some(b) = c.buckets.get_mut(bucket as usize) {
            *b = (winner, seq);
        }
        Some(winner)
    }
}

#[cfg(test)]
#[path = "candidates_tests.rs"]
mod tests;
