//! Load-balancing strategies (SPEC §5) over a service's candidate table.

use crate::prelude::*;
use core::fmt;
use core::str::FromStr;

use crate::error::Error;
use crate::rng::{mix64, Rng};

name_table! {
    /// How `pick` chooses among the candidates.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
    #[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
    pub enum Strategy {
        /// Per-service counter `c`: `candidates[c mod len]`, then `c += 1`.
        RoundRobin = 0 => "round_robin",
        /// Uniform over candidates, from the registry RNG.
        Random = 1 => "random",
        /// Probability weight / Σweight, from the registry RNG.
        WeightedRandom = 2 => "weighted_random",
        /// Smooth weighted round robin (nginx).
        WeightedRoundRobin = 3 => "weighted_round_robin",
        /// Power of two choices over in-flight counts per unit weight.
        LeastRequest = 4 => "least_request",
        /// Weighted rendezvous hashing of a caller key.
        ConsistentHash = 5 => "consistent_hash",
        /// `candidates[0]`.
        FirstAvailable = 6 => "first_available",
    }
}

impl Strategy {
    /// The strategy with this numeric code (its `repr(u8)` value).
    #[inline(always)]
    pub fn from_u8(code: u8) -> Option<Strategy> {
        Strategy::ALL.get(usize::from(code)).copied()
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Strategy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Strategy::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| Error::invalid("strategy", text!("unknown strategy `", s, "`")))
    }
}

/// Slow start and every weighted strategy work in thousandths of a weight
/// unit, so effective weights stay integers and identical on every platform.
pub(crate) const WEIGHT_SCALE: u64 = 1000;

/// Effective weight in thousandths: `weight × max(0.1, elapsed / window)`.
pub(crate) fn effective_weight(weight: u32, healthy_since: u64, now: u64, window: u64) -> u64 {
    let full = u64::from(weight) * WEIGHT_SCALE;
    if window == 0 {
        return full;
    }
    let elapsed = now.saturating_sub(healthy_since);
    if elapsed >= window {
        return full;
    }
    let fraction = (elapsed * WEIGHT_SCALE / window).max(WEIGHT_SCALE / 10);
    (u64::from(weight) * fraction).max(1)
}

/// FNV-1a, 64-bit: the documented hash of consistent-hash keys and instance ids.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Bits of a key hash that pick its bucket (65 536 buckets).
pub(crate) const BUCKET_BITS: u32 = 16;

/// The bucket of a consistent-hash key.
pub(crate) fn key_bucket(key: &str) -> u32 {
    (mix64(fnv1a64(key.as_bytes())) >> (64 - BUCKET_BITS)) as u32
}

/// Weighted rendezvous score of one candidate for one bucket: `w / −ln(u)`
/// with `u` uniform in (0, 1) from the candidate's id hash and the bucket.
/// `libm` keeps the logarithm bit-identical on every platform.
#[inline]
pub(crate) fn rendezvous_score(id_hash: u64, bucket: u32, weight: u64) -> f64 {
    let h = mix64(id_hash ^ mix64(u64::from(bucket) ^ 0x5741_5950_4f53_5400));
    let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    weight as f64 / -libm::log(u)
}

/// Index of the highest-scoring candidate (ties: the lower position, i.e. lower id).
pub(crate) fn rendezvous<I: Iterator<Item = (u64, u64)>>(
    bucket: u32,
    candidates: I,
) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (pos, (id_hash, weight)) in candidates.enumerate() {
        let score = rendezvous_score(id_hash, bucket, weight);
        if best.is_none_or(|(_, b)| score > b) {
            best = Some((pos, score));
        }
    }
    best.map(|(pos, _)| pos)
}

