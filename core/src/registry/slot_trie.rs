//! A map from slot numbers to values that consecutive picker tables share:
//! a trie of 32-way nodes, so setting one slot copies one path (a few
//! nodes of 32 entries) and every other node stays shared with the
//! tables that hold it. Values sit in the leaves themselves: a lookup
//! reads no allocation of its own.

use alloc::sync::Arc;

/// Slot bits per level.
const BITS: u32 = 5;
const FAN: usize = 1 << BITS;
const MASK: u32 = (1 << BITS) - 1;

/// A node: inner nodes and leaves are allocations of their own sizes.
#[derive(Debug)]
enum Link<T> {
    Inner(Arc<[Option<Link<T>>; FAN]>),
    Leaf(Arc<[Option<T>; FAN]>),
}

impl<T> Clone for Link<T> {
    fn clone(&self) -> Link<T> {
        match self {
            Link::Inner(a) => Link::Inner(a.clone()),
            Link::Leaf(a) => Link::Leaf(a.clone()),
        }
    }
}

impl<T> Link<T> {
    /// An empty node of the given height (0: a leaf).
    fn empty(height: u32) -> Link<T> {
        if height == 0 {
            Link::Leaf(Arc::new(core::array::from_fn(|_| None)))
        } else {
            Link::Inner(Arc::new(core::array::from_fn(|_| None)))
        }
    }
}

/// Slot → value, shared by path copying.
#[derive(Debug)]
pub(crate) struct SlotTrie<T> {
    root: Option<Link<T>>,
    /// Levels of inner nodes above the leaves.
    depth: u32,
    len: usize,
}

impl<T> Default for SlotTrie<T> {
    fn default() -> SlotTrie<T> {
        SlotTrie {
            root: None,
            depth: 0,
            len: 0,
        }
    }
}

impl<T> Clone for SlotTrie<T> {
    fn clone(&self) -> SlotTrie<T> {
        SlotTrie {
            root: self.root.clone(),
            depth: self.depth,
            len: self.len,
        }
    }
}

impl<T: Clone> SlotTrie<T> {
    /// Values held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether slot numbers up to `slot` fit under the root.
    fn fits(&self, slot: u32) -> bool {
        u64::from(slot) >> (BITS * (self.depth + 1)) == 0
    }

    /// The value of `slot`.
    #[inline]
    pub fn get(&self, slot: u32) -> Option<&T> {
        if !self.fits(slot) {
            return None;
        }
        let mut node = self.root.as_ref()?;
        let mut level = self.depth;
        loop {
            let at = ((slot >> (BITS * level)) & MASK) as usize;
            match node {
                Link::Inner(children) => node = children.get(at)?.as_ref()?,
                Link::Leaf(values) => return values.get(at)?.as_ref(),
            }
            level = level.checked_sub(1)?;
        }
    }

    /// Sets (or with `None` clears) the value of `slot`, copying the nodes
    /// on its path that another trie shares.
    pub fn set(&mut self, slot: u32, value: Option<T>) {
        if value.is_none() && self.get(slot).is_none() {
            return;
        }
        while !self.fits(slot) {
            let mut children: [Option<Link<T>>; FAN] = core::array::from_fn(|_| None);
            if let Some(first) = children.first_mut() {
                *first = self.root.take();
            }
            self.root = Some(Link::Inner(Arc::new(children)));
            self.depth += 1;
        }
        let depth = self.depth;
        let mut node = self.root.get_or_insert_with(|| Link::empty(depth));
        let mut level = depth;
        loop {
            let at = ((slot >> (BITS * level)) & MASK) as usize;
            match node {
                Link::Inner(children) => {
                    let Some(child) = Arc::make_mut(children).get_mut(at) else {
                        return;
                    };
                    node = child.get_or_insert_with(|| Link::empty(level.saturating_sub(1)));
                }
                Link::Leaf(values) => {
                    if let Some(v) = Arc::make_mut(values).get_mut(at) {
                        match (v.is_some(), value.is_some()) {
                            (false, true) => self.len += 1,
                            (true, false) => self.len -= 1,
                            _ => {}
                        }
                        *v = value;
                    }
                    return;
                }
            }
            level = match level.checked_sub(1) {
                Some(l) => l,
                None => return,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_keeps_its_values_when_the_original_changes() {
        let mut a: SlotTrie<u32> = SlotTrie::default();
        for s in [0u32, 5, 31, 32, 1000, 40_000, 3] {
            a.set(s, Some(s * 2));
        }
        let b = a.clone();
        a.set(1000, None);
        a.set(5, Some(7));
        a.set(2_000_000, Some(1));
        assert_eq!(b.get(1000), Some(&2000));
        assert_eq!(b.get(5), Some(&10));
        assert_eq!(b.get(2_000_000), None);
        assert_eq!(a.get(1000), None);
        assert_eq!(a.get(5), Some(&7));
        assert_eq!(a.get(2_000_000), Some(&1));
        assert_eq!(a.get(40_000), Some(&80_000));
        assert_eq!(a.get(u32::MAX), None);
        assert_eq!((a.len(), b.len()), (7, 7));
        a.set(77, None);
        assert_eq!(a.len(), 7);
        // Untouched paths are shared, not copied.
        assert!(core::ptr::eq(
            a.get(40_000).map_or(core::ptr::null(), |v| v as *const u32),
            b.get(40_000).map_or(core::ptr::null(), |v| v as *const u32)
        ));
    }
}
