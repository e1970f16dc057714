//! Smooth weighted round robin over a large candidate table without a walk
//! per pick (SPEC §5.1).
//!
//! The walk adds every candidate's weight to its `current` and takes the
//! largest (the lowest id on ties). Written as `current = stored + step ×
//! weight`, a pick only advances `step` and lowers the winner's `stored`
//! by the total, and among candidates of one weight the largest `current`
//! is the largest `stored`, whatever the step. So each distinct weight
//! keeps its candidates ordered by `stored` (then by id), and a pick
//! compares the first of each weight: O(D + log n) for D distinct
//! weights, against O(n) for the walk, with exactly the walk's answers. A
//! join, leave or weight change moves one candidate in O(log n).
//!
//! Ties go to the lowest id, so each candidate carries a label that
//! follows the id order: gaps are left between labels, a newcomer takes
//! the middle of its neighbours' gap, and a gap used up gives the table
//! back to the walk (which builds the index again, relabelled, at its
//! next pick).
//!
//! Tables the period table can never serve use it: a period has at least
//! one step per candidate, so past [`INDEX_MIN`] candidates period ×
//! candidates is past [`PERIOD_WORK_MAX`]. So do tables of more than
//! [`WALKED_INDEX_MIN`] whose weights the period table was refused for
//! (a period past its limits). Other tables keep the period table and the
//! walk exactly as before.

use crate::balancer::PERIOD_WORK_MAX;

/// The fewest candidates an index is built for: the smallest `n` with
/// `n × n > PERIOD_WORK_MAX`.
pub(crate) const INDEX_MIN: usize = 4097;

/// The fewest candidates an index is built for once the period table was
/// refused for their weights (below it, a walk costs about as much as a
/// pick from the index).
#[cfg(feature = "large-services")]
pub(crate) const WALKED_INDEX_MIN: usize = 256;

const _: () = assert!((INDEX_MIN as u64) * (INDEX_MIN as u64) > PERIOD_WORK_MAX);
const _: () = assert!(((INDEX_MIN - 1) as u64) * ((INDEX_MIN - 1) as u64) <= PERIOD_WORK_MAX);

#[cfg(feature = "large-services")]
pub(crate) use imp::SmoothIndex;

/// How a candidate table holds its index.
#[cfg(feature = "large-services")]
pub(crate) type Held = alloc::boxed::Box<SmoothIndex>;

#[cfg(feature = "large-services")]
#[inline]
pub(crate) fn hold(index: SmoothIndex) -> Held {
    alloc::boxed::Box::new(index)
}

/// Without the feature there is no index: no value of this type exists,
/// so every table walks and the code that keeps an index is left out.
#[cfg(not(feature = "large-services"))]
#[derive(Debug, Clone)]
pub(crate) enum SmoothIndex {}

#[cfg(not(feature = "large-services"))]
pub(crate) type Held = SmoothIndex;

#[cfg(not(feature = "large-services"))]
impl SmoothIndex {
    pub fn insert(&mut self, _l: Option<u32>, _r: Option<u32>, _s: u32, _w: u32) -> bool {
        match *self {}
    }
    pub fn remove(&mut self, _slot: u32, _weight: u32) -> bool {
        match *self {}
    }
    pub fn reweight(&mut self, _slot: u32, _old: u32, _new: u32) -> bool {
        match *self {}
    }
    pub fn current(&self, _slot: u32, _weight: u32) -> Option<i64> {
        match *self {}
    }
    pub fn set_current(&mut self, _slot: u32, _weight: u32, _value: i64) -> bool {
        match *self {}
    }
    pub fn materialize(&self, _slots: &[u32], _weights: &[u32]) -> Vec<i64> {
        match *self {}
    }
    pub fn check(&self, _slots: &[u32], _weights: &[u32]) -> Result<(), &'static str> {
        match *self {}
    }
}

#[cfg(not(feature = "large-services"))]
use crate::prelude::*;

