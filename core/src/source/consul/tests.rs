use super::fuzz;
use super::*;
use crate::source::{SourceEntry, SourceStatus};
use crate::testing::{fail, Present, Refused, TestResult};
use proptest::prelude::*;
use std::string::ToString;

const SINGLE: &str = include_str!("../../../../tests/fixtures/consul/health-service-single.json");
const FLEET: &str = include_str!("../../../../tests/fixtures/consul/health-service-fleet.json");
const DEFAULT_IDS: &str =
    include_str!("../../../../tests/fixtures/consul/health-service-default-ids.json");
const MALFORMED: &str =
    include_str!("../../../../tests/fixtures/consul/health-service-malformed.json");
const EMPTY: &str = include_str!("../../../../tests/fixtures/consul/health-service-empty.json");

/// The entries of the one change a feed must produce.
fn entries(feed: &Feed) -> TestResult<&[SourceEntry]> {
    match feed.changes.as_slice() {
        [Change::ReplaceService(_, entries)] => Ok(entries),
        other => Err(fail(format!("expected one ReplaceService, got {other:?}"))),
    }
}

fn read(service: &str, body: &str) -> TestResult<Feed> {
    Ok(ConsulMirror::new(service).feed(body, 200, Some("7"))?)
}

fn entry<'a>(feed: &'a Feed, id: &str) -> TestResult<&'a SourceEntry> {
    entries(feed)?
        .iter()
        .find(|e| e.spec.id == id)
        .or_fail(format!("entry {id} in {feed:?}"))
}

/// One answer entry on `node` for service `web` with the given JSON pieces.
fn item(node: &str, id: &str, service_extra: &str, checks: &str) -> String {
    format!(
        r#"{{"Node":{{"Node":"{node}","Address":"10.9.9.9","Meta":{{}}}},
            "Service":{{"ID":"{id}","Service":"web","Address":"","Port":80{service_extra}}},
            "Checks":[{checks}]}}"#
    )
}

