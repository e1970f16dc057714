//! Properties of sources: any sequence of syncs, puts and deletes ends in
//! the state one full sync of the final entries gives (convergence), and
//! no payload, however mangled, panics or corrupts the registry.

use std::collections::BTreeMap;

use proptest::prelude::*;
use waypost::{Config, DiscoverOptions, InstanceSpec, Registry, SourceEntry, SourceStatus};

const SERVICES: [&str; 2] = ["api", "web"];

#[derive(Debug, Clone)]
enum Op {
    Sync(usize, Vec<(u8, u8, u8)>),
    Put(usize, (u8, u8, u8)),
    Delete(u8),
    Drain(u8),
    Fail(u8),
}

/// An entry from (id, port, status) numbers.
fn entry(service: &str, (id, port, status): (u8, u8, u8)) -> SourceEntry {
    let mut spec = InstanceSpec::new(
        format!("i{}", id % 12),
        service,
        "10.0.0.1",
        80 + u16::from(port % 3),
    );
    spec.weight = 1 + u32::from(port % 2);
    if port % 4 == 0 {
        spec.tags = vec!["canary".into()];
    }
    SourceEntry {
        spec,
        status: SourceStatus::ALL[usize::from(status % 4)],
    }
}

fn op() -> impl Strategy<Value = Op> {
    let e = (any::<u8>(), any::<u8>(), any::<u8>());
    prop_oneof![
        (0..2usize, prop::collection::vec(e, 0..8)).prop_map(|(s, es)| Op::Sync(s, es)),
        (0..2usize, e).prop_map(|(s, x)| Op::Put(s, x)),
        any::<u8>().prop_map(Op::Delete),
        any::<u8>().prop_map(Op::Drain),
        any::<u8>().prop_map(Op::Fail),
    ]
}

