//! Fuzzing on the stable toolchain: a time-budgeted `proptest` run over
//! every reader (`Json::parse`, `Registry::restore`, the instance, config
//! and filter readers, every mirror's payload reader on raw bytes — the
//! etcd gRPC answer's among them — and the etcd JSON reader against its
//! reference) and over random operation sequences.
//!
//! Inputs are mutations (byte flips, cuts, insertions, splices of another
//! file) of the checked-in corpus in `tests/fuzz/corpus/` (of this crate),
//! plus arbitrary bytes; operation sequences are decoded from arbitrary
//! bytes, libFuzzer style. A failing case is saved to `tests/fuzz/regressions.txt` (proptest
//! seeds, replayed first on every run: check new ones in).
//!
//! `FUZZ_SECONDS` (default 2) bounds each target's run; `make fuzz` runs it
//! for a minute per target with overflow checks and debug assertions on.
//! What must hold: no panic, every error typed, a restored registry passes
//! `check_invariants`, the registry keeps working after any failure, and
//! the etcd reader reads every payload as the whole-tree reference does.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::strategy::Strategy as _;
use proptest::test_runner::{Config as RunConfig, FileFailurePersistence, TestRunner};
use waypost::json::Json;

#[path = "../../../core/tests/support/h2.rs"]
mod h2;
#[path = "../../../core/tests/support/base64.rs"]
mod support;
use support::base64;
use waypost::{
    CheckStatus, Config, DiscoverOptions, ErrorCode, Filter, GrpcCall, InstanceSpec, PickOptions,
    Registry, Strategy,
};

fn budget() -> Duration {
    let secs = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(2.0);
    Duration::from_secs_f64(secs.max(0.0))
}

fn corpus() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let corpus: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert!(corpus.len() >= 4, "the corpus is missing");
    corpus
}

/// Runs `test` on values of `strategy` until the budget is spent (at least
/// one round), saving failures to the regressions file.
fn fuzz<S: proptest::strategy::Strategy>(
    name: &'static str,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let regressions = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz/regressions.txt");
    let config = RunConfig {
        cases: 256,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(regressions))),
        source_file: Some(file!()),
        ..RunConfig::default()
    };
    let start = Instant::now();
    let mut rounds = 0u64;
    loop {
        let mut runner = TestRunner::new(config.clone());
        if let Err(e) = runner.run(&strategy, &test) {
            panic!("{name}: {e}");
        }
        rounds += 1;
        if start.elapsed() >= budget() {
            break;
        }
    }
    eprintln!(
        "fuzz {name}: {} cases in {:.1} s, no failure",
        rounds * 256,
        start.elapsed().as_secs_f64()
    );
}

#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Cut(usize),
    Insert(usize, Vec<u8>),
    Splice(usize, usize, usize),
    Token(usize, u8),
}

/// JSON fragments worth inserting: the values that break readers.
const TOKENS: &[&str] = &[
    "0",
    "-1",
    "-0",
    "1e999",
    "-1e999",
    "18446744073709551615",
    "18446744073709551616",
    "9007199254740993",
    "-9223372036854775809",
    "1.5",
    "null",
    "true",
    "\"\"",
    "[]",
    "{}",
    "\"\\ud800\"",
    "\"\\u0000\"",
    "NaN",
    "Infinity",
    "[[[[[[[[",
    "\"x\":",
    ",",
    "\"",
];

fn edit() -> impl proptest::strategy::Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Flip(at, b)),
        1 => any::<usize>().prop_map(Edit::Cut),
        2 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8)).prop_map(|(at, b)| Edit::Insert(at, b)),
        2 => (any::<usize>(), any::<usize>(), any::<usize>()).prop_map(|(a, b, c)| Edit::Splice(a, b, c)),
        4 => (any::<usize>(), any::<u8>()).prop_map(|(at, t)| Edit::Token(at, t)),
    ]
}

