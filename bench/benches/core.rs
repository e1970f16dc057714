//! `make bench`: the core's speed at 10, 1 000 and 100 000 instances.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use waypost::{
    CheckStatus, Config, DiscoverOptions, InstanceSpec, PickOptions, Registry, Strategy,
};

const SIZES: [usize; 3] = [10, 1_000, 100_000];

fn spec(service: &str, i: usize) -> InstanceSpec {
    let mut s = InstanceSpec::new(
        format!("{service}-{i:07}"),
        service,
        format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255),
        8080,
    );
    s.weight = 1 + (i % 7) as u32;
    s
}

/// [`spec`] in the wire form, with the optional fields a host commonly sets.
fn spec_json(service: &str, i: usize) -> String {
    let mut s = spec(service, i);
    s.tags = vec!["http".into(), "v2".into()];
    s.meta.insert("version".into(), "1.4.2".into());
    s.zone = Some("zone-a".into());
    s.to_json()
}

/// A registry with `n` instances in service "api" and 1 000 other services
/// of 3 instances each (picks must not depend on how many services exist).
fn fleet(n: usize) -> Registry {
    let mut reg = Registry::new(Config {
        seed: 42,
        ttl_ms: 3_600_000,
        ..Config::default()
    })
    .unwrap();
    for i in 0..n {
        reg.register(spec("api", i), 0).unwrap();
    }
    for s in 0..1_000 {
        for i in 0..3 {
            reg.register(spec(&format!("svc{s}"), i), 0).unwrap();
        }
    }
    reg
}

fn picks(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick");
    for n in SIZES {
        let mut reg = fleet(n);
        let opts = PickOptions::default();
        for strategy in Strategy::ALL {
            let opts = if strategy == Strategy::ConsistentHash {
                PickOptions {
                    key: Some("user-1234".into()),
                    ..PickOptions::default()
                }
            } else {
                opts.clone()
            };
            group.bench_with_input(BenchmarkId::new(strategy.as_str(), n), &n, |b, _| {
                b.iter(|| black_box(reg.pick("api", strategy, &opts, 1).unwrap()))
            });
        }
        let sref = reg.service_ref("api").unwrap();
        group.bench_with_input(BenchmarkId::new("round_robin_by_ref", n), &n, |b, _| {
            b.iter(|| black_box(reg.pick_ref(sref, Strategy::RoundRobin, &opts, 1).unwrap()))
        });
    }
    // consistent_hash over many distinct keys (bucket table warm after the first pass).
    let mut reg = fleet(1_000);
    let keys: Vec<String> = (0..4096).map(|i| format!("user-{i}")).collect();
    let mut i = 0;
    group.bench_function(BenchmarkId::new("consistent_hash_4096_keys", 1_000), |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            let o = PickOptions {
                key: Some(keys[i].clone()),
                ..PickOptions::default()
            };
            black_box(reg.pick("api", Strategy::ConsistentHash, &o, 1).unwrap())
        })
    });
    // Smooth WRR over 1 000 instances of 64 distinct weights: the period
    // (about 32 000 steps) times 1 000 candidates is past the period
    // table's limit (SPEC §5.1).
    let mut reg = fleet(0);
    for i in 0..1_000 {
        let mut s = spec("api", i);
        s.weight = 1 + (i % 64) as u32;
        reg.register(s, 0).unwrap();
    }
    let o = PickOptions::default();
    group.bench_function(
        BenchmarkId::new("weighted_round_robin_64_weights", 1_000),
        |b| {
            b.iter(|| {
                black_box(
                    reg.pick("api", Strategy::WeightedRoundRobin, &o, 1)
                        .unwrap(),
                )
            })
        },
    );
    group.finish();
}

fn membership(c: &mut Criterion) {
    let mut group = c.benchmark_group("lease");
    for n in SIZES {
        let mut reg = fleet(n);
        let id = format!("api-{:07}", n / 2);
        let mut now = 1;
        group.bench_with_input(BenchmarkId::new("heartbeat", n), &n, |b, _| {
            b.iter(|| {
                now += 1;
                reg.heartbeat(black_box(&id), now).unwrap()
            })
        });
        group.bench_with_input(BenchmarkId::new("tick_nothing_due", n), &n, |b, _| {
            b.iter(|| {
                now += 1;
                black_box(reg.tick(now))
            })
        });
        group.bench_with_input(BenchmarkId::new("register", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let mut reg = fleet(n);
                let specs: Vec<InstanceSpec> =
                    (0..iters as usize).map(|i| spec("new", i)).collect();
                let start = Instant::now();
                for s in specs {
                    reg.register(s, 1).unwrap();
                }
                start.elapsed()
            })
        });
        // The same through the core's reader, as every binding registers.
        group.bench_with_input(BenchmarkId::new("register_json", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let mut reg = fleet(n);
                let texts: Vec<String> = (0..iters as usize).map(|i| spec_json("new", i)).collect();
                let start = Instant::now();
                for t in &texts {
                    let s = InstanceSpec::from_json(black_box(t)).unwrap();
                    reg.register(s, 1).unwrap();
                }
                start.elapsed()
            })
        });
    }
    // Expiring k of n is measured by the `scale` bench, which keeps the
    // other leases from falling due at the same instant.
    group.finish();
}