/// Every instance of every service: (id, wire form without indexes, health).
fn state(reg: &mut Registry, now: u64) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let opts = DiscoverOptions {
        all: true,
        ..DiscoverOptions::default()
    };
    for service in SERVICES {
        if let Ok(found) = reg.discover(service, &opts, now) {
            for v in found.iter() {
                out.push((
                    v.instance.id().to_owned(),
                    v.instance.to_json(),
                    v.status
                        .source_status
                        .map(|s| s.as_str())
                        .unwrap_or("")
                        .to_owned(),
                ));
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn any_sequence_converges_to_one_full_sync(ops in prop::collection::vec(op(), 1..40)) {
        let config = Config { trust_empty_sync: true, consecutive_failures: 1, ..Config::default() };
        let mut reg = Registry::new(config.clone()).unwrap();
        // What the source holds, id → (service, entry).
        let mut model: BTreeMap<String, (usize, SourceEntry)> = BTreeMap::new();
        let mut now = 0;
        for op in ops {
            now += 10;
            match op {
                Op::Sync(s, entries) => {
                    let entries: Vec<SourceEntry> = entries.into_iter().map(|x| entry(SERVICES[s], x)).collect();
                    let report = reg.sync("src", SERVICES[s], entries.clone(), now).unwrap();
                    // Duplicates and ids held by the other service are rejected.
                    let mut listed = BTreeMap::new();
                    for e in entries {
                        let id = e.spec.id.clone();
                        if listed.contains_key(&id) {
                            continue;
                        }
                        if model.get(&id).is_some_and(|(other, _)| *other != s) {
                            continue;
                        }
                        listed.insert(id, (s, e));
                    }
                    prop_assert_eq!(report.rejected.len() as u32 + report.added + report.updated + report.unchanged,
                                    report.rejected.len() as u32 + listed.len() as u32);
                    model.retain(|_, (other, _)| *other != s);
                    model.extend(listed);
                }
                Op::Put(s, x) => {
                    let e = entry(SERVICES[s], x);
                    let id = e.spec.id.clone();
                    let result = reg.source_put("src", e.clone(), now);
                    if model.get(&id).is_some_and(|(other, _)| *other != s) {
                        prop_assert!(result.is_err());
                    } else {
                        result.unwrap();
                        model.insert(id, (s, e));
                    }
                }
                Op::Delete(id) => {
                    let id = format!("i{}", id % 12);
                    let report = reg.source_delete("src", &id, now).unwrap();
                    prop_assert_eq!(report.removed, u32::from(model.remove(&id).is_some()));
                }
                // Local inputs on top must not disturb what the source decides.
                Op::Drain(id) => {
                    let _ = reg.drain(&format!("i{}", id % 12), id % 2 == 0, now);
                }
                Op::Fail(id) => {
                    let _ = reg.report_outcome(&format!("i{}", id % 12), false, now);
                }
            }
            reg.check_invariants().map_err(TestCaseError::fail)?;
        }
        let mut fresh = Registry::new(config).unwrap();
        for (s, service) in SERVICES.iter().enumerate() {
            let entries: Vec<SourceEntry> = model.values().filter(|(o, _)| *o == s).map(|(_, e)| e.clone()).collect();
            fresh.sync("src", service, entries, now).unwrap();
        }
        prop_assert_eq!(state(&mut reg, now), state(&mut fresh, now));
        // And listing the final state again changes nothing.
        for (s, service) in SERVICES.iter().enumerate() {
            let entries: Vec<SourceEntry> = model.values().filter(|(o, _)| *o == s).map(|(_, e)| e.clone()).collect();
            let before = reg.last_index();
            let report = reg.sync("src", service, entries.clone(), now + 1).unwrap();
            prop_assert_eq!(report.unchanged as usize, entries.len());
            prop_assert_eq!(reg.last_index(), before);
        }
    }

    #[test]
    fn protected_removals_keep_the_registry_consistent(ops in prop::collection::vec(op(), 1..40), threshold in 0.0f64..1.0, trust in any::<bool>()) {
        let config = Config {
            self_preservation_threshold: threshold,
            self_preservation_min_instances: 2,
            trust_empty_sync: trust,
            ttl_ms: 25,
            evict_after_ms: 30,
            ..Config::default()
        };
        let mut reg = Registry::new(config).unwrap();
        let mut now = 0;
        for (i, op) in ops.into_iter().enumerate() {
            now += 10;
            if i % 3 == 0 {
                let _ = reg.register(InstanceSpec::new(format!("l{}", i % 5), "api", "h", 1), now);
            }
            match op {
                Op::Sync(s, entries) => {
                    let entries = entries.into_iter().map(|x| entry(SERVICES[s], x)).collect();
                    reg.sync("src", SERVICES[s], entries, now).unwrap();
                }
                Op::Put(s, x) => {
                    let _ = reg.source_put("src", entry(SERVICES[s], x), now);
                }
                Op::Delete(id) => {
                    reg.source_delete("src", &format!("i{}", id % 12), now).unwrap();
                }
                Op::Drain(id) => {
                    let _ = reg.drain(&format!("i{}", id % 12), id % 2 == 0, now);
                }
                Op::Fail(id) => {
                    let _ = reg.heartbeat(&format!("l{}", id % 5), now);
                }
            }
            reg.check_invariants().map_err(TestCaseError::fail)?;
            let snap = reg.snapshot();
            let back = Registry::restore(&snap).map_err(|e| TestCaseError::fail(e.message()))?;
            back.check_invariants().map_err(TestCaseError::fail)?;
            prop_assert_eq!(back.snapshot(), snap);
        }
    }
}

/// A base64 string, or something that is almost one.
fn b64ish() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9+/]{0,40}={0,2}",
        ".{0,12}",
        Just("L3dheXBvc3Qvc2VydmljZXMvYXBpL2E=".to_owned()),
        Just("e30=".to_owned()),
        Just("eyJBZGRyIjoiaDo4MCJ9".to_owned()),
        Just("eyJPcCI6MSwiQWRkciI6Img6ODAifQ==".to_owned()),
        Just("eyJpZCI6ImEiLCJzZXJ2aWNlIjoiYXBpIiwiYWRkcmVzcyI6ImgiLCJwb3J0Ijo4MH0=".to_owned()),
    ]
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        b64ish().prop_map(|s| format!("{s:?}")),
        "-?[0-9]{1,22}".prop_map(|s| s),
        Just("\"7\"".to_owned()),
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
    ]
}

