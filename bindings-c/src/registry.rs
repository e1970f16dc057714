//! The opaque registry handle: creation from a config struct, JSON or a
//! snapshot; release; the lock every call goes through.

use std::ffi::c_char;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use waypost_core::json::Json;
use waypost_core::{Config, PickOptions, Registry};

use crate::convert::{input, out, text};
use crate::error::{guard, guard_value, waypost_error, waypost_status, Failure};

/// A registry behind a lock: safe to share between threads. Pickers hold
/// the lock too, so it lives until the registry and its last picker are freed.
pub struct waypost_registry {
    pub(crate) inner: Arc<Mutex<Locked>>,
}

/// What the lock guards: the registry and reusable pick buffers, so a pick
/// with a key or zone allocates nothing after the first.
pub(crate) struct Locked {
    pub reg: Registry,
    pub scratch: PickOptions,
    /// Buffers kept for `scratch.key` and `scratch.zone` while they are unset.
    pub spare: [String; 2],
}

impl waypost_registry {
    fn boxed(reg: Registry) -> *mut waypost_registry {
        Box::into_raw(Box::new(waypost_registry {
            inner: Arc::new(Mutex::new(Locked {
                reg,
                scratch: PickOptions::default(),
                spare: Default::default(),
            })),
        }))
    }

    /// Locks the registry. A registry poisoned by an internal panic stays
    /// unusable: its state may be half-updated.
    #[inline]
    pub(crate) fn lock(&self) -> Result<MutexGuard<'_, Locked>, Failure> {
        lock(&self.inner)
    }
}

/// Locks a registry's state. A registry poisoned by an internal panic
/// stays unusable: its state may be half-updated.
#[inline]
pub(crate) fn lock(inner: &Mutex<Locked>) -> Result<MutexGuard<'_, Locked>, Failure> {
    inner.lock().map_err(|_| {
        Failure::new(
            waypost_status::Panic,
            "registry is unusable after an internal panic",
        )
    })
}

/// The registry behind a handle argument.
///
/// # Safety
/// `ptr` is NULL or a live registry from `waypost_registry_new*`.
#[inline]
pub(crate) unsafe fn deref<'a>(
    ptr: *const waypost_registry,
) -> Result<&'a waypost_registry, Failure> {
    // SAFETY: as the caller's contract.
    unsafe { input(ptr, "registry") }
}

/// Registry configuration (SPEC §4). Start from `waypost_config_default()`
/// and change fields; durations are in milliseconds.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct waypost_config {
    /// Lease length (1 ms – 1 day).
    pub ttl_ms: u64,
    /// Time a lease may stay expired before removal; 0 = never.
    pub evict_after_ms: u64,
    /// Seed of the registry RNG (used when `random_seed` is false).
    pub seed: u64,
    /// Draw the seed from the host's entropy instead of `seed` (the default).
    pub random_seed: bool,
    /// Consecutive passing checks that make a failing instance healthy.
    pub check_rise: u32,
    /// Consecutive failing checks that make an instance unhealthy.
    pub check_fall: u32,
    /// Consecutive call failures that eject an instance; 0 = off.
    pub consecutive_failures: u32,
    /// First ejection length.
    pub base_ejection_ms: u64,
    /// Cap on one ejection's length.
    pub max_ejection_ms: u64,
    /// Cap on the share of a service's instances ejected at once (percent).
    pub max_ejection_percent: u32,
    /// Service panic threshold, 0.0–1.0; 0 = off.
    pub panic_threshold: f64,
    /// Slow-start window; 0 = off.
    pub slow_start_ms: u64,
    /// Registry-wide self-preservation threshold, 0.0–1.0; 0 = off.
    pub self_preservation_threshold: f64,
    /// Self-preservation applies only from this many instances on.
    pub self_preservation_min_instances: u32,
    /// Events kept for `waypost_events_since`.
    pub event_retention: u32,
    /// Whether a source's full sync with no entries may remove instances
    /// (by default it is held as a likely error).
    pub trust_empty_sync: bool,
}

impl waypost_config {
    fn to_core(self) -> Config {
        Config {
            ttl_ms: self.ttl_ms,
            evict_after_ms: self.evict_after_ms,
            seed: if self.random_seed {
                random_seed()
            } else {
                self.seed
            },
            check_rise: self.check_rise,
            check_fall: self.check_fall,
            consecutive_failures: self.consecutive_failures,
            base_ejection_ms: self.base_ejection_ms,
            max_ejection_ms: self.max_ejection_ms,
            max_ejection_percent: self.max_ejection_percent,
            panic_threshold: self.panic_threshold,
            slow_start_ms: self.slow_start_ms,
            self_preservation_threshold: self.self_preservation_threshold,
            self_preservation_min_instances: self.self_preservation_min_instances,
            event_retention: self.event_retention,
            trust_empty_sync: self.trust_empty_sync,
        }
    }
}

