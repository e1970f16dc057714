use super::*;
use crate::error::ErrorCode;
use crate::json::{get, Json};
use crate::source::SourceStatus;
use crate::testing::{fail, Present, Refused, TestResult};
use std::string::ToString;

const CASES: &str = include_str!("../../../../tests/fixtures/consul/registration.json");

const PAY: &str = r#"{"id": "pay-1", "service": "pay", "address": "10.0.0.9", "port": 9000"#;

fn with(extra: &str) -> String {
    format!("{PAY}{extra}}}")
}

fn body(r: &ConsulRegistration) -> TestResult<Json> {
    Ok(Json::parse(&r.body)?)
}

fn at<'a>(v: &'a Json, path: &[&str]) -> TestResult<&'a Json> {
    let mut v = v;
    for key in path {
        v = v.get(key).or_fail(path.join("."))?;
    }
    Ok(v)
}

fn code(entry: &str, ttl_s: u64, deregister_after_s: u64) -> TestResult<(ErrorCode, String)> {
    let e = ConsulRegistration::new(entry, ttl_s, deregister_after_s).failure()?;
    Ok((e.code(), e.to_string()))
}

#[test]
fn maps_every_field_in_the_documented_order() -> TestResult {
    let r = ConsulRegistration::new(
        &with(
            r#", "weight": 5, "tags": ["v2", "eu"], "meta": {"build": "41"}, "zone": "eu-1a", "priority": 3, "ttl_ms": 900"#,
        ),
        10,
        60,
    )?;
    assert_eq!(
        r.body,
        r#"{"ID":"pay-1","Name":"pay","Address":"10.0.0.9","Port":9000,"Tags":["v2","eu"],"Meta":{"build":"41"},"Weights":{"Passing":5,"Warning":1},"Check":{"CheckID":"service:pay-1","Name":"waypost TTL for pay-1","TTL":"10s","Status":"passing","DeregisterCriticalServiceAfter":"60s"},"Locality":{"Zone":"eu-1a"}}"#
    );
    assert_eq!((r.id.as_str(), r.service.as_str()), ("pay-1", "pay"));
    assert_eq!(r.check_id, "service:pay-1");
    assert_eq!(r.heartbeat_path, "/v1/agent/check/pass/service:pay-1");
    assert!(!r.maintenance);
    assert_eq!(r.deregister_path, "/v1/agent/service/deregister/pay-1");
    assert_eq!(
        r.maintenance_on_path,
        "/v1/agent/service/maintenance/pay-1?enable=true&reason=waypost%3A%20maintenance"
    );
    assert_eq!(
        r.maintenance_off_path,
        "/v1/agent/service/maintenance/pay-1?enable=false"
    );
    Ok(())
}

#[test]
fn defaults_and_no_zone() -> TestResult {
    for extra in [
        "",
        r#", "zone": """#,
        r#", "zone": null, "tags": null, "meta": null"#,
    ] {
        let r = ConsulRegistration::new(&with(extra), 1, 1)?;
        let b = body(&r)?;
        assert_eq!(b.get("Locality"), None, "{extra}");
        assert_eq!(at(&b, &["Weights", "Passing"])?.as_u64(), Some(1));
        assert_eq!(at(&b, &["Tags"])?.as_array().map(<[_]>::len), Some(0));
        assert_eq!(at(&b, &["Meta"])?.as_object().map(<[_]>::len), Some(0));
        assert_eq!(at(&b, &["Check", "TTL"])?.as_str(), Some("1s"));
    }
    Ok(())
}