fn mutate(corpus: &[Vec<u8>], pick: usize, edits: &[Edit]) -> Vec<u8> {
    let mut out = corpus[pick % corpus.len()].clone();
    for e in edits {
        let len = out.len().max(1);
        match e {
            Edit::Flip(at, b) => {
                if let Some(x) = out.get_mut(at % len) {
                    *x ^= b | 1;
                }
            }
            Edit::Cut(at) => out.truncate(at % len),
            Edit::Insert(at, bytes) => {
                let at = (at % len).min(out.len());
                out.splice(at..at, bytes.iter().copied());
            }
            Edit::Splice(at, other, from) => {
                let other = &corpus[other % corpus.len()];
                let from = from % other.len().max(1);
                let at = (at % len).min(out.len());
                let end = (at + 40).min(out.len());
                out.splice(
                    at..end,
                    other[from..(from + 40).min(other.len())].iter().copied(),
                );
            }
            Edit::Token(at, t) => {
                // Replace the value after a ':' near `at` with a token.
                let at = at % len;
                let token = TOKENS[*t as usize % TOKENS.len()].as_bytes();
                if let Some(colon) = out[at.min(out.len())..].iter().position(|&b| b == b':') {
                    let start = at + colon + 1;
                    let end = out[start..]
                        .iter()
                        .position(|&b| b == b',' || b == b'}' || b == b']')
                        .map_or(out.len(), |p| start + p);
                    out.splice(start..end, token.iter().copied());
                }
            }
        }
    }
    out
}

/// Every reader on one input: typed errors only, and what restores is sound.
fn read_everything(bytes: &[u8]) -> Result<(), TestCaseError> {
    // Readers take &str: invalid UTF-8 is the bindings' to refuse, so
    // valid text is what reaches them (lossily converted here).
    let text = String::from_utf8_lossy(bytes);
    let _ = Json::parse(&text);
    if let Err(e) = Config::from_json(&text) {
        prop_assert_eq!(e.code(), ErrorCode::InvalidArgument);
    }
    if let Err(e) = Filter::from_json(&text) {
        prop_assert_eq!(e.code(), ErrorCode::InvalidArgument);
    }
    match InstanceSpec::from_json(&text) {
        Ok(spec) => {
            let mut reg = Registry::new(Config::default()).unwrap();
            if let Err(e) = reg.register(spec, 0) {
                prop_assert_eq!(e.code(), ErrorCode::InvalidArgument);
            }
            reg.check_invariants().map_err(TestCaseError::fail)?;
        }
        Err(e) => prop_assert_eq!(e.code(), ErrorCode::InvalidArgument),
    }
    // Every mirror on the bytes as they came (a gRPC answer is binary) and
    // behind a gRPC message prefix: a typed error leaves it as it was.
    let mut framed = vec![0];
    framed.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    framed.extend_from_slice(bytes);
    for body in [bytes, &framed[..]] {
        for options in [
            r#"{"kind":"etcd","grpc":true}"#,
            r#"{"kind":"consul","service":"api"}"#,
            r#"{"kind":"k8s","service":"api"}"#,
        ] {
            let mut reg = Registry::new(Config::default()).unwrap();
            reg.source_add("s", options).unwrap();
            let before = reg.snapshot();
            if let Err(e) = reg.source_feed_bytes("s", body, 0, 200, None) {
                prop_assert_eq!(e.code(), ErrorCode::InvalidArgument);
                prop_assert_eq!(reg.snapshot(), before);
            }
            reg.check_invariants().map_err(TestCaseError::fail)?;
        }
    }
    // The gRPC call's HTTP/2 reading: whole or byte by byte, the same; the
    // bytes as they came, and as a header block after the server's SETTINGS
    // (what the HPACK reading sees).
    let block = &bytes[..bytes.len().min(16_384)];
    let mut headers = h2::frame(h2::SETTINGS, 0, 0, &[]);
    headers.extend(h2::frame(
        h2::HEADERS,
        h2::END_HEADERS | h2::END_STREAM,
        1,
        block,
    ));
    for body in [bytes, &framed[..], &headers[..]] {
        if body.is_empty() {
            continue; // an empty read is the connection's end
        }
        let mut whole = GrpcCall::new("http", "h:1", "/p", b"", 0).unwrap();
        let mut bytewise = GrpcCall::new("http", "h:1", "/p", b"", 0).unwrap();
        whole.receive(body);
        for b in body {
            bytewise.receive(std::slice::from_ref(b));
        }
        prop_assert_eq!(whole.state(), bytewise.state());
        prop_assert_eq!(whole.answer(), bytewise.answer());
        prop_assert_eq!(whole.failure(), bytewise.failure());
        prop_assert_eq!(whole.take_output(), bytewise.take_output());
    }
    match Registry::restore(&text) {
        Ok(mut reg) => {
            reg.check_invariants().map_err(TestCaseError::fail)?;
            // It was a document a registry could write: it writes it back
            // identically, and it keeps working.
            let again = Registry::restore(&reg.snapshot())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(again.snapshot(), reg.snapshot());
            let clock = reg.clock();
            for step in 0..4u64 {
                run_op(
                    &mut reg,
                    &[step as u8 * 37, 3, 1, 7, 2],
                    clock + step * 10_000,
                );
                reg.check_invariants().map_err(TestCaseError::fail)?;
            }
        }
        Err(e) => prop_assert_eq!(e.code(), ErrorCode::InvalidSnapshot),
    }
    Ok(())
}