fn kv() -> impl Strategy<Value = String> {
    (scalar(), scalar(), scalar(), any::<bool>()).prop_map(|(k, v, r, typed)| {
        let t = if typed { r#""type":"DELETE","# } else { "" };
        format!(r#"{{{t}"kv":{{"key":{k},"value":{v},"mod_revision":{r}}}}}"#)
    })
}

fn payload() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(kv(), 0..4),
        scalar(),
        0..6u8,
        scalar(),
    )
        .prop_map(|(events, rev, shape, extra)| {
            let events = events.join(",");
            let kvs = events
                .replace(r#"{"kv":"#, "")
                .replace(r#"{"type":"DELETE","kv":"#, "");
            match shape {
                0 => format!(r#"{{"header":{{"revision":{rev}}},"kvs":[{kvs}]}}"#),
                1 => {
                    format!(r#"{{"result":{{"header":{{"revision":{rev}}},"events":[{events}]}}}}"#)
                }
                2 => format!(r#"{{"result":{{"canceled":{extra},"compact_revision":{rev}}}}}"#),
                3 => format!(r#"{{"error":{extra}}}"#),
                4 => format!(r#"{{"header":{extra},"kvs":{rev}}}"#),
                _ => format!(r#"{{"result":{extra}}}"#),
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3_000, .. ProptestConfig::default() })]

    #[test]
    fn no_etcd_payload_panics(payloads in prop::collection::vec((payload(), prop_oneof![Just(200u16), any::<u16>()]), 1..6), text in ".{0,80}") {
        let mut reg = Registry::new(Config { self_preservation_threshold: 0.5, ..Config::default() }).unwrap();
        reg.register(InstanceSpec::new("a", "api", "h", 1), 0).unwrap();
        reg.source_add("etcd", r#"{"kind":"etcd","prefix":"/waypost/services"}"#).unwrap();
        for (i, (body, status)) in payloads.iter().enumerate() {
            let before = reg.snapshot();
            match reg.source_feed("etcd", body, i as u64, *status, None) {
                Ok(report) => {
                    let _ = report.to_json();
                }
                Err(_) => prop_assert_eq!(reg.snapshot(), before, "a failed feed changed the registry"),
            }
            reg.check_invariants().map_err(TestCaseError::fail)?;
            let _ = reg.source_request("etcd").unwrap().to_json();
        }
        let _ = reg.source_feed("etcd", &text, 99, 200, Some(&text));
        let _ = reg.sync_json("etcd", "api", &text, 99);
        let _ = reg.source_put_json("etcd", &text, 99);
        let _ = reg.source_add(&text, &text);
        let _ = SourceEntry::from_json(&text);
        reg.check_invariants().map_err(TestCaseError::fail)?;
        let snap = reg.snapshot();
        let back = Registry::restore(&snap).map_err(|e| TestCaseError::fail(e.message()))?;
        prop_assert_eq!(back.snapshot(), snap);
    }
}

fn sourced_snapshot() -> String {
    let mut reg = Registry::new(Config {
        self_preservation_threshold: 0.9,
        ..Config::default()
    })
    .unwrap();
    reg.register(InstanceSpec::new("local", "api", "h", 1), 0)
        .unwrap();
    let entries: Vec<SourceEntry> = (0..6u8).map(|i| entry("api", (i, i, i))).collect();
    reg.sync("etcd", "api", entries.clone(), 1).unwrap();
    reg.sync("etcd", "api", entries[..2].to_vec(), 2).unwrap();
    reg.sync("consul", "web", vec![entry("web", (40, 1, 1))], 3)
        .unwrap();
    reg.sync("consul", "web", vec![], 4).unwrap();
    reg.source_add("etcd", r#"{"kind":"etcd"}"#).unwrap();
    reg.source_add("c", r#"{"kind":"consul","service":"web"}"#)
        .unwrap();
    reg.snapshot()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, .. ProptestConfig::default() })]

    #[test]
    fn mutated_sourced_snapshots_restore_consistently_or_fail_cleanly(pos in any::<prop::sample::Index>(), replacement in "[0-9a-z\"{}\\[\\],:._-]{0,3}") {
        let text = sourced_snapshot();
        let mut at = pos.index(text.len());
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let mutated = format!("{}{}{}", &text[..at], replacement, &text[(at + 1).min(text.len())..]);
        if let Ok(mut reg) = Registry::restore(&mutated) {
            reg.check_invariants().map_err(TestCaseError::fail)?;
            for name in ["etcd", "c"] {
                let _ = reg.source_request(name);
                let _ = reg.source_feed(name, "[]", 10, 200, None);
            }
            let _ = reg.sync("etcd", "api", vec![], 11);
            let _ = reg.register(InstanceSpec::new("new", "api", "h", 1), 12);
            reg.check_invariants().map_err(TestCaseError::fail)?;
            let again = reg.snapshot();
            prop_assert!(Registry::restore(&again).is_ok());
        }
    }
}

#[test]
fn a_snapshot_with_held_removals_outside_self_preservation_is_refused() {
    let text = sourced_snapshot();
    assert!(text.contains(r#""self_preservation":true"#));
    let bad = text.replace(
        r#""self_preservation":true"#,
        r#""self_preservation":false"#,
    );
    let e = Registry::restore(&bad).unwrap_err();
    assert_eq!(e.code(), waypost::ErrorCode::InvalidSnapshot);
}

/// A source fleet of `n` instances `i0`… synced at 0 under `threshold`.
fn source_fleet(n: usize, threshold: f64) -> Registry {
    let mut reg = Registry::new(Config {
        self_preservation_threshold: threshold,
        self_preservation_min_instances: 3,
        // Removing every instance in one call is then a removal like any other.
        trust_empty_sync: true,
        ..Config::default()
    })
    .unwrap();
    let entries = (0..n).map(|i| entry("api", (i as u8, 0, 0))).collect();
    reg.sync("src", "api", entries, 0).unwrap();
    reg
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    /// Removals arriving one call at a time within the window (etcd's one
    /// delete per watch message) hold exactly as many as one call removing
    /// them all; no hold is released by the call that made it; and once
    /// the window has passed both registries keep the same fleet.
    #[test]
    fn separate_removals_are_judged_as_one_call(
        (n, order, k) in (3usize..=12).prop_flat_map(|n| (Just(n), Just((0..n).collect::<Vec<usize>>()).prop_shuffle(), 0..=n)),
        threshold in 0.05f64..0.95,
        gaps in prop::collection::vec(0u64..5_000, 12),
    ) {
        let gone: Vec<usize> = order[..k].to_vec();
        let mut one_by_one = source_fleet(n, threshold);
        let mut now = 1;
        let (mut removed, mut held) = (0, 0);
        for (&i, gap) in gone.iter().zip(&gaps) {
            now += gap;
            let id = format!("i{i}");
            let report = one_by_one.source_delete("src", &id, now).unwrap();
            prop_assert_eq!(report.removed + report.held, 1);
            if report.held == 1 {
                // The call's own release check keeps it.
                prop_assert!(one_by_one.get(&id, now).is_ok());
            }
            removed += report.removed;
            held += report.held;
            one_by_one.check_invariants().map_err(TestCaseError::fail)?;
            let snap = one_by_one.snapshot();
            let back = Registry::restore(&snap).map_err(|e| TestCaseError::fail(e.message()))?;
            prop_assert_eq!(back.snapshot(), snap);
        }
        let mut at_once = source_fleet(n, threshold);
        let kept = (0..n).filter(|i| !gone.contains(i)).map(|i| entry("api", (i as u8, 0, 0))).collect();
        let report = at_once.sync("src", "api", kept, 1).unwrap();
        prop_assert_eq!((removed, held), (report.removed, report.held));
        prop_assert_eq!(one_by_one.in_self_preservation(), held > 0);
        // Past every window: the same baseline, the same verdict.
        let later = now + 60_001;
        one_by_one.tick(later);
        at_once.tick(later);
        prop_assert_eq!(one_by_one.len(), at_once.len());
        prop_assert_eq!(one_by_one.in_self_preservation(), at_once.in_self_preservation());
        one_by_one.check_invariants().map_err(TestCaseError::fail)?;
    }
}

#[test]
fn a_snapshot_with_removals_outside_the_window_is_refused() {
    let mut reg = source_fleet(10, 0.5);
    for i in 0..6u64 {
        reg.source_delete("src", &format!("i{i}"), 1 + i).unwrap();
    }
    let text = reg.snapshot();
    let written = r#""recent_removals":[[1,1],[2,1],[3,1],[4,1],[5,1]]"#;
    assert!(text.contains(written), "{text}");
    let back = Registry::restore(&text).unwrap();
    assert_eq!(back.snapshot(), text);
    for bad in [
        r#""recent_removals":[[2,1],[1,1],[3,1],[4,1],[5,1]]"#,
        r#""recent_removals":[[1,0],[2,1],[3,1],[4,1],[5,1]]"#,
        r#""recent_removals":[[1,1],[2,1],[3,1],[4,1],[7,1]]"#,
        r#""recent_removals":[[1,1],[2,1],[3,1],[4,1],[5,-1]]"#,
        r#""recent_removals":{}"#,
    ] {
        let e = Registry::restore(&text.replace(written, bad)).unwrap_err();
        assert_eq!(e.code(), waypost::ErrorCode::InvalidSnapshot, "{bad}");
    }
    // Out of the window at the clock: a registry would have let it go.
    let short = text.replace(
        r#""self_preservation_min_instances":3,"#,
        r#""self_preservation_min_instances":3,"self_preservation_window_ms":4,"#,
    );
    assert_ne!(short, text);
    let e = Registry::restore(&short).unwrap_err();
    assert_eq!(e.code(), waypost::ErrorCode::InvalidSnapshot);
}
