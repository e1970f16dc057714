//! Sources: reconciling a 10 000-instance service, one watch event, and
//! reading a 10 000-entry etcd range, beside a same-run floor (the least a
//! reconcile by id can cost: one hash lookup per entry).

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use waypost::{Config, PickOptions, Registry, SourceEntry, Strategy};

use waypost_bench::etcd::{entry, range_grpc_payload, range_payload, watch_payload, N};

fn entries(changed_every: usize) -> Vec<SourceEntry> {
    (0..N)
        .map(|i| {
            let port = if changed_every > 0 && i % changed_every == 0 {
                9090
            } else {
                8080
            };
            entry(i, port)
        })
        .collect()
}

fn registry() -> Registry {
    Registry::new(Config {
        seed: 42,
        ..Config::default()
    })
    .unwrap()
}

fn sources(c: &mut Criterion) {
    let mut group = c.benchmark_group("source");
    let same = entries(0);
    let changed = entries(100);

    // Floor: one hash lookup per entry id, nothing else.
    let index: HashMap<String, usize> = same
        .iter()
        .enumerate()
        .map(|(i, e)| (e.spec.id.clone(), i))
        .collect();
    group.bench_function("floor_10000_id_lookups", |b| {
        b.iter(|| {
            same.iter()
                .map(|e| index.get(e.spec.id.as_str()).copied().unwrap_or(0))
                .sum::<usize>()
        })
    });

    // Floor: dropping the 10 000 entries a sync takes ownership of.
    group.bench_function("floor_drop_10000_entries", |b| {
        b.iter_batched(|| same.clone(), drop, BatchSize::LargeInput)
    });

    let mut reg = registry();
    reg.sync("etcd", "api", same.clone(), 0).unwrap();
    group.bench_function("sync_10000_unchanged", |b| {
        b.iter_batched(
            || same.clone(),
            |list| {
                let r = reg.sync("etcd", "api", list, 1).unwrap();
                assert_eq!(r.unchanged as usize, N);
            },
            BatchSize::LargeInput,
        )
    });

    let mut flip = false;
    group.bench_function("sync_10000_one_percent_changed", |b| {
        b.iter_batched(
            || {
                flip = !flip;
                if flip {
                    changed.clone()
                } else {
                    same.clone()
                }
            },
            |list| {
                let r = reg.sync("etcd", "api", list, 1).unwrap();
                assert_eq!(r.updated as usize, N / 100);
            },
            BatchSize::LargeInput,
        )
    });

    let mut port = 8080;
    group.bench_function("source_put_one_event_10000", |b| {
        b.iter_batched(
            || {
                port = if port == 8080 { 9090 } else { 8080 };
                entry(7, port)
            },
            |e| reg.source_put("etcd", e, 1).unwrap(),
            BatchSize::SmallInput,
        )
    });

    let mut mirror = registry();
    mirror.source_add("etcd", r#"{"kind":"etcd"}"#).unwrap();
    let range = range_payload();
    eprintln!("etcd range answer: {} keys, {} bytes", N, range.len());
    mirror.source_feed("etcd", &range, 0, 200, None).unwrap();
    let watches = [watch_payload(9090, 11), watch_payload(8080, 12)];
    let mut n = 0;
    group.bench_function("etcd_watch_one_event_10000", |b| {
        b.iter(|| {
            n += 1;
            let r = mirror
                .source_feed("etcd", &watches[n % 2], 1, 200, None)
                .unwrap();
            black_box(r.updated)
        })
    });
    // Floor: the core's JSON reader on the same 10 000-entry range text.
    group.bench_function("floor_json_parse_range_10000", |b| {
        b.iter(|| black_box(waypost::json::Json::parse(&range).is_ok()))
    });
    group.bench_function("etcd_range_10000_read_and_reconciled_unchanged", |b| {
        b.iter(|| {
            let r = mirror.source_feed("etcd", &range, 1, 200, None).unwrap();
            assert_eq!(r.unchanged as usize, N);
        })
    });
    group.bench_function("etcd_range_10000_into_empty_registry", |b| {
        b.iter_batched(
            || {
                let mut m = registry();
                m.source_add("etcd", r#"{"kind":"etcd"}"#).unwrap();
                m
            },
            |mut m| {
                let r = m.source_feed("etcd", &range, 0, 200, None).unwrap();
                assert_eq!(r.added as usize, N);
                m
            },
            BatchSize::PerIteration,
        )
    });
    // The same range as etcd's gRPC API answers it (`"grpc": true`).
    let grpc = range_grpc_payload();
    eprintln!("etcd gRPC range answer: {} keys, {} bytes", N, grpc.len());
    let mut by_grpc = registry();
    by_grpc
        .source_add("etcd", r#"{"kind":"etcd","grpc":true}"#)
        .unwrap();
    by_grpc
        .source_feed_bytes("etcd", &grpc, 0, 200, None)
        .unwrap();
    group.bench_function("etcd_range_grpc_10000_read_and_reconciled_unchanged", |b| {
        b.iter(|| {
            let r = by_grpc
                .source_feed_bytes("etcd", &grpc, 1, 200, None)
                .unwrap();
            assert_eq!(r.unchanged as usize, N);
        })
    });
    group.bench_function("etcd_range_grpc_10000_into_empty_registry", |b| {
        b.iter_batched(
            || {
                let mut m = registry();
                m.source_add("etcd", r#"{"kind":"etcd","grpc":true}"#)
                    .unwrap();
                m
            },
            |mut m| {
                let r = m.source_feed_bytes("etcd", &grpc, 0, 200, None).unwrap();
                assert_eq!(r.added as usize, N);
                m
            },
            BatchSize::PerIteration,
        )
    });

    // Picks over a fleet the source owns, beside the same fleet registered locally.
    let mut local = registry();
    for e in same.iter().take(1_000) {
        local.register(e.spec.clone(), 0).unwrap();
    }
    let mut owned = registry();
    owned
        .sync("etcd", "api", same[..1_000].to_vec(), 0)
        .unwrap();
    let opts = PickOptions::default();
    for (name, reg) in [
        ("pick_round_robin_1000_local", &mut local),
        ("pick_round_robin_1000_source_owned", &mut owned),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                black_box(
                    reg.pick("api", Strategy::RoundRobin, &opts, 1)
                        .unwrap()
                        .handle,
                )
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2)).sample_size(20);
    targets = sources
}
criterion_main!(benches);