#[test]
fn each_status_maps_to_a_check_status_a_heartbeat_and_maintenance() -> TestResult {
    let table = [
        (None, "passing", "pass", false),
        (Some("passing"), "passing", "pass", false),
        (Some("warning"), "warning", "warn", false),
        (Some("critical"), "critical", "fail", false),
        (Some("maintenance"), "passing", "pass", true),
    ];
    for (status, check, verb, maintenance) in table {
        let extra = status.map_or_else(String::new, |s| format!(r#", "status": "{s}""#));
        let r = ConsulRegistration::new(&with(&extra), 10, 60)?;
        assert_eq!(
            at(&body(&r)?, &["Check", "Status"])?.as_str(),
            Some(check),
            "{status:?}"
        );
        assert_eq!(
            r.heartbeat_path,
            format!("/v1/agent/check/{verb}/service:pay-1")
        );
        assert_eq!(r.maintenance, maintenance, "{status:?}");
    }
    // Every status the mirror reads is one a registrar can send.
    assert_eq!(SourceStatus::ALL.len(), table.len() - 1);
    Ok(())
}

#[test]
fn the_id_is_escaped_in_the_paths_only() -> TestResult {
    let entry = r#"{"id": "a b/c:d?é&+", "service": "pay", "address": "h", "port": 1}"#;
    let r = ConsulRegistration::new(entry, 10, 60)?;
    let id = "a%20b%2Fc%3Ad%3F%C3%A9%26%2B";
    assert_eq!(
        r.heartbeat_path,
        format!("/v1/agent/check/pass/service:{id}")
    );
    assert_eq!(
        r.deregister_path,
        format!("/v1/agent/service/deregister/{id}")
    );
    // One escaping for the id and the reason: a space is `%20`, never `+`.
    assert_eq!(
        r.maintenance_on_path,
        format!("/v1/agent/service/maintenance/{id}?enable=true&reason=waypost%3A%20maintenance")
    );
    assert_eq!(
        r.maintenance_off_path,
        format!("/v1/agent/service/maintenance/{id}?enable=false")
    );
    assert_eq!(CONSUL_MAINTENANCE_REASON, "waypost: maintenance");
    let r = ConsulRegistration::new(
        r#"{"id": "a b/c:d?é", "service": "pay", "address": "h", "port": 1}"#,
        10,
        60,
    )?;
    assert_eq!(r.check_id, "service:a b/c:d?é");
    assert_eq!(
        at(&body(&r)?, &["Check", "CheckID"])?.as_str(),
        Some("service:a b/c:d?é")
    );
    // JSON escaping in the body: quotes and backslashes.
    let entry =
        r#"{"id": "q\"\\", "service": "pay", "address": "h", "port": 1, "meta": {"k": "\"v\""}}"#;
    let r = ConsulRegistration::new(entry, 10, 60)?;
    let b = body(&r)?;
    assert_eq!(at(&b, &["ID"])?.as_str(), Some("q\"\\"));
    assert_eq!(at(&b, &["Meta", "k"])?.as_str(), Some("\"v\""));
    assert!(r.body.contains(r#""ID":"q\"\\""#), "{}", r.body);
    Ok(())
}

#[test]
fn a_source_member_is_ignored_as_every_entry_reader_does() -> TestResult {
    let a = ConsulRegistration::new(&with(r#", "source": "consul""#), 10, 60)?;
    assert_eq!(a, ConsulRegistration::new(&with(""), 10, 60)?);
    Ok(())
}

#[test]
fn bad_instances_are_invalid_argument_naming_the_field() -> TestResult {
    let cases = [
        ("not json", "instance"),
        ("[]", "instance"),
        (r#"{"id": "a"}"#, "port"),
        (r#"{"id": "a", "port": 1}"#, "service"),
        (r#"{"service": "pay", "address": "h", "port": 1}"#, "id"),
        (
            r#"{"id": "a", "service": "pay", "address": "h", "port": 0}"#,
            "port",
        ),
        (
            r#"{"id": "a", "service": "pay", "address": "h", "port": 1, "weight": 0}"#,
            "weight",
        ),
        (
            r#"{"id": "a", "service": "pay", "address": "h", "port": 1, "status": "draining"}"#,
            "status",
        ),
        (
            r#"{"id": "a", "service": "pay", "address": "h", "port": 1, "status": 1}"#,
            "status",
        ),
        (
            r#"{"id": "a", "service": "pay", "address": "h", "port": 1, "colour": "red"}"#,
            "colour",
        ),
    ];
    for (entry, field) in cases {
        let (code, message) = code(entry, 10, 60)?;
        assert_eq!(code, ErrorCode::InvalidArgument, "{entry}");
        assert!(
            message.contains(&format!("`{field}`")),
            "{entry}: {message}"
        );
    }
    Ok(())
}

#[test]
fn ttl_and_deregister_after_are_bounded() -> TestResult {
    let ok = with("");
    for (ttl, dereg, field) in [
        (0, 60, Some("ttl_s")),
        (MAX_CONSUL_CHECK_S + 1, 60, Some("ttl_s")),
        (10, 0, Some("deregister_after_s")),
        (10, u64::MAX, Some("deregister_after_s")),
        (1, 1, None),
        (MAX_CONSUL_CHECK_S, MAX_CONSUL_CHECK_S, None),
    ] {
        match field {
            Some(field) => {
                let (code, message) = code(&ok, ttl, dereg)?;
                assert_eq!(code, ErrorCode::InvalidArgument);
                assert!(message.contains(&format!("`{field}`")), "{message}");
            }
            None => {
                let r = ConsulRegistration::new(&ok, ttl, dereg)?;
                let b = body(&r)?;
                assert_eq!(
                    at(&b, &["Check", "TTL"])?.as_str(),
                    Some(format!("{ttl}s").as_str())
                );
                let after = at(&b, &["Check", "DeregisterCriticalServiceAfter"])?;
                assert_eq!(after.as_str(), Some(format!("{dereg}s").as_str()));
            }
        }
    }
    // The bound is checked before the instance: a bad TTL is named first.
    assert!(code("not json", 0, 60)?.1.contains("`ttl_s`"));
    Ok(())
}

#[test]
fn the_registration_round_trips_to_what_the_mirror_reads_back() -> TestResult {
    // The mirror reads `Service` from the agent's answer: the body is it.
    let r = ConsulRegistration::new(
        &with(r#", "weight": 7, "tags": ["x"], "zone": "z1", "status": "warning""#),
        10,
        60,
    )?;
    let service = r.body.clone();
    let check = format!(
        r#"{{"CheckID":"{}","Status":"warning","ServiceID":"pay-1"}}"#,
        r.check_id
    );
    let answer = format!(
        r#"[{{"Node":{{"Node":"n1","Address":"10.1.1.1"}},"Service":{},"Checks":[{check}]}}]"#,
        service.replace(r#""Name":"pay""#, r#""Service":"pay""#)
    );
    let feed = ConsulMirror::new("pay").feed(&answer, 200, Some("3"))?;
    let [Change::ReplaceService(_, entries)] = feed.changes.as_slice() else {
        return Err(fail(format!("{feed:?}")));
    };
    let entry = entries.first().or_fail("one entry")?;
    assert_eq!(entry.status, SourceStatus::Warning);
    assert_eq!(entry.spec.zone.as_deref(), Some("z1"));
    assert_eq!(
        (entry.spec.port, entry.spec.tags.clone()),
        (9000, vec!["x".to_string()])
    );
    // A warning check reads Weights.Warning, which the registrar sets to 1.
    assert_eq!(entry.spec.weight, 1);
    Ok(())
}

#[test]
fn to_json_carries_the_body_as_text() -> TestResult {
    let r = ConsulRegistration::new(&with(r#", "status": "maintenance""#), 10, 60)?;
    let v = Json::parse(&r.to_json())?;
    let members = v.as_object().or_fail("an object")?;
    let keys: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "id",
            "service",
            "check_id",
            "body",
            "heartbeat_path",
            "maintenance",
            "deregister_path",
            "maintenance_on_path",
            "maintenance_off_path"
        ]
    );
    assert_eq!(
        get(members, "body").and_then(Json::as_str),
        Some(r.body.as_str())
    );
    assert_eq!(
        get(members, "maintenance").and_then(Json::as_bool),
        Some(true)
    );
    Ok(())
}

/// The cases every binding's test runs (tests/fixtures/consul/registration.json):
/// the same instance gives the same bytes in every language.
#[test]
fn the_shared_fixture_holds() -> TestResult {
    let doc = Json::parse(CASES)?;
    let cases = doc.get("cases").and_then(Json::as_array).or_fail("cases")?;
    assert!(cases.len() >= 5);
    for case in cases {
        let name = case.get("name").and_then(Json::as_str).or_fail("name")?;
        let instance = case.get("instance").or_fail("instance")?.to_json();
        let ttl = case.get("ttl_s").and_then(Json::as_u64).or_fail("ttl_s")?;
        let dereg = case
            .get("deregister_after_s")
            .and_then(Json::as_u64)
            .or_fail("deregister_after_s")?;
        match (case.get("expect"), case.get("error").and_then(Json::as_str)) {
            (Some(expect), None) => {
                let got = Json::parse(&ConsulRegistration::new(&instance, ttl, dereg)?.to_json())?;
                assert_eq!(&got, expect, "{name}");
            }
            (None, Some(error)) => {
                let e = ConsulRegistration::new(&instance, ttl, dereg).failure()?;
                assert_eq!(e.code().as_str(), error, "{name}");
            }
            _ => return Err(fail(format!("{name}: needs one of expect, error"))),
        }
    }
    Ok(())
}

proptest::proptest! {
    /// Whatever an instance holds, the registration is an error or a body
    /// that is JSON naming that instance; nothing panics.
    #[test]
    fn any_entry_gives_an_error_or_a_readable_body(
        members in proptest::collection::vec(
            (proptest::sample::select(&["id", "service", "address", "port", "weight", "tags", "meta", "zone", "status", "x"][..]), super::fuzz::json()),
            0..8,
        ),
        ttl_s in 0u64..100_000,
        deregister_after_s in proptest::prelude::any::<u64>(),
    ) {
        let entry = Json::Object(members.into_iter().map(|(k, v)| (k.to_string(), v)).collect()).to_json();
        if let Ok(r) = ConsulRegistration::new(&entry, ttl_s, deregister_after_s) {
            let body = Json::parse(&r.body).map_err(proptest::test_runner::TestCaseError::fail)?;
            proptest::prop_assert_eq!(body.get("ID").and_then(Json::as_str), Some(r.id.as_str()));
            proptest::prop_assert!(r.heartbeat_path.starts_with("/v1/agent/check/"));
            // Every path is one segment per piece: the id never adds a `/`, `?` or `&`.
            for path in [&r.heartbeat_path, &r.deregister_path, &r.maintenance_on_path, &r.maintenance_off_path] {
                proptest::prop_assert_eq!(path.matches('/').count(), 5, "{}", path);
                proptest::prop_assert!(path.bytes().all(|b| b.is_ascii_graphic()), "{}", path);
            }
            proptest::prop_assert_eq!(r.maintenance_on_path.matches('&').count(), 1);
            proptest::prop_assert!(Json::parse(&r.to_json()).is_ok());
        }
    }
}
