//! `make bench` (scale): one million instances registered, the time it takes,
//! the memory it holds, and the cost of expiring k of 100 000 leases.

use std::time::Instant;

use waypost::{Config, InstanceSpec, Registry};

fn resident_bytes() -> u64 {
    // Linux only; reports 0 elsewhere.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn spec(service: usize, i: usize) -> InstanceSpec {
    let mut s = InstanceSpec::new(
        format!("svc-{service:04}-{i:04}"),
        format!("svc-{service:04}"),
        format!("10.{}.{}.{}", service >> 8, service & 255, i & 255),
        8080,
    );
    s.weight = 1 + (i % 5) as u32;
    s
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // criterion-style discovery by `cargo bench -- --list`
    }
    let services = 1_000;
    let per_service = 1_000;
    let total = services * per_service;
    // Specs are built first so the timing covers registration only.
    let before = resident_bytes();
    let specs: Vec<InstanceSpec> = (0..per_service)
        .flat_map(|i| (0..services).map(move |s| spec(s, i)))
        .collect();
    let mut reg = Registry::new(Config {
        seed: 1,
        ..Config::default()
    })
    .unwrap();
    let start = Instant::now();
    for s in specs {
        reg.register(s, 0).unwrap();
    }
    let elapsed = start.elapsed();
    let after = resident_bytes();
    // Everything allocated since the start, spec strings included.
    let held = after.saturating_sub(before);
    println!(
        "scale/register_1000000: {:.2} s ({:.0} ns per instance, target <= 3 s); resident {:.0} MB in all, {:.0} MB held by the registry, {} bytes per instance (target <= 600 MB)",
        elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / total as f64,
        after as f64 / 1e6,
        held as f64 / 1e6,
        held / total as u64,
    );
    assert_eq!(reg.len(), total);
    drop(reg);

    // tick expiring k of 100 000. The other instances hold day-long leases,
    // so only the k expiries are due: the cost follows k (O(k log n)).
    for k in [10usize, 100, 1_000, 10_000] {
        let mut reg = Registry::new(Config {
            ttl_ms: 1_000,
            evict_after_ms: 0,
            ..Config::default()
        })
        .unwrap();
        for i in 0..100_000 {
            let mut s = spec(i % 100, i);
            if i >= k {
                s.ttl_ms = Some(waypost::DAY_MS);
            }
            reg.register(s, 0).unwrap();
        }
        let t = Instant::now();
        let expired = reg.tick(1_001).len();
        println!(
            "scale/tick_expiring_k_of_100000/{k}: {:.1} µs, {:.0} ns per expiry ({expired} expired)",
            t.elapsed().as_secs_f64() * 1e6,
            t.elapsed().as_nanos() as f64 / k as f64,
        );
    }
    // A heartbeat only stamps the lease; its heap entry is re-filed when the
    // old deadline comes. Measure that deferred cost: 100 000 leases renewed
    // once, then the tick at their old deadline re-files them all.
    let mut reg = Registry::new(Config {
        ttl_ms: 1_000,
        evict_after_ms: 0,
        ..Config::default()
    })
    .unwrap();
    let ids: Vec<String> = (0..100_000)
        .map(|i| format!("svc-{:04}-{i:04}", i % 100))
        .collect();
    for i in 0..100_000 {
        reg.register(spec(i % 100, i), 0).unwrap();
    }
    for id in &ids {
        reg.heartbeat(id, 500).unwrap();
    }
    let t = Instant::now();
    let events = reg.tick(1_001).len();
    println!(
        "scale/refile_renewed_leases_100000: {:.0} ns per renewed lease, paid once at its old deadline ({events} events)",
        t.elapsed().as_nanos() as f64 / 100_000.0
    );
}
