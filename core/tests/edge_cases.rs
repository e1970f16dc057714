//! Boundaries that the shared scenario format cannot express: timer
//! deadlines, the metrics text, event-log compaction, handle generations,
//! snapshot validation and typed parse errors.

use serde_json::{json, Value};
use waypost::{
    CheckStatus, Config, DiscoverOptions, Error, ErrorCode, Filter, Handle, InstanceSpec,
    PickOptions, Registry, Strategy,
};

fn registry(config: Config) -> Registry {
    Registry::new(config).unwrap()
}

fn add(reg: &mut Registry, id: &str, service: &str, now: u64) -> Handle {
    reg.register(InstanceSpec::new(id, service, "10.0.0.1", 80), now)
        .unwrap()
}

fn pick_id(reg: &mut Registry, service: &str, now: u64) -> String {
    let pick = reg
        .pick(service, Strategy::RoundRobin, &PickOptions::default(), now)
        .unwrap();
    reg.instance(pick.handle).unwrap().id().to_owned()
}

// ----- next_deadline ---------------------------------------------------------

#[test]
fn next_deadline_follows_leases_evictions_and_renewals() {
    let mut reg = registry(Config {
        ttl_ms: 1000,
        evict_after_ms: 2000,
        ..Config::default()
    });
    assert_eq!(reg.next_deadline(), None);
    add(&mut reg, "a", "api", 0);
    // Expired at any instant after the deadline: the first is deadline + 1.
    assert_eq!(reg.next_deadline(), Some(1001));
    reg.heartbeat("a", 500).unwrap();
    assert_eq!(reg.next_deadline(), Some(1501));
    let b = InstanceSpec {
        ttl_ms: Some(700),
        ..InstanceSpec::new("b", "api", "10.0.0.2", 80)
    };
    reg.register(b, 500).unwrap();
    assert_eq!(reg.next_deadline(), Some(1201));
    // Nothing is due before it: a tick there changes nothing.
    assert!(reg.tick(1200).is_empty());
    assert_eq!(reg.tick(1201).len(), 1);
    // Once expired, the next deadline of b is its eviction.
    assert_eq!(reg.next_deadline(), Some(1501));
    reg.tick(1501);
    assert_eq!(reg.next_deadline(), Some(1200 + 2000 + 1));
    reg.deregister("b", 1600).unwrap();
    assert_eq!(reg.next_deadline(), Some(1500 + 2000 + 1));
    reg.deregister("a", 1600).unwrap();
    assert_eq!(reg.next_deadline(), None);
}

#[test]
fn next_deadline_is_none_for_expired_leases_that_are_never_evicted() {
    let mut reg = registry(Config {
        ttl_ms: 1000,
        evict_after_ms: 0,
        ..Config::default()
    });
    add(&mut reg, "a", "api", 0);
    assert_eq!(reg.next_deadline(), Some(1001));
    reg.tick(1001);
    assert_eq!(reg.next_deadline(), None);
    reg.heartbeat("a", 5000).unwrap();
    assert_eq!(reg.next_deadline(), Some(6001));
}

#[test]
fn next_deadline_includes_ejection_ends() {
    let mut reg = registry(Config {
        ttl_ms: 100_000,
        consecutive_failures: 1,
        base_ejection_ms: 700,
        max_ejection_percent: 100,
        ..Config::default()
    });
    add(&mut reg, "a", "api", 0);
    reg.report_outcome("a", false, 100).unwrap();
    assert_eq!(reg.next_deadline(), Some(800));
    let events = reg.tick(800);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].at, 800);
    assert_eq!(reg.next_deadline(), Some(100_001));
}

#[test]
fn next_deadline_ignores_expiries_held_back_by_self_preservation() {
    let mut reg = registry(Config {
        ttl_ms: 1000,
        evict_after_ms: 0,
        self_preservation_threshold: 0.5,
        ..Config::default()
    });
    for id in ["a", "b", "c", "d"] {
        add(&mut reg, id, "api", 0);
    }
    reg.tick(1001);
    assert!(reg.in_self_preservation());
    // a and b expired (never evicted), c and d are held: nothing to wait for.
    assert_eq!(reg.next_deadline(), None);
    assert!(reg.tick(100_000).is_empty());
    assert_eq!(
        reg.get("c", 100_000).unwrap().status.health.as_str(),
        "healthy"
    );
}