/// Smooth weighted round robin over parallel slices; returns the winner's
/// position. `total` is the sum of `weights` (the candidate table keeps it).
///
/// Two passes: adding the weights is a plain vectorisable loop, and the
/// scan for the maximum only reads (its branch is taken a handful of times
/// per pass, so it predicts well). The strict `>` keeps the lowest position
/// (lowest id) on ties. About a quarter faster than one fused loop.
#[inline]
pub(crate) fn smooth_wrr<W: Copy + Into<u64>>(
    weights: &[W],
    current: &mut [i64],
    total: u64,
) -> Option<usize> {
    let n = weights.len().min(current.len());
    let (weights, current) = (&weights[..n], &mut current[..n]);
    if total == 0 || n == 0 {
        return None;
    }
    for (c, &w) in current.iter_mut().zip(weights) {
        *c += w.into() as i64;
    }
    let mut best = 0usize;
    let mut best_value = i64::MIN;
    for (i, &v) in current.iter().enumerate() {
        if v > best_value {
            best_value = v;
            best = i;
        }
    }
    let winner = current.get_mut(best)?;
    *winner -= total as i64;
    Some(best)
}

/// Largest smooth-WRR period (Σw after dividing by the weights' gcd) kept
/// as a table: 4 MiB of positions at most.
pub(crate) const PERIOD_MAX: u64 = 1 << 20;

/// Most distinct weights smooth WRR keeps its candidates grouped by (the
/// registry's index, a picker's groups): a pick compares one candidate per
/// weight, so past this the walk is as cheap.
#[cfg(any(feature = "pickers", feature = "large-services"))]
pub(crate) const WEIGHT_GROUPS_MAX: usize = 64;

/// Largest `period × candidates` a table is built for: building walks the
/// whole period once, so this bounds the work of one build (about 10 ms).
pub(crate) const PERIOD_WORK_MAX: u64 = 1 << 24;

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// One period of the smooth-WRR sequence that starts from an all-zero
/// `current`. With the weights divided by their gcd `g` the walk makes the
/// same choices (every `current` is scaled by `g`), picks candidate `i`
/// exactly `w_i / g` times in `Σw / g` steps and is back at all zeros:
/// the sequence repeats with that period, so position `p` of the table is
/// pick `p mod period` of the walk, in O(1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SmoothPeriod {
    order: Vec<u32>,
}

impl SmoothPeriod {
    /// The period table of `weights`, or `None` when the weights are all
    /// zero or the table would pass [`PERIOD_MAX`] or [`PERIOD_WORK_MAX`].
    pub fn build<W: Copy + Into<u64>>(weights: &[W]) -> Option<SmoothPeriod> {
        let g = weights.iter().fold(0, |a, &w| gcd(a, w.into()));
        if g == 0 || weights.len() > u32::MAX as usize {
            return None;
        }
        let reduced: Vec<u64> = weights.iter().map(|&w| w.into() / g).collect();
        let total: u64 = reduced.iter().sum();
        if total > PERIOD_MAX || total.saturating_mul(weights.len() as u64) > PERIOD_WORK_MAX {
            return None;
        }
        let mut current = vec![0i64; reduced.len()];
        let mut order = Vec::with_capacity(total as usize);
        for _ in 0..total {
            order.push(smooth_wrr(&reduced, &mut current, total)? as u32);
        }
        Some(SmoothPeriod { order })
    }

    /// The period length.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// The winner of step `pos` (`pos < len`).
    #[inline(always)]
    pub fn get(&self, pos: usize) -> Option<usize> {
        self.order.get(pos).map(|&i| i as usize)
    }

    /// The walk's `current` after `pos` steps from all zeros (with the
    /// original, unreduced weights): `pos·w_i − Σw·(times i won)`.
    pub fn state_at<W: Copy + Into<u64>>(&self, pos: usize, weights: &[W]) -> Vec<i64> {
        let total: u64 = weights.iter().map(|&w| w.into()).sum();
        let mut wins = vec![0i64; weights.len()];
        for &i in self.order.iter().take(pos) {
            if let Some(w) = wins.get_mut(i as usize) {
                *w += 1;
            }
        }
        weights
            .iter()
            .zip(wins)
            .map(|(&w, n)| (pos as i64) * (w.into() as i64) - (total as i64) * n)
            .collect()
    }
}

/// Position drawn with probability weight / Σweight, from prefix sums.
#[inline]
pub(crate) fn weighted_draw(rng: &mut Rng, prefix: &[u64]) -> Option<usize> {
    let total = *prefix.last()?;
    if total == 0 {
        return None;
    }
    let r = rng.below(total);
    Some(prefix.partition_point(|&p| p <= r))
}