fn discovery(c: &mut Criterion) {
    let mut group = c.benchmark_group("discover");
    for n in SIZES {
        let mut reg = fleet(n);
        let opts = DiscoverOptions::default();
        group.bench_with_input(BenchmarkId::new("healthy", n), &n, |b, _| {
            b.iter(|| black_box(reg.discover("api", &opts, 1).unwrap().len()))
        });
        // The first discover after a change pays for bringing the
        // candidate table up to date.
        let id = format!("api-{:07}", n / 2);
        let mut on = false;
        group.bench_with_input(BenchmarkId::new("after_a_drain", n), &n, |b, _| {
            b.iter(|| {
                on = !on;
                reg.drain(&id, on, 1).unwrap();
                black_box(reg.discover("api", &opts, 1).unwrap().len())
            })
        });
    }
    group.finish();
}

/// Pick options that suit `strategy` (a key for consistent hashing).
fn options_for(strategy: Strategy) -> PickOptions {
    PickOptions {
        key: (strategy == Strategy::ConsistentHash).then(|| "user-1234".into()),
        ..PickOptions::default()
    }
}

/// An instance in the middle of the id order of `fleet(n)`'s "api".
fn joiner(n: usize) -> InstanceSpec {
    let mut s = spec("api", n / 2);
    s.id = format!("api-{:07}x", n / 2);
    s
}

/// Registers `joiner` when it is absent, deregisters it when present.
fn join_or_leave(reg: &mut Registry, joiner: &InstanceSpec, present: &mut bool) {
    *present = !*present;
    if *present {
        reg.register(joiner.clone(), 1).unwrap();
    } else {
        reg.deregister(&joiner.id, 1).unwrap();
    }
}

/// One change to one instance, then one `discover` or `pick`: what a reader
/// pays right after a mirror changed membership. Each figure has its floor
/// beside it: the same call with no change before it, in the same run.
fn after_a_change(c: &mut Criterion) {
    let mut group = c.benchmark_group("after_a_change");
    for n in [1_000, 100_000] {
        let mut reg = fleet(n);
        let id = format!("api-{:07}", n / 2);
        let opts = DiscoverOptions::default();
        let mut on = false;
        group.bench_with_input(BenchmarkId::new("discover/floor", n), &n, |b, _| {
            b.iter(|| black_box(reg.discover("api", &opts, 1).unwrap().len()))
        });
        group.bench_with_input(BenchmarkId::new("discover/drain", n), &n, |b, _| {
            b.iter(|| {
                on = !on;
                reg.drain(&id, on, 1).unwrap();
                black_box(reg.discover("api", &opts, 1).unwrap().len())
            })
        });
        // Registered again with another weight, and back.
        let mut heavier = spec("api", n / 2);
        let lighter = heavier.clone();
        heavier.weight += 1;
        let mut flip = false;
        group.bench_with_input(BenchmarkId::new("discover/weight", n), &n, |b, _| {
            b.iter(|| {
                flip = !flip;
                let s = if flip { &heavier } else { &lighter };
                reg.register(s.clone(), 1).unwrap();
                black_box(reg.discover("api", &opts, 1).unwrap().len())
            })
        });
        // A new instance in the middle of the id order, then gone again.
        let joiner = joiner(n);
        let mut present = false;
        group.bench_with_input(BenchmarkId::new("discover/join_or_leave", n), &n, |b, _| {
            b.iter(|| {
                join_or_leave(&mut reg, &joiner, &mut present);
                black_box(reg.discover("api", &opts, 1).unwrap().len())
            })
        });
        // A registry per strategy: a service whose readers use one
        // strategy keeps only that strategy's state up to date.
        for strategy in Strategy::ALL {
            let mut reg = fleet(n);
            let o = options_for(strategy);
            let name = strategy.as_str();
            group.bench_with_input(
                BenchmarkId::new(format!("pick/{name}/floor"), n),
                &n,
                |b, _| b.iter(|| black_box(reg.pick("api", strategy, &o, 1).unwrap())),
            );
            group.bench_with_input(
                BenchmarkId::new(format!("pick/{name}/drain"), n),
                &n,
                |b, _| {
                    b.iter(|| {
                        on = !on;
                        reg.drain(&id, on, 1).unwrap();
                        black_box(reg.pick("api", strategy, &o, 1).unwrap())
                    })
                },
            );
        }
    }
    group.finish();
}

