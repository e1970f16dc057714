//! The wire forms the core writes by hand: they must agree with the serde
//! derives offered to Rust users, and snapshots written by earlier builds
//! must restore and be written back byte for byte.

use proptest::prelude::*;
use serde_json::Value;
use waypost::json::Json;
use waypost::{
    CheckStatus, Config, DiscoverOptions, InstanceSpec, PickOptions, Registry, Strategy as Balancer,
};

/// A snapshot of a registry that exercises every snapshot field (escapes in
/// tags and metadata, zones, priorities, per-instance TTLs and checks,
/// smooth-WRR state, panic, in-flight counts, every strategy's counter),
/// written by the serde-derived writer of an earlier build.
const SNAPSHOT_V1: &str = include_str!("data/snapshot-v1.json");

#[test]
fn an_earlier_snapshot_restores_and_is_written_back_identically() {
    let reg = Registry::restore(SNAPSHOT_V1).unwrap();
    assert_eq!(reg.snapshot(), SNAPSHOT_V1);
}

#[test]
fn an_earlier_snapshot_continues_like_its_copy() {
    let mut a = Registry::restore(SNAPSHOT_V1).unwrap();
    let mut b = Registry::restore(&a.snapshot()).unwrap();
    for t in 0..50 {
        let now = 1_200 + t * 37;
        for s in Balancer::ALL {
            let o = PickOptions {
                key: Some(format!("k{t}")),
                ..PickOptions::default()
            };
            let pa = a.pick("api", s, &o, now).map(|p| p.handle);
            let pb = b.pick("api", s, &o, now).map(|p| p.handle);
            assert_eq!(pa, pb);
        }
        assert_eq!(a.tick(now), b.tick(now));
    }
    assert_eq!(a.snapshot(), b.snapshot());
}

/// The hand-written text is exactly what the serde derive writes (same
/// members, same order, same number formatting).
fn same_text<T: serde::Serialize>(hand_written: &str, derived: &T) {
    assert_eq!(hand_written, serde_json::to_string(derived).unwrap());
}

/// The same members and values, in any order.
fn same(hand_written: &str, derived: Value) {
    let parsed: Value = serde_json::from_str(hand_written).unwrap();
    assert_eq!(parsed, derived, "{hand_written}");
}

fn spec_strategy() -> impl Strategy<Value = InstanceSpec> {
    let text = "[ -~]{1,12}|[a-zé😀\"\\\\/]{1,6}";
    (
        text,
        text,
        1u16..,
        1u32..10_000,
        proptest::collection::vec(text, 0..4),
        proptest::collection::btree_map(text, "[ -~]{0,8}", 0..4),
        proptest::option::of("[a-z]{0,5}"),
        any::<u8>(),
        proptest::option::of(1u64..86_400_000),
        proptest::option::of(1u64..86_400_000),
    )
        .prop_map(
            |(id, address, port, weight, tags, meta, zone, priority, ttl, check)| {
                let mut s = InstanceSpec::new(id, "svc", address, port);
                s.weight = weight;
                s.tags = tags;
                s.meta = meta.into_iter().collect();
                s.zone = zone;
                s.priority = priority;
                s.ttl_ms = ttl;
                s.check_interval_ms = check;
                s
            },
        )
}

