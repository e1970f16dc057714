//! Source-owned instances: ownership, reconcile, protection (SPEC §10.1–10.3).

use waypost::{
    Config, ErrorCode, EventKind, Health, InstanceSpec, Registry, SourceEntry, SourceStatus,
};

fn entry(id: &str, port: u16) -> SourceEntry {
    SourceEntry::new(InstanceSpec::new(id, "api", "10.0.0.1", port))
}

fn with_status(id: &str, status: SourceStatus) -> SourceEntry {
    SourceEntry {
        status,
        ..entry(id, 80)
    }
}

fn ids(reg: &mut Registry, now: u64) -> Vec<String> {
    let opts = waypost::DiscoverOptions {
        all: true,
        ..Default::default()
    };
    reg.discover("api", &opts, now)
        .map(|d| d.iter().map(|v| v.instance.id().to_owned()).collect())
        .unwrap_or_default()
}

#[test]
fn sync_adds_updates_removes_and_skips_unchanged() {
    let mut reg = Registry::default();
    let r = reg
        .sync("etcd", "api", vec![entry("a", 80), entry("b", 80)], 0)
        .unwrap();
    assert_eq!((r.added, r.updated, r.removed, r.unchanged), (2, 0, 0, 0));
    let last = reg.last_index();
    let r = reg
        .sync("etcd", "api", vec![entry("a", 80), entry("b", 80)], 10)
        .unwrap();
    assert_eq!((r.added, r.updated, r.removed, r.unchanged), (0, 0, 0, 2));
    assert_eq!(reg.last_index(), last, "an unchanged sync emits nothing");
    let r = reg
        .sync("etcd", "api", vec![entry("a", 81), entry("c", 80)], 20)
        .unwrap();
    assert_eq!((r.added, r.updated, r.removed, r.unchanged), (1, 1, 1, 0));
    assert_eq!(ids(&mut reg, 20), ["a", "c"]);
    let events = reg.events_since(last).unwrap();
    assert!(events.iter().all(|e| e.source.as_deref() == Some("etcd")));
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::Updated,
            EventKind::Registered,
            EventKind::Deregistered
        ]
    );
    reg.check_invariants().unwrap();
}

#[test]
fn source_owned_instances_have_no_lease() {
    let mut reg = Registry::new(Config {
        ttl_ms: 100,
        ..Config::default()
    })
    .unwrap();
    reg.sync("etcd", "api", vec![entry("a", 80)], 0).unwrap();
    let view = reg.get("a", 1_000_000).unwrap();
    assert_eq!(view.status.health, Health::Healthy);
    assert!(view.to_json().contains("\"source\":\"etcd\""));
    assert!(!view.to_json().contains("lease_deadline"));
    let e = reg.heartbeat("a", 1_000_001).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Conflict);
    assert_eq!(reg.next_deadline(), None);
}

#[test]
fn ownership_conflicts() {
    let mut reg = Registry::default();
    reg.register(InstanceSpec::new("local", "api", "10.0.0.9", 80), 0)
        .unwrap();
    reg.sync("etcd", "api", vec![entry("a", 80)], 0).unwrap();
    // A source cannot touch a local id or another source's id.
    let r = reg
        .sync(
            "consul",
            "api",
            vec![entry("a", 80), entry("local", 80), entry("b", 80)],
            1,
        )
        .unwrap();
    assert_eq!(r.added, 1);
    assert_eq!(r.rejected.len(), 2);
    assert!(r.rejected.iter().all(|x| x.code == ErrorCode::Conflict));
    assert_eq!(r.rejected[0].at, "0");
    assert_eq!(
        reg.source_put("consul", entry("a", 99), 2)
            .unwrap_err()
            .code(),
        ErrorCode::Conflict
    );
    assert_eq!(
        reg.source_delete("consul", "local", 2).unwrap_err().code(),
        ErrorCode::Conflict
    );
    // Local calls cannot touch a source's id.
    assert_eq!(
        reg.deregister("a", 3).unwrap_err().code(),
        ErrorCode::Conflict
    );
    let spec = InstanceSpec::new("a", "api", "10.0.0.1", 80);
    assert_eq!(
        reg.register(spec, 3).unwrap_err().code(),
        ErrorCode::Conflict
    );
    // Draining and checks still apply.
    reg.drain("a", true, 4).unwrap();
    assert_eq!(reg.get("a", 4).unwrap().status.health, Health::Draining);
    // A delete of an id the source does not hold is a no-op.
    let r = reg.source_delete("etcd", "nope", 5).unwrap();
    assert_eq!(r, waypost::SyncReport::default());
    reg.check_invariants().unwrap();
}

#[test]
fn status_maps_onto_health_with_local_precedence() {
    let mut reg = Registry::default();
    for (status, health) in [
        (SourceStatus::Passing, Health::Healthy),
        (SourceStatus::Warning, Health::Degraded),
        (SourceStatus::Critical, Health::Unhealthy),
        (SourceStatus::Maintenance, Health::Draining),
    ] {
        reg.source_put("s", with_status("a", status), 0).unwrap();
        assert_eq!(reg.get("a", 0).unwrap().status.health, health);
        reg.check_invariants().unwrap();
    }
    reg.source_put("s", with_status("a", SourceStatus::Warning), 0)
        .unwrap();
    reg.drain("a", true, 0).unwrap();
    assert_eq!(reg.get("a", 0).unwrap().status.health, Health::Draining);
    reg.drain("a", false, 0).unwrap();
    assert_eq!(reg.get("a", 0).unwrap().status.health, Health::Degraded);
    reg.check_invariants().unwrap();
}