// ----- metrics ---------------------------------------------------------------

#[test]
fn metrics_text_for_a_small_registry() {
    let mut reg = registry(Config {
        consecutive_failures: 1,
        max_ejection_percent: 100,
        ..Config::default()
    });
    add(&mut reg, "a", "api", 0);
    add(&mut reg, "b", "api", 0);
    add(&mut reg, "w", "web", 0);
    // An update counts as a registration.
    add(&mut reg, "w", "web", 1);
    reg.heartbeat("a", 2).unwrap();
    reg.heartbeat("a", 3).unwrap();
    reg.drain("b", true, 4).unwrap();
    pick_id(&mut reg, "api", 5);
    pick_id(&mut reg, "api", 5);
    reg.pick("api", Strategy::Random, &PickOptions::default(), 5)
        .unwrap();
    reg.pick("nope", Strategy::Random, &PickOptions::default(), 5)
        .unwrap_err();
    reg.drain("w", true, 6).unwrap();
    reg.pick("web", Strategy::RoundRobin, &PickOptions::default(), 6)
        .unwrap_err();
    reg.report_outcome("a", false, 7).unwrap();
    reg.deregister("b", 8).unwrap();

    let text = reg.render_metrics();
    let lines: Vec<&str> = text.lines().collect();
    for want in [
        "# HELP waypost_instances Registered instances by service and health.",
        "# TYPE waypost_instances gauge",
        "waypost_instances{service=\"api\",health=\"healthy\"} 0",
        "waypost_instances{service=\"api\",health=\"ejected\"} 1",
        "waypost_instances{service=\"api\",health=\"draining\"} 0",
        "waypost_instances{service=\"web\",health=\"draining\"} 1",
        "waypost_service_panic{service=\"api\"} 0",
        "# TYPE waypost_picks_total counter",
        "waypost_picks_total{service=\"api\",strategy=\"round_robin\"} 2",
        "waypost_picks_total{service=\"api\",strategy=\"random\"} 1",
        "waypost_picks_total{service=\"api\",strategy=\"weighted_round_robin\"} 0",
        "waypost_pick_failures_total{service=\"web\",code=\"no_eligible_instance\"} 1",
        "waypost_pick_failures_total{service=\"api\",code=\"no_eligible_instance\"} 0",
        "waypost_pick_failures_total{service=\"\",code=\"unknown_service\"} 1",
        "waypost_registrations_total{service=\"api\"} 2",
        "waypost_registrations_total{service=\"web\"} 2",
        "waypost_deregistrations_total{service=\"api\"} 1",
        "waypost_heartbeats_total{service=\"api\"} 2",
        "waypost_expiries_total{service=\"api\"} 0",
        "waypost_evictions_total{service=\"api\"} 0",
        "waypost_ejections_total{service=\"api\"} 1",
        "waypost_registry_instances 2",
        "waypost_registry_services 2",
        "waypost_self_preservation 0",
    ] {
        assert!(lines.contains(&want), "missing line `{want}` in\n{text}");
    }
    // Five health values per service, one line each.
    let instance_lines = lines
        .iter()
        .filter(|l| l.starts_with("waypost_instances{service=\"api\""))
        .count();
    assert_eq!(instance_lines, 5);
    // Every line is a comment or `name[{labels}] value`.
    for line in &lines {
        if line.starts_with('#') {
            assert!(
                line.starts_with("# HELP ") || line.starts_with("# TYPE "),
                "{line}"
            );
            continue;
        }
        let (_, value) = line.rsplit_once(' ').unwrap();
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("bad value in `{line}`"));
    }
    assert!(text.ends_with('\n'));
}