/// Refused draws after which a rejection draw hands over to the running
/// sums (reached with probability below (3/4)^64).
const REJECTION_TRIES: u32 = 64;

/// The bound of the rejection draw (SPEC §5.3): the power of two above the
/// largest of `n` weights summing to `total`, when `n · bound ≤ 4 · total`
/// (a draw is then kept at least one time in four); `None` when the
/// weights are too uneven for it (the running sums draw) or there are none.
pub(crate) fn rejection_bound(n: usize, total: u64, max: u64) -> Option<u64> {
    let bits = 64 - max.leading_zeros();
    if n == 0 || total == 0 || max == 0 || bits >= 64 {
        return None;
    }
    let bound = 1u64 << bits;
    let span = u128::from(n as u64) * u128::from(bound);
    (span <= 4 * u128::from(total) && span <= u128::from(u64::MAX)).then_some(bound)
}

/// Weighted random by rejection: one draw `x = below(n · bound)` gives a
/// uniform position `i = x / bound` and `u = x mod bound`; `i` is kept when
/// `u < w_i`, else a new `x` is drawn. Nothing to rebuild when a weight
/// changes, and no table beside the weights. `None` after
/// [`REJECTION_TRIES`] refusals: the caller then draws from running sums.
#[inline]
pub(crate) fn rejection_draw<W: Copy + Into<u64>>(
    rng: &mut Rng,
    weights: &[W],
    bound: u64,
) -> Option<usize> {
    rejection_draw_by(rng, weights.len(), bound, |i| {
        weights.get(i).map_or(0, |&w| w.into())
    })
}

/// [`rejection_draw`] over `n` weights read by position.
#[inline]
pub(crate) fn rejection_draw_by(
    rng: &mut Rng,
    n: usize,
    bound: u64,
    weight: impl Fn(usize) -> u64,
) -> Option<usize> {
    let n = n as u64;
    if n == 0 || !bound.is_power_of_two() {
        return None;
    }
    // `bound` is a power of two and `n · bound` fits (`rejection_bound`).
    let shift = bound.trailing_zeros();
    let span = n.saturating_mul(bound);
    for _ in 0..REJECTION_TRIES {
        let x = rng.below(span);
        let i = (x >> shift) as usize;
        if x & (bound - 1) < weight(i) {
            return Some(i);
        }
    }
    None
}

/// The running sums of `weights`, for [`weighted_draw`].
pub(crate) fn running_sums<W: Copy + Into<u64>>(weights: &[W]) -> Vec<u64> {
    weights
        .iter()
        .scan(0u64, |sum, &w| {
            *sum += w.into();
            Some(*sum)
        })
        .collect()
}

/// [`weighted_draw`] without the running sums at hand: `r = below(Σw)`,
/// then the first position whose running sum exceeds `r`.
#[cfg(any(feature = "pickers", test))]
#[inline(never)]
pub(crate) fn running_sum_draw<W: Copy + Into<u64>>(rng: &mut Rng, weights: &[W]) -> Option<usize> {
    let total: u64 = weights.iter().map(|&w| w.into()).sum();
    if total == 0 {
        return None;
    }
    let mut r = rng.below(total);
    weights.iter().position(|&w| match r.checked_sub(w.into()) {
        Some(rest) => {
            r = rest;
            false
        }
        None => true,
    })
}

/// How many weights fall in each power-of-two class (`2^k ≤ w < 2^(k+1)`),
/// kept beside a table's weights so the rejection bound follows a change
/// in O(1).
#[derive(Debug, Clone, Default)]
pub(crate) struct WeightClasses {
    counts: [u32; 32],
}

impl WeightClasses {
    fn class(w: u32) -> Option<usize> {
        (w > 0).then(|| 31 - w.leading_zeros() as usize)
    }

    pub fn add(&mut self, w: u32) {
        if let Some(c) = Self::class(w).and_then(|k| self.counts.get_mut(k)) {
            *c += 1;
        }
    }

