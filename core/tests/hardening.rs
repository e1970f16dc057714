//! Defects found by trying the registry from outside, as a user and as an
//! attacker would; each test names what used to happen.

use serde_json::{json, Value};

#[path = "support/base64.rs"]
mod support;
use waypost::{Config, ErrorCode, InstanceSpec, PickOptions, Registry, Strategy, MAX_EVENT_INDEX};

fn registry(config: Config) -> Registry {
    let mut reg = Registry::new(config).unwrap();
    for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
        reg.register(InstanceSpec::new(*id, "api", "10.0.0.1", 80 + i as u16), 0)
            .unwrap();
    }
    reg
}

fn doc(reg: &Registry) -> Value {
    serde_json::from_str(&reg.snapshot()).unwrap()
}

/// `restore` fails with `invalid_snapshot` and the message names `field`.
fn refused(doc: &Value, field: &str) {
    match Registry::restore(&doc.to_string()) {
        Ok(_) => panic!("restored a document that is wrong at `{field}`"),
        Err(e) => {
            assert_eq!(e.code(), ErrorCode::InvalidSnapshot, "{e}");
            assert!(
                e.message().contains(field),
                "`{}` does not name {field}",
                e.message()
            );
        }
    }
}

// ----- events_since at the top of the index range -------------------------

/// It used to answer `compacted` (`after + 1` wrapped), and panic in a
/// debug build.
#[test]
fn events_since_the_largest_index_is_empty() {
    let reg = registry(Config::default());
    for after in [
        reg.last_index(),
        reg.last_index() + 1,
        u64::MAX - 1,
        u64::MAX,
    ] {
        assert_eq!(reg.events_since(after).unwrap(), vec![], "after {after}");
    }
    assert_eq!(reg.events_since(0).unwrap().len(), 4);
    let empty = Registry::new(Config::default()).unwrap();
    assert_eq!(empty.events_since(u64::MAX).unwrap(), vec![]);
}

// ----- the empty string ----------------------------------------------------

/// Go and C++ spelled "no key" as "", Python and JavaScript passed "" on as
/// a real key: one rule now, in the core.
#[test]
fn an_empty_key_or_zone_is_none() {
    let mut reg = registry(Config::default());
    let empty_key = PickOptions {
        key: Some(String::new()),
        ..PickOptions::default()
    };
    let e = reg
        .pick("api", Strategy::ConsistentHash, &empty_key, 1)
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    // Elsewhere an empty key is ignored, as an absent one is.
    let a = reg
        .pick("api", Strategy::FirstAvailable, &empty_key, 1)
        .unwrap();
    assert_eq!(reg.instance(a.handle).unwrap().id(), "a");

    let mut spec = InstanceSpec::new("z", "api", "10.0.0.9", 80);
    spec.zone = Some(String::new());
    reg.register(spec, 1).unwrap();
    let z = reg.handle_of("z").unwrap();
    assert_eq!(reg.instance(z).unwrap().zone(), None);
    assert!(!reg.get("z", 1).unwrap().to_json().contains("zone"));

    // A worker-local picker follows the same rule.
    let mut picker = reg.picker("api").unwrap();
    let e = picker.pick(Strategy::ConsistentHash, Some("")).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);

    // An empty zone prefers nothing: the same sequence as no zone at all.
    let empty_zone = PickOptions {
        zone: Some(String::new()),
        ..PickOptions::default()
    };
    let mut twin = reg.clone();
    for _ in 0..6 {
        let x = reg
            .pick("api", Strategy::RoundRobin, &empty_zone, 2)
            .unwrap();
        let y = twin
            .pick("api", Strategy::RoundRobin, &PickOptions::default(), 2)
            .unwrap();
        assert_eq!(x, y);
    }
}

// ----- snapshots that contradict themselves -------------------------------

/// It restored, and the next events were numbered 0, 1, …
#[test]
fn a_last_index_at_the_top_of_the_range_is_refused() {
    let reg = registry(Config::default());
    for last in [u64::MAX, MAX_EVENT_INDEX + 1] {
        let mut d = doc(&reg);
        d["last_index"] = json!(last);
        refused(&d, "last_index");
    }
}

/// It restored, and a watcher silently missed the dropped event instead of
/// getting `compacted`.
#[test]
fn an_event_dropped_from_the_log_is_refused() {
    let reg = registry(Config::default());
    let mut d = doc(&reg);
    d["events"].as_array_mut().unwrap().remove(1);
    refused(&d, "events");
    let mut d = doc(&reg);
    d["events"].as_array_mut().unwrap().pop();
    refused(&d, "events");
    // A last_index above the newest event: the next index left a gap.
    let mut d = doc(&reg);
    d["last_index"] = json!(40);
    refused(&d, "events");
}

