//! The core's JSON reader and writer through the public API: grammar,
//! escapes, numbers, nesting, error positions, and a float reader that
//! rounds exactly like the standard library's.

use proptest::prelude::*;
use waypost::json::{write_i64, write_u64, Json, MAX_DEPTH};

/// A number read as the core reads it; `None` when the reader refuses it.
fn parse(text: &str) -> Option<f64> {
    Json::parse(text).ok().and_then(|v| v.as_f64())
}

fn round(text: &str) -> String {
    Json::parse(text).unwrap().to_json()
}

#[test]
fn reads_and_writes_every_kind() {
    assert_eq!(
        round(r#" {"a": [1, -2, 0.5, 1e3, true, false, null], "b": "x\"\\\n\u0001é😀"} "#),
        r#"{"a":[1,-2,0.5,1000.0,true,false,null],"b":"x\"\\\n\u0001é😀"}"#
    );
    assert_eq!(round(r#""\ud83d\ude00\/""#), "\"😀/\"");
    assert_eq!(round("18446744073709551615"), "18446744073709551615");
    assert_eq!(round("18446744073709551616"), "1.8446744073709552e+19");
    assert_eq!(round("-9223372036854775808"), "-9223372036854775808");
    assert_eq!(round("-0"), "-0.0");
    assert_eq!(round("0.1"), "0.1");
    assert_eq!(round("1E-7"), "1e-7");
}

#[test]
fn numbers_keep_their_kind() {
    assert_eq!(Json::parse("5").unwrap().as_u64(), Some(5));
    assert_eq!(Json::parse("5.0").unwrap().as_u64(), None);
    assert_eq!(Json::parse("-5").unwrap().as_u64(), None);
    assert_eq!(Json::parse("-5").unwrap().as_i64(), Some(-5));
    assert_eq!(Json::parse("-5").unwrap().as_f64(), Some(-5.0));
    assert_eq!(Json::parse("0.25").unwrap().as_f64(), Some(0.25));
    // Correctly rounded even with 17 significant digits (a reader that
    // is not is one ULP off here, and a restored threshold would drift).
    let f = 0.195_372_385_116_301_62_f64;
    assert_eq!(
        Json::parse("0.19537238511630162").unwrap().as_f64(),
        Some(f)
    );
    assert_eq!(Json::from(f).to_json(), "0.19537238511630162");
}

#[test]
fn rejects_what_rfc_8259_rejects() {
    for bad in [
        "",
        " ",
        "[",
        "]",
        "{",
        "{\"a\"}",
        "{\"a\":}",
        "{a:1}",
        "[1,]",
        "{\"a\":1,}",
        "01",
        "1.",
        ".5",
        "-",
        "1e",
        "+1",
        "nul",
        "tru",
        "\"abc",
        "\"\\x\"",
        "\"\\u12\"",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"\\ud800\\u0041\"",
        "\"a\u{1}\"",
        "1 2",
        "[1]x",
        "1e400",
        "-1e400",
        "NaN",
        "Infinity",
        "'a'",
        "[1;2]",
    ] {
        assert!(Json::parse(bad).is_err(), "{bad:?} was accepted");
    }
}

#[test]
fn nesting_is_limited() {
    let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
    assert!(Json::parse(&ok).is_ok());
    let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
    assert!(Json::parse(&deep).unwrap_err().contains("recursion limit"));
    let hostile = "{\"a\":".repeat(100_000);
    assert!(Json::parse(&hostile).is_err());
}

#[test]
fn errors_say_where() {
    assert_eq!(
        Json::parse("{\n  \"a\": x}").unwrap_err(),
        "expected value at line 2 column 8"
    );
}

#[test]
fn repeated_keys_last_wins() {
    let v = Json::parse(r#"{"a":1,"a":2}"#).unwrap();
    assert_eq!(v.get("a").and_then(Json::as_u64), Some(2));
    assert_eq!(v.get("b"), None);
}

#[test]
fn escapes_control_characters() {
    let s: String = (0u8..0x20)
        .map(char::from)
        .chain("\"\\é\u{7f}".chars())
        .collect();
    let text = Json::String(s.clone()).to_json();
    assert!(text.is_ascii() || text.contains('é'));
    assert_eq!(Json::parse(&text).unwrap(), Json::String(s));
    assert_eq!(Json::from("\u{1f}\u{8}").to_json(), r#""\u001f\b""#);
}

#[test]
fn integers_are_written_exactly() {
    for n in [0u64, 7, 10, 99, 100, 12345, u64::MAX] {
        let mut s = String::new();
        write_u64(&mut s, n);
        assert_eq!(s, n.to_string());
    }
    for n in [i64::MIN, -1, 0, 1, i64::MAX] {
        let mut s = String::new();
        write_i64(&mut s, n);
        assert_eq!(s, n.to_string());
    }
}

fn check(text: &str) {
    let want: f64 = text.parse().unwrap();
    let got = parse(text);
    if want.is_finite() {
        assert_eq!(got.map(f64::to_bits), Some(want.to_bits()), "{text}");
    } else {
        assert_eq!(got, None, "{text}");
    }
}

#[test]
fn hard_cases_round_like_the_standard_reader() {
    for text in [
        "0",
        "-0",
        "0.0",
        "1",
        "0.5",
        "0.1",
        "0.30000000000000004",
        "0.19537238511630162",
        "9007199254740993",
        "9007199254740992",
        "9007199254740995",
        "1e22",
        "1e23",
        "123456789012345678901234567890",
        "1.7976931348623157e308",
        "1.7976931348623158e308",
        "1.7976931348623159e308",
        "1e309",
        "2.2250738585072011e-308",
        "2.2250738585072014e-308",
        "4.9406564584124654e-324",
        "5e-324",
        "2.4703282292062327e-324",
        "2.4703282292062328e-324",
        "1e-400",
        "1e-330",
        "0.000000000000000000000000000001",
        "7.2057594037927933e16",
        "3.0517578125e-05",
        "2.225073858507201136057409796709131975934819546351645648e-308",
        "1.00000000000000011102230246251565404236316680908203125",
        "1.00000000000000011102230246251565404236316680908203124",
        "1.00000000000000011102230246251565404236316680908203126",
        "-123.456e-7",
        // Ties with an odd and with an even lower neighbour, written with a
        // fraction or an exponent so that they are read as floats.
        "9007199254740993.0",
        "9007199254740995.0",
        "9007199254740995e0",
        "1.00000000000000033306690738754696212708950042724609375",
        "1.00000000000000033306690738754696212708950042724609374",
        "1E+2",
        "1e-0",
    ] {
        check(text);
    }
    let long = format!(
        "1.00000000000000011102230246251565404236316680908203125{}1",
        "0".repeat(900)
    );
    check(&long);
    let long_tie = format!(
        "1.00000000000000011102230246251565404236316680908203125{}",
        "0".repeat(900)
    );
    check(&long_tie);
}

proptest! {
    #[test]
    fn every_shortest_form_reads_back(bits in any::<u64>()) {
        let f = f64::from_bits(bits);
        if f.is_finite() {
            let text = Json::from(f).to_json();
            prop_assert_eq!(parse(&text).map(f64::to_bits), Some(bits), "{}", text);
        }
    }

    #[test]
    fn decimal_strings_round_like_the_standard_reader(
        int in "[1-9][0-9]{0,25}",
        frac in proptest::option::of("[0-9]{1,25}"),
        exp in proptest::option::of(-340i32..320),
    ) {
        let mut text = int;
        if let Some(f) = frac {
            text = format!("{text}.{f}");
        }
        if let Some(e) = exp {
            text = format!("{text}e{e}");
        }
        check(&text);
    }
}

/// A string body of plain runs (any length, so the reader's sixteen-byte
/// scan meets its special bytes at every offset) and the bytes a string
/// cannot hold as they are.
fn string_body() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(
        prop_oneof![
            4 => "[a-zA-Z0-9+/=é ]{0,40}",
            1 => Just("\"".to_string()),
            1 => Just("\\".to_string()),
            1 => Just("\n".to_string()),
            1 => Just("\u{1}".to_string()),
            1 => Just("\u{7f}".to_string()),
        ],
        0..8,
    )
}

proptest! {
    /// Every string reads back whatever lies around its escapes; the same
    /// bytes raw (a quote ends it early, a control character is refused)
    /// read as serde_json reads them.
    #[test]
    fn strings_read_back_at_every_offset(parts in string_body()) {
        let s: String = parts.concat();
        let quoted = serde_json::to_string(&s).unwrap();
        prop_assert_eq!(Json::parse(&quoted).unwrap(), Json::String(s.clone()));
        let raw = format!("\"{s}\"");
        prop_assert_eq!(
            Json::parse(&raw).ok().and_then(|v| v.as_str().map(String::from)),
            serde_json::from_str::<String>(&raw).ok()
        );
    }
}

/// The field an `invalid_argument` names, or the snapshot error's text.
fn fault<T: core::fmt::Debug>(read: Result<T, waypost::Error>) -> String {
    match read {
        Ok(v) => format!("read: {v:?}"),
        Err(waypost::Error::InvalidArgument { field, .. }) => field,
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_object_reader_lets_the_last_value_of_a_key_count_alone() {
    // An earlier value is not read at all: a bad one does not fail a
    // document whose last value is good.
    let config = waypost::Config::from_json(r#"{"ttl_ms": "x", "ttl_ms": 5000}"#);
    assert_eq!(config.map(|c| c.ttl_ms), Ok(5000));
    let spec = waypost::InstanceSpec::from_json(
        r#"{"id":"a","service":"s","address":"h","port":"x","port":8,"weight":"y","weight":3}"#,
    );
    assert_eq!(spec.map(|s| (s.port, s.weight)), Ok((8, 3)));
    let filter = waypost::Filter::from_json(r#"{"tags": 5, "tags": ["b"], "meta": 1, "meta": {}}"#);
    assert_eq!(filter.map(|f| f.tags), Ok(vec!["b".to_owned()]));
    let entry = waypost::SourceEntry::from_json(
        r#"{"status":"bad","status":"warning","id":"a","service":"s","address":"h","port":1}"#,
    );
    assert_eq!(entry.map(|e| e.status), Ok(waypost::SourceStatus::Warning));
    let options =
        waypost::SourceKind::from_json(r#"{"kind": 1, "kind": "consul", "service": "api"}"#);
    assert_eq!(options.map(|k| k.name()), Ok("consul"));
}

#[test]
fn an_object_with_several_faults_gets_the_first_in_the_readers_order() {
    // Known fields in the reader's order, then the first unknown member,
    // then the rules between fields (SPEC §8).
    let spec = |text: &str| fault(waypost::InstanceSpec::from_json(text));
    let base = r#""id":"a","service":"s","address":"h""#;
    assert_eq!(
        spec(&format!(r#"{{"zz":1,{base},"weight":"w","port":"p"}}"#)),
        "port"
    );
    assert_eq!(
        spec(&format!(r#"{{"zz":1,{base},"port":1,"tags":5}}"#)),
        "tags"
    );
    assert_eq!(spec(&format!(r#"{{"yy":1,{base},"port":1,"zz":1}}"#)), "yy");
    assert_eq!(spec(&format!(r#"{{{base},"port":0,"zz":1}}"#)), "zz");
    assert_eq!(spec(&format!(r#"{{{base},"port":0}}"#)), "port");
    let config = |text: &str| fault(waypost::Config::from_json(text));
    assert_eq!(
        config(r#"{"zz": 1, "evict_after_ms": "x", "ttl_ms": "y"}"#),
        "ttl_ms"
    );
    assert_eq!(config(r#"{"zz": 1, "ttl_ms": 5}"#), "zz");
    let filter = |text: &str| {
        waypost::Filter::from_json(text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(filter(r#"{"zz": 1, "meta": 2, "tags": 3}"#).contains("tags must be"));
    assert!(filter(r#"{"zz": 1, "meta": 2}"#).contains("meta must be"));
    assert!(filter(r#"{"zz": 1, "yy": 2}"#).contains("unknown key `zz`"));
    let entry = |text: &str| fault(waypost::SourceEntry::from_json(text));
    assert_eq!(
        entry(&format!(r#"{{"zz":1,{base},"port":"p","status":5}}"#)),
        "status"
    );
    let options = |text: &str| fault(waypost::SourceKind::from_json(text));
    assert_eq!(
        options(r#"{"zz": 1, "kind": "etcd", "prefix": 5}"#),
        "prefix"
    );
    assert_eq!(
        options(r#"{"zz": 1, "kind": "etcd", "prefix": "/p"}"#),
        "zz"
    );
    assert_eq!(options(r#"{"zz": 1, "kind": "nope"}"#), "kind");
}
