//! A picker table's candidates — handles and weights, in id order — kept
//! in parts that consecutive tables share. The registry logs each change
//! it makes to its own candidate table ([`EditLog`]: a candidate in or out
//! at a position, a weight changed); the next table copies the parts of
//! the previous one that those changes touch and shares the rest, so a
//! change to one candidate of 100 000 copies one part of about a thousand.

use crate::prelude::*;
use alloc::borrow::Cow;
use alloc::sync::Arc;

use super::Handle;

/// Candidates per part when a table is cut into parts; a part splits at
/// twice that and joins a neighbour below half of it. Small in tests, so
/// tables of a few candidates have several.
const PART: usize = if cfg!(test) { 4 } else { 1024 };

/// Positions per entry of the page index: no more than the smallest part
/// of a table of several, so a page starts in one part and ends in it or
/// the next.
const PAGE: usize = PART / 2;

/// Changes logged at most before the log starts over (tables then cut
/// the registry's table into parts again).
const LOG_MAX: usize = 256;

/// A change the registry made to its candidate table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Edit {
    /// A candidate came in at this position.
    Insert(u32, Handle, u32),
    /// The candidate at this position went out.
    Remove(u32),
    /// The candidate at this position has this weight now.
    Reweight(u32, u32),
}

/// The changes made to a candidate table, numbered: `edits[i]` is change
/// `from + i + 1`, and `seq` the latest.
#[derive(Debug, Clone, Default)]
pub(crate) struct EditLog {
    seq: u64,
    from: u64,
    edits: Vec<Edit>,
    /// A table was published from this candidate table: keep the changes
    /// (until then only count them, so a service without pickers keeps
    /// no log).
    pub on: bool,
}

impl EditLog {
    /// The number of the latest change.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    #[inline]
    pub fn push(&mut self, edit: Edit) {
        if !self.on || self.edits.len() >= LOG_MAX {
            self.reset();
        } else {
            self.seq += 1;
            self.edits.push(edit);
        }
    }

    /// The table changed in a way the log does not describe.
    pub fn reset(&mut self) {
        self.seq += 1;
        self.from = self.seq;
        self.edits.clear();
    }

    /// The changes made since change `seen`, if the log reaches back to it.
    pub fn since(&self, seen: u64) -> Option<&[Edit]> {
        let skip = usize::try_from(seen.checked_sub(self.from)?).ok()?;
        self.edits.get(skip..)
    }
}

/// One part: parallel handles and weights.
#[derive(Debug, Clone, Default)]
pub(crate) struct Part {
    handles: Vec<Handle>,
    weights: Vec<u32>,
}

/// A table's candidates in shared parts. A table of one part keeps it in
/// `flat` instead, read without a pointer of its own (every change copies
/// such a part anyway).
#[derive(Debug, Clone, Default)]
pub(crate) struct Parts {
    flat: Part,
    /// Two parts or more (else empty, and `flat` holds the candidates).
    parts: Vec<Arc<Part>>,
    /// The position of each part's first candidate.
    starts: Vec<u32>,
    /// The part holding position `k × PAGE`, for each `k`.
    pages: Vec<u32>,
    len: usize,
}

impl Parts {
    /// Cuts parallel handles and weights into parts of `PART` to
    /// `2 × PART` candidates.
    pub fn cut(handles: impl Iterator<Item = Handle>, weights: &[u32]) -> Parts {
        let len = weights.len();
        let count = (len / PART).max(1);
        let mut out = Parts {
            len,
            ..Parts::default()
        };
        let mut handles = handles;
        let mut at = 0;
        for k in 0..count {
            let end = len * (k + 1) / count;
            let part = Part {
                handles: handles.by_ref().take(end - at).collect(),
                weights: weights
                    .get(at..end)
                    .map(<[u32]>::to_vec)
                    .unwrap_or_default(),
            };
            out.starts.push(at as u32);
            out.parts.push(Arc::new(part));
            at = end;
        }
        out.settle();
        out
    }

    /// These parts with `edits` applied, sharing what they leave. A table
    /// of one part is copied once, with room for what comes in.
    pub fn brought_forward(&self, edits: &[Edit]) -> Parts {
        let mut out = if self.parts.is_empty() {
            let room = self.len + edits.len();
            let mut flat = Part {
                handles: Vec::with_capacity(room),
                weights: Vec::with_capacity(room),
            };
            flat.handles.extend_from_slice(&self.flat.handles);
            flat.weights.extend_from_slice(&self.flat.weights);
            Parts {
                flat,
                len: self.len,
                ..Parts::default()
            }
        } else {
            self.clone()
        };
        out.apply_all(edits);
        out
    }

