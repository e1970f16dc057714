//! A picker's smooth WRR over a table without a period table, in O(D) per
//! pick for D distinct weights instead of a walk over every candidate.
//!
//! A picker starts each table's sequence from an all-zero `current`
//! (SPEC §5.2). From zeros, the candidates of one weight are picked in
//! turn, in table order: after k picks of a weight with n candidates, the
//! first `k mod n` of them have been picked `k / n + 1` times and the rest
//! `k / n` times, so the next one of that weight is candidate `k mod n`,
//! with `current = t × w − (k / n) × Σw` after t steps. A pick compares
//! that candidate of each weight (the largest `current`, then the lowest
//! position, as the walk does) and counts one more pick for its weight.

use crate::balancer::WEIGHT_GROUPS_MAX as GROUPS_MAX;
use crate::prelude::*;

/// The candidates of one weight, in table order, and where that weight's
/// turn is: after k wins of n candidates, `next` is `k mod n` and `spent`
/// is `(k / n) × Σw`.
#[derive(Debug, Clone)]
struct Group {
    weight: i128,
    next: usize,
    spent: i128,
    positions: Vec<u32>,
}

/// Smooth WRR from an all-zero `current`, by weight.
#[derive(Debug, Clone, Default)]
pub(crate) struct SmoothGroups {
    step: u64,
    total: u64,
    groups: Vec<Group>,
}

impl SmoothGroups {
    /// The groups of `weights` (positions in table order), or `None` when
    /// they are all zero or more than [`GROUPS_MAX`] distinct.
    pub fn build<W: Copy + Into<u64>>(weights: &[W]) -> Option<SmoothGroups> {
        let mut groups: Vec<Group> = Vec::new();
        let mut total = 0u64;
        for (i, &w) in weights.iter().enumerate() {
            let w = w.into();
            total = total.checked_add(w)?;
            let at = u32::try_from(i).ok()?;
            if let Some(g) = groups.iter_mut().find(|g| g.weight == i128::from(w)) {
                g.positions.push(at);
            } else if groups.len() < GROUPS_MAX {
                groups.push(Group {
                    weight: i128::from(w),
                    next: 0,
                    spent: 0,
                    positions: vec![at],
                });
            } else {
                return None;
            }
        }
        (total > 0).then_some(SmoothGroups {
            step: 0,
            total,
            groups,
        })
    }

    /// The next winner's position, as the walk from zeros gives it.
    #[inline]
    pub fn next(&mut self) -> Option<usize> {
        self.step += 1;
        let step = i128::from(self.step);
        let mut best: Option<(i128, u32, usize)> = None;
        for (g, group) in self.groups.iter().enumerate() {
            let Some(&pos) = group.positions.get(group.next) else {
                continue;
            };
            let value = step * group.weight - group.spent;
            let better = match best {
                None => true,
                Some((v, p, _)) => value > v || (value == v && pos < p),
            };
            if better {
                best = Some((value, pos, g));
            }
        }
        let (_, pos, g) = best?;
        if let Some(group) = self.groups.get_mut(g) {
            group.next += 1;
            if group.next == group.positions.len() {
                group.next = 0;
                group.spent += i128::from(self.total);
            }
        }
        Some(pos as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balancer::smooth_wrr;
    use proptest::prelude::*;

    proptest! {
        /// Every pick is the walk's, over more than one period.
        #[test]
        fn answers_as_the_walk_from_zeros(
            weights in proptest::collection::vec(0u32..7, 1..60),
            picks in 1usize..600,
        ) {
            let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
            let mut current = vec![0i64; weights.len()];
            match SmoothGroups::build(&weights) {
                None => prop_assert_eq!(total, 0),
                Some(mut groups) => {
                    for _ in 0..picks {
                        let want = smooth_wrr(&weights, &mut current, total);
                        prop_assert_eq!(groups.next(), want);
                    }
                }
            }
        }
    }

    #[test]
    fn too_many_weights_walk() {
        let weights: Vec<u32> = (1..=65).collect();
        assert!(SmoothGroups::build(&weights).is_none());
        assert!(SmoothGroups::build(&weights[..64]).is_some());
    }
}
