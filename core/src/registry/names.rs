//! String-keyed indexes (instance ids, service names → slot or service
//! index). The by-name pick and heartbeat paths spend much of their time
//! here, so names are hashed by a short function made for them (a few
//! word loads and one 128-bit multiply for names up to 16 bytes) and
//! candidates are compared inline, eight bytes at a time, instead of
//! through library calls.
//!
//! Ids come from whoever registers (and, through sources, from a shared
//! store), so the hash is keyed per registry: names chosen to collide
//! under one key do not collide under another, and nobody can make every
//! lookup linear without knowing the key. The key is drawn from the
//! registry seed (which bindings draw from the host's entropy).

use alloc::sync::Arc;
use core::hash::{BuildHasher, Hash, Hasher};

use hashbrown::{Equivalent, HashMap};

/// A stored name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key(Arc<str>);

/// A name being looked up, hashed exactly like [`Key`].
struct Query<'a>(&'a [u8]);

const SEED_A: u64 = 0x9e37_79b9_7f4a_7c15;
const SEED_B: u64 = 0xa076_1d64_78bd_642f;

/// The two secret words of one registry's name hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NameKey {
    a: u64,
    b: u64,
}

impl NameKey {
    /// The key of a registry seeded with `seed`: two splitmix64 outputs of
    /// the seed (distinct from the RNG's own words), forced odd so a
    /// multiply by them loses no bit.
    pub fn from_seed(seed: u64) -> NameKey {
        // Two rounds of the hash's own mixing, from constants distinct
        // from the RNG's use of the seed.
        let a = fold_mul(seed ^ 0x6e61_6d65_2d6b_6579, SEED_A); // "name-key"
        NameKey {
            a: a | 1,
            b: fold_mul(a ^ SEED_B, SEED_A) | 1,
        }
    }
}

impl Default for NameKey {
    fn default() -> NameKey {
        NameKey {
            a: SEED_A,
            b: SEED_B,
        }
    }
}

/// 64×64→128-bit multiply, folded: every input bit reaches every output bit.
#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let m = u128::from(a) * u128::from(b);
    (m as u64) ^ ((m >> 64) as u64)
}

#[inline]
fn word8(b: &[u8]) -> u64 {
    match <[u8; 8]>::try_from(b) {
        Ok(w) => u64::from_le_bytes(w),
        Err(_) => 0,
    }
}

#[inline]
fn word4(b: &[u8]) -> u64 {
    match <[u8; 4]>::try_from(b) {
        Ok(w) => u64::from(u32::from_le_bytes(w)),
        Err(_) => 0,
    }
}

/// The hash of a name under `key`: short names read as (overlapping)
/// words, longer ones folded eight bytes at a time; the length is mixed in.
#[inline]
fn name_hash(b: &[u8], key: NameKey) -> u64 {
    let len = b.len();
    let (x, y) = if len > 16 {
        let mut acc = key.b;
        let mut words = b.chunks_exact(8);
        for w in &mut words {
            acc = fold_mul(acc ^ word8(w), key.a);
        }
        (acc, word8(&b[len - 8..]))
    } else if len >= 8 {
        (word8(&b[..8]), word8(&b[len - 8..]))
    } else if len >= 4 {
        (word4(&b[..4]), word4(&b[len - 4..]))
    } else if len > 0 {
        let x = u64::from(b[0]) << 16 | u64::from(b[len / 2]) << 8 | u64::from(b[len - 1]);
        (x, 0)
    } else {
        (0, 0)
    };
    fold_mul(x ^ key.a ^ (len as u64).rotate_left(32), y ^ key.b)
}

/// Hashes one name under the registry's key (the only thing ever written).
pub(crate) struct NameHasher {
    key: NameKey,
    hash: u64,
}

impl Hasher for NameHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.hash = name_hash(bytes, self.key);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

impl BuildHasher for NameKey {
    type Hasher = NameHasher;
    #[inline]
    fn build_hasher(&self) -> NameHasher {
        NameHasher {
            key: *self,
            hash: 0,
        }
    }
}

// Both write the bare bytes (no length prefix, as `str` would add):
// `NameHasher` mixes the length in itself.
impl Hash for Key {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.0.as_bytes());
    }
}

impl Hash for Query<'_> {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.0);
    }
}

impl Equivalent<Key> for Query<'_> {
    #[inline]
    fn equivalent(&self, key: &Key) -> bool {
        same_bytes(self.0, key.0.as_bytes())
    }
}