#[cfg(feature = "large-services")]
mod imp {
    use crate::prelude::*;
    use alloc::collections::BTreeSet;
    use core::cmp::Reverse;

    use crate::balancer::WEIGHT_GROUPS_MAX as GROUPS_MAX;

    /// The gap between the labels of a new index.
    const LABEL_GAP: u64 = 1 << 32;

    /// Steps taken before `step` is folded into every `stored`: keeps
    /// `step × weight` (weights are at most 10 000 × 1 000) far inside
    /// `i64`.
    const STEPS_MAX: i64 = 1 << 31;

    /// A candidate's place: its label (0: not a candidate) and `stored`.
    #[derive(Debug, Clone, Copy, Default)]
    struct Place {
        label: u64,
        stored: i64,
    }

    /// The candidates of one weight, largest `stored` first, then lowest
    /// label (id).
    #[derive(Debug, Clone)]
    struct Group {
        weight: u32,
        members: BTreeSet<(Reverse<i64>, u64, u32)>,
    }

    /// The smooth-WRR state of a candidate table, by slot.
    #[derive(Debug, Clone)]
    pub(crate) struct SmoothIndex {
        step: i64,
        groups: Vec<Group>,
        places: Vec<Place>,
    }

    impl SmoothIndex {
        /// The index of a table (`slots` in id order, parallel `weights`
        /// and `current`), or `None` when it has too many distinct
        /// weights or the lists do not line up.
        pub fn build(slots: &[u32], weights: &[u32], current: &[i64]) -> Option<SmoothIndex> {
            let n = slots.len();
            if weights.len() != n || current.len() != n || n as u64 >= u64::MAX / LABEL_GAP {
                return None;
            }
            let mut distinct: Vec<u32> = Vec::new();
            for &w in weights {
                if !distinct.contains(&w) {
                    if distinct.len() == GROUPS_MAX {
                        return None;
                    }
                    distinct.push(w);
                }
            }
            let size = slots.iter().max().map_or(0, |&s| s as usize + 1);
            let mut index = SmoothIndex {
                step: 0,
                groups: distinct
                    .into_iter()
                    .map(|weight| Group {
                        weight,
                        members: BTreeSet::new(),
                    })
                    .collect(),
                places: vec![Place::default(); size],
            };
            for (i, ((&slot, &w), &c)) in slots.iter().zip(weights).zip(current).enumerate() {
                let label = (i as u64 + 1) * LABEL_GAP;
                let place = index.places.get_mut(slot as usize)?;
                if place.label != 0 {
                    return None; // a slot twice
                }
                *place = Place { label, stored: c };
                index
                    .group_mut(w)?
                    .members
                    .insert((Reverse(c), label, slot));
            }
            Some(index)
        }

        fn group_mut(&mut self, weight: u32) -> Option<&mut Group> {
            self.groups.iter_mut().find(|g| g.weight == weight)
        }

        fn place(&self, slot: u32) -> Option<Place> {
            self.places
                .get(slot as usize)
                .copied()
                .filter(|p| p.label != 0)
        }

        /// The next winner's slot, as the walk over the table would give it.
        #[inline]
        pub fn pick(&mut self, total: u64) -> Option<u32> {
            if total == 0 || total > i64::MAX as u64 {
                return None;
            }
            if self.step >= STEPS_MAX {
                self.fold_step();
            }
            self.step += 1;
            let step = self.step;
            let mut best: Option<(i64, u64, usize)> = None;
            for (g, group) in self.groups.iter().enumerate() {
                let Some(&(Reverse(stored), label, _)) = group.members.first() else {
                    continue;
                };
                let value = stored + step * i64::from(group.weight);
                let better = match best {
                    None => true,
                    Some((v, l, _)) => value > v || (value == v && label < l),
                };
                if better {
                    best = Some((value, label, g));
                }
            }
            let group = self.groups.get_mut(best?.2)?;
            let (Reverse(stored), label, slot) = group.members.pop_first()?;
            let stored = stored - total as i64;
            group.members.insert((Reverse(stored), label, slot));
            if let Some(p) = self.places.get_mut(slot as usize) {
                p.stored = stored;
            }
            Some(slot)
        }

