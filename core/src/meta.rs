//! [`Meta`]: an instance's metadata, a small map kept in key order.

use crate::prelude::*;

/// Metadata of an instance: string keys to string values, in key order,
/// each key once (inserting a key again replaces its value).
///
/// A sorted vector rather than a `BTreeMap`: instances carry at most
/// [`MAX_META`](crate::MAX_META) entries, where a binary search over one
/// allocation is as fast, and the tree's code is a sizeable part of the
/// WebAssembly module. It serializes as a map.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Meta {
    entries: Vec<(String, String)>,
}

impl Meta {
    /// An empty map.
    pub const fn new() -> Meta {
        Meta {
            entries: Vec::new(),
        }
    }

    /// Sets `key` to `value`; returns the value it replaces, if any.
    pub fn insert(&mut self, key: String, value: String) -> Option<String> {
        match self.position(&key) {
            Ok(i) => Some(core::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (key, value));
                None
            }
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        let i = self.position(key).ok()?;
        Some(&self.entries[i].1)
    }

    /// Takes `key` out; returns its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let i = self.position(key).ok()?;
        Some(self.entries.remove(i).1)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `invalid_argument` (field `meta`) when `count` entries are more than
    /// an instance may carry ([`MAX_META`](crate::MAX_META)). Readers check
    /// a member count before inserting: each insert keeps the entries
    /// sorted, so a hostile object of many keys would cost quadratic time.
    #[inline]
    pub fn check_count(count: usize) -> crate::Result<()> {
        if count > crate::MAX_META {
            return Err(too_many());
        }
        Ok(())
    }

    /// The entries in key order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.into_iter()
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }
}

#[cold]
#[inline(never)]
fn too_many() -> crate::Error {
    crate::Error::invalid("meta", text!("more than ", crate::MAX_META, " entries"))
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Meta {
    /// Later entries replace earlier ones with the same key.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(items: I) -> Meta {
        let mut meta = Meta::new();
        meta.extend(items);
        meta
    }
}

impl<K: Into<String>, V: Into<String>> Extend<(K, V)> for Meta {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, items: I) {
        for (k, v) in items {
            self.insert(k.into(), v.into());
        }
    }
}

impl<K: Into<String>, V: Into<String>, const N: usize> From<[(K, V); N]> for Meta {
    fn from(items: [(K, V); N]) -> Meta {
        items.into_iter().collect()
    }
}

impl IntoIterator for Meta {
    type Item = (String, String);
    type IntoIter = alloc::vec::IntoIter<(String, String)>;

    /// The entries in key order.
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<'a> IntoIterator for &'a Meta {
    type Item = (&'a str, &'a str);
    type IntoIter = core::iter::Map<
        core::slice::Iter<'a, (String, String)>,
        fn(&'a (String, String)) -> (&'a str, &'a str),
    >;

    /// The entries in key order.
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// `Serialize` / `Deserialize` for Rust users (feature `serde`): a map of
/// strings to strings, the same text as the wire form.
#[cfg(feature = "serde")]
mod serde_impls {
    use super::Meta;
    use crate::prelude::*;
    use core::fmt;

    use serde::de::{MapAccess, Visitor};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    impl Serialize for Meta {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_map(self.iter())
        }
    }

    impl<'de> Deserialize<'de> for Meta {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Meta, D::Error> {
            struct MetaVisitor;

            impl<'de> Visitor<'de> for MetaVisitor {
                type Value = Meta;

                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a map of strings to strings")
                }

                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Meta, A::Error> {
                    let mut meta = Meta::new();
                    while let Some((k, v)) = map.next_entry::<String, String>()? {
                        meta.insert(k, v);
                    }
                    Ok(meta)
                }
            }

            deserializer.deserialize_map(MetaVisitor)
        }
    }
}
