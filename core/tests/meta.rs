//! `Meta`, the instance metadata map: map semantics, key order, wire form.

use std::collections::BTreeMap;

use proptest::prelude::*;
use waypost::{InstanceSpec, Meta};

#[test]
fn entries_stay_in_key_order_and_a_key_appears_once() {
    let mut m = Meta::new();
    assert!(m.is_empty());
    assert_eq!(m.insert("zone".into(), "a".into()), None);
    assert_eq!(m.insert("az".into(), "1".into()), None);
    assert_eq!(m.insert("version".into(), "2".into()), None);
    assert_eq!(m.insert("az".into(), "3".into()), Some("1".into()));
    assert_eq!(m.len(), 3);
    let keys: Vec<&str> = m.iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["az", "version", "zone"]);
    assert_eq!(m.get("az"), Some("3"));
    assert_eq!(m.get("nope"), None);
    assert_eq!(m.remove("version"), Some("2".into()));
    assert_eq!(m.remove("version"), None);
    let owned: Vec<(String, String)> = m.into_iter().collect();
    assert_eq!(
        owned,
        [("az".into(), "3".into()), ("zone".into(), "a".into())]
    );
}

#[test]
fn built_from_pairs_the_last_value_of_a_key_wins() {
    let m: Meta = [("b", "1"), ("a", "2"), ("b", "3")].into();
    assert_eq!(m.iter().collect::<Vec<_>>(), [("a", "2"), ("b", "3")]);
    let same: Meta = vec![("a".to_string(), "2".to_string()), ("b".into(), "3".into())]
        .into_iter()
        .collect();
    assert_eq!(m, same);
}

#[cfg(feature = "serde")]
#[test]
fn serializes_as_a_map_in_key_order() {
    let m: Meta = [("z", "1"), ("a", "\"q\"")].into();
    assert_eq!(
        serde_json::to_string(&m).unwrap(),
        r#"{"a":"\"q\"","z":"1"}"#
    );
    let back: Meta = serde_json::from_str(r#"{"z":"1","a":"x","z":"2"}"#).unwrap();
    assert_eq!(back.iter().collect::<Vec<_>>(), [("a", "x"), ("z", "2")]);
    assert!(serde_json::from_str::<Meta>(r#"{"a":1}"#).is_err());
    assert!(serde_json::from_str::<Meta>(r#"["a","b"]"#).is_err());
}

#[test]
fn an_instance_spec_reads_meta_from_json_in_key_order_last_value_winning() {
    let spec = InstanceSpec::from_json(
        r#"{"id":"i","service":"s","address":"h","port":1,"meta":{"b":"1","a":"2","b":"3"}}"#,
    )
    .unwrap();
    assert_eq!(
        spec.meta.iter().collect::<Vec<_>>(),
        [("a", "2"), ("b", "3")]
    );
    assert!(
        spec.to_json().contains(r#""meta":{"a":"2","b":"3"}"#),
        "{}",
        spec.to_json()
    );
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u8, u8),
    Remove(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..12, any::<u8>()).prop_map(|(k, v)| Op::Insert(k, v)),
        (0u8..12).prop_map(Op::Remove),
    ]
}

proptest! {
    /// Any sequence of inserts and removes leaves the same entries, in the
    /// same order, with the same answers, as a `BTreeMap`.
    #[test]
    fn behaves_as_a_btree_map(ops in proptest::collection::vec(op(), 0..60)) {
        let mut meta = Meta::new();
        let mut tree: BTreeMap<String, String> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Insert(k, v) => {
                    let (k, v) = (format!("k{k}"), v.to_string());
                    prop_assert_eq!(meta.insert(k.clone(), v.clone()), tree.insert(k, v));
                }
                Op::Remove(k) => {
                    let k = format!("k{k}");
                    prop_assert_eq!(meta.remove(&k), tree.remove(&k));
                }
            }
            prop_assert_eq!(meta.len(), tree.len());
            let ours: Vec<(&str, &str)> = meta.iter().collect();
            let theirs: Vec<(&str, &str)> = tree.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            prop_assert_eq!(ours, theirs);
            for k in 0..12 {
                let k = format!("k{k}");
                prop_assert_eq!(meta.get(&k), tree.get(&k).map(String::as_str));
            }
        }
    }
}
