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

// An inner node takes a leaf's size, but inner nodes are about one in 32
// of all nodes; boxing the leaves would add a read to every lookup.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Node<T> {
    Leaf([Option<T>; FAN]),
    Inner([Option<Arc<Node<T>>>; FAN]),
}

impl<T: Clone> Clone for Node<T> {
    fn clone(&self) -> Node<T> {
        match self {
            Node::Leaf(v) => Node::Leaf(v.clone()),
            Node::Inner(v) => Node::Inner(v.clone()),
        }
    }
}

/// Slot → value, shared by path copying.
#[derive(Debug)]
pub(crate) struct SlotTrie<T> {
    root: Option<Arc<Node<T>>>,
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
        let mut node = self.root.as_deref()?;
        let mut level = self.depth;
        loop {
            let at = ((slot >> (BITS * level)) & MASK) as usize;
            match node {
                Node::Inner(children) => node = children.get(at)?.as_deref()?,
                Node::Leaf(values) => return values.get(at)?.as_ref(),
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
            let mut children: [Option<Arc<Node<T>>>; FAN] = Default::default();
            children[0] = self.root.take();
            self.root = Some(Arc::new(Node::Inner(children)));
            self.depth += 1;
        }
        let depth = self.depth;
        let leaf = || Node::Leaf(Default::default());
        let root = self.root.get_or_insert_with(|| {
            Arc::new(if depth == 0 {
                leaf()
            } else {
                Node::Inner(Default::default())
            })
        });
        let mut node = Arc::make_mut(root);
        let mut level = depth;
        loop {
            let at = ((slot >> (BITS * level)) & MASK) as usize;
            match node {
                Node::Inner(children) => {
                    let Some(child) = children.get_mut(at) else {
                        return;
                    };
                    let child = child.get_or_insert_with(|| {
                        Arc::new(if level == 1 {
                            leaf()
                        } else {
                            Node::Inner(Default::default())
                        })
                    });
                    node = Arc::make_mut(child);
                }
                Node::Leaf(values) => {
                    if let Some(v) = values.get_mut(at) {
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