#[test]
fn event_times_after_the_clock_are_refused() {
    let mut reg = registry(Config::default());
    reg.tick(50);
    let mut d = doc(&reg);
    d["events"][3]["at"] = json!(51);
    refused(&d, "events");
    let mut d = doc(&reg);
    d["events"][1]["at"] = json!(20);
    refused(&d, "events");
}

/// Time ran backwards for an instance registered after the clock.
#[test]
fn a_clock_rolled_back_below_an_instance_is_refused() {
    let mut reg = registry(Config::default());
    reg.register(InstanceSpec::new("late", "api", "h", 1), 500)
        .unwrap();
    let mut d = doc(&reg);
    d["clock"] = json!(400);
    for e in d["events"].as_array_mut().unwrap() {
        e["at"] = json!(0);
    }
    refused(&d, "instances: state");
}

// ----- derived fields ------------------------------------------------------

/// It restored, and picks then returned unhealthy instances.
#[test]
fn a_panic_flag_that_does_not_follow_from_health_is_refused() {
    let config = Config {
        panic_threshold: 0.5,
        ttl_ms: 1_000,
        evict_after_ms: 0,
        ..Config::default()
    };
    let mut reg = registry(config);
    reg.heartbeat("a", 900).unwrap();
    reg.heartbeat("b", 900).unwrap();
    reg.tick(1_500); // c and d expire: 2 of 4 healthy, not below 0.5
    let mut d = doc(&reg);
    assert_eq!(d["services"][0]["panic"], json!(false));
    d["services"][0]["panic"] = json!(true);
    refused(&d, "services: panic");

    let mut reg = registry(Config {
        panic_threshold: 0.5,
        ..Config::default()
    });
    reg.drain("a", true, 1).unwrap();
    let mut d = doc(&reg);
    assert_eq!(d["services"][0]["panic"], json!(false));
    Registry::restore(&d.to_string()).unwrap();
    d["services"][0]["panic"] = json!(true);
    refused(&d, "services: panic");
}

#[test]
fn self_preservation_that_does_not_follow_from_the_leases_is_refused() {
    let reg = registry(Config::default());
    let mut d = doc(&reg);
    d["self_preservation"] = json!(true);
    refused(&d, "self_preservation");
    let mut d = doc(&reg);
    d["lease_blocked"] = json!(true);
    d["self_preservation"] = json!(true);
    refused(&d, "self_preservation");
}

/// A lease past its deadline that the registry would have expired.
#[test]
fn a_due_expiry_left_unapplied_is_refused() {
    let reg = registry(Config {
        ttl_ms: 1_000,
        ..Config::default()
    });
    let mut d = doc(&reg);
    d["clock"] = json!(5_000);
    refused(&d, "self_preservation");
}

#[test]
fn a_candidate_from_another_service_is_refused() {
    let mut reg = registry(Config::default());
    reg.register(InstanceSpec::new("w", "web", "h", 1), 1)
        .unwrap();
    reg.pick(
        "api",
        Strategy::WeightedRoundRobin,
        &PickOptions::default(),
        1,
    )
    .unwrap();
    let mut d = doc(&reg);
    d["services"][0]["candidates"][0][0] = json!("w");
    refused(&d, "candidates");
    let mut d = doc(&reg);
    d["services"][0]["candidates"][0][0] = json!("b");
    refused(&d, "candidates");
}

/// A registry whose derived state holds restores: the checks refuse only
/// what no registry writes.
#[test]
fn a_registry_in_self_preservation_restores() {
    let config = Config {
        ttl_ms: 1_000,
        self_preservation_threshold: 0.8,
        ..Config::default()
    };
    let mut reg = registry(config);
    reg.tick(5_000);
    assert!(reg.in_self_preservation());
    let restored = Registry::restore(&reg.snapshot()).unwrap();
    assert!(restored.in_self_preservation());
    assert_eq!(restored.snapshot(), reg.snapshot());
    restored.check_invariants().unwrap();
}

// ----- what a failed call changes (README) --------------------------------

