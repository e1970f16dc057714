//! Regression tests for registry behaviour found wrong once: each names
//! what used to happen.

use waypost::{CheckStatus, Config, EventKind, Health, InstanceSpec, Registry};

#[test]
fn a_new_instance_check_is_due_at_once_then_every_interval() {
    let mut reg = Registry::new(Config::default()).unwrap();
    let mut spec = InstanceSpec::new("a", "api", "h", 1);
    spec.check_interval_ms = Some(10_000);
    reg.register(spec, 0).unwrap();
    reg.register(InstanceSpec::new("b", "api", "h", 1), 0)
        .unwrap();
    assert_eq!(
        reg.due_checks(0).iter().map(|s| &**s).collect::<Vec<_>>(),
        ["a"]
    );
    assert!(reg.due_checks(9_999).is_empty());
    reg.report_check("a", CheckStatus::Fail, 10_000).unwrap();
    assert!(reg.due_checks(19_999).is_empty());
    assert_eq!(reg.due_checks(20_000).len(), 1);
}

#[test]
fn tick_returns_every_event_even_beyond_the_retention() {
    let config = Config {
        ttl_ms: 100,
        evict_after_ms: 0,
        event_retention: 4,
        ..Config::default()
    };
    let mut reg = Registry::new(config).unwrap();
    for i in 0..10 {
        reg.register(InstanceSpec::new(format!("i{i}"), "api", "h", 1), 0)
            .unwrap();
    }
    let events = reg.tick(101);
    assert_eq!(events.len(), 10);
    assert!(events
        .iter()
        .all(|e| e.kind == EventKind::HealthChanged && e.at == 101));
    assert_eq!(reg.events_since(reg.last_index() - 4).unwrap().len(), 4);
    assert!(reg.tick(102).is_empty());
}

#[test]
fn heartbeats_from_the_held_back_instances_end_self_preservation() {
    let config = Config {
        ttl_ms: 1000,
        evict_after_ms: 0,
        self_preservation_threshold: 0.5,
        ..Config::default()
    };
    let mut reg = Registry::new(config).unwrap();
    for id in ["a", "b", "c", "d"] {
        reg.register(InstanceSpec::new(id, "api", "h", 1), 0)
            .unwrap();
    }
    reg.tick(1001);
    assert!(reg.in_self_preservation());
    // c and d were held back; once both renew, nothing is held any more.
    reg.heartbeat("c", 2000).unwrap();
    assert!(reg.tick(2000).is_empty());
    assert!(reg.in_self_preservation());
    let before = reg.last_index();
    reg.heartbeat("d", 2000).unwrap();
    // Nothing is held any more: self-preservation ends with that heartbeat,
    // not at whatever call comes next.
    assert!(!reg.in_self_preservation());
    let events = reg.events_since(before).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::SelfPreservationExited);
    assert_eq!(events[0].at, 2000);
    assert!(reg.tick(2000).is_empty());
    // Their renewed leases are scheduled again.
    assert_eq!(reg.next_deadline(), Some(3001));
}

#[test]
fn a_recovery_releases_held_expiries_at_once() {
    let config = Config {
        ttl_ms: 1000,
        evict_after_ms: 0,
        self_preservation_threshold: 0.5,
        ..Config::default()
    };
    let mut reg = Registry::new(config).unwrap();
    for id in ["a", "b", "c", "d"] {
        reg.register(InstanceSpec::new(id, "api", "h", 1), 0)
            .unwrap();
    }
    reg.tick(1001);
    // a and b recover: the live fraction allows c and d to expire now.
    reg.heartbeat("a", 2000).unwrap();
    reg.heartbeat("b", 2000).unwrap();
    assert!(!reg.in_self_preservation());
    assert_eq!(
        reg.get("d", 2000).unwrap().status.health,
        crate::Health::Unhealthy
    );
    let last = reg.events_since(reg.last_index() - 1).unwrap();
    assert_eq!(last[0].kind, EventKind::SelfPreservationExited);
    assert_eq!(last[0].at, 2000);
}

#[test]
fn picks_by_reference_count_unknown_services_like_picks_by_name() {
    let mut reg = Registry::new(Config::default()).unwrap();
    let empty = reg.service_ref("ghost").unwrap();
    let err = reg
        .pick_ref(empty, waypost::Strategy::Random, &Default::default(), 0)
        .unwrap_err();
    assert_eq!(err.code().as_str(), "unknown_service");
    reg.pick("ghost", waypost::Strategy::Random, &Default::default(), 0)
        .unwrap_err();
    let text = reg.render_metrics();
    assert!(
        text.contains("waypost_pick_failures_total{service=\"\",code=\"unknown_service\"} 2"),
        "{text}"
    );
}
