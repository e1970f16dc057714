//! Fuzzing every parser with arbitrary and mutated input: no panic, and a
//! snapshot that restores is a consistent registry.

use proptest::prelude::*;
use waypost::{Config, InstanceSpec, PickOptions, Registry, Strategy};

fn sample_snapshot() -> String {
    let mut reg = Registry::new(Config {
        seed: 9,
        panic_threshold: 0.5,
        slow_start_ms: 1_000,
        ..Config::default()
    })
    .unwrap();
    for i in 0..6 {
        let mut spec = InstanceSpec::new(
            format!("i{i}"),
            if i % 2 == 0 { "a" } else { "b" },
            "10.0.0.1",
            80,
        );
        spec.weight = i + 1;
        spec.tags = vec!["x".into()];
        spec.check_interval_ms = Some(500);
        reg.register(spec, 0).unwrap();
    }
    reg.report_outcome("i1", false, 10).unwrap();
    reg.report_check("i2", waypost::CheckStatus::Warn, 20)
        .unwrap();
    reg.drain("i3", true, 30).unwrap();
    reg.pick(
        "a",
        Strategy::WeightedRoundRobin,
        &PickOptions::default(),
        40,
    )
    .unwrap();
    reg.tick(31_000);
    reg.snapshot()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,200}") {
        let _ = Config::from_json(&text);
        let _ = InstanceSpec::from_json(&text);
        let _ = Registry::restore(&text);
    }

    #[test]
    fn json_shaped_text_never_panics(text in r#"\{("[a-z_]{1,12}":(-?[0-9]{1,22}(\.[0-9]+)?|"[^"]{0,8}"|\[\]|null|true|\{\}),?){0,6}\}"#) {
        let _ = Config::from_json(&text);
        if let Ok(spec) = InstanceSpec::from_json(&text) {
            let mut reg = Registry::new(Config::default()).unwrap();
            reg.register(spec, 0).unwrap();
        }
    }

    #[test]
    fn mutated_snapshots_restore_consistently_or_fail_cleanly(pos in any::<prop::sample::Index>(), replacement in "[0-9a-z\"{}\\[\\],:.-]{0,3}", cut in any::<bool>()) {
        let text = sample_snapshot();
        let mut at = pos.index(text.len());
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let mutated = if cut {
            text[..at].to_string()
        } else {
            format!("{}{}{}", &text[..at], replacement, &text[(at + 1).min(text.len())..])
        };
        if let Ok(mut reg) = Registry::restore(&mutated) {
            reg.check_invariants().map_err(TestCaseError::fail)?;
            for s in ["a", "b"] {
                for strategy in Strategy::ALL {
                    let o = PickOptions { key: Some("k".into()), ..PickOptions::default() };
                    let _ = reg.pick(s, strategy, &o, 40_000);
                }
            }
            reg.tick(500_000);
            reg.check_invariants().map_err(TestCaseError::fail)?;
        }
    }
}

#[test]
fn numeric_fields_out_of_range_are_rejected_not_wrapped() {
    let text = sample_snapshot().replacen("\"port\":80", "\"port\":70000", 1);
    let err = Registry::restore(&text).unwrap_err();
    assert_eq!(err.code().as_str(), "invalid_snapshot");
    assert!(err.to_string().contains("port"), "{err}");
}

/// The core's JSON value next to serde_json's, floats within a few ULPs
/// (serde_json's default float reader is not always correctly rounded).
fn agrees(ours: &waypost::json::Json, theirs: &serde_json::Value) -> bool {
    use serde_json::Value;
    use waypost::json::{Json, Number};
    match (ours, theirs) {
        (Json::Null, Value::Null) => true,
        (Json::Bool(a), Value::Bool(b)) => a == b,
        (Json::String(a), Value::String(b)) => a == b,
        (Json::Number(Number::UInt(a)), Value::Number(b)) => b.as_u64() == Some(*a),
        (Json::Number(Number::Int(a)), Value::Number(b)) => b.as_i64() == Some(*a),
        (Json::Number(Number::Float(a)), Value::Number(b)) => b.as_f64().is_some_and(|b| {
            b.is_finite() && (a == &b || (a.to_bits() as i64 - b.to_bits() as i64).abs() <= 2)
        }),
        (Json::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| agrees(x, y))
        }
        (Json::Object(a), Value::Object(b)) => {
            // serde_json keeps the last of repeated keys, as `get` does.
            b.iter()
                .all(|(k, v)| waypost::json::get(a, k).is_some_and(|x| agrees(x, v)))
                && a.iter().all(|(k, _)| b.contains_key(k))
        }
        _ => false,
    }
}

/// Text that is often JSON and often almost JSON.
fn jsonish() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::strategy::Strategy as _;
    let atom = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("fals".to_owned()),
        "-?(0|[1-9][0-9]{0,22})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?",
        "-?0[0-9]{1,3}",
        "\"([ -~]|\\\\[\"\\\\/bfnrt]|\\\\u[0-9a-fA-F]{4}|é|\\t){0,12}\"",
        "[ \\[\\]{}:,\"0-9a-z\\\\-]{0,6}",
    ];
    atom.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5)
                .prop_map(|v| format!("[{}]", v.join(","))),
            proptest::collection::vec(("\"[a-c]{0,2}\"", inner.clone()), 0..5).prop_map(|v| {
                let members: Vec<String> = v.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("{{{}}}", members.join(","))
            }),
            (inner, "[ \\t\\n]{0,2}").prop_map(|(v, ws)| format!("{ws}{v}{ws}")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5_000, .. ProptestConfig::default() })]

    /// The core's reader accepts exactly what serde_json accepts and reads
    /// the same values.
    #[test]
    fn the_json_reader_agrees_with_serde_json(text in jsonish()) {
        let ours = waypost::json::Json::parse(&text);
        let theirs = serde_json::from_str::<serde_json::Value>(&text);
        match (&ours, &theirs) {
            (Ok(a), Ok(b)) => prop_assert!(agrees(a, b), "{text:?}: {a:?} vs {b:?}"),
            (Err(_), Err(_)) => {}
            _ => prop_assert!(false, "{text:?}: ours {ours:?}, serde_json {theirs:?}"),
        }
        if let Ok(v) = ours {
            prop_assert_eq!(waypost::json::Json::parse(&v.to_json()).unwrap(), v);
        }
    }
}
