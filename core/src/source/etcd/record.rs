//! A kv's value in waypost's instance wire form, read straight into an
//! entry: each string is copied once, from the value's text into the
//! spec, and no tree is built.

use crate::prelude::*;

use crate::instance::{InstanceSpec, INSTANCE_KEYS};
use crate::instance_fields::{Slot, SLOTS};
use crate::json::Walker;
use crate::source::{SourceEntry, SourceStatus};

/// The members this reader takes beyond the instance's own fields (whose
/// positions in [`INSTANCE_KEYS`] come first in the bit order of `seen`).
const ENTRY_KEYS: [&str; 2] = ["status", "source"];

/// The entry `text` describes under the key's `service` and `id`, when it
/// is the wire form written plainly: each member once, of its own type,
/// `id` and `service` (if there) equal to the key's, and valid as a whole.
/// `None` for anything else, including every invalid record: the caller
/// then reads it the general way, which names the problem — so what this
/// answers is always what that way answers.
pub(super) fn wire_entry(text: &str, service: &str, id: &str) -> Option<SourceEntry> {
    let mut w = Walker::new(text);
    w.open(b'{')?;
    let mut spec = InstanceSpec::new(String::new(), String::new(), String::new(), 0);
    let mut status = SourceStatus::Passing;
    let mut seen = 0u32;
    let mut first = true;
    while let Some(name) = w.member(&mut first)? {
        let field = INSTANCE_KEYS
            .iter()
            .chain(&ENTRY_KEYS)
            .position(|f| **f == *name)?;
        let bit = 1u32 << field;
        if seen & bit != 0 {
            return None;
        }
        seen |= bit;
        // Positions past the instance's fields are `ENTRY_KEYS`; a field the
        // table gains fails to compile here until it is read.
        match SLOTS.get(field) {
            Some(Slot::id) => (w.str()? == id).then_some(())?,
            Some(Slot::service) => (w.str()? == service).then_some(())?,
            Some(Slot::address) => spec.address = w.str()?.into_owned(),
            Some(Slot::port) => spec.port = u16::try_from(w.uint()?).ok()?,
            Some(Slot::weight) => spec.weight = u32::try_from(w.uint()?).ok()?,
            Some(Slot::tags) => {
                w.open(b'[')?;
                let mut first = true;
                while w.item(&mut first)? {
                    spec.tags.push(w.str()?.into_owned());
                }
            }
            Some(Slot::meta) => {
                w.open(b'{')?;
                let mut first = true;
                while let Some(key) = w.member(&mut first)? {
                    // More entries than an instance may carry: the general
                    // reader names the problem (and bounds the work).
                    if spec.meta.len() >= crate::MAX_META {
                        return None;
                    }
                    let value = w.str()?.into_owned();
                    spec.meta.insert(key.into_owned(), value);
                }
            }
            Some(Slot::zone) => spec.zone = Some(w.str()?.into_owned()),
            Some(Slot::priority) => spec.priority = u8::try_from(w.uint()?).ok()?,
            Some(Slot::ttl_ms) => spec.ttl_ms = Some(w.uint()?),
            Some(Slot::check_interval_ms) => spec.check_interval_ms = Some(w.uint()?),
            None if field == SLOTS.len() => status = w.str()?.parse().ok()?,
            None => w.skip()?,
        }
    }
    w.end()?;
    // The required fields but `id` and `service`, which the key gives.
    const NEEDED: u32 = (1 << Slot::address as u32) | (1 << Slot::port as u32);
    if seen & NEEDED != NEEDED {
        return None;
    }
    spec.id = id.into();
    spec.service = service.into();
    spec.validate().ok()?;
    Some(SourceEntry { spec, status })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::Json;
    use crate::source::etcd::{value_record, Record};
    use proptest::prelude::*;

    /// What the tree path makes of a value: `Some` for an entry.
    fn tree(text: &str) -> Option<SourceEntry> {
        match Json::parse(text) {
            Ok(Json::Object(members)) => match value_record(members, "api", "a") {
                Ok(Record::Put(entry)) => Some(entry),
                _ => None,
            },
            _ => None,
        }
    }

    fn member() -> impl Strategy<Value = String> {
        let name = prop_oneof![
            Just("id"),
            Just("service"),
            Just("address"),
            Just("port"),
            Just("weight"),
            Just("tags"),
            Just("meta"),
            Just("zone"),
            Just("priority"),
            Just("ttl_ms"),
            Just("check_interval_ms"),
            Just("status"),
            Just("source"),
            Just("Addr"),
            Just("x"),
        ];
        let value = prop_oneof![
            Just("\"a\""),
            Just("\"api\""),
            Just("\"10.0.0.1\""),
            Just("\"\""),
            Just("\"pass\\u0069ng\""),
            Just("\"warning\""),
            Just("\"e\\u0301\""),
            Just("\"\\u0007\""),
            Just("0"),
            Just("1"),
            Just("80"),
            Just("255"),
            Just("256"),
            Just("65536"),
            Just("10001"),
            Just("86400001"),
            Just("-1"),
            Just("1.0"),
            Just("1e2"),
            Just("null"),
            Just("true"),
            Just("[]"),
            Just("[\"v1\",\"v1\"]"),
            Just("[\"\"]"),
            Just("[1]"),
            Just("{}"),
            Just("{\"k\":\"v\",\"k\":\"w\"}"),
            Just("{\"k\":1}"),
            Just("{\"\":\"v\"}"),
        ];
        (name, value).prop_map(|(n, v)| format!("\"{n}\":{v}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

        /// Whatever the reader takes, the tree reads the same way; where
        /// it declines, the tree reads it (an entry or an error).
        #[test]
        fn what_it_reads_the_tree_reads_alike(
            members in proptest::collection::vec(member(), 0..8),
            base in any::<bool>(),
            tail in prop_oneof![Just(""), Just(" "), Just("x"), Just("}")],
        ) {
            let mut members = members;
            if base {
                members.insert(0, "\"address\":\"h\",\"port\":1".into());
            }
            let text = format!("{{{}}}{tail}", members.join(","));
            if let Some(entry) = wire_entry(&text, "api", "a") {
                prop_assert_eq!(Some(entry), tree(&text));
            }
        }

        /// The wire form a registrar writes is read without the tree.
        #[test]
        fn the_wire_form_is_read_without_the_tree(
            port in 1u16.., weight in 1..=crate::MAX_WEIGHT, priority in any::<u8>(),
            tags in proptest::collection::vec("[a-z]{1,4}", 0..4),
            meta in proptest::collection::vec(("[a-z]{1,4}", "[ -~]{0,6}"), 0..4),
            zone in proptest::option::of("[a-z0-9-]{0,6}"),
            ttl in proptest::option::of(1u64..=86_400_000),
            status in 0usize..4,
        ) {
            let mut spec = InstanceSpec::new("a", "api", "10.1.2.3", port);
            spec.weight = weight;
            spec.priority = priority;
            spec.tags = tags;
            spec.meta = meta.into_iter().collect();
            spec.zone = zone;
            spec.check_interval_ms = ttl;
            let mut text = spec.to_json();
            text.pop();
            let status = SourceStatus::ALL[status];
            text.push_str(&format!(",\"status\":\"{}\",\"source\":\"etcd\"}}", status.as_str()));
            let read = wire_entry(&text, "api", "a");
            prop_assert_eq!(read.clone(), Some(SourceEntry { spec, status }));
            prop_assert_eq!(read, tree(&text));
        }
    }
}
