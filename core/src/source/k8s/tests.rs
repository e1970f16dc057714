use super::*;
use crate::source::consul::fuzz;
use crate::testing::{fail, Present, Refused, TestResult};
use proptest::prelude::*;
use std::string::ToString;

const LIST: &str = include_str!("../../../../tests/fixtures/k8s/endpointslice-list.json");
const WATCH: &str = include_str!("../../../../tests/fixtures/k8s/watch-events.jsonl");
const ERROR_410: &str = include_str!("../../../../tests/fixtures/k8s/watch-error-410.json");
const STATUS_410: &str = include_str!("../../../../tests/fixtures/k8s/status-410.json");
const MALFORMED: &str =
    include_str!("../../../../tests/fixtures/k8s/endpointslice-list-malformed.json");

fn entries(feed: &Feed) -> TestResult<&[SourceEntry]> {
    match feed.changes.as_slice() {
        [Change::ReplaceService(service, entries)] => {
            assert_eq!(service, "api");
            Ok(entries)
        }
        other => Err(fail(format!("expected one ReplaceService, got {other:?}"))),
    }
}

fn entry<'a>(feed: &'a Feed, id: &str) -> TestResult<&'a SourceEntry> {
    entries(feed)?
        .iter()
        .find(|e| e.spec.id == id)
        .or_fail(format!("entry {id} in {feed:?}"))
}

fn ids(feed: &Feed) -> TestResult<Vec<&str>> {
    Ok(entries(feed)?.iter().map(|e| e.spec.id.as_str()).collect())
}

/// A mirror of `shop/api` port `port` that has read the fixture list.
fn listed(port: &str) -> TestResult<(K8sMirror, Feed)> {
    let mut m = K8sMirror::new("shop", "api", port);
    let feed = m.feed(LIST, 200, None)?;
    Ok((m, feed))
}

fn slice(name: &str, endpoints: &str, ports: &str) -> String {
    format!(
        r#"{{"metadata":{{"name":"{name}","resourceVersion":"1"}},"addressType":"IPv4","endpoints":[{endpoints}],"ports":[{ports}]}}"#
    )
}

fn list_of(slices: &[String]) -> String {
    format!(
        r#"{{"kind":"EndpointSliceList","metadata":{{"resourceVersion":"9"}},"items":[{}]}}"#,
        slices.join(",")
    )
}

const HTTP: &str = r#"{"name":"http","port":8080}"#;

#[test]
fn it_lists_first_then_watches_from_the_lists_version() -> TestResult {
    let mut m = K8sMirror::new("shop", "api", "http");
    let list = m.request();
    assert_eq!(list.method, "GET");
    assert_eq!(
        list.path,
        "/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dapi"
    );
    assert!(!list.stream);
    assert_eq!(list.body, "");
    m.feed(LIST, 200, None)?;
    let watch = m.request();
    assert_eq!(
        watch.path,
        "/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dapi&watch=1&resourceVersion=10245&allowWatchBookmarks=true"
    );
    assert!(watch.stream);
    Ok(())
}

#[test]
fn names_are_escaped_in_the_path() -> TestResult {
    let m = K8sMirror::new("a b", "c&d=e", "");
    assert_eq!(
        m.request().path,
        "/apis/discovery.k8s.io/v1/namespaces/a%20b/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dc%26d%3De"
    );
    Ok(())
}

#[test]
fn the_named_port_is_taken_from_each_slice() -> TestResult {
    let (_, feed) = listed("http")?;
    assert!(feed.rejected.is_empty(), "{:?}", feed.rejected);
    assert_eq!(entry(&feed, "api-7d9f-x2")?.spec.port, 8080);
    assert_eq!(entry(&feed, "10.1.3.7")?.spec.port, 8081);
    let (_, feed) = listed("metrics")?;
    assert_eq!(entry(&feed, "api-7d9f-x2")?.spec.port, 9090);
    assert_eq!(entry(&feed, "10.1.3.7")?.spec.port, 9091);
    Ok(())
}

#[test]
fn an_empty_port_name_takes_each_slices_first_port() -> TestResult {
    let (_, feed) = listed("")?;
    assert_eq!(entry(&feed, "api-7d9f-x2")?.spec.port, 9090);
    assert_eq!(entry(&feed, "10.1.3.7")?.spec.port, 8081);
    Ok(())
}