    /// Applies logged changes in order (see [`Parts::apply`]).
    fn apply_all(&mut self, edits: &[Edit]) {
        if edits.is_empty() {
            return;
        }
        if self.parts.is_empty() {
            self.parts.push(Arc::new(core::mem::take(&mut self.flat)));
            self.starts = vec![0];
        }
        for &e in edits {
            self.apply(e);
        }
        self.settle();
    }

    /// Keeps one part in `flat`, and builds the page index of several.
    fn settle(&mut self) {
        if self.parts.len() == 1 {
            if let Some(only) = self.parts.pop() {
                self.flat = Arc::try_unwrap(only).unwrap_or_else(|shared| Part::clone(&shared));
            }
            self.starts.clear();
        }
        self.index();
    }

    /// Builds the page index again.
    fn index(&mut self) {
        self.pages.clear();
        if self.parts.len() < 2 {
            return;
        }
        let mut p = 0;
        for k in 0..self.len.div_ceil(PAGE) {
            let pos = k * PAGE;
            while self.starts.get(p + 1).is_some_and(|&s| s as usize <= pos) {
                p += 1;
            }
            self.pages.push(p as u32);
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The part holding `pos` and the position in it.
    #[inline(always)]
    fn locate(&self, pos: usize) -> Option<(&Part, usize)> {
        match &*self.parts {
            [] => Some((&self.flat, pos)),
            parts => {
                let mut p = *self.pages.get(pos / PAGE)? as usize;
                if self.starts.get(p + 1).is_some_and(|&s| s as usize <= pos) {
                    p += 1;
                }
                Some((
                    parts.get(p)?,
                    pos.checked_sub(*self.starts.get(p)? as usize)?,
                ))
            }
        }
    }

    /// The handle at `pos`. A one-part table answers from `flat` with one
    /// bounds check, as a flat table did (`flat` is empty once there are
    /// parts, so its check fails over to them).
    #[inline(always)]
    pub fn handle(&self, pos: usize) -> Option<Handle> {
        match self.flat.handles.get(pos) {
            Some(&h) => Some(h),
            None => self.handle_in_parts(pos),
        }
    }

    #[inline(never)]
    fn handle_in_parts(&self, pos: usize) -> Option<Handle> {
        let (part, i) = self.locate(pos)?;
        part.handles.get(i).copied()
    }

    #[inline]
    pub fn weight(&self, pos: usize) -> Option<u32> {
        match self.flat.weights.get(pos) {
            Some(&w) => Some(w),
            None => {
                let (part, i) = self.locate(pos)?;
                part.weights.get(i).copied()
            }
        }
    }

    /// Handles and weights in order.
    pub fn iter(&self) -> impl Iterator<Item = (Handle, u32)> + '_ {
        core::iter::once(&self.flat)
            .chain(self.parts.iter().map(|p| &**p))
            .flat_map(|p| p.handles.iter().copied().zip(p.weights.iter().copied()))
    }

    /// The weights in order, in one slice.
    pub fn weights(&self) -> Cow<'_, [u32]> {
        match &*self.parts {
            [] => Cow::Borrowed(&self.flat.weights),
            parts => Cow::Owned(
                parts
                    .iter()
                    .flat_map(|p| p.weights.iter().copied())
                    .collect(),
            ),
        }
    }

    /// Whether both hold the same weights in the same order.
    pub fn same_weights(&self, other: &Parts) -> bool {
        self.len == other.len && self.iter().map(|x| x.1).eq(other.iter().map(|x| x.1))
    }

    /// Applies one logged change, copying the part it touches unless this
    /// table alone holds it (the page index is built again after).
    fn apply(&mut self, edit: Edit) {
        let pos = match edit {
            Edit::Insert(pos, ..) | Edit::Remove(pos) | Edit::Reweight(pos, _) => pos as usize,
        };
        if self.parts.is_empty() {
            self.parts.push(Arc::default());
            self.starts.push(0);
        }
        // An insert past the end goes into the last part.
        let p = self
            .starts
            .partition_point(|&s| s as usize <= pos)
            .saturating_sub(1);
        let Some(start) = self.starts.get(p).map(|&s| s as usize) else {
            return;
        };
        let Some(part) = self.parts.get_mut(p).map(Arc::make_mut) else {
            return;
        };
        let i = pos - start;
        let moved: i64 = match edit {
            Edit::Insert(_, handle, weight) if i <= part.handles.len() => {
                part.handles.insert(i, handle);
                part.weights.insert(i, weight);
                1
            }
            Edit::Remove(_) if i < part.handles.len() => {
                part.handles.remove(i);
                part.weights.remove(i);
                -1
            }
            Edit::Reweight(_, weight) => {
                if let Some(w) = part.weights.get_mut(i) {
                    *w = weight;
                }
                0
            }
            _ => 0,
        };
        if moved == 0 {
            return;
        }
        self.len = (self.len as i64 + moved) as usize;
        for s in self.starts.iter_mut().skip(p + 1) {
            *s = (i64::from(*s) + moved) as u32;
        }
        let size = part.handles.len();
        if size > 2 * PART {
            let half = size / 2;
            let tail = Part {
                handles: part.handles.split_off(half),
                weights: part.weights.split_off(half),
            };
            self.parts.insert(p + 1, Arc::new(tail));
            self.starts.insert(p + 1, (start + half) as u32);
        } else if size < PART / 2 && self.parts.len() > 1 {
            self.join(p);
        }
    }