        /// Folds `step × weight` into every `stored` and sets `step` to 0:
        /// a shift by the same amount keeps each group's order.
        #[cold]
        fn fold_step(&mut self) {
            let step = core::mem::take(&mut self.step);
            for group in &mut self.groups {
                let shift = step * i64::from(group.weight);
                let members = core::mem::take(&mut group.members);
                group.members = members
                    .into_iter()
                    .map(|(Reverse(s), label, slot)| {
                        if let Some(p) = self.places.get_mut(slot as usize) {
                            p.stored = s + shift;
                        }
                        (Reverse(s + shift), label, slot)
                    })
                    .collect();
            }
        }

        /// Adds a candidate with `current` 0 between the candidates `left`
        /// and `right` (its neighbours in id order, if any). False when
        /// no label fits between them, or its weight would be one too
        /// many: the caller gives the table back to the walk.
        pub fn insert(
            &mut self,
            left: Option<u32>,
            right: Option<u32>,
            slot: u32,
            weight: u32,
        ) -> bool {
            let low = match left {
                Some(s) => match self.place(s) {
                    Some(p) => p.label,
                    None => return false,
                },
                None => 0,
            };
            let label = match right {
                Some(s) => match self.place(s) {
                    Some(p) if p.label - low >= 2 => low + (p.label - low) / 2,
                    _ => return false,
                },
                None => match low.checked_add(LABEL_GAP) {
                    Some(l) => l,
                    None => return false,
                },
            };
            if self.place(slot).is_some() || !self.has_room(weight, None) {
                return false;
            }
            let stored = -(self.step * i64::from(weight));
            self.put(slot, weight, Place { label, stored })
        }

        /// Whether a candidate of `weight` fits, `leaving` (a weight) going.
        fn has_room(&self, weight: u32, leaving: Option<u32>) -> bool {
            self.groups.len() < GROUPS_MAX
                || self.groups.iter().any(|g| {
                    g.weight == weight || (Some(g.weight) == leaving && g.members.len() == 1)
                })
        }

        /// Files `slot` at `place` among the candidates of `weight` (a new
        /// group if it has none; the caller checked there is room).
        fn put(&mut self, slot: u32, weight: u32, place: Place) -> bool {
            if self.group_mut(weight).is_none() {
                self.groups.push(Group {
                    weight,
                    members: BTreeSet::new(),
                });
            }
            if slot as usize >= self.places.len() {
                self.places.resize(slot as usize + 1, Place::default());
            }
            let (Some(p), Some(group)) = (
                self.places.get_mut(slot as usize),
                self.groups.iter_mut().find(|g| g.weight == weight),
            ) else {
                return false;
            };
            *p = place;
            group
                .members
                .insert((Reverse(place.stored), place.label, slot));
            true
        }

        /// Takes a candidate out; false when it is not in the index.
        pub fn remove(&mut self, slot: u32, weight: u32) -> bool {
            let Some(place) = self.place(slot) else {
                return false;
            };
            let Some(g) = self.groups.iter().position(|g| g.weight == weight) else {
                return false;
            };
            let removed = self.groups.get_mut(g).is_some_and(|group| {
                group
                    .members
                    .remove(&(Reverse(place.stored), place.label, slot))
            });
            if self
                .groups
                .get(g)
                .is_some_and(|group| group.members.is_empty())
            {
                self.groups.swap_remove(g);
            }
            if let Some(p) = self.places.get_mut(slot as usize) {
                *p = Place::default();
            }
            removed
        }

        /// A candidate's `current`, when it is in the index with `weight`.
        pub fn current(&self, slot: u32, weight: u32) -> Option<i64> {
            Some(self.place(slot)?.stored + self.step * i64::from(weight))
        }

