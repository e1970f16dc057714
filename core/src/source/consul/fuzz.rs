//! What the adapters' no-panic property tests feed them: arbitrary JSON,
//! and fixtures with one value swapped for arbitrary JSON.

use proptest::prelude::*;
use std::string::String;

use crate::json::{Json, Number};

/// Any JSON value, a few levels deep, biased towards the names and values
/// the adapters look for so that deep paths are reached.
pub(crate) fn json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<u64>().prop_map(|n| Json::Number(Number::UInt(n))),
        (0u64..70_000).prop_map(|n| Json::Number(Number::UInt(n))),
        any::<i64>().prop_map(|n| Json::Number(Number::Int(n.min(-1)))),
        (-1e6f64..1e6).prop_map(|f| Json::Number(Number::Float(f))),
        word().prop_map(Json::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            proptest::collection::vec((word(), inner), 0..6).prop_map(Json::Object),
        ]
    })
}

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(
            &[
                "",
                "ID",
                "Service",
                "Node",
                "Address",
                "Port",
                "Tags",
                "Meta",
                "Weights",
                "Passing",
                "Warning",
                "Checks",
                "Status",
                "CheckID",
                "ServiceID",
                "passing",
                "warning",
                "critical",
                "_node_maintenance",
                "_service_maintenance:a",
                "Locality",
                "Zone",
                "zone",
                "type",
                "object",
                "ADDED",
                "MODIFIED",
                "DELETED",
                "BOOKMARK",
                "ERROR",
                "metadata",
                "name",
                "resourceVersion",
                "items",
                "endpoints",
                "addresses",
                "conditions",
                "ready",
                "serving",
                "terminating",
                "ports",
                "port",
                "targetRef",
                "addressType",
                "IPv4",
                "kind",
                "Status",
                "code",
                "labels",
                "kubernetes.io/service-name",
                "api",
                "web",
                "http",
            ][..]
        )
        .prop_map(String::from),
        "[ -~]{0,6}",
        "\\PC{0,4}",
    ]
}

/// Counts the values in `v` (itself included).
pub(crate) fn size(v: &Json) -> usize {
    1 + match v {
        Json::Array(items) => items.iter().map(size).sum(),
        Json::Object(members) => members.iter().map(|(_, m)| size(m)).sum(),
        _ => 0,
    }
}

/// Replaces the `n`th value of `v` in pre-order with `with`.
pub(crate) fn replace_nth(v: &mut Json, n: &mut usize, with: &Json) -> bool {
    if *n == 0 {
        *v = with.clone();
        return true;
    }
    *n -= 1;
    match v {
        Json::Array(items) => items.iter_mut().any(|item| replace_nth(item, n, with)),
        Json::Object(members) => members.iter_mut().any(|(_, m)| replace_nth(m, n, with)),
        _ => false,
    }
}

/// `text` with one value replaced: the fixture, but wrong in one place.
pub(crate) fn mutate(text: &str, at: prop::sample::Index, with: &Json) -> String {
    let Ok(mut value) = Json::parse(text) else {
        return String::from(text);
    };
    let mut n = at.index(size(&value));
    replace_nth(&mut value, &mut n, with);
    value.to_json()
}

/// `text` cut at, or with one character replaced at, a byte position.
pub(crate) fn garble(text: &str, at: prop::sample::Index, with: &str, cut: bool) -> String {
    let mut i = at.index(text.len().max(1)).min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    let (head, tail) = text.split_at(i);
    if cut {
        return String::from(head);
    }
    let rest: String = tail.chars().skip(1).collect();
    let mut out = String::from(head);
    out.push_str(with);
    out.push_str(&rest);
    out
}
