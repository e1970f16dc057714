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