    pub fn remove(&mut self, w: u32) {
        if let Some(c) = Self::class(w).and_then(|k| self.counts.get_mut(k)) {
            *c = c.saturating_sub(1);
        }
    }

    pub fn of(weights: &[u32]) -> WeightClasses {
        let mut classes = WeightClasses::default();
        for &w in weights {
            classes.add(w);
        }
        classes
    }

    /// The rejection bound of these weights (see [`rejection_bound`]); 0
    /// when the running sums draw.
    pub fn bound(&self, n: usize, total: u64) -> u64 {
        let top = self.counts.iter().rposition(|&c| c > 0);
        top.and_then(|k| rejection_bound(n, total, 1u64 << k))
            .unwrap_or(0)
    }
}

/// Power of two choices: two distinct positions, the one with fewer in-flight
/// requests per unit weight wins (ties: the first drawn).
#[inline]
pub(crate) fn two_choices(
    rng: &mut Rng,
    len: usize,
    mut load: impl FnMut(usize) -> (u64, u64),
) -> Option<usize> {
    match len {
        0 => None,
        1 => Some(0),
        _ => {
            let n = len as u64;
            let a = rng.below(n) as usize;
            let mut b = rng.below(n - 1) as usize;
            if b >= a {
                b += 1;
            }
            let (la, wa) = load(a);
            let (lb, wb) = load(b);
            // la / wa <= lb / wb, cross-multiplied to stay exact.
            if u128::from(la) * u128::from(wb) <= u128::from(lb) * u128::from(wa) {
                Some(a)
            } else {
                Some(b)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_wrr_gives_the_nginx_sequence() {
        let weights = [5u64, 1, 1];
        let mut current = [0i64; 3];
        let seq: String = (0..7)
            .filter_map(|_| smooth_wrr(&weights, &mut current, 7))
            .map(|i| ["a", "b", "c"][i])
            .collect();
        assert_eq!(seq, "aabacaa");
    }

    /// The textbook one-pass loop the two-pass version must match pick for pick.
    fn smooth_wrr_one_pass(weights: &[u64], current: &mut [i64]) -> Option<usize> {
        let total: i64 = weights.iter().map(|&w| w as i64).sum();
        let mut best: Option<(usize, i64)> = None;
        for (i, (&w, c)) in weights.iter().zip(current.iter_mut()).enumerate() {
            *c += w as i64;
            if best.is_none_or(|(_, b)| *c > b) {
                best = Some((i, *c));
            }
        }
        if total == 0 {
            return None;
        }
        let (i, _) = best?;
        current[i] -= total;
        Some(i)
    }

    #[test]
    fn smooth_wrr_matches_a_one_pass_loop() {
        let mut rng = Rng::from_seed(11);
        for n in 0..40usize {
            // Few distinct weights, so ties between lanes are common.
            let weights: Vec<u64> = (0..n).map(|_| rng.below(4)).collect();
            let mut a = vec![0i64; n];
            let mut b = vec![0i64; n];
            for _ in 0..200 {
                let total = weights.iter().sum();
                assert_eq!(
                    smooth_wrr(&weights, &mut a, total),
                    smooth_wrr_one_pass(&weights, &mut b),
                    "weights {weights:?}"
                );
                assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn period_table_matches_the_walk() {
        let mut rng = Rng::from_seed(5);
        for n in 1..30usize {
            for scale in [1u64, 7, 1000] {
                let weights: Vec<u64> = (0..n).map(|_| rng.below(6) * scale).collect();
                let total: u64 = weights.iter().sum();
                let Some(period) = SmoothPeriod::build(&weights) else {
                    assert_eq!(total, 0);
                    continue;
                };
                let mut current = vec![0i64; n];
                for step in 0..3 * period.len() + 5 {
                    assert_eq!(
                        period.state_at(step % period.len(), &weights),
                        current,
                        "state at {step}, weights {weights:?}"
                    );
                    assert_eq!(
                        period.get(step % period.len()),
                        smooth_wrr(&weights, &mut current, total),
                        "step {step}, weights {weights:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn period_table_has_a_size_line() {
        assert!(SmoothPeriod::build(&[0u64, 0]).is_none());
        assert!(SmoothPeriod::build::<u64>(&[]).is_none());
        assert_eq!(
            SmoothPeriod::build(&[4000u64, 2000]).map(|p| p.len()),
            Some(3)
        );
        // Coprime weights summing past the line.
        assert!(SmoothPeriod::build(&[PERIOD_MAX, 1]).is_none());
        let wide = vec![1u64; 5000];
        assert!(SmoothPeriod::build(&wide).is_none());
        assert!(SmoothPeriod::build(&wide[..4000]).is_some());
    }

    #[test]
    fn rejection_bound_is_the_power_of_two_above_the_largest_weight() {
        assert_eq!(rejection_bound(4, 10_000, 4_000), Some(4_096));
        assert_eq!(rejection_bound(2, 2_048, 1_024), Some(2_048));
        // Uneven: n · bound above 4 · total.
        assert_eq!(rejection_bound(7, 18_000, 12_000), None);
        assert_eq!(rejection_bound(0, 0, 0), None);
        assert_eq!(rejection_bound(3, 0, 0), None);
        assert_eq!(rejection_bound(1, u64::MAX, u64::MAX), None);
        let classes = WeightClasses::of(&[1_000, 2_000, 3_000, 4_000]);
        assert_eq!(classes.bound(4, 10_000), 4_096);
        let mut classes = WeightClasses::of(&[1_000; 6]);
        classes.add(12_000);
        assert_eq!(classes.bound(7, 18_000), 0);
        classes.remove(12_000);
        assert_eq!(classes.bound(6, 6_000), 1_024);
    }

    #[test]
    fn rejection_draw_follows_weights() {
        let weights = [1_000u32, 2_000, 3_000, 4_000];
        let bound = rejection_bound(4, 10_000, 4_000).unwrap_or(0);
        let mut rng = Rng::from_seed(5);
        let mut counts = [0u32; 4];
        for _ in 0..100_000 {
            if let Some(i) = rejection_draw(&mut rng, &weights, bound) {
                counts[i] += 1;
            }
        }
        for (i, &c) in counts.iter().enumerate() {
            let want = 10_000 * (i as u32 + 1);
            assert!(c.abs_diff(want) < 1_000, "{counts:?}");
        }
        // Zero weights are never drawn; too many refusals hand over to the
        // running sums, which draw the same as a walk of the weights.
        let mut rng = Rng::from_seed(6);
        for _ in 0..100 {
            assert_eq!(rejection_draw(&mut rng, &[0u32, 7, 0], 8), Some(1));
        }
        assert_eq!(rejection_draw(&mut rng, &[0u32, 0, 5], 1 << 40), None);
        assert_eq!(rejection_draw(&mut rng, &[0u32, 0], 8), None);
        assert_eq!(rejection_draw::<u32>(&mut rng, &[], 8), None);
        assert_eq!(rejection_draw(&mut rng, &[1u32], 3), None);
        let prefix = running_sums(&[0u32, 0, 5, 0, 2]);
        assert_eq!(prefix, [0, 0, 5, 5, 7]);
        let (mut a, mut b) = (Rng::from_seed(8), Rng::from_seed(8));
        for _ in 0..100 {
            assert_eq!(
                weighted_draw(&mut a, &prefix),
                running_sum_draw(&mut b, &[0u32, 0, 5, 0, 2])
            );
        }
    }

    #[test]
    fn slow_start_weights() {
        assert_eq!(effective_weight(10, 0, 0, 1000), 1000); // floor of 10%
        assert_eq!(effective_weight(10, 0, 500, 1000), 5000);
        assert_eq!(effective_weight(10, 0, 1000, 1000), 10_000);
        assert_eq!(effective_weight(10, 0, 5, 0), 10_000);
    }

    #[test]
    fn fnv_reference_values() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
    }

    #[test]
    fn strategy_names_round_trip() {
        for s in Strategy::ALL {
            assert_eq!(s.as_str().parse::<Strategy>(), Ok(s));
            assert_eq!(Strategy::from_u8(s as u8), Some(s));
        }
        assert!("nope".parse::<Strategy>().is_err());
    }
}