/// Byte equality without a library call: whole 8-byte words, then the tail.
#[inline]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut a, mut b) = (a, b);
    // Whole words as arrays: no index, so no bounds check (and no panic
    // path with its location) per byte.
    while let (Some((x, rest_a)), Some((y, rest_b))) =
        (a.split_first_chunk::<8>(), b.split_first_chunk::<8>())
    {
        if u64::from_ne_bytes(*x) != u64::from_ne_bytes(*y) {
            return false;
        }
        (a, b) = (rest_a, rest_b);
    }
    a.iter().zip(b).fold(true, |same, (x, y)| same & (x == y))
}

/// Map from a name to a `u32` index.
#[derive(Debug, Clone, Default)]
pub(crate) struct NameIndex {
    map: HashMap<Key, u32, NameKey>,
}

impl NameIndex {
    /// An empty index hashing under `key`.
    pub fn with_key(key: NameKey) -> NameIndex {
        NameIndex {
            map: HashMap::with_hasher(key),
        }
    }

    #[inline]
    pub fn get(&self, name: &str) -> Option<&u32> {
        self.map.get(&Query(name.as_bytes()))
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn insert(&mut self, name: Arc<str>, value: u32) -> Option<u32> {
        self.map.insert(Key(name), value)
    }

    pub fn remove(&mut self, name: &str) -> Option<u32> {
        self.map.remove(&Query(name.as_bytes()))
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;
    use crate::testing::{Present, TestResult};

    #[test]
    fn compares_every_byte_of_every_length() {
        for len in 0..40usize {
            let a: Vec<u8> = (0..len as u8).collect();
            assert!(same_bytes(&a, &a.clone()));
            for i in 0..len {
                let mut b = a.clone();
                b[i] ^= 0x80;
                assert!(!same_bytes(&a, &b), "len {len}, byte {i}");
            }
            assert!(!same_bytes(&a, &a[..len.saturating_sub(1)]) || len == 0);
        }
    }

    #[test]
    fn hashes_differ_for_near_names() {
        let k = NameKey::from_seed(7);
        let mut seen = std::collections::HashSet::new();
        for len in 0..40usize {
            let base: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            assert!(seen.insert(name_hash(&base, k)), "len {len}");
            for i in 0..len {
                let mut b = base.clone();
                b[i] = b'_';
                assert!(seen.insert(name_hash(&b, k)), "len {len}, byte {i}");
            }
        }
        // Names that differ only in length after zero bytes.
        assert_ne!(name_hash(b"a", k), name_hash(b"a\0", k));
        assert_ne!(name_hash(b"abcd", k), name_hash(b"abcd\0\0\0\0", k));
    }

    #[test]
    fn the_key_follows_the_seed() -> TestResult {
        let (k1, k2) = (NameKey::from_seed(1), NameKey::from_seed(2));
        assert_eq!(k1, NameKey::from_seed(1));
        assert_ne!(k1, k2);
        // Names that collide under one key (found by search) are spread
        // under another: a colliding set is no good without the key.
        let names: Vec<String> = (0..200_000).map(|i| format!("i{i}")).collect();
        let mut by_hash: std::collections::HashMap<u64, Vec<&str>> = Default::default();
        for n in &names {
            by_hash
                .entry(name_hash(n.as_bytes(), k1) & 0xfff)
                .or_default()
                .push(n);
        }
        let crowd = by_hash
            .values()
            .max_by_key(|v| v.len())
            .or_fail("a crowded bucket")?;
        assert!(crowd.len() > 40);
        let under_k2: std::collections::HashSet<u64> = crowd
            .iter()
            .map(|n| name_hash(n.as_bytes(), k2) & 0xfff)
            .collect();
        assert!(
            under_k2.len() * 10 > crowd.len() * 8,
            "{} of {}",
            under_k2.len(),
            crowd.len()
        );
        Ok(())
    }

    #[test]
    fn finds_inserted_names_only() {
        let mut index = NameIndex::default();
        let names: Vec<String> = (0..500).map(|i| format!("svc-{i:04}-payments")).collect();
        for (i, n) in names.iter().enumerate() {
            assert_eq!(index.insert(Arc::from(n.as_str()), i as u32), None);
        }
        assert_eq!(index.len(), 500);
        for (i, n) in names.iter().enumerate() {
            assert_eq!(index.get(n), Some(&(i as u32)));
        }
        assert_eq!(index.get("svc-0500-payments"), None);
        assert_eq!(index.get("svc-0001-payment"), None);
        assert_eq!(index.insert(Arc::from("svc-0001-payments"), 9), Some(1));
        assert_eq!(index.remove("svc-0001-payments"), Some(9));
        assert!(!index.contains_key("svc-0001-payments"));
        assert_eq!(index.len(), 499);
    }
}