#[test]
fn ids_are_pod_names_else_addresses_and_fields_map() -> TestResult {
    let (_, feed) = listed("http")?;
    assert_eq!(
        ids(&feed)?,
        [
            "10.1.3.7",
            "api-7d9f-w1",
            "api-7d9f-x2",
            "api-7d9f-y7",
            "api-7d9f-z4"
        ]
    );
    let e = entry(&feed, "api-7d9f-x2")?;
    assert_eq!(e.spec.address, "10.1.2.3");
    assert_eq!(e.spec.service, "api");
    assert_eq!(e.spec.zone.as_deref(), Some("us-west2-a"));
    assert_eq!(e.spec.weight, 1);
    assert!(e.spec.tags.is_empty() && e.spec.meta.is_empty());
    assert_eq!(entry(&feed, "10.1.3.7")?.spec.zone, None);
    Ok(())
}

#[test]
fn conditions_map_with_their_nil_defaults() -> TestResult {
    let (_, feed) = listed("http")?;
    let status = |id| entry(&feed, id).map(|e| e.status);
    assert_eq!(status("api-7d9f-x2")?, SourceStatus::Passing, "ready");
    assert_eq!(
        status("api-7d9f-z4")?,
        SourceStatus::Critical,
        "not ready, not serving"
    );
    assert_eq!(status("10.1.3.7")?, SourceStatus::Passing, "all nil: ready");
    assert_eq!(
        status("api-7d9f-w1")?,
        SourceStatus::Critical,
        "serving nil follows ready=false while terminating"
    );
    let cases = [
        (r#"{"ready":null}"#, SourceStatus::Passing),
        (
            r#"{"serving":true,"terminating":true}"#,
            SourceStatus::Maintenance,
        ),
        (
            r#"{"ready":false,"serving":true,"terminating":true}"#,
            SourceStatus::Maintenance,
        ),
        (
            r#"{"ready":false,"serving":false,"terminating":true}"#,
            SourceStatus::Critical,
        ),
        (
            r#"{"ready":true,"terminating":true}"#,
            SourceStatus::Maintenance,
        ),
        (r#"{"ready":false,"serving":true}"#, SourceStatus::Critical),
        (r#"{"ready":true,"serving":false}"#, SourceStatus::Passing),
        ("null", SourceStatus::Passing),
    ];
    for (conditions, want) in cases {
        let ep = format!(r#"{{"addresses":["10.0.0.1"],"conditions":{conditions}}}"#);
        let mut m = K8sMirror::new("ns", "api", "http");
        let feed = m.feed(&list_of(&[slice("s", &ep, HTTP)]), 200, None)?;
        assert_eq!(entry(&feed, "10.0.0.1")?.status, want, "{conditions}");
    }
    Ok(())
}

#[test]
fn slices_merge_and_a_shared_endpoint_keeps_its_best_copy() -> TestResult {
    let (_, feed) = listed("http")?;
    // api-7d9f-y7 is terminating in api-abc12 and ready in api-def34.
    let y7 = entry(&feed, "api-7d9f-y7")?;
    assert_eq!(y7.status, SourceStatus::Passing);
    assert_eq!(y7.spec.port, 8081, "the ready copy's slice port");
    assert_eq!(
        ids(&feed)?
            .iter()
            .filter(|id| **id == "api-7d9f-y7")
            .count(),
        1
    );
    Ok(())
}

#[test]
fn equal_copies_keep_the_first_slice_by_name() -> TestResult {
    let ep = r#"{"addresses":["10.0.0.1"],"targetRef":{"name":"p"}}"#;
    let body = list_of(&[
        slice("b", ep, r#"{"name":"http","port":2}"#),
        slice("a", ep, r#"{"name":"http","port":1}"#),
        slice("a2", &format!("{ep},{ep}"), r#"{"name":"http","port":3}"#),
    ]);
    let mut m = K8sMirror::new("ns", "api", "http");
    let feed = m.feed(&body, 200, None)?;
    assert_eq!(ids(&feed)?, ["p"]);
    assert_eq!(entry(&feed, "p")?.spec.port, 1);
    Ok(())
}

#[test]
fn the_empty_placeholder_slice_needs_no_port() -> TestResult {
    let (m, feed) = listed("http")?;
    assert!(feed.rejected.is_empty());
    assert!(m
        .slices
        .iter()
        .any(|s| s.name == "api-placeholder" && s.entries.is_empty()));
    Ok(())
}

#[test]
fn watch_events_apply_in_order_and_bookmarks_move_the_version() -> TestResult {
    let (mut m, _) = listed("http")?;
    let lines: Vec<&str> = WATCH.lines().collect();
    let added = m.feed(lines[0], 200, None)?;
    assert_eq!(
        entry(&added, "api-7d9f-q3")?.spec.zone.as_deref(),
        Some("us-west2-c")
    );
    assert_eq!(m.resource_version(), Some("10596"));
    let modified = m.feed(lines[1], 200, None)?;
    assert_eq!(
        entry(&modified, "api-7d9f-x2")?.status,
        SourceStatus::Maintenance
    );
    assert!(
        !ids(&modified)?.contains(&"api-7d9f-z4"),
        "gone from its slice"
    );
    assert_eq!(m.resource_version(), Some("11020"));
    let deleted = m.feed(lines[2], 200, None)?;
    // api-7d9f-y7 was in api-abc12 (no longer) and api-def34 (deleted).
    assert_eq!(ids(&deleted)?, ["api-7d9f-q3", "api-7d9f-x2"]);
    let bookmark = m.feed(lines[3], 200, None)?;
    assert!(bookmark.changes.is_empty() && bookmark.rejected.is_empty());
    assert_eq!(m.resource_version(), Some("12746"));
    assert!(m.request().path.contains("&resourceVersion=12746&"));
    Ok(())
}

#[test]
fn several_lines_in_one_feed_equal_one_at_a_time() -> TestResult {
    let (mut one, _) = listed("http")?;
    let (mut each, _) = listed("http")?;
    let together = one.feed(WATCH, 200, None)?;
    let mut last = Feed::default();
    for line in WATCH.lines() {
        let feed = each.feed(line, 200, None)?;
        if !feed.changes.is_empty() {
            last = feed;
        }
    }
    assert_eq!(one, each);
    assert_eq!(together.changes, last.changes);
    Ok(())
}

#[test]
fn deleting_an_unknown_slice_is_harmless() -> TestResult {
    let (mut m, before) = listed("http")?;
    let line = r#"{"type":"DELETED","object":{"metadata":{"name":"nope","resourceVersion":"11"}}}"#;
    let feed = m.feed(line, 200, None)?;
    assert_eq!(entries(&feed)?, entries(&before)?);
    assert_eq!(m.resource_version(), Some("11"));
    Ok(())
}

#[test]
fn error_410_in_the_stream_resets_to_a_list() -> TestResult {
    let (mut m, _) = listed("http")?;
    let feed = m.feed(ERROR_410, 200, None)?;
    assert!(feed.resync && feed.changes.is_empty());
    assert!(feed.rejected[0].message.contains("410 Expired"));
    assert_eq!(m, K8sMirror::new("shop", "api", "http"));
    assert!(!m.request().stream);
    // Events after the error in the same message are not applied.
    let (mut m, _) = listed("http")?;
    let body = format!(
        "{}\n{}",
        ERROR_410.trim(),
        WATCH.lines().next().or_fail("a watch line")?
    );
    assert!(m.feed(&body, 200, None)?.resync);
    assert_eq!(m.resource_version(), None);
    Ok(())
}

#[test]
fn http_410_resets_to_a_list_whether_listing_or_watching() -> TestResult {
    let (mut m, _) = listed("http")?;
    let feed = m.feed(STATUS_410, 410, None)?;
    assert!(feed.resync);
    assert_eq!(m, K8sMirror::new("shop", "api", "http"));
    let feed = m.feed("", 410, None)?;
    assert!(feed.resync);
    // A Status body instead of a list says the same.
    let feed = m.feed(STATUS_410, 200, None)?;
    assert!(feed.resync);
    assert_eq!(feed.rejected[0].at, "status");
    Ok(())
}

#[test]
fn other_watch_errors_resync_too() -> TestResult {
    let (mut m, _) = listed("http")?;
    let line = r#"{"type":"ERROR","object":{"kind":"Status","code":500,"reason":"InternalError","message":"boom"}}"#;
    let feed = m.feed(line, 200, None)?;
    assert!(feed.resync);
    assert!(feed.rejected[0].message.contains("500 InternalError: boom"));
    Ok(())
}

#[test]
fn other_statuses_are_errors_that_change_nothing() -> TestResult {
    let (mut m, _) = listed("http")?;
    let before = m.clone();
    for status in [401, 403, 404, 500, 504] {
        let e = m.feed("{}", status, None).failure()?;
        assert_eq!(e.code(), ErrorCode::InvalidArgument);
        assert!(e.message().contains(&status.to_string()));
        assert_eq!(m, before);
    }
    Ok(())
}

#[test]
fn malformed_slices_and_endpoints_are_rejected_and_the_rest_applies() -> TestResult {
    let mut m = K8sMirror::new("shop", "api", "http");
    let feed = m.feed(MALFORMED, 200, None)?;
    assert_eq!(ids(&feed)?, ["api-a"]);
    let got: Vec<(&str, &str)> = feed
        .rejected
        .iter()
        .map(|r| (r.at.as_str(), r.message.as_str()))
        .collect();
    let want = [
        ("api-good/endpoints[1]", "addresses[0]"),
        ("api-good/endpoints[2]", "conditions.ready"),
        ("items[1]", "metadata.name"),
        ("api-noport", "no port named `http`"),
        ("other-xyz", "kubernetes.io/service-name"),
    ];
    assert_eq!(got.len(), want.len(), "{got:?}");
    for ((at, message), (want_at, want_text)) in got.iter().zip(want) {
        assert_eq!(*at, want_at);
        assert!(message.contains(want_text), "{message} lacks {want_text}");
    }
    assert_eq!(m.resource_version(), Some("500"));
    Ok(())
}

#[test]
fn a_malformed_watch_slice_keeps_its_previous_version() -> TestResult {
    let (mut m, before) = listed("http")?;
    let line = r#"{"type":"MODIFIED","object":{"metadata":{"name":"api-abc12","resourceVersion":"12"},"addressType":"IPv4","endpoints":{}}}"#;
    let feed = m.feed(line, 200, None)?;
    assert!(feed.changes.is_empty());
    assert_eq!(feed.rejected[0].at, "api-abc12");
    assert!(feed.rejected[0]
        .message
        .contains("endpoints must be an array"));
    assert_eq!(m.resource_version(), Some("12"));
    let next = m.feed(
        WATCH.lines().nth(3).or_fail("a fourth watch line")?,
        200,
        None,
    )?;
    assert!(next.changes.is_empty());
    let (_, again) = listed("http")?;
    assert_eq!(entries(&before)?, entries(&again)?);
    Ok(())
}

#[test]
fn payloads_of_the_wrong_shape_are_errors_that_change_nothing() -> TestResult {
    let mut m = K8sMirror::new("shop", "api", "http");
    for body in [
        "[]",
        "{}",
        r#"{"metadata":{}}"#,
        r#"{"metadata":{"resourceVersion":"1"},"items":{}}"#,
        "",
        "{",
    ] {
        let e = m.feed(body, 200, None).failure()?;
        assert_eq!(e.code(), ErrorCode::InvalidArgument, "{body}");
        assert!(e.message().contains("body"), "{e}");
        assert_eq!(m.resource_version(), None);
    }
    m.feed(LIST, 200, None)?;
    let before = m.clone();
    let good = WATCH.lines().next().or_fail("a watch line")?;
    for body in [
        "",
        "\n \n",
        "[]",
        r#"{"type":"ADDED"}"#,
        r#"{"type":"RENAMED","object":{}}"#,
        r#"{"object":{}}"#,
        &format!("{good}\nnot json"),
        &format!("{good}\n{{\"type\":\"ADDED\",\"object\":[]}}"),
    ] {
        let e = m.feed(body, 200, None).failure()?;
        assert_eq!(e.code(), ErrorCode::InvalidArgument, "{body}");
        assert_eq!(m, before, "{body}");
    }
    Ok(())
}

#[test]
fn state_round_trips_and_resumes_the_watch() -> TestResult {
    let (mut m, _) = listed("http")?;
    let mut out = String::new();
    m.write_state(&mut out);
    let mut back = K8sMirror::new("shop", "api", "http");
    back.restore_state(&Json::parse(&out)?)?;
    assert_eq!(back, m);
    assert_eq!(back.request(), m.request());
    let line = WATCH.lines().next().or_fail("a watch line")?;
    assert_eq!(back.feed(line, 200, None)?, m.feed(line, 200, None)?);
    let mut fresh = String::new();
    K8sMirror::new("shop", "api", "http").write_state(&mut fresh);
    assert_eq!(fresh, r#"{"resource_version":null,"slices":[]}"#);
    Ok(())
}

#[test]
fn a_bad_state_is_invalid_snapshot_and_changes_nothing() -> TestResult {
    let (mut m, _) = listed("http")?;
    let before = m.clone();
    let entry = r#"{"id":"a","service":"api","address":"10.0.0.1","port":80}"#;
    for bad in [
        "[]".to_string(),
        r#"{"slices":[]}"#.to_string(),
        r#"{"resource_version":"","slices":[]}"#.to_string(),
        r#"{"resource_version":"1"}"#.to_string(),
        r#"{"resource_version":"1","slices":[],"x":1}"#.to_string(),
        r#"{"resource_version":null,"slices":[{"name":"a","entries":[]}]}"#.to_string(),
        r#"{"resource_version":"1","slices":[{"name":"b","entries":[]},{"name":"a","entries":[]}]}"#.to_string(),
        r#"{"resource_version":"1","slices":[{"name":"","entries":[]}]}"#.to_string(),
        format!(r#"{{"resource_version":"1","slices":[{{"name":"a","entries":[[{entry},"sick"]]}}]}}"#),
        format!(r#"{{"resource_version":"1","slices":[{{"name":"a","entries":[[{entry}]]}}]}}"#),
        r#"{"resource_version":"1","slices":[{"name":"a","entries":[[{"id":"a","service":"web","address":"h","port":1},"passing"]]}]}"#.to_string(),
        r#"{"resource_version":"1","slices":[{"name":"a","entries":[[{"id":"a","service":"api","address":"h","port":0},"passing"]]}]}"#.to_string(),
    ] {
        let e = m.restore_state(&Json::parse(&bad)?).failure()?;
        assert_eq!(e.code(), ErrorCode::InvalidSnapshot, "{bad}");
        assert!(e.message().contains("k8s mirror state"), "{e}");
        assert_eq!(m, before, "{bad}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn no_json_value_panics(value in fuzz::json(), status in prop::sample::select(&[200u16, 410, 500][..])) {
        let text = value.to_json();
        let mut listing = K8sMirror::new("shop", "api", "http");
        let _ = listing.feed(&text, status, None);
        let (mut watching, _) = listed("")?;
        let _ = watching.feed(&text, status, None);
        let _ = watching.restore_state(&value);
    }

    #[test]
    fn no_mutated_fixture_panics(
        which in 0usize..5,
        at in any::<prop::sample::Index>(),
        with in fuzz::json(),
        text in "[\\[\\]{}\",:0-9a-z -]{0,3}",
        cut in any::<bool>(),
    ) {
        let fixture = [LIST, WATCH, ERROR_410, STATUS_410, MALFORMED][which];
        let mutants = if which == 1 {
            // Mutate one line of the stream, keep the others.
            let lines: Vec<String> = WATCH
                .lines()
                .enumerate()
                .map(|(i, l)| if i == at.index(4) { fuzz::mutate(l, at, &with) } else { l.to_string() })
                .collect();
            [lines.join("\n"), fuzz::garble(fixture, at, &text, cut)]
        } else {
            [fuzz::mutate(fixture, at, &with), fuzz::garble(fixture, at, &text, cut)]
        };
        for body in mutants {
            let mut listing = K8sMirror::new("shop", "api", "http");
            let (mut watching, _) = listed("http")?;
            for m in [&mut listing, &mut watching] {
                if let Ok(feed) = m.feed(&body, 200, None) {
                    for change in &feed.changes {
                        if let Change::ReplaceService(_, entries) = change {
                            for e in entries {
                                prop_assert!(e.spec.validate().is_ok());
                            }
                        }
                    }
                    let mut state = String::new();
                    m.write_state(&mut state);
                    let mut back = K8sMirror::new("shop", "api", "http");
                    prop_assert!(back.restore_state(&Json::parse(&state).map_err(fail)?).is_ok(), "{}", state);
                    prop_assert_eq!(&back, &*m);
                }
            }
        }
    }
}
