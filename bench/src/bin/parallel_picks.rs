//! Picks from many threads: worker-local pickers against the shared,
//! locked registry, at 1 000 instances.
//!
//! ```text
//! cargo run --release -p waypost-bench --bin parallel_picks -- [threads] [ms per figure]
//! ```
//!
//! One self-contained program (std and the core only), so the same binary
//! shows the scaling of whatever machine it is copied to. Every line of
//! output carries its own same-run floor: an empty loop of the same shape.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use waypost::{Config, InstanceSpec, PickOptions, Picker, Registry, Strategy};

const INSTANCES: usize = 1_000;
const BATCH: u64 = 1_024;

fn registry() -> Registry {
    let mut reg = match Registry::new(Config {
        seed: 7,
        ..Config::default()
    }) {
        Ok(r) => r,
        Err(e) => panic!("config: {e}"),
    };
    for i in 0..INSTANCES {
        let mut spec = InstanceSpec::new(
            format!("api-{i:04}"),
            "api",
            format!("10.0.{}.{}", i / 250, i % 250),
            8080,
        );
        // Weights 1..=10: a smooth-WRR period of 5 500 steps.
        spec.weight = (i % 10) as u32 + 1;
        if let Err(e) = reg.register(spec, 0) {
            panic!("register: {e}");
        }
    }
    reg
}

/// Picks until `stop`, in batches; the host's refresh check is on every pick.
fn run_picker(
    shared: &Mutex<Registry>,
    p: &mut Picker,
    strategy: Strategy,
    stop: &AtomicBool,
) -> u64 {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..BATCH {
            if p.needs_refresh(0) {
                let mut reg = shared.lock().unwrap_or_else(|e| e.into_inner());
                let _ = reg.refresh_picker(p, 0);
            }
            let _ = black_box(p.pick(black_box(strategy), None));
        }
        n += BATCH;
    }
    n
}

fn run_locked(shared: &Mutex<Registry>, strategy: Strategy, stop: &AtomicBool) -> u64 {
    let service = {
        let mut reg = shared.lock().unwrap_or_else(|e| e.into_inner());
        reg.service_ref("api").ok()
    };
    let Some(service) = service else { return 0 };
    let options = PickOptions::default();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..BATCH {
            let mut reg = shared.lock().unwrap_or_else(|e| e.into_inner());
            let _ = black_box(reg.pick_ref(service, black_box(strategy), &options, 0));
        }
        n += BATCH;
    }
    n
}

fn run_floor(stop: &AtomicBool) -> u64 {
    let mut n = 0u64;
    let mut x = 0u64;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..BATCH {
            x = black_box(x.wrapping_add(1));
        }
        n += BATCH;
    }
    n
}

#[derive(Clone, Copy)]
enum Path {
    Floor,
    Picker(Strategy),
    Locked(Strategy),
}

/// Picks per second over `threads` threads for `time`.
fn measure(shared: &Arc<Mutex<Registry>>, path: Path, threads: usize, time: Duration) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(threads + 1));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (shared, stop, barrier) = (shared.clone(), stop.clone(), barrier.clone());
            let mut picker = match path {
                Path::Picker(_) => {
                    let mut reg = shared.lock().unwrap_or_else(|e| e.into_inner());
                    reg.picker("api").ok()
                }
                _ => None,
            };
            std::thread::spawn(move || {
                // Warm the table (the period is built on the first WRR pick).
                if let (Some(p), Path::Picker(s)) = (picker.as_mut(), path) {
                    for _ in 0..10_000 {
                        if p.needs_refresh(0) {
                            let mut reg = shared.lock().unwrap_or_else(|e| e.into_inner());
                            let _ = reg.refresh_picker(p, 0);
                        }
                        let _ = black_box(p.pick(s, None));
                    }
                }
                barrier.wait();
                let start = Instant::now();
                let n = match (path, picker.as_mut()) {
                    (Path::Floor, _) => run_floor(&stop),
                    (Path::Picker(s), Some(p)) => run_picker(&shared, p, s, &stop),
                    (Path::Locked(s), _) => run_locked(&shared, s, &stop),
                    (Path::Picker(_), None) => 0,
                };
                (n, start.elapsed())
            })
        })
        .collect();
    barrier.wait();
    std::thread::sleep(time);
    stop.store(true, Ordering::Relaxed);
    workers
        .into_iter()
        .filter_map(|w| w.join().ok())
        .map(|(n, t)| n as f64 / t.as_secs_f64())
        .sum()
}

/// One change to the service (an instance drained or back) and the
/// publication of the table a picker then fetches, under the lock.
fn publication_cost(shared: &Mutex<Registry>) {
    let mut reg = shared.lock().unwrap_or_else(|e| e.into_inner());
    let Ok(mut p) = reg.picker("api") else { return };
    let rounds = 2_000u32;
    let start = Instant::now();
    for i in 0..rounds {
        let _ = reg.drain("api-0500", i % 2 == 0, 0);
        let _ = reg.refresh_picker(&mut p, 0);
    }
    let per = start.elapsed().as_secs_f64() * 1e9 / f64::from(rounds);
    let _ = reg.drain("api-0500", false, 0);
    let _ = reg.refresh_picker(&mut p, 0);
    println!(
        "{:<34} {:>9.0} ns/op (a drain, then the new table)",
        "publication after a change", per
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2).max(1);
    let ms: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(300);
    let time = Duration::from_millis(ms);
    let shared = Arc::new(Mutex::new(registry()));
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "parallel_picks: {INSTANCES} instances, {threads} threads, {ms} ms per figure, {cores} cores seen"
    );
    let floor1 = measure(&shared, Path::Floor, 1, time);
    let floor_n = measure(&shared, Path::Floor, threads, time);
    println!(
        "{:<34} {:>9.2} ns/op {:>8.1} M/s  {:>2} threads {:>8.1} M/s  scaling {:.2}",
        "floor (empty loop)",
        1e9 / floor1,
        floor1 / 1e6,
        threads,
        floor_n / 1e6,
        floor_n / (floor1 * threads as f64)
    );
    let figures = [
        ("picker round_robin", Path::Picker(Strategy::RoundRobin)),
        ("picker random", Path::Picker(Strategy::Random)),
        (
            "picker weighted_round_robin",
            Path::Picker(Strategy::WeightedRoundRobin),
        ),
        (
            "locked registry round_robin",
            Path::Locked(Strategy::RoundRobin),
        ),
        ("locked registry random", Path::Locked(Strategy::Random)),
        (
            "locked registry weighted_round_robin",
            Path::Locked(Strategy::WeightedRoundRobin),
        ),
    ];
    publication_cost(&shared);
    for (name, path) in figures {
        let one = measure(&shared, path, 1, time);
        let many = measure(&shared, path, threads, time);
        println!(
            "{:<34} {:>9.2} ns/op {:>8.1} M/s  {:>2} threads {:>8.1} M/s  scaling {:.2}",
            name,
            1e9 / one,
            one / 1e6,
            threads,
            many / 1e6,
            many / (one * threads as f64)
        );
    }
}