    /// Moves the candidates of part `p` into a neighbour and drops it.
    fn join(&mut self, p: usize) {
        let (from, into) = if p + 1 < self.parts.len() {
            (p, p + 1)
        } else {
            (p, p - 1)
        };
        let Some(small) = self.parts.get(from).map(|x| Part::clone(x)) else {
            return;
        };
        let Some(next) = self.parts.get_mut(into).map(Arc::make_mut) else {
            return;
        };
        if into > from {
            next.handles.splice(0..0, small.handles);
            next.weights.splice(0..0, small.weights);
            let start = self.starts.get(from).copied();
            if let (Some(s), Some(t)) = (start, self.starts.get_mut(into)) {
                *t = s;
            }
        } else {
            next.handles.extend(small.handles);
            next.weights.extend(small.weights);
        }
        let size = next.handles.len();
        self.parts.remove(from);
        self.starts.remove(from);
        if size > 2 * PART {
            // Split the joined part again (a neighbour close to full).
            let at = if into > from { into - 1 } else { into };
            if let (Some(part), Some(&start)) = (
                self.parts.get_mut(at).map(Arc::make_mut),
                self.starts.get(at),
            ) {
                let half = size / 2;
                let tail = Part {
                    handles: part.handles.split_off(half),
                    weights: part.weights.split_off(half),
                };
                self.parts.insert(at + 1, Arc::new(tail));
                self.starts.insert(at + 1, start + half as u32);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(i: u32) -> Handle {
        Handle {
            index: i,
            generation: 0,
        }
    }

    /// Random changes applied to parts give what the same changes give
    /// to flat lists, and leave the parts they started from as they were.
    #[test]
    fn parts_follow_the_changes_of_a_flat_list() {
        let mut rng = crate::rng::Rng::from_seed(5);
        for round in 0..200 {
            let n = rng.below(30) as u32;
            let mut flat: Vec<(Handle, u32)> = (0..n).map(|i| (h(i), i + 1)).collect();
            let (hs, ws): (Vec<Handle>, Vec<u32>) = flat.iter().copied().unzip();
            let mut parts = Parts::cut(hs.iter().copied(), &ws);
            for step in 0..40 {
                let before = parts.clone();
                let before_flat = flat.clone();
                let len = flat.len() as u64;
                let edit = match rng.below(3) {
                    0 => {
                        let pos = rng.below(len + 1) as u32;
                        Edit::Insert(pos, h(1000 + step), step)
                    }
                    1 if len > 0 => Edit::Remove(rng.below(len) as u32),
                    _ if len > 0 => Edit::Reweight(rng.below(len) as u32, 7 + step),
                    _ => continue,
                };
                match edit {
                    Edit::Insert(p, hd, w) => flat.insert(p as usize, (hd, w)),
                    Edit::Remove(p) => {
                        flat.remove(p as usize);
                    }
                    Edit::Reweight(p, w) => flat[p as usize].1 = w,
                }
                parts = parts.brought_forward(&[edit]);
                assert_eq!(parts.iter().collect::<Vec<_>>(), flat, "round {round}");
                assert_eq!(parts.len(), flat.len());
                for (i, &(hd, w)) in flat.iter().enumerate() {
                    assert_eq!((parts.handle(i), parts.weight(i)), (Some(hd), Some(w)));
                }
                assert_eq!(parts.handle(flat.len()), None);
                assert_eq!(before.iter().collect::<Vec<_>>(), before_flat);
            }
        }
    }

    #[test]
    fn a_log_reaches_back_to_its_start_only() {
        let mut off = EditLog::default();
        off.push(Edit::Remove(0));
        assert_eq!(off.since(0), None);
        assert_eq!(off.since(off.seq()), Some(&[][..]));
        let mut log = EditLog {
            on: true,
            ..EditLog::default()
        };
        log.push(Edit::Remove(0));
        log.push(Edit::Remove(1));
        assert_eq!(log.since(0), Some(&[Edit::Remove(0), Edit::Remove(1)][..]));
        assert_eq!(log.since(1), Some(&[Edit::Remove(1)][..]));
        assert_eq!(log.since(2), Some(&[][..]));
        log.reset();
        assert_eq!(log.since(2), None);
        assert_eq!(log.since(log.seq()), Some(&[][..]));
        assert_eq!(log.since(log.seq() + 1), None);
    }
}