proptest! {
    #[test]
    fn instance_specs_agree_with_serde(spec in spec_strategy()) {
        same_text(&spec.to_json(), &spec);
        let back = InstanceSpec::from_json(&spec.to_json());
        if spec.validate().is_ok() {
            prop_assert_eq!(back.unwrap(), spec.clone());
        }
        // serde reads the wire form back too (through the table's wire struct).
        let read: InstanceSpec = serde_json::from_str(&spec.to_json()).unwrap();
        prop_assert_eq!(read, spec);
    }

    #[test]
    fn configs_agree_with_serde(
        seed in any::<u64>(),
        panic in 0.0f64..=1.0,
        sp in 0.0f64..=1.0,
        ttl in 1u64..86_400_000,
    ) {
        let config = Config {
            seed,
            panic_threshold: panic,
            self_preservation_threshold: sp,
            ttl_ms: ttl,
            ..Config::default()
        };
        same_text(&config.to_json(), &config);
        // Read back to the same bits (every float in its shortest form
        // has to round-trip, 17 significant digits included).
        prop_assert_eq!(Config::from_json(&config.to_json()).unwrap(), config);
    }

    #[test]
    fn events_statuses_and_discoveries_agree_with_serde(
        ops in proptest::collection::vec((0u8..6, 0usize..4, 0u64..3_000), 1..60),
    ) {
        let mut reg = Registry::new(Config {
            ttl_ms: 1_000,
            evict_after_ms: 2_000,
            consecutive_failures: 2,
            slow_start_ms: 500,
            seed: 3,
            ..Config::default()
        })
        .unwrap();
        let mut now = 0;
        for (op, i, dt) in ops {
            now += dt;
            let id = format!("i-{i}");
            let _ = match op {
                0 => {
                    let mut s = InstanceSpec::new(&id, "svc", "h", 80);
                    s.check_interval_ms = Some(100);
                    reg.register(s, now).map(|_| ())
                }
                1 => reg.heartbeat(&id, now),
                2 => reg.report_outcome(&id, false, now),
                3 => reg.report_check(&id, CheckStatus::Warn, now),
                4 => reg.drain(&id, true, now),
                _ => reg.deregister(&id, now),
            };
        }
        for e in reg.events_since(0).unwrap() {
            same_text(&e.to_json(), &e);
        }
        for i in 0..4 {
            if let Ok(view) = reg.get(&format!("i-{i}"), now) {
                same_text(&view.status.to_json(), &view.status);
                let mut expected = serde_json::to_value(view.instance.to_spec()).unwrap();
                if let (Value::Object(m), Value::Object(s)) =
                    (&mut expected, serde_json::to_value(view.status).unwrap())
                {
                    m.extend(s);
                }
                same(&view.to_json(), expected);
                let spec = view.instance.to_spec();
                prop_assert_eq!(spec.view_json(view.instance.source(), &view.status), view.to_json());
            }
        }
        if let Ok(found) = reg.discover("svc", &DiscoverOptions { all: true, ..Default::default() }, now) {
            let doc = Json::parse(&found.to_json()).unwrap();
            prop_assert_eq!(doc.get("instances").and_then(Json::as_array).map(<[Json]>::len), Some(found.len()));
            prop_assert_eq!(doc.get("panic").and_then(Json::as_bool), Some(found.panic));
        }
        let events = reg.events_since(0).unwrap();
        same_text(&waypost::Event::list_to_json(&events), &events);
    }
}

/// A view written from its parts (spec, owning source, status) is the
/// view's own wire form, for source-owned and held instances too.
#[test]
fn a_view_written_from_its_parts_is_the_views_wire_form() {
    let mut reg = Registry::new(Config::default()).unwrap();
    let mut local = InstanceSpec::new("local", "svc", "h", 80);
    local.zone = Some("eu".into());
    local.ttl_ms = Some(5_000);
    reg.register(local, 0).unwrap();
    let entries = r#"[{"id":"s-1","service":"store","address":"a","port":1,"status":"warning","tags":["t"]},
                      {"id":"s-2","service":"store","address":"b","port":2,"status":"maintenance"}]"#;
    reg.sync_json("etcd", "store", entries, 10).unwrap();
    let mut written = vec![];
    for (now, held) in [(10, false), (20, true)] {
        if held {
            reg.sync_json("etcd", "store", "[]", now).unwrap();
        }
        for id in ["local", "s-1", "s-2"] {
            let view = reg.get(id, now).unwrap();
            assert_eq!(view.status.held, held && id != "local");
            let spec = view.instance.to_spec();
            let text = spec.view_json(view.instance.source(), &view.status);
            assert_eq!(text, view.to_json());
            written.push(text);
        }
    }
    assert!(written.iter().any(|v| v.contains(r#""source":"etcd""#)));
    assert!(written.iter().any(|v| v.contains(r#""held":true"#)));
}

#[test]
fn serde_fills_the_tables_defaults_and_requires_the_required_fields() {
    let spec: InstanceSpec =
        serde_json::from_str(r#"{"id":"a","service":"s","address":"h","port":80,"zone":null}"#)
            .unwrap();
    assert_eq!(spec, InstanceSpec::new("a", "s", "h", 80));
    assert_eq!(spec.weight, 1);
    for missing in ["id", "service", "address", "port"] {
        let mut fields = serde_json::json!({"id": "a", "service": "s", "address": "h", "port": 80});
        fields.as_object_mut().unwrap().remove(missing);
        let err = serde_json::from_value::<InstanceSpec>(fields)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(missing) && err.contains("is required"),
            "{err}"
        );
    }
}
