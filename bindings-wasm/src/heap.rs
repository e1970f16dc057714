//! The module's memory allocator: segregated free lists of power-of-two
//! blocks carved from memory grown on demand.
//!
//! The standard library's allocator for `wasm32-unknown-unknown` (dlmalloc)
//! is about 8 KB of the module; this one is well under 1 KB. Every request
//! is rounded up to a power of two of at least 16 bytes (its class); a freed
//! block goes on its class's list and is handed out again for that class.
//! Blocks never merge, so memory is bounded by the peak of each class: the
//! registry's allocations (strings, vectors that double, boxed entries)
//! come back in the same classes as they churn.
//!
//! A block of class `2^k` is aligned to `min(2^k, 4096)`, which satisfies
//! every Rust layout up to 4096-byte alignment (larger alignment fails the
//! allocation). The logic is a plain struct over a `grow` callback, so it is
//! tested natively; only [`Global`] touches the WebAssembly memory.

/// Smallest block: two words of bookkeeping-free payload.
const MIN_CLASS: u32 = 4;
/// Alignment given to blocks of 4096 bytes and more.
const MAX_ALIGN: usize = 4096;
/// WebAssembly page size.
pub const PAGE: usize = 65_536;

/// The free lists and the carving frontier.
pub struct Heap {
    /// Head of each class's free list (0: empty); a free block's first word
    /// holds the next block's address.
    free: [usize; usize::BITS as usize],
    /// Next unused address, and the end of the memory obtained so far.
    next: usize,
    end: usize,
}

impl Heap {
    /// An empty heap that has obtained no memory yet.
    pub const fn new() -> Heap {
        Heap {
            free: [0; usize::BITS as usize],
            next: 0,
            end: 0,
        }
    }

    /// The class (log2 of the block size) serving `size` bytes at `align`.
    fn class(size: usize, align: usize) -> Option<u32> {
        if align > MAX_ALIGN {
            return None;
        }
        let need = size.max(align).checked_next_power_of_two()?;
        Some(need.trailing_zeros().max(MIN_CLASS))
    }

    /// The address of a block for `size` bytes at `align`, or 0 when memory
    /// cannot grow. `grow(pages)` adds pages and returns the address where
    /// they start (the old end of memory), or `None`.
    ///
    /// # Safety
    /// Free-list heads and the memory `grow` returns must be this heap's.
    pub unsafe fn alloc(
        &mut self,
        size: usize,
        align: usize,
        mut grow: impl FnMut(usize) -> Option<usize>,
    ) -> usize {
        let Some(class) = Heap::class(size, align) else {
            return 0;
        };
        let head = self.free[class as usize];
        if head != 0 {
            // SAFETY: `head` is a free block of this class, which holds the
            // next free block's address in its first word.
            self.free[class as usize] = unsafe { (head as *const usize).read() };
            return head;
        }
        let block = 1usize << class;
        loop {
            let Some(start) = self.next.checked_next_multiple_of(block.min(MAX_ALIGN)) else {
                return 0;
            };
            let stop = start.saturating_add(block);
            if stop <= self.end {
                // SAFETY: the alignment gap lies in memory this heap owns.
                unsafe { self.shelve(self.next, start) };
                self.next = stop;
                return start;
            }
            let pages = (stop - self.end).div_ceil(PAGE);
            let Some(base) = grow(pages) else {
                return 0;
            };
            if base != self.end {
                // The first growth, or memory grown by someone else: keep
                // what is left of the old stretch and carve from the new.
                // SAFETY: [next, end) is memory this heap owns.
                unsafe { self.shelve(self.next, self.end) };
                self.next = base;
            }
            self.end = base.saturating_add(pages.saturating_mul(PAGE));
        }
    }

    /// Puts the gap `[from, to)` left by aligning the frontier on the free
    /// lists, as naturally aligned blocks (both ends are multiples of 16).
    unsafe fn shelve(&mut self, mut from: usize, to: usize) {
        while to - from >= 1 << MIN_CLASS {
            let mut class = from.trailing_zeros().min(usize::BITS - 1);
            while to - from < 1 << class {
                class -= 1;
            }
            // SAFETY: `from` starts a block of `2^class` bytes this heap owns.
            unsafe { self.release(from, class) };
            from += 1 << class;
        }
    }

