//! Registry configuration (SPEC §4) and its validation.

use crate::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::json::{describe, Json, ObjectWriter};

/// One day in milliseconds: the upper bound of every duration setting.
pub const DAY_MS: u64 = 86_400_000;

/// The configuration of a [`Registry`](crate::Registry).
///
/// Build it with [`Config::default`] and field updates, or from JSON with
/// [`Config::from_json`]; [`Config::validate`] is run by
/// [`Registry::new`](crate::Registry::new).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Lease length in ms (1 ms – 1 day).
    pub ttl_ms: u64,
    /// Time a lease may stay expired before the instance is removed; 0 = never.
    pub evict_after_ms: u64,
    /// Seed of the registry RNG. The core never draws entropy: hosts supply it.
    pub seed: u64,
    /// Consecutive passing checks that make a failing instance healthy (1–1000).
    pub check_rise: u32,
    /// Consecutive failing checks that make an instance unhealthy (1–1000).
    pub check_fall: u32,
    /// Consecutive call failures that eject an instance; 0 = outlier detection off.
    pub consecutive_failures: u32,
    /// First ejection length in ms; the n-th in a row lasts n times as long.
    pub base_ejection_ms: u64,
    /// Cap on one ejection's length in ms.
    pub max_ejection_ms: u64,
    /// Cap on the share of a service's instances ejected at once, in percent (0–100).
    pub max_ejection_percent: u32,
    /// Service panic threshold, 0.0–1.0; 0 = off.
    pub panic_threshold: f64,
    /// Slow-start window in ms; 0 = off.
    pub slow_start_ms: u64,
    /// Registry-wide self-preservation threshold, 0.0–1.0; 0 = off.
    pub self_preservation_threshold: f64,
    /// Self-preservation applies only from this many registered instances on.
    pub self_preservation_min_instances: u32,
    /// Events kept for `events_since` (1 – 1 000 000).
    pub event_retention: u32,
    /// Whether a source's full sync with no entries may remove a service's
    /// instances (SPEC §10.3); by default it is held as a likely error.
    pub trust_empty_sync: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ttl_ms: 30_000,
            evict_after_ms: 60_000,
            seed: 0,
            check_rise: 1,
            check_fall: 1,
            consecutive_failures: 5,
            base_ejection_ms: 30_000,
            max_ejection_ms: 300_000,
            max_ejection_percent: 10,
            panic_threshold: 0.0,
            slow_start_ms: 0,
            self_preservation_threshold: 0.0,
            self_preservation_min_instances: 3,
            event_retention: 4096,
            trust_empty_sync: false,
        }
    }
}