#[test]
fn metrics_escape_label_values() {
    let mut reg = registry(Config::default());
    add(&mut reg, "a", "we\"ird\\svc", 0);
    let text = reg.render_metrics();
    assert!(
        text.contains("waypost_instances{service=\"we\\\"ird\\\\svc\",health=\"healthy\"} 1"),
        "{text}"
    );
}

#[test]
fn metrics_follow_expiry_and_eviction() {
    let mut reg = registry(Config {
        ttl_ms: 10,
        evict_after_ms: 10,
        ..Config::default()
    });
    add(&mut reg, "a", "api", 0);
    add(&mut reg, "b", "api", 0);
    // Both expire at 11; b recovers at 15; a is evicted at 21.
    reg.heartbeat("b", 15).unwrap();
    reg.tick(21);
    let text = reg.render_metrics();
    assert!(
        text.contains("waypost_expiries_total{service=\"api\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("waypost_evictions_total{service=\"api\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("waypost_instances{service=\"api\",health=\"healthy\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("waypost_registry_instances 1\n"), "{text}");
}

// ----- events_since ----------------------------------------------------------

#[test]
fn events_since_compaction_boundaries() {
    let mut reg = registry(Config {
        event_retention: 3,
        ..Config::default()
    });
    assert_eq!(reg.events_since(0).unwrap(), vec![]);
    for (i, id) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        add(&mut reg, id, "api", i as u64);
    }
    assert_eq!(reg.last_index(), 5);
    // Retained: 3, 4, 5. Asking after 2 needs nothing dropped.
    let kept: Vec<u64> = reg
        .events_since(2)
        .unwrap()
        .iter()
        .map(|e| e.index)
        .collect();
    assert_eq!(kept, vec![3, 4, 5]);
    for after in [0, 1] {
        let err = reg.events_since(after).unwrap_err();
        assert_eq!(err.code(), ErrorCode::Compacted);
        assert_eq!(
            err,
            Error::Compacted {
                requested: after,
                oldest: 3
            }
        );
        assert!(err.to_string().contains('3'), "{err}");
    }
    assert_eq!(reg.events_since(4).unwrap().len(), 1);
    assert_eq!(reg.events_since(5).unwrap(), vec![]);
    assert_eq!(reg.events_since(500).unwrap(), vec![]);
    // Compaction is not corruption: the registry carries on.
    add(&mut reg, "f", "api", 9);
    assert_eq!(reg.events_since(5).unwrap().len(), 1);
}

#[test]
fn modify_indexes_follow_the_events() {
    let mut reg = registry(Config::default());
    add(&mut reg, "a", "api", 0);
    add(&mut reg, "b", "api", 0);
    assert_eq!(reg.service_modify_index("api").unwrap(), 2);
    reg.drain("a", true, 1).unwrap();
    assert_eq!(reg.get("a", 1).unwrap().status.modify_index, 3);
    assert_eq!(reg.get("b", 1).unwrap().status.modify_index, 2);
    assert_eq!(reg.service_modify_index("api").unwrap(), 3);
    assert_eq!(
        reg.service_modify_index("web").unwrap_err().code(),
        ErrorCode::UnknownService
    );
}

// ----- handles ---------------------------------------------------------------

#[test]
fn a_reused_slot_gets_a_new_generation() {
    let mut reg = registry(Config::default());
    let a = add(&mut reg, "a", "api", 0);
    let epoch = reg.membership_epoch();
    assert_eq!(reg.handle_of("a"), Some(a));
    assert_eq!(Handle::from_bits(a.to_bits()), a);
    reg.deregister("a", 1).unwrap();
    assert_ne!(reg.membership_epoch(), epoch);
    assert!(reg.instance(a).is_none());
    assert!(reg.view_handle(a).is_none());
    assert_eq!(
        reg.heartbeat_handle(a, 2).unwrap_err().code(),
        ErrorCode::NotFound
    );
    assert_eq!(
        reg.report_outcome_handle(a, true, 2).unwrap_err().code(),
        ErrorCode::NotFound
    );
    assert_eq!(reg.begin_handle(a).unwrap_err().code(), ErrorCode::NotFound);
    assert_eq!(reg.end_handle(a).unwrap_err().code(), ErrorCode::NotFound);

    let b = add(&mut reg, "b", "api", 3);
    assert_eq!(b.index(), a.index(), "the freed slot is reused");
    assert_ne!(b.generation(), a.generation());
    assert_ne!(b, a);
    assert!(
        reg.instance(a).is_none(),
        "the old handle never names the newcomer"
    );
    assert_eq!(reg.instance(b).unwrap().id(), "b");
    assert_eq!(reg.view_handle(b).unwrap().instance.id(), "b");
    reg.heartbeat_handle(b, 4).unwrap();
    reg.begin_handle(b).unwrap();
    assert_eq!(reg.get("b", 4).unwrap().status.inflight, 1);
    reg.end_handle(b).unwrap();
    reg.end_handle(b).unwrap();
    assert_eq!(reg.get("b", 4).unwrap().status.inflight, 0);
    // A handle that never existed.
    let bogus = Handle::from_bits(u64::MAX);
    assert!(reg.instance(bogus).is_none());
    assert_eq!(
        reg.heartbeat_handle(bogus, 5).unwrap_err().code(),
        ErrorCode::NotFound
    );
}

#[test]
fn picks_return_the_handle_of_the_instance() {
    let mut reg = registry(Config::default());
    let a = add(&mut reg, "a", "api", 0);
    let b = add(&mut reg, "b", "api", 0);
    let first = reg
        .pick("api", Strategy::FirstAvailable, &PickOptions::default(), 0)
        .unwrap();
    assert_eq!(first.handle, a);
    let found = reg.discover("api", &DiscoverOptions::default(), 0).unwrap();
    assert_eq!(found.handles().collect::<Vec<_>>(), vec![a, b]);
    let svc = reg.service_ref("api").unwrap();
    let p = reg
        .pick_ref(svc, Strategy::RoundRobin, &PickOptions::default(), 0)
        .unwrap();
    assert_eq!(p.handle, a);
}

// ----- snapshots -------------------------------------------------------------

fn sample_snapshot() -> Value {
    let mut reg = registry(Config {
        seed: 3,
        ..Config::default()
    });
    add(&mut reg, "a", "api", 0);
    add(&mut reg, "b", "api", 0);
    reg.report_check("b", CheckStatus::Warn, 1).unwrap();
    pick_id(&mut reg, "api", 2);
    reg.pick(
        "api",
        Strategy::WeightedRoundRobin,
        &PickOptions::default(),
        2,
    )
    .unwrap();
    serde_json::from_str(&reg.snapshot()).unwrap()
}

fn restore_err(doc: &Value) -> String {
    match Registry::restore(&doc.to_string()) {
        Ok(_) => panic!("restored a malformed snapshot: {doc}"),
        Err(e) => {
            assert_eq!(e.code(), ErrorCode::InvalidSnapshot, "{e}");
            e.to_string()
        }
    }
}

#[test]
fn the_sample_snapshot_restores() {
    let doc = sample_snapshot();
    assert_eq!(doc["format"], "waypost.snapshot/1");
    let reg = Registry::restore(&doc.to_string()).unwrap();
    assert_eq!(reg.len(), 2);
    let again: Value = serde_json::from_str(&reg.snapshot()).unwrap();
    assert_eq!(again, doc);
}

#[test]
fn the_default_registry_is_the_one_of_the_default_configuration() {
    let default = Registry::default();
    let made = Registry::new(Config::default()).unwrap();
    assert_eq!(default.snapshot(), made.snapshot());
    assert_eq!(default.config(), &Config::default());
    assert!(default.is_empty());
}

#[test]
fn rng_words_read_as_hex_in_either_case() {
    let doc = sample_snapshot();
    let words: Vec<String> = (0..4)
        .map(|i| doc["rng"][i].as_str().unwrap().to_owned())
        .collect();
    // Upper case, leading zeros dropped, and a leading `+` read the same.
    let mut respelled = doc.clone();
    let n = u64::from_str_radix(&words[0], 16).unwrap();
    respelled["rng"][0] = json!(format!("{n:X}"));
    respelled["rng"][1] = json!("+1f");
    respelled["rng"][2] = json!(format!("{:x}", u64::from_str_radix(&words[2], 16).unwrap()));
    let reg = Registry::restore(&respelled.to_string()).unwrap();
    let again: Value = serde_json::from_str(&reg.snapshot()).unwrap();
    assert_eq!(again["rng"][0], doc["rng"][0]);
    assert_eq!(again["rng"][1], "000000000000001f");
    assert_eq!(again["rng"][2], doc["rng"][2]);
    assert_eq!(again["rng"][3], doc["rng"][3]);
    for bad in [
        "",
        "+",
        "-1",
        "0x1",
        "g",
        " 1",
        "12345678901234567",
        "+123456789abcdef0",
    ] {
        let mut d = doc.clone();
        d["rng"][0] = json!(bad);
        assert!(restore_err(&d).contains("rng[0]: not a hex u64"), "{bad:?}");
    }
}

/// An edit that breaks a snapshot document.
type Mutation = Box<dyn Fn(&mut Value)>;

#[test]
fn restore_rejects_malformed_documents_naming_the_field() {
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "format",
            Box::new(|d| d["format"] = json!("waypost.snapshot/2")),
        ),
        ("config", Box::new(|d| d["config"]["ttl_ms"] = json!(0))),
        ("ttl_ms", Box::new(|d| d["config"]["ttl_ms"] = json!(0))),
        ("rng[2]", Box::new(|d| d["rng"][2] = json!("not-hex"))),
        ("rng", Box::new(|d| d["rng"] = json!(["0", "0", "0", "0"]))),
        (
            "instances[1].instance",
            Box::new(|d| d["instances"][1]["instance"]["port"] = json!(0)),
        ),
        (
            "instances[0].state.health",
            Box::new(|d| d["instances"][0]["state"]["health"] = json!("draining")),
        ),
        (
            "instances[1].instance.id",
            Box::new(|d| d["instances"][1]["instance"]["id"] = json!("a")),
        ),
        (
            "instances[0].instance.service",
            Box::new(|d| d["instances"][0]["instance"]["service"] = json!("nope")),
        ),
        (
            "instances[0].state.modify_index",
            Box::new(|d| d["instances"][0]["state"]["modify_index"] = json!(1000)),
        ),
        (
            "events[1].index",
            Box::new(|d| d["events"][1]["index"] = json!(1)),
        ),
        (
            "services[0].name",
            Box::new(|d| d["services"][0]["name"] = json!("")),
        ),
        (
            "services[0].candidates",
            Box::new(|d| d["services"][0]["candidates"][0][0] = json!("ghost")),
        ),
    ];
    for (field, mutate) in cases {
        let mut doc = sample_snapshot();
        mutate(&mut doc);
        let message = restore_err(&doc);
        assert!(
            message.contains(field),
            "`{message}` does not name `{field}`"
        );
    }
}

#[test]
fn restore_reports_the_first_problem_in_document_order() {
    // Several problems at once: the message is the one reading meets first,
    // wherever the later ones are.
    let mut doc = sample_snapshot();
    doc["events"][0]["type"] = json!("exploded");
    doc["instances"][1]["state"]["failures"] = json!(-1);
    doc["services"][0]["rr"] = json!("x");
    doc.as_object_mut().unwrap().remove("lease_blocked");
    assert!(restore_err(&doc).contains("missing field `lease_blocked`"));
    doc["lease_blocked"] = json!(false);
    assert!(restore_err(&doc).contains("services[0].rr: expected a non-negative integer"));
    doc["services"][0]["rr"] = json!(0);
    assert!(restore_err(&doc).contains("instances[1].state.failures"));
    doc["instances"][1]["state"]["failures"] = json!(0);
    assert!(restore_err(&doc).contains("events[0].type: unknown event type `exploded`"));
    doc["events"][0]["type"] = json!("registered");
    Registry::restore(&doc.to_string()).unwrap();
}

#[test]
fn restore_rejects_what_is_not_a_snapshot() {
    for text in ["", "null", "[]", "{}", "{\"format\": 1}", "not json"] {
        let err = Registry::restore(text).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidSnapshot, "{text}: {err}");
    }
    let mut doc = sample_snapshot();
    doc["extra"] = json!(1);
    assert!(restore_err(&doc).contains("extra"));
    let mut doc = sample_snapshot();
    doc.as_object_mut().unwrap().remove("clock");
    assert!(restore_err(&doc).contains("clock"));
}

