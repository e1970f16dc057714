//! The etcd adapter against the gateway payloads in tests/fixtures/etcd
//! (written from the etcd 3.4 gateway's documented format).

use waypost::{Config, Health, Registry};

fn fixture(name: &str) -> String {
    let path = format!("{}/../fixtures/etcd/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn mirror() -> Registry {
    let mut reg = Registry::new(Config::default()).unwrap();
    reg.source_add("etcd", r#"{"kind":"etcd"}"#).unwrap();
    reg
}

#[test]
fn a_range_maps_every_field() {
    let mut reg = mirror();
    let report = reg
        .source_feed("etcd", &fixture("range.json"), 0, 200, None)
        .unwrap();
    assert_eq!((report.added, report.rejected.len()), (4, 0));

    let a = reg.get("api-a", 0).unwrap();
    assert_eq!(
        a.instance.to_json(),
        r#"{"id":"api-a","service":"api","address":"10.0.0.1","port":8080,"weight":2,"tags":["v1"],"meta":{"rack":"r1"},"zone":"eu-1","priority":0,"source":"etcd"}"#
    );
    assert_eq!(reg.get("api-b", 0).unwrap().status.health, Health::Degraded);
    let echo = reg.get("echo-1", 0).unwrap();
    assert_eq!(
        echo.instance.to_json(),
        r#"{"id":"echo-1","service":"grpc-echo","address":"10.0.1.7","port":50051,"weight":1,"tags":[],"meta":{"version":"1.4"},"priority":0,"source":"etcd"}"#
    );
    assert_eq!(reg.get("echo-2", 0).unwrap().instance.address(), "fd00::7");
    let request = reg.source_request("etcd").unwrap();
    assert!(
        request.body.contains(r#""start_revision":"10""#),
        "{}",
        request.body
    );
}

#[test]
fn the_watch_stream_applies_batch_by_batch() {
    let mut reg = mirror();
    reg.source_feed("etcd", &fixture("range.json"), 0, 200, None)
        .unwrap();
    let steps = [
        ("watch-created.json", (0, 0, 0)),
        ("watch-put.json", (1, 0, 0)),
        ("watch-update.json", (0, 1, 0)),
        ("watch-delete.json", (0, 0, 1)),
        ("watch-batch.json", (1, 0, 1)),
        ("watch-progress.json", (0, 0, 0)),
    ];
    for (name, (added, updated, removed)) in steps {
        let r = reg
            .source_feed("etcd", &fixture(name), 1, 200, None)
            .unwrap();
        assert_eq!(
            (r.added, r.updated, r.removed, r.resync),
            (added, updated, removed, false),
            "{name}"
        );
    }
    assert_eq!(reg.get("api-a", 1).unwrap().status.health, Health::Draining);
    assert!(reg.get("api-b", 1).is_err());
    assert!(reg
        .source_request("etcd")
        .unwrap()
        .body
        .contains(r#""start_revision":"21""#));

    let r = reg
        .source_feed(
            "etcd",
            &fixture("watch-malformed-records.json"),
            2,
            200,
            None,
        )
        .unwrap();
    assert_eq!((r.added, r.rejected.len()), (1, 4));

    // A failed stream changes nothing: the same watch is sent again.
    let before = reg.snapshot();
    let e = reg
        .source_feed("etcd", &fixture("watch-error.json"), 3, 200, None)
        .unwrap_err();
    assert_eq!(e.code(), waypost::ErrorCode::InvalidArgument);
    assert_eq!(reg.snapshot(), before);
    assert_eq!(reg.source_request("etcd").unwrap().path, "/v3/watch");
    let r = reg
        .source_feed("etcd", &fixture("watch-compacted.json"), 3, 200, None)
        .unwrap();
    assert!(r.resync);
    assert_eq!(reg.source_request("etcd").unwrap().path, "/v3/kv/range");
    reg.source_feed("etcd", &fixture("range.json"), 3, 200, None)
        .unwrap();
    // The empty range is a full state with no keys: held as a likely error.
    let r = reg
        .source_feed("etcd", &fixture("range-empty.json"), 4, 200, None)
        .unwrap();
    assert_eq!((r.removed, r.held), (0, 4));
    reg.check_invariants().unwrap();
}

/// The etcd reader reads every fixture as the whole-tree reference does
/// (core/tests/etcd_reader.rs holds the two to it on generated payloads).
#[test]
fn the_fixtures_read_as_the_reference_reads_them() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/etcd");
    let mut n = 0;
    for file in std::fs::read_dir(dir).unwrap() {
        let path = file.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            for watching in [false, true] {
                waypost::etcd_readers_agree("/waypost/services", 4, watching, &text)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
            n += 1;
        }
    }
    assert!(n >= 10, "the etcd fixtures are missing");
}

/// A real etcd's answer over gRPC and its gateway's answer of the same
/// range (tests/fixtures/etcd-grpc) read alike.
#[test]
fn a_grpc_range_from_etcd_reads_as_its_gateway_answer() {
    let dir = format!("{}/../fixtures/etcd-grpc", env!("CARGO_MANIFEST_DIR"));
    let grpc = std::fs::read(format!("{dir}/range.grpc")).unwrap();
    let json = std::fs::read_to_string(format!("{dir}/range-gateway.json")).unwrap();
    let mut by_grpc = Registry::new(Config::default()).unwrap();
    by_grpc
        .source_add("etcd", r#"{"kind":"etcd","grpc":true}"#)
        .unwrap();
    let mut by_json = mirror();
    let a = by_grpc
        .source_feed_bytes("etcd", &grpc, 0, 200, None)
        .unwrap();
    let b = by_json.source_feed("etcd", &json, 0, 200, None).unwrap();
    assert_eq!((a.added, a.rejected.len()), (4, 0));
    assert_eq!(a.to_json(), b.to_json());
    assert_eq!(
        by_grpc.snapshot().replace(r#","grpc":true"#, ""),
        by_json.snapshot()
    );
    assert_eq!(
        by_grpc.get("api-a", 0).unwrap().instance.to_json(),
        r#"{"id":"api-a","service":"api","address":"10.0.0.1","port":8080,"weight":2,"tags":["v1"],"meta":{"rack":"r1"},"zone":"eu-1","priority":0,"source":"etcd"}"#
    );
    // The watch starts after the answer's revision (6: four puts and the
    // key outside the prefix, after etcd's first revision).
    let watch = by_grpc.source_request("etcd").unwrap();
    assert!(
        watch.body.contains(r#""start_revision":"7""#),
        "{}",
        watch.body
    );
}