        /// Sets a candidate's `current`; false when it is not in the index.
        pub fn set_current(&mut self, slot: u32, weight: u32, value: i64) -> bool {
            let Some(place) = self.place(slot) else {
                return false;
            };
            let stored = value - self.step * i64::from(weight);
            let Some(group) = self.group_mut(weight) else {
                return false;
            };
            if !group
                .members
                .remove(&(Reverse(place.stored), place.label, slot))
            {
                return false;
            }
            group.members.insert((Reverse(stored), place.label, slot));
            if let Some(p) = self.places.get_mut(slot as usize) {
                p.stored = stored;
            }
            true
        }

        /// Moves a candidate from weight `old` to `new`, its `current`
        /// kept; false when it is not in the index or `new` would be one
        /// weight too many (the index is then unchanged).
        pub fn reweight(&mut self, slot: u32, old: u32, new: u32) -> bool {
            if old == new {
                return self.place(slot).is_some();
            }
            let Some(current) = self.current(slot, old) else {
                return false;
            };
            if !self.has_room(new, Some(old)) {
                return false;
            }
            let Some(label) = self.place(slot).map(|p| p.label) else {
                return false;
            };
            if !self.remove(slot, old) {
                return false;
            }
            let stored = current - self.step * i64::from(new);
            self.put(slot, new, Place { label, stored })
        }

        /// Whether the index holds exactly the table `slots` with
        /// `weights`, its labels in the table's order.
        pub fn check(&self, slots: &[u32], weights: &[u32]) -> Result<(), &'static str> {
            let mut last = 0u64;
            for (&s, &w) in slots.iter().zip(weights) {
                let place = self.place(s).ok_or("a candidate has no place")?;
                if place.label <= last {
                    return Err("labels out of the table's order");
                }
                last = place.label;
                let group = self
                    .groups
                    .iter()
                    .find(|g| g.weight == w)
                    .ok_or("a weight has no group")?;
                if !group
                    .members
                    .contains(&(Reverse(place.stored), place.label, s))
                {
                    return Err("a candidate is missing from its weight's group");
                }
            }
            let held: usize = self.groups.iter().map(|g| g.members.len()).sum();
            let placed = self.places.iter().filter(|p| p.label != 0).count();
            if held != slots.len() || placed != slots.len() || weights.len() != slots.len() {
                return Err("the index holds other candidates than the table");
            }
            if self.groups.iter().any(|g| g.members.is_empty()) {
                return Err("an empty group");
            }
            Ok(())
        }

        #[cfg(test)]
        pub fn fold_step_for_tests(&mut self) {
            self.fold_step();
        }

        /// Every candidate's `current`, parallel to `slots` (their
        /// `weights` beside them).
        pub fn materialize(&self, slots: &[u32], weights: &[u32]) -> Vec<i64> {
            slots
                .iter()
                .zip(weights)
                .map(|(&s, &w)| self.current(s, w).unwrap_or(0))
                .collect()
        }
    }
}