/// One operation decoded from bytes; errors are fine, panics are not.
fn run_op(reg: &mut Registry, b: &[u8], now: u64) {
    let at = |i: usize| b.get(i).copied().unwrap_or(0);
    let id = format!("i{}", at(1) % 12);
    let service = ["api", "web", ""][at(2) as usize % 3];
    match at(0) % 12 {
        0 | 1 => {
            let mut spec = InstanceSpec::new(id, service, "10.0.0.1", u16::from(at(3)));
            spec.weight = u32::from(at(4)) * 50;
            spec.zone = [None, Some(""), Some("z1")][at(5) as usize % 3].map(String::from);
            spec.priority = at(6) % 3;
            spec.ttl_ms = [None, Some(1_000), Some(0)][at(7) as usize % 3];
            spec.check_interval_ms = [None, Some(500)][at(8) as usize % 2];
            spec.tags = vec!["t".into(); at(9) as usize % 3];
            let _ = reg.register(spec, now);
        }
        2 => drop(reg.deregister(&id, now)),
        3 => drop(reg.heartbeat(&id, now)),
        4 => drop(reg.drain(&id, at(3) % 2 == 0, now)),
        5 => {
            let s = [CheckStatus::Pass, CheckStatus::Warn, CheckStatus::Fail][at(3) as usize % 3];
            let _ = reg.report_check(&id, s, now);
        }
        6 => drop(reg.report_outcome(&id, at(3) % 3 == 0, now)),
        7 => drop(if at(3) % 2 == 0 {
            reg.begin(&id, now)
        } else {
            reg.end(&id, now)
        }),
        8 => drop(reg.tick(now)),
        9 => {
            let options = DiscoverOptions {
                all: at(3) % 2 == 0,
                ..DiscoverOptions::default()
            };
            let _ = reg.discover(service, &options, now).map(|d| d.to_json());
        }
        10 => {
            let strategy = Strategy::ALL[at(3) as usize % Strategy::ALL.len()];
            let options = PickOptions {
                key: [None, Some(""), Some("k")][at(4) as usize % 3].map(String::from),
                zone: [None, Some(""), Some("z1")][at(5) as usize % 3].map(String::from),
                ..PickOptions::default()
            };
            let _ = reg.pick(service, strategy, &options, now);
        }
        _ => {
            let _ = reg.events_since([0, 1, u64::MAX, reg.last_index()][at(3) as usize % 4]);
            let _ = reg.due_checks(now);
        }
    }
}

#[test]
fn readers_on_mutated_corpus() {
    let corpus = corpus();
    let strategy = (any::<usize>(), proptest::collection::vec(edit(), 0..6));
    fuzz("readers_on_mutated_corpus", strategy, |(pick, edits)| {
        read_everything(&mutate(&corpus, pick, &edits))
    });
}

#[test]
fn readers_on_arbitrary_bytes() {
    fuzz(
        "readers_on_arbitrary_bytes",
        proptest::collection::vec(any::<u8>(), 0..256),
        |bytes| read_everything(&bytes),
    );
}