/// One change to one instance (the middle one drained or back), then a
/// picker's refresh: the publication of the service's next table, as a
/// worker pays it under the registry's lock. Beside it, same run: the
/// refresh with no change (the floor), and the registry's own `pick`
/// after the same change (what the change costs without pickers).
fn publication(c: &mut Criterion) {
    let mut group = c.benchmark_group("publication");
    for n in [1_000, 100_000] {
        let mut reg = fleet(n);
        let id = format!("api-{:07}", n / 2);
        let mut picker = reg.picker("api").unwrap();
        let mut on = false;
        group.bench_with_input(BenchmarkId::new("refresh/floor", n), &n, |b, _| {
            b.iter(|| reg.refresh_picker(black_box(&mut picker), 1).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("refresh/drain", n), &n, |b, _| {
            b.iter(|| {
                on = !on;
                reg.drain(&id, on, 1).unwrap();
                reg.refresh_picker(black_box(&mut picker), 1).unwrap()
            })
        });
        let o = PickOptions::default();
        group.bench_with_input(BenchmarkId::new("registry_pick/drain", n), &n, |b, _| {
            b.iter(|| {
                on = !on;
                reg.drain(&id, on, 1).unwrap();
                black_box(reg.pick("api", Strategy::RoundRobin, &o, 1).unwrap())
            })
        });
        // The picks themselves, from the table of the last refresh (smooth
        // WRR: without the period table, which only a refresh after the
        // first such pick brings).
        for strategy in [
            Strategy::RoundRobin,
            Strategy::Random,
            Strategy::LeastRequest,
            Strategy::WeightedRoundRobin,
        ] {
            group.bench_with_input(
                BenchmarkId::new(format!("picker_pick/{}", strategy.as_str()), n),
                &n,
                |b, _| b.iter(|| black_box(picker.pick(strategy, None).unwrap())),
            );
        }
        // A join or a leave changes the member list itself.
        let joiner = joiner(n);
        let mut present = false;
        group.bench_with_input(BenchmarkId::new("refresh/join_or_leave", n), &n, |b, _| {
            b.iter(|| {
                join_or_leave(&mut reg, &joiner, &mut present);
                reg.refresh_picker(black_box(&mut picker), 1).unwrap()
            })
        });
        group.bench_with_input(
            BenchmarkId::new("registry_pick/join_or_leave", n),
            &n,
            |b, _| {
                b.iter(|| {
                    join_or_leave(&mut reg, &joiner, &mut present);
                    black_box(reg.pick("api", Strategy::RoundRobin, &o, 1).unwrap())
                })
            },
        );
    }
    group.finish();
}

fn resilience(c: &mut Criterion) {
    let mut group = c.benchmark_group("resilience");
    let mut reg = fleet(1_000);
    let id = "api-0000500";
    group.bench_function("outcome_success_1000", |b| {
        b.iter(|| reg.report_outcome(black_box(id), true, 1).unwrap())
    });
    group.bench_function("check_pass_1000", |b| {
        b.iter(|| {
            reg.report_check(black_box(id), CheckStatus::Pass, 1)
                .unwrap()
        })
    });
    group.bench_function("due_checks_nothing_due_1000", |b| {
        b.iter(|| black_box(reg.due_checks(1)))
    });
    let mut big = Registry::new(Config::default()).unwrap();
    for s in 0..1_000 {
        for i in 0..3 {
            big.register(spec(&format!("svc{s:04}"), i), 0).unwrap();
        }
    }
    group.bench_function("render_metrics_1000_services", |b| {
        b.iter(|| black_box(big.render_metrics().len()))
    });
    group.bench_function("snapshot_1000", |b| {
        b.iter(|| black_box(reg.snapshot().len()))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1)).sample_size(20);
    targets = picks, membership, discovery, after_a_change, publication, resilience
}
criterion_main!(benches);
