//! String-keyed indexes (instance ids, service names → slot or service
//! index). The by-name pick and heartbeat paths spend much of their time
//! here, so names are hashed by a short function made for them (a few
//! word loads and one 128-bit multiply for names up to 16 bytes) and
//! candidates are compared inline, eight bytes at a time, instead of
//! through library calls.

use alloc::sync::Arc;
use core::hash::{BuildHasherDefault, Hash, Hasher};

use hashbrown::{Equivalent, HashMap};

/// A stored name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key(Arc<str>);

/// A name being looked up, hashed exactly like [`Key`].
struct Query<'a>(&'a [u8]);

const SEED_A: u64 = 0x9e37_79b9_7f4a_7c15;
const SEED_B: u64 = 0xa076_1d64_78bd_642f;

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

/// The hash of a name: short names read as (overlapping) words, longer
/// ones folded eight bytes at a time; the length is mixed in.
#[inline]
fn name_hash(b: &[u8]) -> u64 {
    let len = b.len();
    let (x, y) = if len > 16 {
        let mut acc = SEED_B;
        let mut words = b.chunks_exact(8);
        for w in &mut words {
            acc = fold_mul(acc ^ word8(w), SEED_A);
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
    fold_mul(x ^ SEED_A ^ (len as u64).rotate_left(32), y ^ SEED_B)
}

fn hash_bytes<H: Hasher>(bytes: &[u8], state: &mut H) {
    state.write_u64(name_hash(bytes));
}

/// Hands the name hash to the table unchanged.
#[derive(Default)]
struct NameHasher(u64);

impl Hasher for NameHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.0 = fold_mul(self.0 ^ name_hash(bytes), SEED_A);
    }
    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_bytes(self.0.as_bytes(), state);
    }
}

impl Hash for Query<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_bytes(self.0, state);
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
    map: HashMap<Key, u32, BuildHasherDefault<NameHasher>>,
}

impl NameIndex {
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
        let mut seen = std::collections::HashSet::new();
        for len in 0..40usize {
            let base: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            assert!(seen.insert(name_hash(&base)), "len {len}");
            for i in 0..len {
                let mut b = base.clone();
                b[i] = b'_';
                assert!(seen.insert(name_hash(&b)), "len {len}, byte {i}");
            }
        }
        // Names that differ only in length after zero bytes.
        assert_ne!(name_hash(b"a"), name_hash(b"a\0"));
        assert_ne!(name_hash(b"abcd"), name_hash(b"abcd\0\0\0\0"));
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