// ----- typed parse errors ----------------------------------------------------

fn field_of(err: Error) -> String {
    match err {
        Error::InvalidArgument { field, .. } => field,
        other => panic!("expected invalid_argument, got {other:?}"),
    }
}

#[test]
fn filters_read_from_json() {
    let f =
        Filter::from_json(r#"{"tags": ["gpu", "eu"], "meta": {"v": "2", "tier": "a"}}"#).unwrap();
    assert_eq!(f.tags, ["gpu", "eu"]);
    // Metadata pairs come back in key order, each key once.
    assert_eq!(
        f.meta,
        [("tier".into(), "a".into()), ("v".into(), "2".into())]
    );
    assert!(Filter::from_json("{}").unwrap().is_empty());
    for (text, says) in [
        ("", "not valid JSON"),
        ("[]", "must be a JSON object"),
        (r#"{"tags": "gpu"}"#, "tags must be an array of strings"),
        (r#"{"tags": [1]}"#, "tags: 1 is not a string"),
        (r#"{"meta": []}"#, "meta must be an object of strings"),
        (r#"{"meta": {"k": null}}"#, "meta.k: null is not a string"),
        (r#"{"zone": "eu"}"#, "unknown key `zone`"),
    ] {
        let err = Filter::from_json(text).unwrap_err();
        assert!(err.to_string().contains(says), "{text}: {err}");
        assert_eq!(field_of(err), "filter", "{text}");
    }
}

#[test]
fn filters_read_from_json_keep_the_last_value_of_a_repeated_key() {
    // As everywhere the core reads JSON: when an object repeats a key, the
    // last value counts, and the earlier ones are as if absent.
    let f =
        Filter::from_json(r#"{"tags": ["a"], "meta": {"k": "1"}, "tags": ["b", "c"]}"#).unwrap();
    assert_eq!(f.tags, ["b", "c"]);
    assert_eq!(f.meta, [("k".into(), "1".into())]);
    let f = Filter::from_json(r#"{"meta": {"k": "1", "j": "2"}, "meta": {"j": "3"}}"#).unwrap();
    assert_eq!(f.meta, [("j".into(), "3".into())]);
    let f = Filter::from_json(r#"{"meta": {"k": "1", "j": "2", "k": "3"}}"#).unwrap();
    assert_eq!(f.meta, [("j".into(), "2".into()), ("k".into(), "3".into())]);
    let f = Filter::from_json(r#"{"tags": [1], "tags": ["a"], "meta": 5, "meta": {}}"#).unwrap();
    assert_eq!(f.tags, ["a"]);
    assert!(f.meta.is_empty());
    let err = Filter::from_json(r#"{"tags": ["a"], "tags": [1]}"#).unwrap_err();
    assert!(err.to_string().contains("tags: 1 is not a string"), "{err}");
}

#[test]
fn instance_json_errors_name_the_field() {
    let base = json!({"id": "a", "service": "api", "address": "h", "port": 80});
    let cases = [
        ("port", json!(65536)),
        ("port", json!("80")),
        ("port", json!(-1)),
        ("priority", json!(256)),
        ("weight", json!(1.5)),
        ("ttl_ms", json!(-5)),
        ("tags", json!("x")),
        ("tags[1]", json!(["ok", 3])),
        ("meta", json!(["k"])),
        ("meta.k", json!({"k": 1})),
        ("zone", json!(7)),
        ("colour", json!("red")),
    ];
    for (field, value) in cases {
        let mut doc = base.clone();
        let key = field.split(['[', '.']).next().unwrap();
        doc[key] = value;
        let err = InstanceSpec::from_json(&doc.to_string()).unwrap_err();
        assert_eq!(field_of(err), field, "{doc}");
    }
    for missing in ["id", "service", "address", "port"] {
        let mut doc = base.clone();
        doc.as_object_mut().unwrap().remove(missing);
        let err = InstanceSpec::from_json(&doc.to_string()).unwrap_err();
        assert_eq!(field_of(err), missing);
    }
    assert_eq!(
        field_of(InstanceSpec::from_json("[1]").unwrap_err()),
        "instance"
    );
    assert_eq!(
        field_of(InstanceSpec::from_json("{").unwrap_err()),
        "instance"
    );
}

#[test]
fn config_errors_name_the_key() {
    let cases = [
        (json!({"ttl_ms": 0}), "ttl_ms"),
        (json!({"ttl_ms": 86_400_001u64}), "ttl_ms"),
        (json!({"ttl_ms": "1000"}), "ttl_ms"),
        (json!({"panic_threshold": 1.5}), "panic_threshold"),
        (
            json!({"self_preservation_threshold": -0.1}),
            "self_preservation_threshold",
        ),
        (json!({"check_rise": 0}), "check_rise"),
        (json!({"max_ejection_percent": 101}), "max_ejection_percent"),
        (
            json!({"base_ejection_ms": 5000, "max_ejection_ms": 4000}),
            "max_ejection_ms",
        ),
        (json!({"event_retention": 0}), "event_retention"),
        (json!({"seed": -1}), "seed"),
        (json!({"tll_ms": 5}), "tll_ms"),
    ];
    for (doc, key) in cases {
        let err = Config::from_json(&doc.to_string()).unwrap_err();
        let message = err.to_string();
        assert_eq!(field_of(err), key, "{doc}");
        assert!(message.contains(key), "{message}");
    }
    assert_eq!(field_of(Config::from_json("7").unwrap_err()), "config");
    let bad = Config {
        ttl_ms: 0,
        ..Config::default()
    };
    assert_eq!(field_of(Registry::new(bad).unwrap_err()), "ttl_ms");
}

#[test]
fn the_registry_is_unchanged_by_every_kind_of_bad_call() {
    let mut reg = registry(Config::default());
    add(&mut reg, "a", "api", 0);
    let before = reg.snapshot();
    let bad_spec = InstanceSpec {
        weight: 0,
        ..InstanceSpec::new("x", "api", "h", 1)
    };
    assert_eq!(
        reg.register(bad_spec, 0).unwrap_err().code(),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        reg.register(InstanceSpec::new("a", "web", "h", 1), 0)
            .unwrap_err()
            .code(),
        ErrorCode::Conflict
    );
    assert_eq!(
        reg.heartbeat("", 0).unwrap_err().code(),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        reg.heartbeat("zz", 0).unwrap_err().code(),
        ErrorCode::NotFound
    );
    assert_eq!(
        reg.deregister("zz", 0).unwrap_err().code(),
        ErrorCode::NotFound
    );
    assert_eq!(
        reg.drain("a\u{0}", true, 0).unwrap_err().code(),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        reg.report_check("zz", CheckStatus::Fail, 0)
            .unwrap_err()
            .code(),
        ErrorCode::NotFound
    );
    assert_eq!(
        reg.report_outcome("", false, 0).unwrap_err().code(),
        ErrorCode::InvalidArgument
    );
    assert_eq!(reg.begin("zz", 0).unwrap_err().code(), ErrorCode::NotFound);
    assert_eq!(reg.end("zz", 0).unwrap_err().code(), ErrorCode::NotFound);
    assert_eq!(reg.get("zz", 0).unwrap_err().code(), ErrorCode::NotFound);
    assert_eq!(
        reg.discover("nope", &DiscoverOptions::default(), 0)
            .unwrap_err()
            .code(),
        ErrorCode::UnknownService
    );
    let no_key = reg
        .pick("api", Strategy::ConsistentHash, &PickOptions::default(), 0)
        .unwrap_err();
    assert_eq!(no_key.code(), ErrorCode::InvalidArgument);
    let long_key = PickOptions {
        key: Some("k".repeat(65_537)),
        ..PickOptions::default()
    };
    assert_eq!(
        reg.pick("api", Strategy::ConsistentHash, &long_key, 0)
            .unwrap_err()
            .code(),
        ErrorCode::InvalidArgument
    );
    assert!("fastest".parse::<Strategy>().is_err());
    assert!("maybe".parse::<CheckStatus>().is_err());
    assert_eq!(reg.snapshot(), before, "a failed call changed the registry");
    assert_eq!(pick_id(&mut reg, "api", 0), "a");
}

// ----- text validation ---------------------------------------------------------

fn code_and_message(result: waypost::Result<Handle>) -> (ErrorCode, String) {
    let err = result.unwrap_err();
    (err.code(), err.to_string())
}

#[test]
fn control_characters_are_refused_in_every_text_field() {
    let mut reg = registry(Config::default());
    // C0, DEL and C1 (U+0085) are control characters; the rest is printable.
    for bad in ["a\u{0}b", "tab\there", "del\u{7f}", "nel\u{85}x"] {
        let (code, msg) = code_and_message(reg.register(InstanceSpec::new(bad, "svc", "h", 1), 0));
        assert_eq!(code, ErrorCode::InvalidArgument, "{bad:?}");
        assert!(
            msg.contains("id") && msg.contains("control character"),
            "{msg}"
        );
        let mut spec = InstanceSpec::new("ok", "svc", "h", 1);
        spec.tags = vec!["fine".into(), bad.into()];
        let (_, msg) = code_and_message(reg.register(spec, 0));
        assert!(msg.contains("tags[1]"), "{msg}");
        let mut spec = InstanceSpec::new("ok", "svc", "h", 1);
        spec.meta.insert("k".into(), bad.into());
        let (_, msg) = code_and_message(reg.register(spec, 0));
        assert!(msg.contains("meta.k"), "{msg}");
    }
    assert_eq!(reg.len(), 0);
    for good in ["café", "nbsp\u{a0}x", "emoji-🚀", "~!@#$%^&*()"] {
        let mut spec = InstanceSpec::new(good, good, good, 1);
        spec.tags = vec![good.into()];
        spec.meta.insert("k".into(), good.into());
        reg.register(spec, 0).unwrap();
    }
    assert_eq!(reg.len(), 4);
}

#[test]
fn picks_by_name_follow_the_name_when_services_alternate() {
    let mut reg = registry(Config::default());
    add(&mut reg, "a1", "api", 0);
    add(&mut reg, "b1", "ap", 0);
    add(&mut reg, "c1", "apj", 0);
    let opts = PickOptions::default();
    for (service, id) in [
        ("api", "a1"),
        ("api", "a1"),
        ("ap", "b1"),
        ("apj", "c1"),
        ("api", "a1"),
    ] {
        assert_eq!(pick_id(&mut reg, service, 1), id, "{service}");
    }
    // A miss right after a hit, and a service that lost its last instance.
    let err = reg.pick("apk", Strategy::RoundRobin, &opts, 1).unwrap_err();
    assert_eq!(err.code(), ErrorCode::UnknownService);
    assert_eq!(pick_id(&mut reg, "ap", 1), "b1");
    reg.deregister("b1", 2).unwrap();
    let err = reg.pick("ap", Strategy::RoundRobin, &opts, 2).unwrap_err();
    assert_eq!(err.code(), ErrorCode::UnknownService);
    add(&mut reg, "b2", "ap", 3);
    assert_eq!(pick_id(&mut reg, "ap", 3), "b2");
}