/// A seed from the host: the core never draws entropy, the binding does.
/// `RandomState` is seeded by the OS; the clock and an address add spread.
fn random_seed() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    hasher.write_usize(&hasher as *const _ as usize);
    hasher.finish()
}

/// The default configuration (SPEC §4), with a random seed.
#[no_mangle]
pub extern "C" fn waypost_config_default() -> waypost_config {
    let c = guard_value(Config::default(), Config::default);
    waypost_config {
        ttl_ms: c.ttl_ms,
        evict_after_ms: c.evict_after_ms,
        seed: c.seed,
        random_seed: true,
        check_rise: c.check_rise,
        check_fall: c.check_fall,
        consecutive_failures: c.consecutive_failures,
        base_ejection_ms: c.base_ejection_ms,
        max_ejection_ms: c.max_ejection_ms,
        max_ejection_percent: c.max_ejection_percent,
        panic_threshold: c.panic_threshold,
        slow_start_ms: c.slow_start_ms,
        self_preservation_threshold: c.self_preservation_threshold,
        self_preservation_min_instances: c.self_preservation_min_instances,
        event_retention: c.event_retention,
        trust_empty_sync: c.trust_empty_sync,
    }
}

/// Creates a registry from a configuration struct.
///
/// Errors: `INVALID_ARGUMENT` naming the key out of range; `NULL_ARGUMENT`.
///
/// # Safety
/// `config` is readable, `out_registry` writable; `out_err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn waypost_registry_new(
    config: *const waypost_config,
    out_registry: *mut *mut waypost_registry,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    guard(out_err, || {
        // SAFETY: pointer validity is the caller's contract.
        let config = unsafe { input(config, "config") }?;
        let slot = unsafe { out(out_registry, "out_registry") }?;
        *slot = std::ptr::null_mut();
        *slot = waypost_registry::boxed(Registry::new(config.to_core())?);
        Ok(())
    })
}

/// Creates a registry from a JSON object of SPEC §4 keys (missing keys keep
/// their defaults; without `"seed"` the seed is drawn from host entropy).
///
/// Errors: `INVALID_ARGUMENT` for bad JSON, an unknown key or a value out of
/// range; `NULL_ARGUMENT`.
///
/// # Safety
/// `config_json` is a NUL-terminated string; `out_registry` writable;
/// `out_err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn waypost_registry_new_json(
    config_json: *const c_char,
    out_registry: *mut *mut waypost_registry,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    guard(out_err, || {
        // SAFETY: pointer validity is the caller's contract.
        let json = unsafe { text(config_json, "config_json") }?;
        let slot = unsafe { out(out_registry, "out_registry") }?;
        *slot = std::ptr::null_mut();
        let mut config = Config::from_json(json)?;
        let has_seed = Json::parse(json).is_ok_and(|v| v.get("seed").is_some());
        if !has_seed {
            config.seed = random_seed();
        }
        *slot = waypost_registry::boxed(Registry::new(config)?);
        Ok(())
    })
}

/// Creates a registry from a snapshot (`waypost_snapshot`, from any binding);
/// it behaves exactly as the original did.
///
/// Errors: `INVALID_SNAPSHOT` saying what and where; `NULL_ARGUMENT`.
///
/// # Safety
/// As `waypost_registry_new_json`.
#[no_mangle]
pub unsafe extern "C" fn waypost_registry_restore(
    snapshot_json: *const c_char,
    out_registry: *mut *mut waypost_registry,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    guard(out_err, || {
        // SAFETY: pointer validity is the caller's contract.
        let json = unsafe { text(snapshot_json, "snapshot_json") }?;
        let slot = unsafe { out(out_registry, "out_registry") }?;
        *slot = std::ptr::null_mut();
        *slot = waypost_registry::boxed(Registry::restore(json)?);
        Ok(())
    })
}

/// Releases a registry. NULL is accepted. No other thread may be using it.
///
/// # Safety
/// `registry` is NULL or came from `waypost_registry_new*`, freed only once.
#[no_mangle]
pub unsafe extern "C" fn waypost_registry_free(registry: *mut waypost_registry) {
    guard_value((), || {
        if !registry.is_null() {
            // SAFETY: see the function contract: it came from `Box::into_raw`.
            drop(unsafe { Box::from_raw(registry) });
        }
    })
}
