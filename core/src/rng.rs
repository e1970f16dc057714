//! The registry's random number generator: xoshiro256++ seeded through
//! SplitMix64. Fixed, portable and tiny, so a seed gives the same picks on
//! every platform and in every binding, and its state fits in a snapshot.

/// A seeded xoshiro256++ generator.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct Rng {
    s: [u64; 4],
}

/// One SplitMix64 step: also the finaliser used by the hashing strategies.
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    mix64(*state)
}

/// The SplitMix64 output function: a strong 64-bit mixer.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    pub fn from_seed(seed: u64) -> Rng {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        Rng { s }
    }

    /// Restores a generator from its raw state; an all-zero state (which
    /// xoshiro can never leave) is rejected by the caller.
    pub fn from_state(s: [u64; 4]) -> Option<Rng> {
        if s == [0; 4] {
            None
        } else {
            Some(Rng { s })
        }
    }

    pub fn state(&self) -> [u64; 4] {
        self.s
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `0..n` (n > 0) by Lemire's multiply-and-reject method:
    /// exact, and the same sequence on 32- and 64-bit targets.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        let n = n.max(1);
        loop {
            let x = self.next_u64();
            let m = u128::from(x) * u128::from(n);
            let low = m as u64;
            if low >= n || low >= n.wrapping_neg() % n {
                return (m >> 64) as u64;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;

    #[test]
    fn golden_sequence_is_pinned() {
        // Changing these values changes every seeded pick in every binding.
        let mut rng = Rng::from_seed(7);
        let got: Vec<u64> = (0..4).map(|_| rng.next_u64()).collect();
        let mut again = Rng::from_seed(7);
        assert_eq!(got, (0..4).map(|_| again.next_u64()).collect::<Vec<_>>());
        let mut rng = Rng::from_seed(7);
        let picks: Vec<u64> = (0..12).map(|_| rng.below(10)).collect();
        assert_eq!(picks, GOLDEN_BELOW_10_SEED_7.to_vec());
    }

    const GOLDEN_BELOW_10_SEED_7: [u64; 12] = [0, 1, 7, 4, 9, 4, 7, 3, 9, 0, 1, 1];

    #[test]
    fn matches_the_xoshiro256plusplus_reference() {
        // First output of the reference C implementation for state {1, 2, 3, 4}.
        let mut rng = Rng::from_state([1, 2, 3, 4]);
        assert_eq!(rng.as_mut().map(Rng::next_u64), Some(41_943_041));
    }

    #[test]
    fn below_is_uniform_enough() {
        let mut rng = Rng::from_seed(1);
        let mut counts = [0u32; 6];
        for _ in 0..60_000 {
            counts[rng.below(6) as usize] += 1;
        }
        for c in counts {
            assert!((9_500..10_500).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn zero_state_is_refused() {
        assert!(Rng::from_state([0; 4]).is_none());
        assert!(Rng::from_state([1, 0, 0, 0]).is_some());
    }
}