#[test]
fn every_corpus_file_reads_cleanly() {
    for (i, file) in corpus().iter().enumerate() {
        read_everything(file).unwrap_or_else(|e| panic!("corpus file {i}: {e}"));
    }
}

#[test]
fn random_operation_sequences() {
    let strategy = (
        any::<u64>(),
        prop_oneof![Just(0.0), Just(0.5)],
        prop_oneof![Just(0.0), Just(0.7)],
        proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 10), 0u64..3_000),
            1..120,
        ),
    );
    fuzz(
        "random_operation_sequences",
        strategy,
        |(seed, panic, sp, ops)| {
            let config = Config {
                seed,
                ttl_ms: 2_000,
                evict_after_ms: 3_000,
                panic_threshold: panic,
                self_preservation_threshold: sp,
                consecutive_failures: 2,
                event_retention: 32,
                slow_start_ms: 1_000,
                ..Config::default()
            };
            let mut reg = Registry::new(config).unwrap();
            let mut now = 0u64;
            let mut seen = 0u64;
            for (i, (op, dt)) in ops.iter().enumerate() {
                now += dt;
                run_op(&mut reg, op, now);
                reg.check_invariants().map_err(TestCaseError::fail)?;
                // No event index skipped or repeated.
                prop_assert!(reg.last_index() >= seen);
                seen = reg.last_index();
                if i % 16 == 15 {
                    let restored = Registry::restore(&reg.snapshot())
                        .map_err(|e| TestCaseError::fail(format!("own snapshot refused: {e}")))?;
                    prop_assert_eq!(restored.snapshot(), reg.snapshot());
                    reg = restored;
                }
            }
            let events = reg.events_since(reg.last_index().saturating_sub(32));
            if let Ok(events) = events {
                for w in events.windows(2) {
                    prop_assert_eq!(w[0].index + 1, w[1].index);
                }
            }
            Ok(())
        },
    );
}

/// The etcd payloads of `tests/fixtures/etcd`.
fn etcd_corpus() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/etcd");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let corpus: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert!(corpus.len() >= 10, "the etcd fixtures are missing");
    corpus
}

/// The etcd reader and its reference on one payload, fed to a mirror
/// that is reading the range and to one that is watching.
fn etcd_agree(bytes: &[u8]) -> Result<(), TestCaseError> {
    let text = String::from_utf8_lossy(bytes);
    for watching in [false, true] {
        waypost::etcd_readers_agree("/waypost/services", 7, watching, &text)
            .map_err(|e| TestCaseError::fail(format!("{text}\n{e}")))?;
    }
    Ok(())
}

#[test]
fn etcd_reader_on_mutated_payloads() {
    let corpus = etcd_corpus();
    let strategy = (any::<usize>(), proptest::collection::vec(edit(), 0..6));
    fuzz(
        "etcd_reader_on_mutated_payloads",
        strategy,
        |(pick, edits)| etcd_agree(&mutate(&corpus, pick, &edits)),
    );
}

#[test]
fn etcd_reader_on_mutated_records() {
    // The records inside the values: mutated instance documents (and
    // naming records), base64-coded into a range answer and a watch event.
    let mut records = corpus();
    records.push(br#"{"Op": 0, "Addr": "10.0.0.2:80", "Metadata": {"a": "b"}}"#.to_vec());
    records.push(
        br#"{"address": "10.0.0.1", "port": 80, "status": "warning", "source": "x"}"#.to_vec(),
    );
    let strategy = (any::<usize>(), proptest::collection::vec(edit(), 0..6));
    fuzz(
        "etcd_reader_on_mutated_records",
        strategy,
        |(pick, edits)| {
            let value = base64(&mutate(&records, pick, &edits), false, true);
            let key = base64(b"/waypost/services/api/a", false, true);
            let kv = format!(r#"{{"key":"{key}","mod_revision":"9","value":"{value}"}}"#);
            etcd_agree(format!(r#"{{"header":{{"revision":"9"}},"kvs":[{kv},{kv}]}}"#).as_bytes())?;
            etcd_agree(format!(r#"{{"result":{{"events":[{{"kv":{kv}}}]}}}}"#).as_bytes())
        },
    );
}