/// A registry with something falling due at 1 001 (b's lease) and a
/// service with no eligible instance.
fn busy() -> Registry {
    let mut reg = Registry::new(Config {
        ttl_ms: 1_000,
        evict_after_ms: 500,
        seed: 4,
        ..Config::default()
    })
    .unwrap();
    for (id, service, at) in [("a", "api", 900), ("b", "api", 0), ("d", "down", 0)] {
        reg.register(InstanceSpec::new(id, service, "h", 1), at)
            .unwrap();
    }
    reg.drain("d", true, 0).unwrap();
    reg
}

/// The document with the two failure counters taken out, and their values.
fn without_failure_counters(snapshot: &str) -> (Value, u64, u64) {
    let mut d: Value = serde_json::from_str(snapshot).unwrap();
    let unknown = d["metrics"]["unknown_service_picks"]
        .take()
        .as_u64()
        .unwrap();
    let mut failures = 0;
    for s in d["services"].as_array_mut().unwrap() {
        failures += s["metrics"]["pick_failures"].take().as_u64().unwrap();
    }
    (d, unknown, failures)
}

#[test]
fn a_failed_call_changes_only_the_clock_and_the_failure_counters() {
    type Call = fn(&mut Registry, u64) -> waypost::Result<()>;
    // (call, advances the clock, unknown_service_picks, pick_failures)
    let calls: Vec<(&str, Call, bool, u64, u64)> = vec![
        (
            "register malformed",
            |r, t| {
                r.register(InstanceSpec::new("x", "api", "", 1), t)
                    .map(drop)
            },
            false,
            0,
            0,
        ),
        (
            "register conflict",
            |r, t| {
                r.register(InstanceSpec::new("a", "web", "h", 1), t)
                    .map(drop)
            },
            true,
            0,
            0,
        ),
        (
            "deregister unknown",
            |r, t| r.deregister("zz", t),
            true,
            0,
            0,
        ),
        (
            "deregister malformed",
            |r, t| r.deregister("", t),
            false,
            0,
            0,
        ),
        ("heartbeat unknown", |r, t| r.heartbeat("zz", t), true, 0, 0),
        ("heartbeat malformed", |r, t| r.heartbeat("", t), true, 0, 0),
        ("drain unknown", |r, t| r.drain("zz", true, t), true, 0, 0),
        (
            "check malformed",
            |r, t| r.report_check("\u{1}", waypost::CheckStatus::Fail, t),
            false,
            0,
            0,
        ),
        (
            "outcome unknown",
            |r, t| r.report_outcome("zz", false, t),
            true,
            0,
            0,
        ),
        ("begin unknown", |r, t| r.begin("zz", t), true, 0, 0),
        ("get unknown", |r, t| r.get("zz", t).map(drop), true, 0, 0),
        (
            "pick unknown service",
            |r, t| {
                r.pick("nope", Strategy::Random, &PickOptions::default(), t)
                    .map(drop)
            },
            true,
            1,
            0,
        ),
        (
            "pick no eligible",
            |r, t| {
                r.pick("down", Strategy::Random, &PickOptions::default(), t)
                    .map(drop)
            },
            true,
            0,
            1,
        ),
        (
            "pick without key",
            |r, t| {
                r.pick("api", Strategy::ConsistentHash, &PickOptions::default(), t)
                    .map(drop)
            },
            false,
            0,
            0,
        ),
        (
            "pick malformed name",
            |r, t| {
                r.pick("", Strategy::Random, &PickOptions::default(), t)
                    .map(drop)
            },
            false,
            0,
            0,
        ),
        (
            "discover unknown",
            |r, t| {
                r.discover("nope", &waypost::DiscoverOptions::default(), t)
                    .map(drop)
            },
            true,
            0,
            0,
        ),
    ];
    for now in [500, 1_001, 1_450] {
        for (name, call, advances, unknown, failures) in &calls {
            let mut failed = busy();
            assert!(call(&mut failed, now).is_err(), "{name} at {now} succeeded");
            let mut expected = busy();
            if *advances {
                expected.tick(now);
            }
            let (got, got_unknown, got_failures) = without_failure_counters(&failed.snapshot());
            let (want, want_unknown, want_failures) =
                without_failure_counters(&expected.snapshot());
            assert_eq!(got, want, "{name} at {now}");
            assert_eq!(
                (got_unknown - want_unknown, got_failures - want_failures),
                (*unknown, *failures),
                "{name} at {now}"
            );
            failed.check_invariants().unwrap();
        }
    }
}

