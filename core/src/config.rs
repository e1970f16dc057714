//! Registry configuration (SPEC §4) and its validation.

use crate::prelude::*;

use crate::error::{Error, Result};
use crate::json::{describe, Json, Object, ObjectWriter};

/// One day in milliseconds: the upper bound of every duration setting.
pub const DAY_MS: u64 = 86_400_000;

/// Declares each limit as a constant and lists them all in [`LIMITS`],
/// with their documentation, for the bindings' generated files.
macro_rules! limit_table {
    ($( $(#[doc = $doc:literal])* $name:ident: $ty:ty = $value:expr; )*) => {
        $( $(#[doc = $doc])* pub const $name: $ty = $value; )*

        /// Every limit above as `(name, value, documentation)`.
        pub const LIMITS: [(&str, u64, &str); [$(stringify!($name)),*].len()] =
            [$((stringify!($name), $name as u64, concat!($($doc, "\n"),*))),*];
    };
}

limit_table! {
    /// Most bytes in an id, a service, an address, a tag or a source name.
    MAX_ID_BYTES: usize = 256;
    /// Most bytes in a zone.
    MAX_ZONE_BYTES: usize = 128;
    /// Most bytes in a metadata key.
    MAX_META_KEY_BYTES: usize = 128;
    /// Most bytes in a metadata value.
    MAX_META_VALUE_BYTES: usize = 512;
    /// Most tags an instance may carry.
    MAX_TAGS: usize = 64;
    /// Most metadata entries an instance may carry.
    MAX_META: usize = 64;
    /// Highest instance weight.
    MAX_WEIGHT: u32 = 10_000;
    /// Highest port (the lowest is 1).
    MAX_PORT: u16 = u16::MAX;
    /// Most bytes in a consistent-hash key.
    MAX_KEY_BYTES: usize = 65_536;
    /// Most bytes in an etcd source's key prefix.
    MAX_PREFIX_BYTES: usize = 1024;
}

/// The kind of value a configuration key takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKind {
    /// A non-negative integer up to 2⁶⁴ − 1 (durations are in ms).
    U64,
    /// A non-negative integer up to 2³² − 1.
    U32,
    /// A number within 0.0..=1.0.
    Ratio,
    /// A boolean.
    Flag,
}

/// One configuration key as [`CONFIG_FIELDS`] describes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConfigField {
    /// The key (snake_case, as in SPEC §4).
    pub key: &'static str,
    /// The kind of value it takes.
    pub kind: ConfigKind,
    /// Its inclusive range, for integer keys that have one.
    pub range: Option<(u64, u64)>,
    /// Its documentation line(s).
    pub doc: &'static str,
}

/// The Rust type of a [`ConfigKind`].
macro_rules! config_type {
    (U64) => {
        u64
    };
    (U32) => {
        u32
    };
    (Ratio) => {
        f64
    };
    (Flag) => {
        bool
    };
}

/// Every configuration key, written once: the struct, its defaults, the
/// key list, the descriptors, the JSON reader and writer and the range
/// checks all come from this table. A key marked `@later` came after the
/// first snapshot format: a snapshot holds it only when it is set away from
/// its default, so older snapshots are written back unchanged.
macro_rules! config_table {
    ($(
        $(#[doc = $doc:literal])*
        $key:ident: $kind:ident = $default:expr
        $(, range($lo:expr, $hi:expr))?
        $(, then($then:expr))?
        $(, @$later:ident)?
        ;
    )*) => {
        /// The configuration of a [`Registry`](crate::Registry).
        ///
        /// Build it with [`Config::default`] and field updates, or from JSON with
        /// [`Config::from_json`]; [`Config::validate`] is run by
        /// [`Registry::new`](crate::Registry::new).
        #[derive(Debug, Clone, PartialEq)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        #[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
        pub struct Config {
            $($(#[doc = $doc])* pub $key: config_type!($kind),)*
        }

        impl Default for Config {
            fn default() -> Self {
                Config { $($key: $default,)* }
            }
        }

        /// The configuration keys, in documentation order.
        pub const CONFIG_KEYS: [&str; [$(stringify!($key)),*].len()] = [$(stringify!($key)),*];

        /// Every configuration key with its kind, range and documentation,
        /// in documentation order: what bindings and generated code read.
        pub const CONFIG_FIELDS: [ConfigField; CONFIG_KEYS.len()] = [$(ConfigField {
            key: stringify!($key),
            kind: ConfigKind::$kind,
            range: config_table!(@range $($lo, $hi)?),
            doc: concat!($($doc, "\n"),*),
        }),*];

        impl Config {
            fn field(&mut self, key: &str) -> Option<Field<'_>> {
                Some(match key {
                    $(stringify!($key) => Field::$kind(&mut self.$key),)*
                    _ => return None,
                })
            }

            #[inline(never)]
            fn write_keys(&self, out: &mut String, every_key: bool) {
                let mut w = ObjectWriter::new(out);
                $(config_table!(@write w, every_key, self, $key, $kind, $default $(, $later)?);)*
                w.end();
            }

            /// Checks every value's range.
            ///
            /// # Errors
            /// `invalid_argument` naming the first key out of range.
            pub fn validate(&self) -> Result<()> {
                $($(range(stringify!($key), self.$key.into(), $lo, $hi)?;)?
                config_table!(@ratio self, $key, $kind);
                $($then(self)?;)?)*
                Ok(())
            }
        }
    };
    (@range) => { None };
    (@range $lo:expr, $hi:expr) => { Some(($lo, $hi)) };
    (@write $w:ident, $every:ident, $self:ident, $key:ident, $kind:ident, $default:expr) => {
        config_table!(@put $w, $self, $key, $kind)
    };
    (@write $w:ident, $every:ident, $self:ident, $key:ident, $kind:ident, $default:expr, later) => {
        if $every || $self.$key != $default {
            config_table!(@put $w, $self, $key, $kind)
        }
    };
    (@put $w:ident, $self:ident, $key:ident, U64) => { $w.u64(stringify!($key), $self.$key) };
    (@put $w:ident, $self:ident, $key:ident, U32) => { $w.u64(stringify!($key), $self.$key.into()) };
    (@put $w:ident, $self:ident, $key:ident, Ratio) => { $w.f64(stringify!($key), $self.$key) };
    (@put $w:ident, $self:ident, $key:ident, Flag) => { $w.bool(stringify!($key), $self.$key) };
    (@ratio $self:ident, $key:ident, Ratio) => { ratio(stringify!($key), $self.$key)? };
    (@ratio $self:ident, $key:ident, $kind:ident) => { () };
}

// A new key is one entry here, marked `@later` (snapshots written before it
// existed must read back unchanged), then `make gen` for the bindings.
config_table! {
    /// Lease length in ms (1 ms – 1 day).
    ttl_ms: U64 = 30_000, range(1, DAY_MS);
    /// Time a lease may stay expired before the instance is removed; 0 = never.
    evict_after_ms: U64 = 60_000, range(0, 7 * DAY_MS);
    /// Seed of the registry RNG. The core never draws entropy: hosts supply it.
    seed: U64 = 0;
    /// Consecutive passing checks that make a failing instance healthy (1–1000).
    check_rise: U32 = 1, range(1, 1000);
    /// Consecutive failing checks that make an instance unhealthy (1–1000).
    check_fall: U32 = 1, range(1, 1000);
    /// Consecutive call failures that eject an instance; 0 = outlier detection off.
    consecutive_failures: U32 = 5, range(0, 1000);
    /// First ejection length in ms; the n-th in a row lasts n times as long.
    base_ejection_ms: U64 = 30_000, range(1, DAY_MS);
    /// Cap on one ejection's length in ms.
    max_ejection_ms: U64 = 300_000, range(1, 7 * DAY_MS), then(Config::check_ejection_cap);
    /// Cap on the share of a service's instances ejected at once, in percent (0–100).
    max_ejection_percent: U32 = 10, range(0, 100);
    /// Service panic threshold, 0.0–1.0; 0 = off.
    panic_threshold: Ratio = 0.0;
    /// Slow-start window in ms; 0 = off.
    slow_start_ms: U64 = 0, range(0, DAY_MS);
    /// Registry-wide self-preservation threshold, 0.0–1.0; 0 = off.
    self_preservation_threshold: Ratio = 0.0;
    /// Self-preservation applies only from this many registered instances on.
    self_preservation_min_instances: U32 = 3, range(0, 10_000_000);
    /// How long, in ms, a live instance a source removed still counts in the
    /// population self-preservation measures against (SPEC §10.3), so
    /// removals arriving one by one are judged together; 0 = only removals
    /// at the same clock (0 – 7 days).
    self_preservation_window_ms: U64 = 60_000, range(0, 7 * DAY_MS), @later;
    /// Events kept for `events_since` (1 – 1 000 000).
    event_retention: U32 = 4096, range(1, 1_000_000);
    /// Whether a source's full sync with no entries may remove a service's
    /// instances (SPEC §10.3); by default it is held as a likely error.
    trust_empty_sync: Flag = false, @later;
}

/// A configuration field to set, by the kind of value it takes: one read
/// per kind rather than a `?` per key.
enum Field<'c> {
    U64(&'c mut u64),
    U32(&'c mut u32),
    Ratio(&'c mut f64),
    Flag(&'c mut bool),
}

/// The error for a key that is no configuration key.
#[cold]
fn unknown_key(key: &str) -> Error {
    Error::invalid(key, "unknown configuration key")
}

/// `invalid_argument` naming `key` unless `v` is within `lo..=hi`.
pub(crate) fn range(key: &str, v: u64, lo: u64, hi: u64) -> Result<()> {
    if v < lo || v > hi {
        return Err(Error::invalid(key, text!(v, " is outside ", lo, "..=", hi)));
    }
    Ok(())
}

fn ratio(key: &str, v: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&v) {
        return Err(Error::invalid(key, "must be within 0.0..=1.0"));
    }
    Ok(())
}

impl Config {
    /// Parses a JSON object of configuration keys (snake_case, as in SPEC §4);
    /// missing keys keep their defaults.
    ///
    /// # Errors
    /// `invalid_argument` naming the key for an unknown key, a value of the
    /// wrong type or one out of range; `invalid_argument` (`config`) when the
    /// text is not a JSON object.
    pub fn from_json(text: &str) -> Result<Config> {
        let value = Json::parse(text)
            .map_err(|e| Error::invalid("config", text!("not valid JSON: ", e)))?;
        match value {
            Json::Object(members) => Config::from_object(members),
            _ => Err(Error::invalid("config", "must be a JSON object")),
        }
    }

    /// Like [`Config::from_json`], from the members of a parsed JSON object.
    /// A repeated key counts once, with its last value.
    ///
    /// # Errors
    /// As [`Config::from_json`]; with several faults, the first of the keys
    /// in [`CONFIG_KEYS`] order, then an unknown key, then a range.
    pub fn from_object(members: Vec<(String, Json)>) -> Result<Config> {
        Config::from_members(Object::new(members))
    }

    /// The configuration reader proper, on the core's object reader.
    pub(crate) fn from_members(mut object: Object) -> Result<Config> {
        let mut config = Config::default();
        for key in CONFIG_KEYS {
            if let Some(value) = object.take(key) {
                config.set(key, &value)?;
            }
        }
        if let Some(unknown) = object.unknown() {
            return Err(unknown_key(unknown));
        }
        config.validate()?;
        Ok(config)
    }

    /// Sets one key from a JSON value, checking its type (not its range:
    /// [`Config::validate`] does that).
    ///
    /// # Errors
    /// `invalid_argument` naming the key when it is unknown or the value has
    /// the wrong type.
    pub fn set(&mut self, key: &str, value: &Json) -> Result<()> {
        let uint = |v: &Json| {
            v.as_u64().ok_or_else(|| {
                Error::invalid(
                    key,
                    text!("must be a non-negative integer, got ", describe(v)),
                )
            })
        };
        let u32_of = |v: &Json| {
            uint(v).and_then(|n| {
                u32::try_from(n).map_err(|_| Error::invalid(key, text!(n, " is too large")))
            })
        };
        let flag = |v: &Json| {
            v.as_bool()
                .ok_or_else(|| Error::invalid(key, text!("must be a boolean, got ", describe(v))))
        };
        let ratio = |v: &Json| {
            v.as_f64()
                .ok_or_else(|| Error::invalid(key, text!("must be a number, got ", describe(v))))
        };
        let Some(field) = self.field(key) else {
            return Err(unknown_key(key));
        };
        match field {
            Field::U64(f) => *f = uint(value)?,
            Field::U32(f) => *f = u32_of(value)?,
            Field::Ratio(f) => *f = ratio(value)?,
            Field::Flag(f) => *f = flag(value)?,
        }
        Ok(())
    }

    /// The configuration as a JSON object with every key (the wire form
    /// every binding shares).
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    pub(crate) fn write_json(&self, out: &mut String) {
        self.write_keys(out, true);
    }

    /// The configuration as a snapshot holds it: keys added after the
    /// first snapshot format only when set away from their defaults, so a
    /// snapshot taken before they existed is written back unchanged.
    pub(crate) fn write_snapshot_json(&self, out: &mut String) {
        self.write_keys(out, false);
    }

    /// The one rule across keys: an ejection's cap is not below its base.
    fn check_ejection_cap(&self) -> Result<()> {
        if self.max_ejection_ms < self.base_ejection_ms {
            return Err(Error::invalid(
                "max_ejection_ms",
                text!(
                    self.max_ejection_ms,
                    " is below base_ejection_ms ",
                    self.base_ejection_ms
                ),
            ));
        }
        Ok(())
    }

    /// The kind of value `key` takes, or `None` for an unknown key.
    pub fn kind_of(key: &str) -> Option<ConfigKind> {
        CONFIG_FIELDS.iter().find(|f| f.key == key).map(|f| f.kind)
    }
}