#[cfg(all(test, feature = "large-services"))]
mod tests {
    use super::*;
    use crate::balancer::smooth_wrr;
    use crate::prelude::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Pick,
        Join(usize, u32),
        Leave(usize),
        Reweight(usize, u32),
        Set(usize, i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => Just(Op::Pick),
            2 => (any::<usize>(), 1u32..6).prop_map(|(p, w)| Op::Join(p, w)),
            2 => any::<usize>().prop_map(Op::Leave),
            1 => (any::<usize>(), 1u32..6).prop_map(|(p, w)| Op::Reweight(p, w)),
            1 => (any::<usize>(), -20i64..20).prop_map(|(p, v)| Op::Set(p, v)),
        ]
    }

    proptest! {
        /// Every pick and every `current` is the walk's, through joins,
        /// leaves, weight changes and filtered picks' writes.
        #[test]
        fn answers_as_the_walk(
            weights in proptest::collection::vec(1u32..6, 1..40),
            ops in proptest::collection::vec(op(), 1..300),
        ) {
            let mut slots: Vec<u32> = (0..weights.len() as u32).map(|s| s * 2).collect();
            let mut weights = weights;
            let mut walk = vec![0i64; weights.len()];
            let built = SmoothIndex::build(&slots, &weights, &walk);
            prop_assert!(built.is_some());
            let Some(mut index) = built else { return Ok(()) };
            let mut next_slot = 1000u32;
            for op in ops {
                match op {
                    Op::Pick => {
                        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
                        let want = smooth_wrr(&weights, &mut walk, total).map(|p| slots[p]);
                        prop_assert_eq!(index.pick(total), want);
                    }
                    Op::Join(p, w) => {
                        let p = p % (slots.len() + 1);
                        let left = p.checked_sub(1).map(|i| slots[i]);
                        let right = slots.get(p).copied();
                        if !index.insert(left, right, next_slot, w) {
                            walk = index.materialize(&slots, &weights);
                            slots.insert(p, next_slot);
                            weights.insert(p, w);
                            walk.insert(p, 0);
                            let built = SmoothIndex::build(&slots, &weights, &walk);
                            prop_assert!(built.is_some());
                            let Some(rebuilt) = built else { return Ok(()) };
                            index = rebuilt;
                        } else {
                            slots.insert(p, next_slot);
                            weights.insert(p, w);
                            walk.insert(p, 0);
                        }
                        next_slot += 1;
                    }
                    Op::Leave(p) if !slots.is_empty() => {
                        let p = p % slots.len();
                        prop_assert!(index.remove(slots[p], weights[p]));
                        slots.remove(p);
                        weights.remove(p);
                        walk.remove(p);
                    }
                    Op::Reweight(p, w) if !slots.is_empty() => {
                        let p = p % slots.len();
                        prop_assert!(index.reweight(slots[p], weights[p], w));
                        weights[p] = w;
                    }
                    Op::Set(p, v) if !slots.is_empty() => {
                        let p = p % slots.len();
                        prop_assert!(index.set_current(slots[p], weights[p], v));
                        walk[p] = v;
                    }
                    _ => {}
                }
                prop_assert_eq!(index.materialize(&slots, &weights), walk.clone());
            }
        }
    }

    #[test]
    fn a_used_up_gap_is_refused() {
        let (slots, weights) = (vec![0u32, 1], vec![1u32, 1]);
        let built = SmoothIndex::build(&slots, &weights, &[0, 0]);
        assert!(built.is_some());
        let Some(mut index) = built else { return };
        let mut right = 1u32;
        let mut refused = false;
        for s in 2..200u32 {
            if !index.insert(Some(0), Some(right), s, 1) {
                refused = true;
                break;
            }
            right = s;
        }
        assert!(refused, "33 halvings of a 2^32 gap cannot all fit");
    }

    #[test]
    fn too_many_weights_walk() {
        let slots: Vec<u32> = (0..65).collect();
        let weights: Vec<u32> = (1..=65).collect();
        assert!(SmoothIndex::build(&slots, &weights, &[0; 65]).is_none());
        assert!(SmoothIndex::build(&slots[..64], &weights[..64], &[0; 64]).is_some());
    }

    #[test]
    fn the_step_folds_without_changing_answers() {
        let (slots, weights) = (vec![3u32, 5, 7], vec![1u32, 2, 4]);
        let built = SmoothIndex::build(&slots, &weights, &[0, 0, 0]);
        assert!(built.is_some());
        let Some(mut index) = built else { return };
        let mut walk = vec![0i64; 3];
        for _ in 0..50 {
            let want = smooth_wrr(&weights, &mut walk, 7).map(|p| slots[p]);
            assert_eq!(index.pick(7), want);
        }
        index.fold_step_for_tests();
        for _ in 0..50 {
            let want = smooth_wrr(&weights, &mut walk, 7).map(|p| slots[p]);
            assert_eq!(index.pick(7), want);
        }
        assert_eq!(index.materialize(&slots, &weights), walk);
    }
}