#[test]
fn empty_sync_is_held_unless_trusted() {
    for trust in [false, true] {
        let mut reg = Registry::new(Config {
            trust_empty_sync: trust,
            ..Config::default()
        })
        .unwrap();
        reg.sync("etcd", "api", vec![entry("a", 80), entry("b", 80)], 0)
            .unwrap();
        let r = reg.sync("etcd", "api", vec![], 1).unwrap();
        if trust {
            assert_eq!((r.removed, r.held), (2, 0));
            assert!(ids(&mut reg, 1).is_empty());
        } else {
            assert_eq!((r.removed, r.held), (0, 2));
            assert_eq!(ids(&mut reg, 1), ["a", "b"]);
            assert!(reg.get("a", 1).unwrap().status.held);
            // A non-empty list is trusted: b goes, a is no longer held.
            let r = reg.sync("etcd", "api", vec![entry("a", 80)], 2).unwrap();
            assert_eq!((r.removed, r.held, r.unchanged), (1, 0, 1));
            assert!(!reg.get("a", 2).unwrap().status.held);
        }
        reg.check_invariants().unwrap();
    }
}

#[test]
fn removals_obey_self_preservation_and_are_released_in_order() {
    let mut reg = Registry::new(Config {
        self_preservation_threshold: 0.8,
        self_preservation_min_instances: 3,
        ..Config::default()
    })
    .unwrap();
    let all: Vec<SourceEntry> = (0..10).map(|i| entry(&format!("i{i}"), 80)).collect();
    reg.sync("etcd", "api", all.clone(), 0).unwrap();
    let before = reg.last_index();
    let r = reg.sync("etcd", "api", all[..2].to_vec(), 1).unwrap();
    // Measured against the 10 before the call: 9/10, 8/10 ≥ 0.8, 7/10 < 0.8.
    assert_eq!(r.removed, 2);
    assert_eq!(r.held, 6);
    assert!(reg.in_self_preservation());
    reg.check_invariants().unwrap();
    let kinds: Vec<EventKind> = reg
        .events_since(before)
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&EventKind::RemovalHeld));
    assert!(kinds.contains(&EventKind::SelfPreservationEntered));
    // New instances lift the fraction: the held removals go, in id order.
    let mark = reg.last_index();
    let mut more = all[..2].to_vec();
    // The two removed at 1 still count in the population (the window).
    // 21 more: 29 live, 6 of them held, (29 - 6) / (29 + 2) < 0.8: held.
    more.extend((10..31).map(|i| entry(&format!("j{i}"), 80)));
    let r = reg.sync("etcd", "api", more.clone(), 2).unwrap();
    assert_eq!((r.added, r.held), (21, 6));
    assert!(reg.in_self_preservation());
    // Nine more: (38 - 6) / (38 + 2) = 0.8.
    more.extend((0..9).map(|i| entry(&format!("k{i}"), 80)));
    reg.sync("etcd", "api", more, 3).unwrap();
    let released: Vec<String> = reg
        .events_since(mark)
        .unwrap()
        .iter()
        .filter(|e| e.kind == EventKind::RemovalReleased)
        .map(|e| e.id.as_deref().unwrap_or("").to_owned())
        .collect();
    assert_eq!(released, ["i4", "i5", "i6", "i7", "i8", "i9"]);
    assert!(!reg.in_self_preservation());
    reg.check_invariants().unwrap();
}

#[test]
fn snapshot_carries_origin_status_and_holds() {
    let mut reg = Registry::default();
    reg.register(InstanceSpec::new("local", "api", "10.0.0.9", 80), 0)
        .unwrap();
    reg.sync(
        "etcd",
        "api",
        vec![with_status("a", SourceStatus::Warning), entry("b", 80)],
        0,
    )
    .unwrap();
    reg.sync("etcd", "api", vec![], 1).unwrap();
    let snap = reg.snapshot();
    let mut back = Registry::restore(&snap).unwrap();
    assert_eq!(back.snapshot(), snap);
    back.check_invariants().unwrap();
    let a = back.get("a", 2).unwrap();
    assert_eq!(a.instance.source(), Some("etcd"));
    assert_eq!(a.status.health, Health::Degraded);
    assert!(a.status.held);
    assert_eq!(
        back.heartbeat("a", 3).unwrap_err().code(),
        ErrorCode::Conflict
    );
}

#[test]
fn json_forms() {
    let mut reg = Registry::default();
    let r = reg
        .sync_json(
            "etcd",
            "api",
            r#"[{"id":"a","service":"api","address":"h","port":1,"status":"warning"},
                {"id":"b","service":"api","address":"h"},
                {"id":"c","service":"web","address":"h","port":1},
                7]"#,
            0,
        )
        .unwrap();
    assert_eq!(r.added, 1);
    assert_eq!(
        r.to_json(),
        concat!(
            r#"{"added":1,"updated":0,"removed":0,"unchanged":0,"held":0,"rejected":["#,
            r#"{"at":"1","code":"invalid_argument","message":"invalid argument `port`: is required"},"#,
            r#"{"at":"2","code":"invalid_argument","message":"invalid argument `service`: `web` is not `api`"},"#,
            r#"{"at":"3","code":"invalid_argument","message":"invalid argument `entry`: must be a JSON object"}],"resync":false,"changed":true}"#
        )
    );
    assert_eq!(
        reg.sync_json("etcd", "api", "{}", 0).unwrap_err().code(),
        ErrorCode::InvalidArgument
    );
    let r = reg
        .source_put_json(
            "etcd",
            r#"{"id":"a","service":"api","address":"h","port":1,"status":"warning","source":"x"}"#,
            1,
        )
        .unwrap();
    assert_eq!(r.unchanged, 1);
    let e = reg
        .source_put_json(
            "etcd",
            r#"{"id":"a","service":"api","address":"h","port":1,"status":"bad"}"#,
            1,
        )
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
}
