//! A service's member ids in id order, for finding a member's position
//! without reading its entry (one allocation per comparison instead of
//! three).
//!
//! With the `large-services` feature the ids are kept in chunks of at most
//! [`CHUNK_MAX`], so a join or leave moves the ids of one chunk rather than
//! of every member after it: at 100 000 members that was 16 B × 50 000 per
//! change, most of a join's cost. Without it (the browser's module, for its
//! size budget) they are one sorted vector, with the same answers.

use crate::prelude::*;
use alloc::sync::Arc;

#[cfg(feature = "large-services")]
pub(crate) use chunked::IdIndex;

/// Without the feature: the sorted vector itself.
#[cfg(not(feature = "large-services"))]
pub(crate) type IdIndex = Vec<Arc<str>>;

/// What both forms answer.
pub(crate) trait IdSearch: Sized {
    /// The index of ids already in order.
    fn from_sorted(ids: Vec<Arc<str>>) -> Self;
    /// `Ok(position)` of `id`, or `Err(position)` where it would go;
    /// appending past the last id, the usual case, skips the search.
    fn search(&self, id: &str) -> Result<usize, usize>;
}

#[cfg(not(feature = "large-services"))]
impl IdSearch for Vec<Arc<str>> {
    #[inline(always)]
    fn from_sorted(ids: Vec<Arc<str>>) -> Self {
        ids
    }

    #[inline(always)]
    fn search(&self, id: &str) -> Result<usize, usize> {
        match self.last() {
            Some(last) if **last < *id => Err(self.len()),
            None => Err(0),
            _ => self.binary_search_by(|m| (**m).cmp(id)),
        }
    }
}

/// A chunk is split in halves when a join takes it past this many ids.
#[cfg(feature = "large-services")]
pub(crate) const CHUNK_MAX: usize = 1024;

#[cfg(feature = "large-services")]
mod chunked {
    use super::*;

    /// Chunks of ids in id order, none empty.
    #[derive(Debug, Clone, Default)]
    pub(crate) struct IdIndex {
        chunks: Vec<Vec<Arc<str>>>,
        len: usize,
    }

    impl IdIndex {
        pub fn iter(&self) -> impl Iterator<Item = &Arc<str>> {
            self.chunks.iter().flatten()
        }
    }

    impl IdSearch for IdIndex {
        fn from_sorted(ids: Vec<Arc<str>>) -> IdIndex {
            let len = ids.len();
            let chunks = ids.chunks(CHUNK_MAX / 2).map(<[_]>::to_vec).collect();
            IdIndex { chunks, len }
        }

        /// The first chunk whose last id is not below `id`, then a binary
        /// search in it.
        fn search(&self, id: &str) -> Result<usize, usize> {
            match self.chunks.last().and_then(|c| c.last()) {
                Some(last) if **last < *id => return Err(self.len),
                None => return Err(0),
                _ => {}
            }
            let c = self
                .chunks
                .partition_point(|chunk| chunk.last().is_some_and(|l| **l < *id));
            let before: usize = self.chunks.iter().take(c).map(Vec::len).sum();
            match self.chunks.get(c) {
                Some(chunk) => match chunk.binary_search_by(|m| (**m).cmp(id)) {
                    Ok(i) => Ok(before + i),
                    Err(i) => Err(before + i),
                },
                None => Err(self.len),
            }
        }
    }

    impl IdIndex {
        /// The chunk holding position `pos` and the offset in it (`pos`
        /// equal to the length: the end of the last chunk).
        fn locate(&self, pos: usize) -> Option<(usize, usize)> {
            let mut start = 0;
            for (c, chunk) in self.chunks.iter().enumerate() {
                if pos < start + chunk.len() {
                    return Some((c, pos - start));
                }
                start += chunk.len();
            }
            let last = self.chunks.len().checked_sub(1)?;
            (pos == start).then(|| (last, self.chunks.get(last).map_or(0, Vec::len)))
        }

        pub fn insert(&mut self, pos: usize, id: Arc<str>) {
            if self.chunks.is_empty() {
                if pos == 0 {
                    self.chunks.push(vec![id]);
                    self.len = 1;
                }
                return;
            }
            let Some((c, at)) = self.locate(pos) else {
                return;
            };
            let Some(chunk) = self.chunks.get_mut(c) else {
                return;
            };
            chunk.insert(at, id);
            self.len += 1;
            if chunk.len() > CHUNK_MAX {
                let upper = chunk.split_off(chunk.len() / 2);
                self.chunks.insert(c + 1, upper);
            }
        }

        pub fn remove(&mut self, pos: usize) {
            let Some((c, at)) = self.locate(pos) else {
                return;
            };
            let Some(chunk) = self.chunks.get_mut(c) else {
                return;
            };
            if at < chunk.len() {
                chunk.remove(at);
                self.len -= 1;
                if chunk.is_empty() {
                    self.chunks.remove(c);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Searches, joins and leaves answer as one sorted vector does.
        #[test]
        fn answers_as_a_sorted_vector(
            start in proptest::collection::btree_set(0u32..5000, 0..2000),
            ops in proptest::collection::vec((any::<bool>(), 0u32..5000), 1..3000),
        ) {
            let name = |n: u32| -> Arc<str> { Arc::from(format!("i{n:05}").as_str()) };
            let mut plain: Vec<Arc<str>> = start.iter().map(|&n| name(n)).collect();
            let mut index = IdIndex::from_sorted(plain.clone());
            for (join, n) in ops {
                let id = name(n);
                let want = plain.binary_search(&id);
                prop_assert_eq!(index.search(&id), want);
                match (join, want) {
                    (true, Err(p)) => {
                        plain.insert(p, id.clone());
                        index.insert(p, id);
                    }
                    (false, Ok(p)) => {
                        plain.remove(p);
                        index.remove(p);
                    }
                    _ => {}
                }
                prop_assert!(index.iter().eq(plain.iter()));
            }
        }
    }
}
