//! One small in-place sort for the few cold-path sorts in the core.
//!
//! The standard library's sorts are fast but large once instantiated for
//! each element type (tens of kilobytes of WebAssembly between them);
//! every sort here orders elements by a unique key, so stability does not
//! matter and a heapsort (O(n log n), no allocation, a few hundred bytes)
//! does the job.

/// Sorts `v` ascending by `less`, which must be a strict weak order.
pub(crate) fn sort_by<T>(v: &mut [T], mut less: impl FnMut(&T, &T) -> bool) {
    let n = v.len();
    for start in (0..n / 2).rev() {
        sift_down(v, start, n, &mut less);
    }
    for end in (1..n).rev() {
        swap(v, 0, end);
        sift_down(v, 0, end, &mut less);
    }
}

// Elements are read with `get` (the indexes are always in range): an
// indexed read would carry a panic call and its location per site, in
// every instantiation.
fn sift_down<T>(v: &mut [T], mut root: usize, end: usize, less: &mut impl FnMut(&T, &T) -> bool) {
    let end = end.min(v.len());
    loop {
        let mut child = 2 * root + 1;
        if child >= end {
            return;
        }
        let (Some(r), Some(c)) = (v.get(root), v.get(child)) else {
            return;
        };
        let c = match v.get(child + 1) {
            Some(next) if child + 1 < end && less(c, next) => {
                child += 1;
                next
            }
            _ => c,
        };
        if !less(r, c) {
            return;
        }
        swap(v, root, child);
        root = child;
    }
}

/// Swaps `v[low]` and `v[high]` (`low < high`) without a panic path:
/// does nothing if they are out of range.
fn swap<T>(v: &mut [T], low: usize, high: usize) {
    if let Some((first, rest)) = v.get_mut(low..=high).and_then(|s| s.split_first_mut()) {
        if let Some(last) = rest.last_mut() {
            core::mem::swap(first, last);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sort_by;
    use crate::prelude::*;
    use proptest::prelude::*;

    #[test]
    fn sorts_small_cases() {
        for len in 0..12u32 {
            let mut v: Vec<u32> = (0..len).rev().collect();
            sort_by(&mut v, |a, b| a < b);
            assert_eq!(v, (0..len).collect::<Vec<_>>());
        }
    }

    proptest! {
        #[test]
        fn agrees_with_the_standard_sort(mut v in proptest::collection::vec(any::<i32>(), 0..300)) {
            let mut expected = v.clone();
            expected.sort();
            sort_by(&mut v, |a, b| a < b);
            prop_assert_eq!(v, expected);
        }
    }
}
