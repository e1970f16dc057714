//! The fields of an instance (SPEC §2, and §10.1 for `source`), written
//! once: the key list, the descriptors the bindings' generated code reads
//! (what a host registers and what it reads back), the reader's slots and
//! the bounds `InstanceSpec::validate` checks all come from this table.

use crate::prelude::*;

use crate::config::{
    DAY_MS, MAX_ID_BYTES, MAX_META, MAX_PORT, MAX_TAGS, MAX_WEIGHT, MAX_ZONE_BYTES,
};

/// The kind of value an instance field takes, as its wire form (JSON)
/// carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceKind {
    /// A string; the field's range bounds its length in bytes.
    Str,
    /// An array of strings; the range bounds how many.
    StrList,
    /// An object of string values; the range bounds how many entries.
    StrMap,
    /// An integer up to 2⁸ − 1; the range bounds the value.
    U8,
    /// An integer up to 2¹⁶ − 1; the range bounds the value.
    U16,
    /// An integer up to 2³² − 1; the range bounds the value.
    U32,
    /// An integer up to 2⁶⁴ − 1; the range bounds the value (a `_ms`
    /// field is a duration in milliseconds).
    U64,
}

impl InstanceKind {
    /// The largest integer the kind holds (what a reader accepts before
    /// the field's own range is checked); 0 for a kind that is no integer.
    pub const fn max(self) -> u64 {
        match self {
            InstanceKind::U8 => u8::MAX as u64,
            InstanceKind::U16 => u16::MAX as u64,
            InstanceKind::U32 => u32::MAX as u64,
            InstanceKind::U64 => u64::MAX,
            InstanceKind::Str | InstanceKind::StrList | InstanceKind::StrMap => 0,
        }
    }
}

/// What an absent instance field means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceDefault {
    /// Nothing: the field must be given.
    Required,
    /// This integer.
    Value(u64),
    /// No entries (a list or a map).
    Empty,
    /// Not set: the field's documentation says what that means.
    Unset,
}

/// One instance field as [`INSTANCE_FIELDS`] describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceField {
    /// The key (snake_case, as in SPEC §2 and the wire form).
    pub key: &'static str,
    /// The kind of value it takes.
    pub kind: InstanceKind,
    /// Whether it is required, or what its absence means.
    pub default: InstanceDefault,
    /// Its inclusive bounds: the value of an integer, the length in bytes
    /// of a string, the number of items of a list or map.
    pub range: (u64, u64),
    /// The name of the constant that gives the upper bound (one of
    /// [`LIMITS`](crate::LIMITS), `DAY_MS` or a type's `MAX`).
    pub limit: &'static str,
    /// Whether only the registry sets it: the wire form of a registered
    /// instance carries it, a host never registers it (the reader refuses
    /// it, and [`INSTANCE_KEYS`] leaves it out).
    pub read_only: bool,
    /// Its documentation line(s).
    pub doc: &'static str,
}

impl InstanceField {
    /// The position in [`INSTANCE_FIELDS`] of the field named `key` that a
    /// host registers (`None` for a read-only or unknown one).
    #[inline]
    pub fn position(key: &str) -> Option<usize> {
        INSTANCE_KEYS.iter().position(|k| *k == key)
    }

    /// Whether the field must be given.
    pub const fn is_required(&self) -> bool {
        matches!(self.default, InstanceDefault::Required)
    }
}

/// One entry of [`INSTANCE_FIELDS`], as `instance_table!` reads it.
macro_rules! instance_field {
    ($read_only:literal, [$($doc:literal)*]
     $key:ident: $kind:ident, $default:expr, range($lo:expr, $hi:path)) => {
        InstanceField {
            key: stringify!($key),
            kind: InstanceKind::$kind,
            default: $default,
            range: ($lo as u64, $hi as u64),
            limit: stringify!($hi),
            read_only: $read_only,
            doc: concat!($($doc, "\n"),*),
        }
    };
}

/// The Rust type of a field of `kind` that always has a value.
macro_rules! field_type {
    (Str) => { String };
    (StrList) => { Vec<String> };
    (StrMap) => { crate::meta::Meta };
    (U8) => { u8 };
    (U16) => { u16 };
    (U32) => { u32 };
    (U64) => { u64 };
}

/// The Rust type of an optional field: `Option` when it may be unset.
macro_rules! optional_type {
    ($kind:ident Unset) => { Option<field_type!($kind)> };
    ($kind:ident $default:ident) => { field_type!($kind) };
}