/// The configuration keys, in documentation order.
pub const CONFIG_KEYS: [&str; 15] = [
    "ttl_ms",
    "evict_after_ms",
    "seed",
    "check_rise",
    "check_fall",
    "consecutive_failures",
    "base_ejection_ms",
    "max_ejection_ms",
    "max_ejection_percent",
    "panic_threshold",
    "slow_start_ms",
    "self_preservation_threshold",
    "self_preservation_min_instances",
    "event_retention",
    "trust_empty_sync",
];

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
            Json::Object(members) => Config::from_object(&members),
            _ => Err(Error::invalid("config", "must be a JSON object")),
        }
    }

    /// Like [`Config::from_json`], from the members of a parsed JSON object.
    ///
    /// # Errors
    /// As [`Config::from_json`].
    pub fn from_object(members: &[(String, Json)]) -> Result<Config> {
        let mut config = Config::default();
        for (key, value) in members {
            config.set(key, value)?;
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
        // The field first, then one read per kind of value: a `?` per key
        // would copy the error out fourteen times.
        enum Field<'c> {
            U64(&'c mut u64),
            U32(&'c mut u32),
            Ratio(&'c mut f64),
            Flag(&'c mut bool),
        }
        let field = match key {
            "ttl_ms" => Field::U64(&mut self.ttl_ms),
            "evict_after_ms" => Field::U64(&mut self.evict_after_ms),
            "seed" => Field::U64(&mut self.seed),
            "check_rise" => Field::U32(&mut self.check_rise),
            "check_fall" => Field::U32(&mut self.check_fall),
            "consecutive_failures" => Field::U32(&mut self.consecutive_failures),
            "base_ejection_ms" => Field::U64(&mut self.base_ejection_ms),
            "max_ejection_ms" => Field::U64(&mut self.max_ejection_ms),
            "max_ejection_percent" => Field::U32(&mut self.max_ejection_percent),
            "panic_threshold" => Field::Ratio(&mut self.panic_threshold),
            "slow_start_ms" => Field::U64(&mut self.slow_start_ms),
            "self_preservation_threshold" => Field::Ratio(&mut self.self_preservation_threshold),
            "self_preservation_min_instances" => {
                Field::U32(&mut self.self_preservation_min_instances)
            }
            "event_retention" => Field::U32(&mut self.event_retention),
            "trust_empty_sync" => Field::Flag(&mut self.trust_empty_sync),
            _ => return Err(Error::invalid(key, "unknown configuration key")),
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

    #[inline(never)]
    fn write_keys(&self, out: &mut String, every_key: bool) {
        let mut w = ObjectWriter::new(out);
        w.u64("ttl_ms", self.ttl_ms);
        w.u64("evict_after_ms", self.evict_after_ms);
        w.u64("seed", self.seed);
        w.u64("check_rise", self.check_rise.into());
        w.u64("check_fall", self.check_fall.into());
        w.u64("consecutive_failures", self.consecutive_failures.into());
        w.u64("base_ejection_ms", self.base_ejection_ms);
        w.u64("max_ejection_ms", self.max_ejection_ms);
        w.u64("max_ejection_percent", self.max_ejection_percent.into());
        w.f64("panic_threshold", self.panic_threshold);
        w.u64("slow_start_ms", self.slow_start_ms);
        w.f64(
            "self_preservation_threshold",
            self.self_preservation_threshold,
        );
        w.u64(
            "self_preservation_min_instances",
            self.self_preservation_min_instances.into(),
        );
        w.u64("event_retention", self.event_retention.into());
        if every_key || self.trust_empty_sync {
            w.bool("trust_empty_sync", self.trust_empty_sync);
        }
        w.end();
    }

    /// Checks every value's range.
    ///
    /// # Errors
    /// `invalid_argument` naming the first key out of range.
    pub fn validate(&self) -> Result<()> {
        fn range(key: &str, v: u64, lo: u64, hi: u64) -> Result<()> {
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
        range("ttl_ms", self.ttl_ms, 1, DAY_MS)?;
        range("evict_after_ms", self.evict_after_ms, 0, 7 * DAY_MS)?;
        range("check_rise", self.check_rise.into(), 1, 1000)?;
        range("check_fall", self.check_fall.into(), 1, 1000)?;
        range(
            "consecutive_failures",
            self.consecutive_failures.into(),
            0,
            1000,
        )?;
        range("base_ejection_ms", self.base_ejection_ms, 1, DAY_MS)?;
        range("max_ejection_ms", self.max_ejection_ms, 1, 7 * DAY_MS)?;
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
        range(
            "max_ejection_percent",
            self.max_ejection_percent.into(),
            0,
            100,
        )?;
        ratio("panic_threshold", self.panic_threshold)?;
        range("slow_start_ms", self.slow_start_ms, 0, DAY_MS)?;
        ratio(
            "self_preservation_threshold",
            self.self_preservation_threshold,
        )?;
        range(
            "self_preservation_min_instances",
            self.self_preservation_min_instances.into(),
            0,
            10_000_000,
        )?;
        range("event_retention", self.event_retention.into(), 1, 1_000_000)?;
        Ok(())
    }
}