    unsafe fn release(&mut self, block: usize, class: u32) {
        // SAFETY: the caller hands over a block of this class.
        unsafe { (block as *mut usize).write(self.free[class as usize]) };
        self.free[class as usize] = block;
    }

    /// Returns a block obtained from `alloc` with the same `size` and `align`.
    ///
    /// # Safety
    /// `block` came from this heap's `alloc(size, align)` and is not used again.
    pub unsafe fn dealloc(&mut self, block: usize, size: usize, align: usize) {
        if let Some(class) = Heap::class(size, align) {
            // SAFETY: as the caller promises.
            unsafe { self.release(block, class) };
        }
    }

    /// Whether a block for `old` bytes also serves `new` bytes at `align`.
    pub fn fits(old: usize, new: usize, align: usize) -> bool {
        Heap::class(old, align) == Heap::class(new, align)
    }
}

impl Default for Heap {
    fn default() -> Heap {
        Heap::new()
    }
}

#[cfg(test)]
mod tests {
    use super::{Heap, PAGE};

    /// A stretch of host memory standing in for the module's, grown a page
    /// at a time up to `pages`.
    struct Memory {
        bytes: Vec<u8>,
        base: usize,
        used: usize,
        pages: usize,
    }

    impl Memory {
        fn new(pages: usize) -> Memory {
            let bytes = vec![0u8; (pages + 1) * PAGE];
            let base = (bytes.as_ptr() as usize).next_multiple_of(PAGE);
            Memory {
                bytes,
                base,
                used: 0,
                pages,
            }
        }

        fn grow(&mut self, pages: usize) -> Option<usize> {
            if self.used + pages > self.pages {
                return None;
            }
            let at = self.base + self.used * PAGE;
            self.used += pages;
            Some(at)
        }

        fn contains(&self, at: usize, len: usize) -> bool {
            let start = self.bytes.as_ptr() as usize;
            at >= start && at + len <= start + self.bytes.len()
        }
    }

    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    #[test]
    fn random_use_keeps_blocks_aligned_disjoint_and_intact() {
        let mut mem = Memory::new(256);
        let mut heap = Heap::new();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        // (address, size, align, fill byte)
        let mut live: Vec<(usize, usize, usize, u8)> = Vec::new();
        // Miri runs the same walk, shorter: 20 000 steps take it hours.
        let steps: u32 = if cfg!(miri) { 300 } else { 20_000 };
        for step in 0..steps {
            if live.is_empty() || rng.below(100) < 55 {
                let size = match rng.below(10) {
                    0 => rng.below(70_000) as usize,
                    1..=3 => rng.below(2_000) as usize,
                    _ => 1 + rng.below(64) as usize,
                };
                let align = 1usize << rng.below(13);
                let at = unsafe { heap.alloc(size, align, |p| mem.grow(p)) };
                if at == 0 {
                    continue;
                }
                assert_eq!(at % align, 0, "step {step}: {size} B at {align}");
                assert!(mem.contains(at, size));
                for &(other, len, _, _) in &live {
                    assert!(
                        at + size <= other || other + len <= at,
                        "overlap at step {step}"
                    );
                }
                let fill = step as u8;
                unsafe { core::ptr::write_bytes(at as *mut u8, fill, size) };
                live.push((at, size, align, fill));
            } else {
                let (at, size, align, fill) =
                    live.swap_remove(rng.below(live.len() as u64) as usize);
                let block = unsafe { core::slice::from_raw_parts(at as *const u8, size) };
                assert!(
                    block.iter().all(|&b| b == fill),
                    "block at {at:#x} was overwritten"
                );
                unsafe { heap.dealloc(at, size, align) };
            }
        }
        assert!(mem.used > 0);
    }

