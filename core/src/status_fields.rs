//! The fields of an instance's status ([`InstanceStatus`]), written once:
//! their wire keys, kinds, when the wire form leaves one out, and their
//! documentation. The status's writer (`InstanceStatus::to_json`) writes
//! them in this order (a test holds it to the table) and the bindings'
//! generated code reads them from here.
//!
//! Nothing at run time reads the table: it is a constant that only the
//! tests and the generator use, so the WebAssembly module does not carry it.
//!
//! [`InstanceStatus`]: crate::InstanceStatus

use crate::{CheckStatus, Health, SourceStatus};

/// The kind of value a status field takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusKind {
    /// A name from [`Health::NAMES`].
    Health,
    /// A name from [`CheckStatus::NAMES`].
    CheckStatus,
    /// A name from [`SourceStatus::NAMES`].
    SourceStatus,
    /// An instant on the registry clock, in ms (an integer up to 2⁶⁴ − 1).
    Instant,
    /// An integer up to 2³² − 1.
    U32,
    /// An integer up to 2⁶⁴ − 1.
    U64,
    /// A number with a fraction.
    F64,
    /// A boolean.
    Bool,
}

impl StatusKind {
    /// The names the field takes, for a kind that is a name from a list;
    /// empty for any other kind.
    pub const fn names(self) -> &'static [&'static str] {
        match self {
            StatusKind::Health => &Health::NAMES,
            StatusKind::CheckStatus => &CheckStatus::NAMES,
            StatusKind::SourceStatus => &SourceStatus::NAMES,
            StatusKind::Instant
            | StatusKind::U32
            | StatusKind::U64
            | StatusKind::F64
            | StatusKind::Bool => &[],
        }
    }
}

/// When the wire form carries a status field, and how [`InstanceStatus`]
/// holds it.
///
/// [`InstanceStatus`]: crate::InstanceStatus
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusPresence {
    /// Always written.
    Always,
    /// An `Option`, written as `null` when `None`.
    NullWhenNone,
    /// An `Option`, left out when `None`.
    AbsentWhenNone,
    /// A plain value, left out when it has its "none" value: `u64::MAX`
    /// for an instant (no lease), `false` for a boolean.
    AbsentAtNone,
}

/// One status field as [`STATUS_FIELDS`] describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusField {
    /// The key in the wire form (snake_case).
    pub key: &'static str,
    /// The [`InstanceStatus`] field (snake_case), the name the bindings
    /// give it; the same as `key` but for the source's verdict.
    ///
    /// [`InstanceStatus`]: crate::InstanceStatus
    pub field: &'static str,
    /// The kind of value it takes.
    pub kind: StatusKind,
    /// When the wire form carries it.
    pub presence: StatusPresence,
    /// Its documentation line(s).
    pub doc: &'static str,
}

impl StatusField {
    /// Whether the wire form may lack it (as `null` or by leaving it out).
    pub const fn may_be_absent(&self) -> bool {
        !matches!(self.presence, StatusPresence::Always)
    }
}

