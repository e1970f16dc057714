//! Taking a JSON object apart: the core's one way to read an object.
//!
//! A reader takes each member it knows out by key; whatever is left at the
//! end is what it did not know. A repeated key counts once, with its last
//! value: taking it drops the earlier ones, as if they were absent. The
//! instance, configuration, filter, source entry, mirror options and
//! snapshot readers are built on this; the snapshot's
//! [`Fields`](super::Fields) adds paths and collected problems on top.
//! Store payloads, read from borrowed trees, look members up with
//! [`get`](super::get) by the same last-value rule.

use crate::prelude::*;

use super::Json;

/// The members of one JSON object, in document order, not yet taken.
#[derive(Debug, Default)]
pub(crate) struct Object {
    members: Vec<(String, Json)>,
}

impl Object {
    pub(crate) fn new(members: Vec<(String, Json)>) -> Object {
        Object { members }
    }

    /// Takes the member `key` out (its last value, if repeated, and every
    /// repeat with it); `None` when absent.
    #[inline(never)]
    pub(crate) fn take(&mut self, key: &str) -> Option<Json> {
        let last = self.members.iter().rposition(|(k, _)| k == key)?;
        let (_, value) = self.members.remove(last);
        if self.members[..last].iter().any(|(k, _)| k == key) {
            self.members.retain(|(k, _)| k != key);
        }
        Some(value)
    }

    /// The first member nobody took, in document order.
    pub(crate) fn unknown(&self) -> Option<&str> {
        self.members.first().map(|(k, _)| k.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(text: &str) -> Object {
        match Json::parse(text) {
            Ok(Json::Object(members)) => Object::new(members),
            _ => Object::default(),
        }
    }

    #[test]
    fn a_repeated_key_counts_once_with_its_last_value() {
        let mut o = object(r#"{"a": 1, "b": 2, "a": 3, "c": 4, "a": 5}"#);
        assert_eq!(o.take("a").and_then(|v| v.as_u64()), Some(5));
        assert_eq!(o.take("a"), None);
        assert_eq!(o.unknown(), Some("b"));
        assert_eq!(o.take("b").and_then(|v| v.as_u64()), Some(2));
        assert_eq!(o.unknown(), Some("c"));
        assert_eq!(o.take("c").and_then(|v| v.as_u64()), Some(4));
        assert_eq!(o.unknown(), None);
    }

    #[test]
    fn what_is_left_is_in_document_order() {
        let mut o = object(r#"{"x": 1, "known": 2, "y": 3}"#);
        assert!(o.take("known").is_some());
        assert_eq!(o.unknown(), Some("x"));
        assert!(o.take("x").is_some());
        assert_eq!(o.unknown(), Some("y"));
        assert_eq!(o.take("absent"), None);
    }
}
