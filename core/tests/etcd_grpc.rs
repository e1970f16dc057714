//! The etcd range read over gRPC: the request a mirror with `"grpc": true`
//! asks for, and its protobuf answer read against the JSON gateway's answer
//! of the same kvs (the same reports, the same registry, the same next
//! request), plus answers that are cut, mangled or not a range response at
//! all: an error that leaves the registry and the mirror as they were,
//! never a panic.

use proptest::prelude::*;
use waypost::{Config, Registry};

#[path = "support/base64.rs"]
mod support;
use support::base64;
#[path = "support/protobuf.rs"]
mod protobuf;
use protobuf::{bytes_field, framed, varint, varint_field};

const PREFIX: &str = "/waypost/services";

/// One kv as etcd writes it: key, revisions, version, value (left out when
/// empty, as proto3 leaves out every field at its zero value), lease.
fn kv_message(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut kv = Vec::new();
    bytes_field(1, key, &mut kv);
    varint_field(2, 2, &mut kv);
    varint_field(3, 9, &mut kv);
    varint_field(4, 1, &mut kv);
    if !value.is_empty() {
        bytes_field(5, value, &mut kv);
    }
    varint_field(6, 7_587_869_812_316_352_005, &mut kv);
    kv
}

/// A RangeResponse at `revision` behind its gRPC prefix.
fn grpc_answer(revision: u64, kvs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut header = Vec::new();
    varint_field(1, 14_841_639_068_965_178_418, &mut header);
    varint_field(2, 10_276_657_743_932_975_437, &mut header);
    varint_field(3, revision, &mut header);
    varint_field(4, 2, &mut header);
    let mut message = Vec::new();
    bytes_field(1, &header, &mut message);
    for (key, value) in kvs {
        bytes_field(2, &kv_message(key, value), &mut message);
    }
    varint_field(4, kvs.len() as u64, &mut message);
    framed(&message)
}