    #[test]
    fn a_freed_block_serves_its_class_again() {
        let mut mem = Memory::new(4);
        let mut heap = Heap::new();
        let a = unsafe { heap.alloc(100, 8, |p| mem.grow(p)) };
        let b = unsafe { heap.alloc(120, 8, |p| mem.grow(p)) };
        assert_ne!(a, b);
        unsafe { heap.dealloc(a, 100, 8) };
        // 100 and 128 bytes share the 128-byte class.
        assert_eq!(unsafe { heap.alloc(128, 8, |p| mem.grow(p)) }, a);
        assert!(Heap::fits(100, 128, 8));
        assert!(!Heap::fits(128, 129, 8));
        assert_eq!(mem.used, 1);
    }

    #[test]
    fn exhausted_memory_and_huge_requests_fail_with_null() {
        let mut mem = Memory::new(2);
        let mut heap = Heap::new();
        assert_eq!(unsafe { heap.alloc(3 * PAGE, 8, |p| mem.grow(p)) }, 0);
        assert_eq!(unsafe { heap.alloc(usize::MAX, 8, |p| mem.grow(p)) }, 0);
        assert_eq!(unsafe { heap.alloc(64, 8192, |p| mem.grow(p)) }, 0);
        // What fits still comes.
        assert_ne!(unsafe { heap.alloc(PAGE, 8, |p| mem.grow(p)) }, 0);
    }

    #[test]
    fn memory_grown_elsewhere_is_skipped_not_reused() {
        let mut mem = Memory::new(8);
        let mut heap = Heap::new();
        let a = unsafe { heap.alloc(PAGE / 2, 8, |p| mem.grow(p)) };
        // Someone else takes a page between our growths.
        let foreign = mem.grow(1).unwrap();
        let b = unsafe { heap.alloc(PAGE, 8, |p| mem.grow(p)) };
        assert!(
            b >= foreign + PAGE,
            "{b:#x} lies in the foreign page at {foreign:#x}"
        );
        // The rest of the first page went on the free lists.
        let c = unsafe { heap.alloc(PAGE / 2, 8, |p| mem.grow(p)) };
        assert_eq!(c, a + PAGE / 2);
    }
}

#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
mod global {
    use super::{Heap, PAGE};
    use core::alloc::{GlobalAlloc, Layout};
    use core::cell::UnsafeCell;

    /// The module's allocator.
    pub struct Global(UnsafeCell<Heap>);

    // SAFETY: without the atomics feature a WebAssembly instance runs one
    // thread, so the heap is never touched concurrently.
    unsafe impl Sync for Global {}

    fn grow(pages: usize) -> Option<usize> {
        match core::arch::wasm32::memory_grow(0, pages) {
            usize::MAX => None,
            old => Some(old * PAGE),
        }
    }

    // SAFETY: blocks are disjoint, aligned as `Heap` documents, and handed
    // out once until freed.
    // Out of line: allocation sites are many, and each inlined copy would
    // cost more than the call.
    unsafe impl GlobalAlloc for Global {
        #[inline(never)]
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: single-threaded (see `Sync`); the heap owns its lists.
            let heap = unsafe { &mut *self.0.get() };
            unsafe { heap.alloc(layout.size(), layout.align(), grow) as *mut u8 }
        }

        #[inline(never)]
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            let heap = unsafe { &mut *self.0.get() };
            unsafe { heap.dealloc(ptr as usize, layout.size(), layout.align()) }
        }

        #[inline(never)]
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            if Heap::fits(layout.size(), new_size, layout.align()) {
                return ptr;
            }
            // SAFETY: `layout.align()` is a valid alignment and `new_size`
            // was checked by the caller not to overflow with it.
            let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
            let new = unsafe { self.alloc(new_layout) };
            if !new.is_null() {
                // SAFETY: both blocks are live and disjoint.
                unsafe {
                    core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
            }
            new
        }
    }

    #[global_allocator]
    static ALLOCATOR: Global = Global(UnsafeCell::new(Heap::new()));
}