/// Found by the Python adversarial test: a lease renewed at u64::MAX had a
/// due time equal to the "no timer" mark, so no timer was filed and the
/// invariant check failed. Such a lease never expires (no instant follows).
#[test]
fn a_lease_renewed_at_the_end_of_time_never_expires() {
    let mut reg = registry(Config::default());
    reg.register(InstanceSpec::new("x", "api", "h", 1), u64::MAX)
        .unwrap();
    reg.check_invariants().unwrap();
    reg.heartbeat("x", u64::MAX).unwrap();
    reg.check_invariants().unwrap();
    assert_eq!(
        reg.get("x", u64::MAX).unwrap().status.health,
        waypost::Health::Healthy
    );
    let restored = Registry::restore(&reg.snapshot()).unwrap();
    restored.check_invariants().unwrap();
}

/// Found by the Python leaf-mutation test: a restored membership_epoch of
/// 2^64 − 1 overflowed at the next registration (a panic in a debug build).
#[test]
fn counters_at_the_top_of_the_range_are_refused() {
    let reg = registry(Config::default());
    let mut d = doc(&reg);
    d["membership_epoch"] = json!(u64::MAX);
    refused(&d, "counters");
    let mut d = doc(&reg);
    d["services"][0]["metrics"]["registrations"] = json!(u64::MAX);
    refused(&d, "counters");
    let mut d = doc(&reg);
    d["services"][0]["metrics"]["picks"][3] = json!(MAX_EVENT_INDEX + 1);
    refused(&d, "counters");
    let mut d = doc(&reg);
    d["metrics"]["unknown_service_picks"] = json!(u64::MAX);
    refused(&d, "counters");
}

/// A metadata object of `n` members, keys in descending order (the order
/// that made each sorted insert shift every entry before it).
fn many_meta(n: usize) -> serde_json::Map<String, Value> {
    (0..n)
        .map(|i| (format!("k{:06}", n - i), Value::from("v")))
        .collect()
}

/// Every reader refused an object of more metadata than an instance may
/// carry only after inserting all of it, each insert keeping the entries
/// sorted: 60 000 keys took seconds. Each reader now counts first.
#[test]
fn readers_refuse_too_much_metadata_before_reading_it() {
    let too_many = waypost::MAX_META + 1;
    let instance = json!({"id": "a", "service": "api", "address": "h", "port": 1,
                          "meta": many_meta(too_many)});
    let e = InstanceSpec::from_json(&instance.to_string()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}");
    assert!(e.message().contains("`meta`"), "{e}");
    let mut ok = instance.clone();
    ok["meta"] = Value::Object(many_meta(waypost::MAX_META));
    assert_eq!(
        InstanceSpec::from_json(&ok.to_string()).unwrap().meta.len(),
        waypost::MAX_META
    );

    // A filter can require no more pairs than an instance carries.
    let filter = json!({"meta": many_meta(too_many)}).to_string();
    let e = waypost::Filter::from_json(&filter).unwrap_err();
    assert!(e.message().contains("`meta`"), "{e}");
    let mut reg = registry(Config::default());
    let options = PickOptions {
        filter: waypost::Filter {
            meta: many_meta(too_many)
                .into_iter()
                .map(|(k, _)| (k, "v".into()))
                .collect(),
            ..Default::default()
        },
        ..Default::default()
    };
    let e = reg
        .pick("api", Strategy::RoundRobin, &options, 0)
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}");
    assert!(e.message().contains("`meta`"), "{e}");

    // An etcd record with too much metadata is rejected, the rest applied.
    let value = |id: &str, meta| {
        json!({"id": id, "service": "api", "address": "h", "port": 1, "meta": meta}).to_string()
    };
    let kv = |id: &str, meta| {
        json!({"key": support::base64(format!("/waypost/services/api/{id}").as_bytes(), false, true),
               "value": support::base64(value(id, meta).as_bytes(), false, true),
               "mod_revision": "5"})
    };
    let range = json!({"header": {"revision": "5"}, "count": "2",
                       "kvs": [kv("big", many_meta(too_many)), kv("ok", many_meta(2))]});
    let mut reg = Registry::new(Config::default()).unwrap();
    reg.source_add("etcd", r#"{"kind":"etcd"}"#).unwrap();
    let report = reg
        .source_feed("etcd", &range.to_string(), 0, 200, None)
        .unwrap();
    assert_eq!(report.added, 1);
    assert_eq!(report.rejected.len(), 1, "{report:?}");
    assert!(report.rejected[0].message.contains("meta"), "{report:?}");
    waypost::etcd_readers_agree("/waypost/services", 0, false, &range.to_string()).unwrap();
}
