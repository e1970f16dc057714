//! The 10 000-key etcd range fed to a mirror, timed in CPU time (this
//! thread's, `CLOCK_THREAD_CPUTIME_ID`) rather than wall time, so
//! that other processes on a shared machine do not count; beside the same
//! floors as `benches/sources.rs` (the JSON tree reader alone on the same
//! text, dropping 10 000 entries), timed the same way; and the same range
//! as etcd's gRPC API answers it (`"grpc": true`), and that answer read
//! out of its HTTP/2 frames by the core's `GrpcCall` beside copying the
//! same bytes. POSIX only.
//!
//!   cargo run --release -p waypost-bench --bin etcd_range_cpu

use std::hint::black_box;

use waypost::{Config, GrpcCall, GrpcCallState, Registry, SourceEntry};
use waypost_bench::etcd::{
    entry, grpc_served, range_grpc_payload, range_payload, watch_payload, N,
};

/// This thread's CPU time so far, in nanoseconds.
fn cpu_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime");
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Median and least CPU time of `runs` runs of `f`, in ms; `setup` is not counted.
fn measure<T>(runs: usize, mut setup: impl FnMut() -> T, mut f: impl FnMut(T)) -> (f64, f64) {
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let input = setup();
            let start = cpu_ns();
            f(input);
            (cpu_ns() - start) as f64 / 1e6
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times[runs / 2], times[0])
}

fn mirror_with(options: &str) -> Registry {
    let mut reg = Registry::new(Config {
        seed: 42,
        ..Config::default()
    })
    .unwrap();
    reg.source_add("etcd", options).unwrap();
    reg
}

fn mirror() -> Registry {
    mirror_with(r#"{"kind":"etcd"}"#)
}

fn grpc_mirror() -> Registry {
    mirror_with(r#"{"kind":"etcd","grpc":true}"#)
}

fn main() {
    let range = range_payload();
    let runs = 41;
    let mut synced = mirror();
    synced.source_feed("etcd", &range, 0, 200, None).unwrap();
    let entries: Vec<SourceEntry> = (0..N).map(|i| entry(i, 8080)).collect();
    let floor = measure(
        runs,
        || (),
        |()| drop(black_box(waypost::json::Json::parse(&range))),
    );
    let drops = measure(runs, || entries.clone(), drop);
    let in_sync = measure(
        runs,
        || (),
        |()| {
            let r = synced.source_feed("etcd", &range, 1, 200, None).unwrap();
            assert_eq!(r.unchanged as usize, N);
        },
    );
    let empty = measure(runs, mirror, |mut m| {
        let r = m.source_feed("etcd", &range, 0, 200, None).unwrap();
        assert_eq!(r.added as usize, N);
    });
    let grpc = range_grpc_payload();
    let mut grpc_synced = grpc_mirror();
    grpc_synced
        .source_feed_bytes("etcd", &grpc, 0, 200, None)
        .unwrap();
    let grpc_in_sync = measure(
        runs,
        || (),
        |()| {
            let r = grpc_synced
                .source_feed_bytes("etcd", &grpc, 1, 200, None)
                .unwrap();
            assert_eq!(r.unchanged as usize, N);
        },
    );
    let grpc_empty = measure(runs, grpc_mirror, |mut m| {
        let r = m.source_feed_bytes("etcd", &grpc, 0, 200, None).unwrap();
        assert_eq!(r.added as usize, N);
    });
    // Read in 64 KiB pieces, as a socket gives them.
    let wire = grpc_served(&grpc);
    let http2 = measure(
        runs,
        || (),
        |()| {
            let mut call =
                GrpcCall::new("http", "127.0.0.1:2379", "/etcdserverpb.KV/Range", b"", 0).unwrap();
            for piece in wire.chunks(65_536) {
                call.receive(piece);
            }
            assert_eq!(call.state(), GrpcCallState::Answered);
            assert_eq!(black_box(call.take_answer()).len(), grpc.len());
        },
    );
    let copy = measure(
        runs,
        || (),
        |()| {
            let mut out = Vec::new();
            for piece in wire.chunks(65_536) {
                out.extend_from_slice(piece);
            }
            black_box(out);
        },
    );
    let watches = [watch_payload(9090, 11), watch_payload(8080, 12)];
    let watch = measure(
        runs,
        || (),
        |()| {
            for i in 0..10_000 {
                synced
                    .source_feed("etcd", &watches[i % 2], 1, 200, None)
                    .unwrap();
            }
        },
    );
    println!(
        "etcd range answer: {N} keys, {} bytes (over gRPC: {} bytes); CPU time of {runs} runs",
        range.len(),
        grpc.len()
    );
    for (name, (median, least), unit) in [
        (
            "floor: the JSON tree reader alone on the range text",
            floor,
            "ms",
        ),
        ("floor: dropping 10 000 entries", drops, "ms"),
        ("range fed, registry already in sync", in_sync, "ms"),
        ("range fed into an empty registry", empty, "ms"),
        (
            "the gRPC answer fed, registry already in sync",
            grpc_in_sync,
            "ms",
        ),
        (
            "the gRPC answer fed into an empty registry",
            grpc_empty,
            "ms",
        ),
        (
            "floor: copying the gRPC answer's HTTP/2 bytes in 64 KiB pieces",
            copy,
            "ms",
        ),
        ("the gRPC answer read out of its HTTP/2 frames", http2, "ms"),
        // 10 000 messages a run: ms per run is 0.1 µs per message.
        ("one watch message fed whole", watch, "µs"),
    ] {
        let (median, least) = if unit == "µs" {
            (median / 10.0, least / 10.0)
        } else {
            (median, least)
        };
        println!("{name}: median {median:.2} {unit}, least {least:.2} {unit}");
    }
}