fn check(id: &str, service_id: &str, status: &str) -> String {
    format!(r#"{{"CheckID":"{id}","ServiceID":"{service_id}","Status":"{status}"}}"#)
}

#[test]
fn the_first_request_has_no_index_and_later_ones_block_on_it() -> TestResult {
    let mut m = ConsulMirror::new("web");
    let first = m.request();
    assert_eq!(first.method, "GET");
    assert_eq!(first.path, "/v1/health/service/web");
    assert_eq!(first.body, "");
    assert!(!first.stream);
    m.feed(EMPTY, 200, Some("42"))?;
    assert_eq!(m.request().path, "/v1/health/service/web?index=42&wait=5m");
    Ok(())
}

#[test]
fn the_service_name_is_escaped_in_the_path() -> TestResult {
    let m = ConsulMirror::new("my svc/ä?x=1");
    assert_eq!(
        m.request().path,
        "/v1/health/service/my%20svc%2F%C3%A4%3Fx%3D1"
    );
    assert_eq!(
        ConsulMirror::new("a-b.c_d~e").request().path,
        "/v1/health/service/a-b.c_d~e"
    );
    Ok(())
}

#[test]
fn index_rules_follow_consuls_blocking_query_guidance() -> TestResult {
    let mut m = ConsulMirror::new("web");
    m.feed(EMPTY, 200, Some("100"))?;
    assert_eq!(m.index(), 100);
    // The same or a higher index is taken as it is.
    m.feed(EMPTY, 200, Some("100"))?;
    assert_eq!(m.index(), 100);
    m.feed(EMPTY, 200, Some(" 250 "))?;
    assert_eq!(m.index(), 250);
    // Backwards: start over without an index.
    m.feed(EMPTY, 200, Some("90"))?;
    assert_eq!(m.index(), 0);
    assert_eq!(m.request().path, "/v1/health/service/web");
    // Zero (and a negative index) never make the loop spin.
    m.feed(EMPTY, 200, Some("0"))?;
    assert_eq!(m.index(), 1);
    let mut n = ConsulMirror::new("web");
    n.feed(EMPTY, 200, Some("-5"))?;
    assert_eq!(n.index(), 1);
    // No header: the index stays.
    m.feed(EMPTY, 200, Some("12"))?;
    m.feed(EMPTY, 200, None)?;
    assert_eq!(m.index(), 12);
    Ok(())
}

#[test]
fn a_malformed_index_is_an_error_that_changes_nothing() -> TestResult {
    let mut m = ConsulMirror::new("web");
    m.feed(EMPTY, 200, Some("12"))?;
    for bad in ["", "abc", "12a", "1.5", "-", "99999999999999999999999"] {
        let e = m.feed(SINGLE, 200, Some(bad)).failure()?;
        assert_eq!(e.code(), ErrorCode::InvalidArgument);
        assert!(e.message().contains("X-Consul-Index"), "{e}");
        assert_eq!(m.index(), 12);
    }
    Ok(())
}

#[test]
fn every_response_replaces_the_service_even_when_nothing_changed() -> TestResult {
    let mut m = ConsulMirror::new("redis");
    let a = m.feed(SINGLE, 200, Some("5"))?;
    let b = m.feed(SINGLE, 200, Some("5"))?;
    assert_eq!(a, b);
    assert!(
        matches!(&a.changes[..], [Change::ReplaceService(s, e)] if s == "redis" && e.len() == 1)
    );
    Ok(())
}

#[test]
fn the_documented_sample_maps_field_by_field() -> TestResult {
    let feed = read("redis", SINGLE)?;
    assert!(feed.rejected.is_empty(), "{:?}", feed.rejected);
    assert!(!feed.resync);
    let e = entry(&feed, "redis")?;
    assert_eq!(e.spec.service, "redis");
    assert_eq!(e.spec.address, "10.1.10.12");
    assert_eq!(e.spec.port, 8000);
    assert_eq!(e.spec.tags, ["primary"]);
    assert_eq!(e.spec.meta.get("redis_version"), Some("4.0"));
    assert_eq!(e.spec.meta.len(), 1);
    assert_eq!(e.spec.weight, 10, "Weights.Passing while passing");
    assert_eq!(e.spec.zone, None, "Datacenter is not a zone");
    assert_eq!(e.status, SourceStatus::Passing);
    Ok(())
}

#[test]
fn fleet_addresses_fall_back_to_the_node() -> TestResult {
    let feed = read("web", FLEET)?;
    assert!(feed.rejected.is_empty(), "{:?}", feed.rejected);
    assert_eq!(entries(&feed)?.len(), 7);
    assert_eq!(entry(&feed, "web-1")?.spec.address, "10.0.0.1");
    assert_eq!(entry(&feed, "web-2")?.spec.address, "192.168.5.2");
    Ok(())
}

#[test]
fn fleet_weights_follow_the_status_and_default_to_one() -> TestResult {
    let feed = read("web", FLEET)?;
    let (w1, w2) = (entry(&feed, "web-1")?, entry(&feed, "web-2")?);
    assert_eq!((w1.status, w1.spec.weight), (SourceStatus::Passing, 5));
    assert_eq!((w2.status, w2.spec.weight), (SourceStatus::Warning, 2));
    assert_eq!(entry(&feed, "web-3")?.spec.weight, 1, "no Weights at all");
    Ok(())
}

#[test]
fn fleet_tags_and_meta_may_be_null() -> TestResult {
    let feed = read("web", FLEET)?;
    let w2 = entry(&feed, "web-2")?;
    assert!(w2.spec.tags.is_empty() && w2.spec.meta.is_empty());
    assert_eq!(entry(&feed, "web-1")?.spec.tags, ["v2", "http"]);
    Ok(())
}

#[test]
fn fleet_zones_come_from_locality_then_node_meta() -> TestResult {
    let feed = read("web", FLEET)?;
    let zone = |id| entry(&feed, id).map(|e| e.spec.zone.clone());
    assert_eq!(
        zone("web-1")?.as_deref(),
        Some("eu-west-1a"),
        "Node.Meta.zone"
    );
    assert_eq!(
        zone("web-2")?.as_deref(),
        Some("eu-west-1b"),
        "Service.Locality"
    );
    assert_eq!(
        zone("web-3")?.as_deref(),
        Some("eu-west-1c"),
        "Node.Locality"
    );
    assert_eq!(zone("web-5")?, None);
    Ok(())
}

#[test]
fn fleet_node_checks_apply_to_every_service_on_the_node() -> TestResult {
    let feed = read("web", FLEET)?;
    // node-c's serfHealth is critical: listed with web-3, it also sinks
    // web-4, whose entry has no checks at all.
    assert_eq!(entry(&feed, "web-3")?.status, SourceStatus::Critical);
    assert_eq!(entry(&feed, "web-4")?.status, SourceStatus::Critical);
    Ok(())
}

#[test]
fn fleet_maintenance_checks_mean_maintenance() -> TestResult {
    let feed = read("web", FLEET)?;
    let w5 = entry(&feed, "web-5")?;
    assert_eq!(w5.status, SourceStatus::Maintenance);
    assert_eq!(w5.spec.weight, 3, "Passing weight outside warning");
    assert_eq!(entry(&feed, "web-6")?.status, SourceStatus::Maintenance);
    Ok(())
}

#[test]
fn the_worst_check_wins() -> TestResult {
    let feed = read("web", FLEET)?;
    assert_eq!(entry(&feed, "web-7")?.status, SourceStatus::Critical);
    let order = [
        ("passing", "warning", SourceStatus::Warning),
        ("warning", "critical", SourceStatus::Critical),
        ("critical", "passing", SourceStatus::Critical),
        ("passing", "passing", SourceStatus::Passing),
    ];
    for (a, b, want) in order {
        let body = format!(
            "[{}]",
            item(
                "n",
                "w",
                "",
                &format!("{},{}", check("c1", "w", a), check("c2", "", b))
            )
        );
        assert_eq!(entry(&read("web", &body)?, "w")?.status, want, "{a} + {b}");
    }
    Ok(())
}

#[test]
fn maintenance_outranks_critical_and_only_for_its_own_service() -> TestResult {
    let maint = check("_service_maintenance:w", "w", "critical");
    let other = check("_service_maintenance:x", "w", "passing");
    let body = format!(
        "[{},{}]",
        item(
            "n",
            "w",
            "",
            &format!("{maint},{}", check("c", "w", "critical"))
        ),
        item("n", "v", "", &other),
    );
    let feed = read("web", &body)?;
    assert_eq!(entry(&feed, "w")?.status, SourceStatus::Maintenance);
    assert_eq!(entry(&feed, "v")?.status, SourceStatus::Passing);
    Ok(())
}

#[test]
fn node_maintenance_reaches_services_listed_elsewhere() -> TestResult {
    let body = format!(
        "[{},{},{}]",
        item("n1", "a", "", &check("_node_maintenance", "", "critical")),
        item("n1", "b", "", ""),
        item("n2", "c", "", ""),
    );
    let feed = read("web", &body)?;
    assert_eq!(entry(&feed, "a")?.status, SourceStatus::Maintenance);
    assert_eq!(entry(&feed, "b")?.status, SourceStatus::Maintenance);
    assert_eq!(entry(&feed, "c")?.status, SourceStatus::Passing);
    Ok(())
}

#[test]
fn checks_of_other_services_are_ignored() -> TestResult {
    let body = format!("[{}]", item("n", "w", "", &check("c", "other", "critical")));
    assert_eq!(
        entry(&read("web", &body)?, "w")?.status,
        SourceStatus::Passing
    );
    Ok(())
}

#[test]
fn weights_are_clamped_into_range() -> TestResult {
    let body = format!(
        "[{},{}]",
        item(
            "n",
            "a",
            r#","Weights":{"Passing":20000,"Warning":0}"#,
            &check("c", "a", "warning")
        ),
        item("n", "b", r#","Weights":{"Passing":20000}"#, ""),
    );
    let feed = read("web", &body)?;
    assert_eq!(entry(&feed, "a")?.spec.weight, 1, "Warning 0 → 1");
    assert_eq!(entry(&feed, "b")?.spec.weight, 10_000);
    let bad = format!("[{}]", item("n", "a", r#","Weights":{"Passing":-1}"#, ""));
    let feed = read("web", &bad)?;
    assert!(entries(&feed)?.is_empty());
    assert!(feed.rejected[0].message.contains("Service.Weights.Passing"));
    Ok(())
}

#[test]
fn ids_shared_across_nodes_are_qualified_by_node() -> TestResult {
    let feed = read("api", DEFAULT_IDS)?;
    assert!(feed.rejected.is_empty(), "{:?}", feed.rejected);
    let mut ids: Vec<&str> = entries(&feed)?.iter().map(|e| e.spec.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["api-admin", "node-a/api", "node-b/api"]);
    Ok(())
}

#[test]
fn the_same_service_twice_on_one_node_is_a_conflict() -> TestResult {
    let body = format!("[{},{}]", item("n", "w", "", ""), item("n", "w", "", ""));
    let feed = read("web", &body)?;
    assert_eq!(entries(&feed)?.len(), 1);
    assert_eq!(feed.rejected.len(), 1);
    assert_eq!(feed.rejected[0].at, "[1]");
    assert_eq!(feed.rejected[0].code, ErrorCode::Conflict);
    assert!(feed.rejected[0].message.contains("n/w"));
    Ok(())
}

#[test]
fn the_service_name_must_match_ascii_case_aside() -> TestResult {
    let body = format!("[{}]", item("n", "w", "", ""));
    let feed = read("WEB", &body)?;
    assert_eq!(entry(&feed, "w")?.spec.service, "WEB");
    let feed = read("api", &body)?;
    assert!(entries(&feed)?.is_empty());
    assert!(feed.rejected[0].message.contains("Service.Service"));
    Ok(())
}

#[test]
fn malformed_entries_are_rejected_one_by_one() -> TestResult {
    let feed = read("db", MALFORMED)?;
    let ids: Vec<&str> = entries(&feed)?.iter().map(|e| e.spec.id.as_str()).collect();
    assert_eq!(ids, ["db-1"]);
    let got: Vec<(&str, &str)> = feed
        .rejected
        .iter()
        .map(|r| (r.at.as_str(), r.message.as_str()))
        .collect();
    let want = [
        ("[1]", "Service.Port"),
        ("[2]", "Checks[0].Status"),
        ("[3]", "Service must be an object"),
        ("[4]", "entry must be an object"),
        ("[5]", "Service.Tags[1]"),
    ];
    assert_eq!(got.len(), want.len(), "{got:?}");
    for ((at, message), (want_at, want_text)) in got.iter().zip(want) {
        assert_eq!(*at, want_at);
        assert!(message.contains(want_text), "{message} lacks {want_text}");
    }
    assert!(feed
        .rejected
        .iter()
        .all(|r| r.code == ErrorCode::InvalidArgument));
    Ok(())
}

#[test]
fn fields_failing_instance_rules_are_rejected_with_their_reason() -> TestResult {
    let many: Vec<String> = (0..65).map(|i| format!("\"t{i}\"")).collect();
    let tags = format!(r#","Tags":[{}]"#, many.join(","));
    let body = format!(
        "[{},{},{}]",
        item("n", "a", &tags, ""),
        item("n", "b", r#","Port":0"#, ""),
        r#"{"Node":{"Node":"n","Address":""},"Service":{"ID":"c","Service":"web","Address":"","Port":1}}"#,
    );
    let feed = read("web", &body)?;
    assert!(entries(&feed)?.is_empty());
    let messages: Vec<&str> = feed.rejected.iter().map(|r| r.message.as_str()).collect();
    assert!(messages[0].contains("tags"), "{messages:?}");
    assert!(messages[1].contains("Service.Port"), "{messages:?}");
    assert!(messages[2].contains("both empty"), "{messages:?}");
    Ok(())
}

#[test]
fn a_payload_of_the_wrong_shape_is_an_error_that_changes_nothing() -> TestResult {
    let mut m = ConsulMirror::new("web");
    m.feed(EMPTY, 200, Some("3"))?;
    for body in ["{}", "null", "\"[]\"", "[", "", "[1,]"] {
        let e = m.feed(body, 200, Some("9")).failure()?;
        assert_eq!(e.code(), ErrorCode::InvalidArgument);
        assert!(e.message().contains("body"), "{e}");
        assert_eq!(m.index(), 3);
    }
    assert!(m
        .feed("{}", 200, None)
        .failure()?
        .message()
        .contains("an object"));
    Ok(())
}

#[test]
fn a_non_200_status_is_an_error_that_keeps_the_index() -> TestResult {
    let mut m = ConsulMirror::new("web");
    m.feed(EMPTY, 200, Some("3"))?;
    for status in [403, 404, 429, 500, 503] {
        let e = m.feed("rpc error", status, Some("9")).failure()?;
        assert_eq!(e.code(), ErrorCode::InvalidArgument);
        assert!(e.message().contains(&status.to_string()), "{e}");
        assert_eq!(m.index(), 3);
    }
    Ok(())
}

#[test]
fn an_empty_answer_empties_the_service() -> TestResult {
    let feed = read("web", EMPTY)?;
    assert!(entries(&feed)?.is_empty());
    assert!(feed.rejected.is_empty());
    Ok(())
}

#[test]
fn state_round_trips_and_rejects_anything_else() -> TestResult {
    let mut m = ConsulMirror::new("web");
    m.feed(EMPTY, 200, Some("77"))?;
    let mut out = String::new();
    m.write_state(&mut out);
    assert_eq!(out, r#"{"index":77}"#);
    let mut back = ConsulMirror::new("web");
    back.restore_state(&Json::parse(&out)?)?;
    assert_eq!(back, m);
    for bad in [
        r#"{}"#,
        r#"{"index":-1}"#,
        r#"{"index":"7"}"#,
        r#"{"index":1,"x":2}"#,
        "[]",
    ] {
        let e = back.restore_state(&Json::parse(bad)?).failure()?;
        assert_eq!(e.code(), ErrorCode::InvalidSnapshot, "{bad}");
        assert_eq!(back.index(), 77);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn no_json_value_panics(value in fuzz::json(), index in proptest::option::of("[-0-9a ]{0,4}")) {
        let mut m = ConsulMirror::new("web");
        let _ = m.feed(&value.to_json(), 200, index.as_deref());
        let _ = m.restore_state(&value);
    }

    #[test]
    fn no_mutated_fixture_panics(
        which in 0usize..4,
        at in any::<prop::sample::Index>(),
        with in fuzz::json(),
        text in "[\\[\\]{}\",:0-9a-z -]{0,3}",
        cut in any::<bool>(),
    ) {
        let fixture = [SINGLE, FLEET, DEFAULT_IDS, MALFORMED][which];
        let service = ["redis", "web", "api", "db"][which];
        for body in [fuzz::mutate(fixture, at, &with), fuzz::garble(fixture, at, &text, cut)] {
            let mut m = ConsulMirror::new(service);
            if let Ok(feed) = m.feed(&body, 200, Some("1")) {
                for e in entries(&feed)? {
                    prop_assert!(e.spec.validate().is_ok());
                }
            }
        }
    }
}