/// The gateway's JSON answer of the same range.
fn json_answer(revision: u64, kvs: &[(Vec<u8>, Vec<u8>)]) -> String {
    let items: Vec<String> = kvs
        .iter()
        .map(|(key, value)| {
            let mut kv = format!(
                r#"{{"key":"{}","create_revision":"2","mod_revision":"9","version":"1""#,
                base64(key, false, true)
            );
            if !value.is_empty() {
                kv.push_str(&format!(r#","value":"{}""#, base64(value, false, true)));
            }
            kv.push_str(r#","lease":"7587869812316352005"}"#);
            kv
        })
        .collect();
    let kvs = if items.is_empty() {
        String::new()
    } else {
        format!(r#","kvs":[{}]"#, items.join(","))
    };
    format!(
        r#"{{"header":{{"cluster_id":"14841639068965178418","member_id":"10276657743932975437","revision":"{revision}","raft_term":"2"}}{kvs},"count":"{}"}}"#,
        kvs.len()
    )
}

fn mirror(grpc: bool) -> Registry {
    let mut reg = Registry::new(Config::default()).unwrap();
    let options = if grpc {
        r#"{"kind":"etcd","grpc":true}"#
    } else {
        r#"{"kind":"etcd"}"#
    };
    reg.source_add("etcd", options).unwrap();
    reg
}

#[test]
fn the_range_request_is_a_grpc_call() {
    let reg = mirror(true);
    let req = reg.source_request("etcd").unwrap();
    assert_eq!(req.path, "/etcdserverpb.KV/Range");
    assert!(req.grpc && !req.stream);
    assert_eq!(req.method, "POST");
    // key "/waypost/services/" (field 1), range_end "/waypost/services0"
    // (field 2), behind the 5-byte prefix.
    let mut message = Vec::new();
    bytes_field(1, b"/waypost/services/", &mut message);
    bytes_field(2, b"/waypost/services0", &mut message);
    assert_eq!(req.body, base64(&framed(&message), false, true));
    assert!(req.to_json().ends_with(r#""stream":false,"grpc":true}"#));
    // The gateway's request says nothing of gRPC.
    let plain = mirror(false).source_request("etcd").unwrap();
    assert!(!plain.grpc && !plain.to_json().contains("grpc"));
}

#[test]
fn the_watch_after_a_grpc_range_is_the_gateways() {
    let mut reg = mirror(true);
    let value = br#"{"address":"10.0.0.1","port":80}"#;
    let body = grpc_answer(
        41,
        &[(format!("{PREFIX}/api/a1").into_bytes(), value.to_vec())],
    );
    let report = reg.source_feed_bytes("etcd", &body, 1, 200, None).unwrap();
    assert_eq!(report.added, 1);
    let watch = reg.source_request("etcd").unwrap();
    assert_eq!(watch.path, "/v3/watch");
    assert!(watch.stream && !watch.grpc);
    assert!(watch.body.contains(r#""start_revision":"42""#));
    // A compacted watch: read everything again, over gRPC.
    let report = reg
        .source_feed(
            "etcd",
            r#"{"result":{"compact_revision":"50","canceled":true}}"#,
            2,
            200,
            None,
        )
        .unwrap();
    assert!(report.resync);
    assert!(reg.source_request("etcd").unwrap().grpc);
}

#[test]
fn the_option_reads_back_and_rejects_what_is_not_a_boolean() {
    let mut reg = mirror(true);
    let snapshot = reg.snapshot();
    assert!(snapshot.contains(r#""grpc":true"#));
    let restored = Registry::restore(&snapshot).unwrap();
    assert!(restored.source_request("etcd").unwrap().grpc);
    let err = reg
        .source_add("other", r#"{"kind":"etcd","grpc":"yes"}"#)
        .unwrap_err();
    assert_eq!(err.code().as_str(), "invalid_argument");
    assert!(err.message().contains("grpc"));
    // `false` is the default, written as nothing.
    reg.source_add("third", r#"{"kind":"etcd","grpc":false}"#)
        .unwrap();
    assert!(!reg.snapshot().contains(r#""grpc":false"#));
}

/// Answers that are not one uncompressed range response change nothing.
#[test]
fn answers_that_are_not_a_range_response_change_nothing() {
    let good = grpc_answer(
        5,
        &[(
            format!("{PREFIX}/api/a1").into_bytes(),
            br#"{"address":"10.0.0.1","port":80}"#.to_vec(),
        )],
    );
    let mut compressed = good.clone();
    compressed[0] = 1;
    let mut longer = good.clone();
    longer.push(0);
    let mut more = good[5..].to_vec();
    varint_field(3, 1, &mut more);
    let mut no_header = Vec::new();
    bytes_field(
        2,
        &kv_message(b"/waypost/services/api/a1", b"{}"),
        &mut no_header,
    );
    let mut key_not_bytes = Vec::new();
    varint_field(1, 3, &mut key_not_bytes);
    let mut bad_kv = Vec::new();
    bytes_field(1, b"\x08", &mut bad_kv); // a header with a varint cut short
    let mut group = Vec::new();
    varint(2 << 3 | 3, &mut group);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("prefix only", vec![0, 0, 0, 0]),
        ("compressed", compressed),
        ("longer than its prefix", longer),
        ("more", framed(&more)),
        ("no header", framed(&no_header)),
        ("a kv that is a number", {
            let mut m = Vec::new();
            varint_field(2, 7, &mut m);
            framed(&m)
        }),
        ("a kv whose key is a number", {
            let mut m = Vec::new();
            bytes_field(2, &key_not_bytes, &mut m);
            framed(&m)
        }),
        ("a header cut short", framed(&bad_kv)),
        ("a group", framed(&group)),
    ];
    for (what, body) in cases {
        let mut reg = mirror(true);
        let before = reg.snapshot();
        let err = reg.source_feed_bytes("etcd", &body, 1, 200, None);
        let err = err.expect_err(what);
        assert_eq!(err.code().as_str(), "invalid_argument", "{what}");
        assert_eq!(reg.snapshot(), before, "{what}");
        assert!(reg.source_request("etcd").unwrap().grpc, "{what}");
    }
}

#[test]
fn a_text_payload_that_is_not_utf8_is_refused() {
    let mut reg = mirror(false);
    let err = reg
        .source_feed_bytes("etcd", b"{\"header\":\xff}", 1, 200, None)
        .unwrap_err();
    assert_eq!(err.code().as_str(), "invalid_argument");
    assert!(err.message().contains("UTF-8"), "{}", err.message());
}

/// A key: mostly under the prefix, sometimes not, sometimes not UTF-8.
fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => (prop_oneof![Just("api"), Just("web"), Just("")], prop_oneof![Just("a1"), Just("a2"), Just("zz"), Just(""), Just("x/y")])
            .prop_map(|(s, i)| format!("{PREFIX}/{s}/{i}").into_bytes()),
        1 => Just(b"/other/api/a1".to_vec()),
        1 => Just(b"/waypost/services/api/\xff".to_vec()),
    ]
}

/// A value: mostly an instance, sometimes wrong in one way or another.
fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => (0u16..3, 0u8..8).prop_map(|(port, weight)| format!(
            r#"{{"address":"10.0.0.{port}","port":{},"weight":{weight},"tags":["v1"],"zone":"eu-1"}}"#,
            8080 + port
        ).into_bytes()),
        1 => Just(br#"{"Addr":"10.0.0.2:80","Metadata":{"a":"b"}}"#.to_vec()),
        1 => Just(br#"{"address":"10.0.0.1"}"#.to_vec()),
        1 => Just(br#"{"id":"other","address":"10.0.0.1","port":1}"#.to_vec()),
        1 => Just(Vec::new()),
        1 => Just(b"\xff{".to_vec()),
        1 => Just(b"[1]".to_vec()),
    ]
}

fn kvs() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
    proptest::collection::vec((key(), value()), 0..8)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The same kvs read from either answer, into a fresh mirror or one
    /// already holding an earlier read, give the same reports, the same
    /// registry and the same next request.
    #[test]
    fn grpc_and_gateway_answers_read_alike(first in kvs(), second in kvs(), revision in 1u64..1_000_000) {
        let (mut by_grpc, mut by_json) = (mirror(true), mirror(false));
        for (kvs, rev, now) in [(&first, revision, 1), (&second, revision + 3, 2)] {
            let a = by_grpc.source_feed_bytes("etcd", &grpc_answer(rev, kvs), now, 200, None);
            let b = by_json.source_feed("etcd", &json_answer(rev, kvs), now, 200, None);
            prop_assert_eq!(a.map(|r| r.to_json()), b.map(|r| r.to_json()));
            prop_assert_eq!(
                by_grpc.source_request("etcd").unwrap().to_json(),
                by_json.source_request("etcd").unwrap().to_json()
            );
            let grpc_state = by_grpc.snapshot().replace(r#","grpc":true"#, "");
            prop_assert_eq!(grpc_state, by_json.snapshot());
        }
    }

    /// Every cut of an answer, and answers with bytes changed, either read
    /// or change nothing, and never panic.
    #[test]
    fn cut_and_mangled_answers_read_or_change_nothing(
        kvs in kvs(),
        cut in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let body = grpc_answer(9, &kvs);
        let mut cut_body = body[..cut.index(body.len() + 1)].to_vec();
        // Keep the prefix's length true to the cut, so the message itself
        // is what is cut short.
        let n = cut_body.len().saturating_sub(5) as u32;
        if let Some(len) = cut_body.get_mut(1..5) {
            len.copy_from_slice(&n.to_be_bytes());
        }
        let mut mangled = body.clone();
        for (at, byte) in &flips {
            let i = at.index(mangled.len());
            mangled[i] = *byte;
        }
        for candidate in [cut_body, mangled] {
            let mut reg = mirror(true);
            reg.source_feed_bytes("etcd", &grpc_answer(3, &[(
                format!("{PREFIX}/api/kept").into_bytes(),
                br#"{"address":"10.0.0.1","port":80}"#.to_vec(),
            )]), 1, 200, None).unwrap();
            let before = reg.snapshot();
            if reg.source_feed_bytes("etcd", &candidate, 2, 200, None).is_err() {
                prop_assert_eq!(reg.snapshot(), before);
            }
        }
    }
}