/// An optional field's value when a host leaves it out.
macro_rules! optional_default {
    (Unset) => {
        None
    };
    (Empty) => {
        Default::default()
    };
    (Value($value:expr)) => {
        $value
    };
}

/// How `InstanceSpec::new` takes a required field, and makes it a value.
macro_rules! required_param {
    (Str) => { impl Into<String> };
    (U16) => { u16 };
}
macro_rules! required_value {
    (Str, $v:ident) => {
        $v.into()
    };
    (U16, $v:ident) => {
        $v
    };
}

macro_rules! instance_table {
    (@required {$(
        $(#[doc = $qdoc:literal])*
        $qkey:ident: $qkind:ident, range($qlo:expr, $qhi:path);
    )*}
    $(
        $(#[doc = $doc:literal])*
        $key:ident: $kind:ident, $default:ident $(($value:expr))?, range($lo:expr, $hi:path);
    )*
    @read_only {$(
        $(#[doc = $rdoc:literal])*
        $rkey:ident: $rkind:ident, $rdefault:expr, range($rlo:expr, $rhi:path);
    )*}) => {
        /// The fields of an instance's wire form that a host registers
        /// (SPEC §2), in documentation order: what the reader accepts.
        pub const INSTANCE_KEYS: [&str; [$(stringify!($qkey),)* $(stringify!($key)),*].len()] =
            [$(stringify!($qkey),)* $(stringify!($key)),*];

        /// Every instance field with its kind, default, bounds and
        /// documentation, in the wire form's order: those a host registers
        /// (in [`INSTANCE_KEYS`]'s order), then the read-only ones the
        /// registry sets. What the core's reader and the bindings'
        /// generated code read.
        pub const INSTANCE_FIELDS: [InstanceField;
            INSTANCE_KEYS.len() + [$(stringify!($rkey)),*].len()] = [
            $(instance_field!(false, [$($qdoc)*] $qkey: $qkind, Required, range($qlo, $qhi)),)*
            $(instance_field!(false, [$($doc)*] $key: $kind, $default $(($value))?, range($lo, $hi)),)*
            $(instance_field!(true, [$($rdoc)*] $rkey: $rkind, $rdefault, range($rlo, $rhi)),)*
        ];

        /// A field a host registers, by name, for code that handles each
        /// field (a `match` on it fails to compile when the table gains one).
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Slot {
            $($qkey,)*
            $($key,)*
        }

        /// Every slot, in the table's order.
        pub(crate) const SLOTS: [Slot; INSTANCE_KEYS.len()] = [$(Slot::$qkey,)* $(Slot::$key),*];

        /// What a host registers: the fields of SPEC §2.
        ///
        /// Optional fields take their defaults; [`InstanceSpec::validate`]
        /// (run by `register`) checks every rule. With the `serde` feature
        /// it (de)serialises as the wire form, through `InstanceSpecWire`
        /// (a missing required field is `invalid_argument`).
        #[derive(Debug, Clone, PartialEq, Eq)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        #[cfg_attr(
            feature = "serde",
            serde(try_from = "InstanceSpecWire", into = "InstanceSpecWire")
        )]
        pub struct InstanceSpec {
            $($(#[doc = $qdoc])* pub $qkey: field_type!($qkind),)*
            $($(#[doc = $doc])* pub $key: optional_type!($kind $default),)*
        }

        impl InstanceSpec {
            /// A spec with the required fields and every default.
            pub fn new($($qkey: required_param!($qkind)),*) -> Self {
                InstanceSpec {
                    $($qkey: required_value!($qkind, $qkey),)*
                    $($key: optional_default!($default $(($value))?),)*
                }
            }
        }

        /// The wire form of an [`InstanceSpec`] as serde sees it: every
        /// field optional, left out when unset.
        #[cfg(feature = "serde")]
        #[derive(serde::Serialize, serde::Deserialize)]
        pub struct InstanceSpecWire {
            $(
                #[serde(default, skip_serializing_if = "Option::is_none")]
                $qkey: Option<field_type!($qkind)>,
            )*
            $(
                #[serde(default, skip_serializing_if = "Option::is_none")]
                $key: Option<field_type!($kind)>,
            )*
        }

        #[cfg(feature = "serde")]
        impl TryFrom<InstanceSpecWire> for InstanceSpec {
            type Error = crate::Error;

            fn try_from(wire: InstanceSpecWire) -> crate::Result<InstanceSpec> {
                let mut spec = InstanceSpec::new(
                    $(wire.$qkey.ok_or_else(|| {
                        crate::Error::invalid(stringify!($qkey), "is required")
                    })?),*
                );
                $(instance_table!(@read spec, wire, $key, $default);)*
                Ok(spec)
            }
        }

        #[cfg(feature = "serde")]
        impl From<InstanceSpec> for InstanceSpecWire {
            fn from(spec: InstanceSpec) -> InstanceSpecWire {
                InstanceSpecWire {
                    $($qkey: Some(spec.$qkey),)*
                    $($key: instance_table!(@write spec, $key, $default),)*
                }
            }
        }
    };
    (@read $spec:ident, $wire:ident, $key:ident, Unset) => { $spec.$key = $wire.$key };
    (@read $spec:ident, $wire:ident, $key:ident, $default:ident) => {
        if let Some(v) = $wire.$key {
            $spec.$key = v;
        }
    };
    (@write $spec:ident, $key:ident, Unset) => { $spec.$key };
    (@write $spec:ident, $key:ident, $default:ident) => { Some($spec.$key) };
}

use InstanceDefault::{Empty, Required, Unset, Value};

// A new field is one entry here, then the reader's `match` and the writer
// (core/src/instance.rs), and `make gen` for the bindings: the table
// yields `InstanceSpec`, its `new` and its serde form. A field only the
// registry sets goes under `@read_only`, then `Instance`'s struct and writer.
instance_table! {
    @required {
        /// Unique id, 1–256 bytes, no control characters.
        id: Str, range(1, MAX_ID_BYTES);
        /// Service name, same rule as `id`.
        service: Str, range(1, MAX_ID_BYTES);
        /// Host name or IP, 1–256 bytes, no control characters.
        address: Str, range(1, MAX_ID_BYTES);
        /// Port, 1–65535.
        port: U16, range(1, MAX_PORT);
    }
    /// Weight, 1–10000 (default 1).
    weight: U32, Value(1), range(1, MAX_WEIGHT);
    /// Up to 64 tags of 1–256 bytes; duplicates are dropped, order kept.
    tags: StrList, Empty, range(0, MAX_TAGS);
    /// Up to 64 entries; key 1–128 bytes, value up to 512 bytes.
    meta: StrMap, Empty, range(0, MAX_META);
    /// Locality for zone preference, up to 128 bytes; empty or unset is no zone.
    zone: Str, Unset, range(0, MAX_ZONE_BYTES);
    /// Failover tier, 0–255, 0 preferred (default 0).
    priority: U8, Value(0), range(0, u8::MAX);
    /// Lease length overriding the registry's `ttl_ms`, 1 ms – 1 day.
    ttl_ms: U64, Unset, range(1, DAY_MS);
    /// How often the host should run this instance's active check, 1 ms – 1 day; unset: no check.
    check_interval_ms: U64, Unset, range(1, DAY_MS);
    @read_only {
        /// The source that owns it (SPEC §10.1), same rule as `id`; unset for a local instance.
        source: Str, Unset, range(1, MAX_ID_BYTES);
    }
}

/// Whether each field is required, by slot. The code the WebAssembly
/// module holds reads these derived constants (and [`INSTANCE_KEYS`]), never
/// the table itself at run time, so the table's documentation stays out of
/// the module.
pub(crate) const REQUIRED: [bool; INSTANCE_KEYS.len()] = {
    let mut out = [false; INSTANCE_KEYS.len()];
    let mut i = 0;
    while i < out.len() {
        out[i] = INSTANCE_FIELDS[i].is_required();
        i += 1;
    }
    out
};

/// The table's entry for `slot` (for constants: see [`REQUIRED`]).
pub(crate) const fn field(slot: Slot) -> &'static InstanceField {
    // `Slot` has one variant per entry, in the same order.
    &INSTANCE_FIELDS[slot as usize]
}

/// The key of `slot`'s field.
pub(crate) const fn key(slot: Slot) -> &'static str {
    // `Slot` has one variant per key, in the same order.
    INSTANCE_KEYS[slot as usize]
}

/// The largest integer `slot`'s field's kind holds.
pub(crate) const fn kind_max(slot: Slot) -> u64 {
    field(slot).kind.max()
}

/// The bounds of `slot`'s field, as `usize` (lengths and counts).
pub(crate) const fn bounds(slot: Slot) -> (usize, usize) {
    let (lo, hi) = field(slot).range;
    (lo as usize, hi as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn slots_follow_the_table() {
        for (i, slot) in SLOTS.iter().enumerate() {
            assert_eq!(*slot as usize, i);
            assert_eq!(field(*slot).key, INSTANCE_KEYS[i]);
        }
        assert_eq!(InstanceField::position("ttl_ms"), Some(9));
        assert_eq!(InstanceField::position("color"), None);
        // A read-only field is in the table, not among the keys a host registers.
        assert_eq!(InstanceField::position("source"), None);
        let read_only: Vec<bool> = INSTANCE_FIELDS.iter().map(|f| f.read_only).collect();
        assert_eq!(
            read_only[..INSTANCE_KEYS.len()],
            [false; INSTANCE_KEYS.len()]
        );
        assert!(read_only[INSTANCE_KEYS.len()..].iter().all(|r| *r));
    }

    #[test]
    fn a_registered_instance_writes_every_field_in_the_table() {
        // Every field away from its default, the read-only ones included.
        let mut reg = crate::Registry::new(crate::Config::default()).ok();
        let entry = r#"{"id":"a","service":"api","address":"h","port":80,"weight":2,
            "tags":["t"],"meta":{"k":"v"},"zone":"z","priority":3,"check_interval_ms":1}"#;
        let written = reg.as_mut().and_then(|reg| {
            reg.source_put_json("etcd", entry, 0).ok()?;
            reg.get("a", 0).ok().map(|view| view.instance.to_json())
        });
        let members = match written.as_deref().map(crate::json::Json::parse) {
            Some(Ok(crate::json::Json::Object(members))) => members,
            _ => Vec::new(),
        };
        let keys: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
        // A source-owned instance has no lease length of its own (SPEC §10.1).
        let expected: Vec<&str> = INSTANCE_FIELDS
            .iter()
            .map(|f| f.key)
            .filter(|k| *k != "ttl_ms")
            .collect();
        assert_eq!(keys, expected);
        assert_eq!(
            members.last().map(|(_, v)| v),
            Some(&crate::json::Json::from("etcd"))
        );
    }

    #[test]
    fn the_reader_takes_every_field_once() {
        let mut order: Vec<usize> = crate::instance::READ_ORDER
            .iter()
            .map(|s| *s as usize)
            .collect();
        order.sort_unstable();
        assert_eq!(order, (0..INSTANCE_KEYS.len()).collect::<Vec<_>>());
    }

    #[test]
    fn the_writer_follows_the_table() {
        // Every field away from its default: the reader must take each.
        let mut spec = crate::InstanceSpec::new("a", "api", "h", 80);
        spec.weight = 2;
        spec.tags = vec!["t".into()];
        spec.meta.insert("k".into(), "v".into());
        spec.priority = 3;
        spec.zone = Some("z".into());
        spec.ttl_ms = Some(1);
        spec.check_interval_ms = Some(1);
        let members = match crate::json::Json::parse(&spec.to_json()) {
            Ok(crate::json::Json::Object(members)) => members,
            _ => Vec::new(),
        };
        let keys: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, INSTANCE_KEYS);
        let read = crate::InstanceSpec::from_object(members);
        assert_eq!(read.as_ref(), Ok(&spec));
    }

    #[test]
    fn set_reads_one_field_as_the_reader_does() {
        use crate::json::Json;
        let mut spec = crate::InstanceSpec::new("a", "api", "h", 80);
        assert!(spec.set("weight", &Json::from(7u64)).is_ok());
        assert_eq!(spec.weight, 7);
        assert!(spec.set("weight", &Json::Null).is_ok());
        assert_eq!(spec.weight, 7);
        let err = spec.set("colour", &Json::from(1u64)).err();
        assert_eq!(
            err.map(|e| e.to_string()),
            Some("invalid argument `colour`: unknown instance field".into())
        );
        let err = spec.set("port", &Json::from(65_536u64)).err();
        assert_eq!(
            err.map(|e| e.to_string()),
            Some("invalid argument `port`: must be an integer in 0..=65535, got 65536".into())
        );
    }

    #[test]
    fn every_integer_range_fits_its_kind() {
        for f in INSTANCE_FIELDS {
            assert!(f.range.0 <= f.range.1, "{}", f.key);
            if f.kind.max() > 0 {
                assert!(f.range.1 <= f.kind.max(), "{}", f.key);
            }
            if let InstanceDefault::Value(v) = f.default {
                assert!((f.range.0..=f.range.1).contains(&v), "{}", f.key);
            }
        }
    }
}