macro_rules! status_table {
    ($(
        $(#[doc = $doc:literal])*
        $field:ident $(as $key:ident)?: $kind:ident, $presence:ident;
    )*) => {
        /// Every status field with its kind, presence and documentation,
        /// in the order the wire form writes them (after the instance's
        /// own fields). What the bindings' generated code reads.
        pub const STATUS_FIELDS: [StatusField; [$(stringify!($field)),*].len()] = [$(
            StatusField {
                key: status_table!(@key $field $($key)?),
                field: stringify!($field),
                kind: StatusKind::$kind,
                presence: StatusPresence::$presence,
                doc: concat!($($doc, "\n"),*),
            },
        )*];
    };
    (@key $field:ident) => { stringify!($field) };
    (@key $field:ident $key:ident) => { stringify!($key) };
}

// A new field is one entry here, then `InstanceStatus`'s struct and
// `write_members` (core/src/registry/entry.rs), and `make gen` for the
// bindings.
status_table! {
    /// Public health.
    health: Health, Always;
    /// Index of the last event concerning this instance.
    modify_index: U64, Always;
    /// Index of its registration or latest update (changes only when its fields change).
    revision: U64, Always;
    /// When it was first registered.
    registered_at: Instant, Always;
    /// When its lease was last renewed.
    last_renewal: Instant, Always;
    /// The lease is expired at any later instant; a source-owned instance has no lease.
    lease_deadline: Instant, AbsentAtNone;
    /// Weight after slow start.
    effective_weight: F64, Always;
    /// Calls begun and not yet ended.
    inflight: U64, Always;
    /// Call failures in a row (outlier detection).
    consecutive_failures: U32, Always;
    /// When the current ejection ends, while ejected.
    ejected_until: Instant, NullWhenNone;
    /// The last active-check result reported.
    last_check: CheckStatus, NullWhenNone;
    /// The owning source's verdict, for a source-owned instance (SPEC §10.1).
    source_status as status: SourceStatus, AbsentWhenNone;
    /// Whether a removal its source asked for is held back (SPEC §10.3).
    held: Bool, AbsentAtNone;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::Json;
    use crate::prelude::*;
    use crate::InstanceStatus;

    /// A status with every field set (`set`) or at its "none" value.
    fn status(set: bool) -> InstanceStatus {
        InstanceStatus {
            health: Health::Ejected,
            modify_index: 7,
            revision: 6,
            registered_at: 1,
            last_renewal: 2,
            lease_deadline: if set { 3 } else { u64::MAX },
            effective_weight: 0.5,
            inflight: 4,
            consecutive_failures: 5,
            ejected_until: set.then_some(9),
            last_check: set.then_some(CheckStatus::Warn),
            source_status: set.then_some(SourceStatus::Warning),
            held: set,
        }
    }

    fn members(status: &InstanceStatus) -> Vec<(String, Json)> {
        match Json::parse(&status.to_json()) {
            Ok(Json::Object(members)) => members,
            _ => Vec::new(),
        }
    }

    #[test]
    fn the_writer_follows_the_table() {
        let keys: Vec<&str> = STATUS_FIELDS.iter().map(|f| f.key).collect();
        let set = members(&status(true));
        let written: Vec<&str> = set.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(written, keys);
        // Unset, a field is `null` or left out, as the table says.
        let unset = members(&status(false));
        let mut written = unset.iter();
        for f in &STATUS_FIELDS {
            match f.presence {
                StatusPresence::Always | StatusPresence::NullWhenNone => {
                    let member = written.next();
                    assert_eq!(member.map(|(k, _)| k.as_str()), Some(f.key));
                    let null = member.map(|(_, v)| *v == Json::Null);
                    let expected = f.presence == StatusPresence::NullWhenNone;
                    assert_eq!(null, Some(expected), "{}", f.key);
                }
                StatusPresence::AbsentWhenNone | StatusPresence::AbsentAtNone => {}
            }
        }
        assert_eq!(written.next(), None);
    }

    #[test]
    fn each_value_has_its_kind() {
        for (f, (key, value)) in STATUS_FIELDS.iter().zip(members(&status(true))) {
            assert_eq!(f.key, key);
            let fits = match f.kind {
                StatusKind::Bool => value.as_bool().is_some(),
                StatusKind::F64 => value.as_f64().is_some(),
                StatusKind::U32 => value.as_u64().is_some_and(|n| n <= u32::MAX.into()),
                StatusKind::U64 | StatusKind::Instant => value.as_u64().is_some(),
                StatusKind::Health | StatusKind::CheckStatus | StatusKind::SourceStatus => {
                    value.as_str().is_some_and(|n| f.kind.names().contains(&n))
                }
            };
            assert!(fits, "{key}: {value:?}");
        }
    }
}
