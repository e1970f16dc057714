//! A registry that registers and removes 1 000 000 instances comes back to
//! the footprint it had after the first round: every byte it holds is
//! counted by a global allocator, on this test's thread only (the harness
//! allocates on its own threads).
//!
//! The loop: 10 rounds of 100 000 instances over 50 services (20 000 in a
//! debug build, where the same million would take a minute); each round
//! half are deregistered and half run out their lease and are evicted by
//! `tick`, so both ways out are measured. What stays after the first round
//! is capacity, never instances: the name tables, the slot vector and the
//! per-service member tables keep the size the largest round needed (hash
//! tables and vectors do not shrink), and the event log keeps its last
//! `event_retention` events. The rounds after the first allocate into that
//! capacity, so live bytes after every later round equal live bytes after
//! the first, and the peak of a later round is no higher than the peak of
//! the second. Dropping the registry frees every byte it held.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, Ordering};

use waypost::{Config, InstanceSpec, Registry};

struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);
static PEAK: AtomicI64 = AtomicI64::new(0);

thread_local! {
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn counted() -> bool {
    COUNTED.try_with(Cell::get).unwrap_or(false)
}

fn add(bytes: i64) {
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: every call is passed to the system allocator unchanged; the
// counters only watch.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() && counted() {
            add(layout.size() as i64);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if counted() {
            add(-(layout.size() as i64));
        }
        System.dealloc(p, layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() && counted() {
            add(layout.size() as i64);
        }
        p
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = System.realloc(p, layout, new_size);
        if !q.is_null() && counted() {
            add(new_size as i64 - layout.size() as i64);
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const ROUNDS: u64 = 10;
/// 1 000 000 instances in all in an optimized build; a debug build (the
/// second pass of `make test`) runs the same checks on 200 000.
const PER_ROUND: u64 = if cfg!(debug_assertions) {
    20_000
} else {
    100_000
};
const SERVICES: u64 = 50;
const TTL_MS: u64 = 1_000;
const EVICT_AFTER_MS: u64 = 1_000;

/// One round: `PER_ROUND` instances in, then all of them out. Returns the
/// clock after the round.
fn round(reg: &mut Registry, mut now: u64) -> waypost::Result<u64> {
    let services: Vec<String> = (0..SERVICES).map(|s| format!("svc-{s}")).collect();
    for i in 0..PER_ROUND {
        let service = &services[(i % SERVICES) as usize];
        let spec = InstanceSpec::new(format!("i{i}"), service.as_str(), "10.0.0.1", 8080);
        reg.register(spec, now)?;
    }
    // Half leave by deregistering ...
    for i in (0..PER_ROUND).step_by(2) {
        reg.deregister(&format!("i{i}"), now)?;
    }
    // ... half by running out their lease and being evicted.
    now += TTL_MS + EVICT_AFTER_MS + 1;
    reg.tick(now);
    Ok(now)
}

fn live() -> i64 {
    LIVE.load(Ordering::Relaxed)
}

#[test]
fn a_million_instances_in_and_out_leave_the_footprint_of_the_first_round() -> waypost::Result<()> {
    // Room for the figures first, so that they are not counted as growth.
    let mut after = Vec::with_capacity(ROUNDS as usize);
    let mut peaks = Vec::with_capacity(ROUNDS as usize);
    COUNTED.with(|c| c.set(true));
    let start = live();
    let mut reg = Registry::new(Config {
        ttl_ms: TTL_MS,
        evict_after_ms: EVICT_AFTER_MS,
        ..Config::default()
    })?;
    let empty = live();
    let mut now = 0;
    for _ in 0..ROUNDS {
        PEAK.store(live(), Ordering::Relaxed);
        now = round(&mut reg, now)?;
        assert_eq!(reg.len(), 0, "every instance left");
        after.push(live());
        peaks.push(PEAK.load(Ordering::Relaxed));
    }
    assert_eq!(reg.check_invariants(), Ok(()));
    drop(reg);
    let left = live();
    // Printing allocates into the harness's capture buffer: count no more.
    COUNTED.with(|c| c.set(false));
    eprintln!(
        "footprint: {} instances in and out; live bytes: empty registry {}, after round 1 {}, \
         after round {ROUNDS} {}; peak in round 2 {}, in round {ROUNDS} {}; after the drop {:+}",
        ROUNDS * PER_ROUND,
        empty - start,
        after[0] - start,
        after[after.len() - 1] - start,
        peaks[1] - start,
        peaks[peaks.len() - 1] - start,
        left - start,
    );
    for (i, bytes) in after.iter().enumerate() {
        assert_eq!(*bytes, after[0], "live bytes after round {}", i + 1);
    }
    for (i, peak) in peaks.iter().enumerate().skip(2) {
        assert!(
            peak <= &peaks[1],
            "round {} peaked at {peak} B, round 2 at {} B",
            i + 1,
            peaks[1]
        );
    }
    assert_eq!(left, start, "dropping the registry frees all it held");
    Ok(())
}
