//! The opaque registry handle: creation from a config struct, JSON or a
//! snapshot; release; the lock every call goes through.

use std::ffi::c_char;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use waypost_core::json::Json;
use waypost_core::{Config, PickOptions, Registry};

use crate::config::waypost_config;
use crate::convert::{Cleared, FromC};
use crate::error::{ffi, guard_value, waypost_error, waypost_status, Failure};

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

/// A snapshot document argument: a string, but text that is not UTF-8 is
/// no snapshot (`INVALID_SNAPSHOT`) rather than a bad argument.
struct Document<'a>(&'a str);

impl<'a> FromC<'a> for Document<'a> {
    type C = *const c_char;
    unsafe fn from_c(raw: *const c_char, name: &str) -> Result<Self, Failure> {
        if raw.is_null() {
            return Err(Failure::null(name));
        }
        // SAFETY: non-NULL; NUL-terminated and valid for the call by the
        // caller's contract.
        let text = unsafe { std::ffi::CStr::from_ptr(raw) }
            .to_str()
            .map_err(|e| {
                waypost_core::Error::InvalidSnapshot(format!(
                    "not a snapshot document: not valid UTF-8 after byte {}",
                    e.valid_up_to()
                ))
            })?;
        Ok(Document(text))
    }
}

/// A seed from the host: the core never draws entropy, the binding does.
/// `RandomState` is seeded by the OS; the clock and an address add spread.
pub(crate) fn random_seed() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    hasher.write_usize(&hasher as *const _ as usize);
    hasher.finish()
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
    ffi!(
        out_err,
        |config: &waypost_config, out_registry: Cleared<waypost_registry>| {
            out_registry.set(waypost_registry::boxed(Registry::new(config.to_core())?));
        }
    )
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
    ffi!(
        out_err,
        |config_json: &str, out_registry: Cleared<waypost_registry>| {
            let mut config = Config::from_json(config_json)?;
            let has_seed = Json::parse(config_json).is_ok_and(|v| v.get("seed").is_some());
            if !has_seed {
                config.seed = random_seed();
            }
            out_registry.set(waypost_registry::boxed(Registry::new(config)?));
        }
    )
}

/// Creates a registry from a snapshot (`waypost_snapshot`, from any binding);
/// it behaves exactly as the original did.
///
/// Errors: `INVALID_SNAPSHOT` saying what and where (also for a document
/// that is not valid UTF-8: no snapshot is); `NULL_ARGUMENT`.
///
/// # Safety
/// As `waypost_registry_new_json`.
#[no_mangle]
pub unsafe extern "C" fn waypost_registry_restore(
    snapshot_json: *const c_char,
    out_registry: *mut *mut waypost_registry,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(out_err, |out_registry: Cleared<waypost_registry>,
                   snapshot_json: Document| {
        out_registry.set(waypost_registry::boxed(Registry::restore(snapshot_json.0)?));
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
