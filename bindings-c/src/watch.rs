//! Time, events, snapshots and metrics: the calls a host uses to drive and
//! observe a registry.

use std::ffi::c_char;

use waypost_core::json::strings_to_json;

use crate::convert::{owned, Cleared};
use crate::error::{ffi, waypost_error, waypost_status};
use crate::registry::waypost_registry;

/// `waypost_next_deadline` value when nothing is scheduled.
pub const WAYPOST_NO_DEADLINE: u64 = u64::MAX;

/// A point-in-time summary of a registry.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct waypost_info {
    /// Registry clock: the latest `now` seen, in ms.
    pub clock: u64,
    /// Index of the latest event (0 before any).
    pub last_index: u64,
    /// Registered instances.
    pub instances: u64,
    /// Changes whenever an instance is added, removed or updated.
    pub membership_epoch: u64,
    /// Lease expiries are being held back.
    pub self_preservation: bool,
}

/// Advances the clock to `now_ms`, applying every expiry, eviction and
/// ejection end that fell due. `*out_events_json` (may be NULL: events
/// dropped) receives a JSON array of the events this produced, or NULL when
/// there were none (nothing to free). `out_count` (may be NULL) gets their
/// number. Errors: `NULL_ARGUMENT`.
///
/// # Safety
/// `registry` live; out pointers NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn waypost_tick(
    registry: *const waypost_registry,
    now_ms: u64,
    out_events_json: *mut *mut c_char,
    out_count: *mut usize,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(out_err, |registry: &waypost_registry,
                   out_events_json: Option<&mut *mut c_char>,
                   out_count: Option<&mut usize>| {
        let events = registry.lock()?.reg.tick(now_ms);
        if let Some(count) = out_count {
            *count = events.len();
        }
        if let Some(json) = out_events_json {
            *json = if events.is_empty() {
                std::ptr::null_mut()
            } else {
                owned(waypost_core::Event::list_to_json(&events))?
            };
        }
    })
}

/// The earliest time at which advancing the clock changes state, so the
/// host can sleep until then; `WAYPOST_NO_DEADLINE` when nothing is
/// scheduled. Errors: `NULL_ARGUMENT`.
///
/// # Safety
/// `registry` live; `out_deadline` writable; `out_err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn waypost_next_deadline(
    registry: *const waypost_registry,
    out_deadline: *mut u64,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(out_err, |registry: &waypost_registry,
                   out_deadline: &mut u64| {
        *out_deadline = registry
            .lock()?
            .reg
            .next_deadline()
            .unwrap_or(WAYPOST_NO_DEADLINE);
    })
}

/// Ids of the instances whose active check should run now, as a JSON array,
/// in (due, id) order; each is rescheduled, so running what is returned
/// never runs a check twice. Errors: `NULL_ARGUMENT`.
///
/// # Safety
/// `registry` live; `out_json` writable; `out_err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn waypost_due_checks(
    registry: *const waypost_registry,
    now_ms: u64,
    out_json: *mut *mut c_char,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(out_err, |registry: &waypost_registry,
                   out_json: Cleared<c_char>| {
        let ids = registry.lock()?.reg.due_checks(now_ms);
        out_json.set(owned(strings_to_json(&ids))?);
    })
}

/// The retained events with index greater than `after`, as a JSON array of
/// event objects (`index`, `type`, `at`, and `id`, `service`, `from`, `to`
/// when they apply). Errors: `COMPACTED` when some were dropped (resync from
/// a snapshot); `NULL_ARGUMENT`.
///
/// # Safety
/// As `waypost_due_checks`.
#[no_mangle]
pub unsafe extern "C" fn waypost_events_since(
    registry: *const waypost_registry,
    after: u64,
    out_json: *mut *mut c_char,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(out_err, |registry: &waypost_registry,
                   out_json: Cleared<c_char>| {
        let events = registry.lock()?.reg.events_since(after)?;
        out_json.set(owned(waypost_core::Event::list_to_json(&events))?);
    })
}

/// Index of the last change to a service or any of its instances (for
/// long-poll watchers). Errors: `UNKNOWN_SERVICE`; `INVALID_ARGUMENT`; `NULL_ARGUMENT`.
///
/// # Safety
/// `registry` live; `service` NUL-terminated; `out_index` writable; `out_err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn waypost_service_modify_index(
    registry: *const waypost_registry,
    service: *const c_char,
    out_index: *mut u64,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(out_err, |registry: &waypost_registry,
                   service: &str,
                   out_index: &mut u64| {
        *out_index = registry.lock()?.reg.service_modify_index(service)?;
    })
}

/// The whole registry as a JSON snapshot document (`waypost.snapshot/1`),
/// restorable with `waypost_registry_restore` in any binding.
/// Errors: `NULL_ARGUMENT`.
///
/// # Safety
/// As `waypost_due_checks`.
#[no_mangle]
pub unsafe extern "C" fn waypost_snapshot(
    registry: *const waypost_registry,
    out_json: *mut *mut c_char,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(out_err, |registry: &waypost_registry,
                   out_json: Cleared<c_char>| {
        let text = registry.lock()?.reg.snapshot();
        out_json.set(owned(text)?);
    })
}

/// Every metric in the Prometheus text format, ready to serve at `/metrics`.
/// Errors: `NULL_ARGUMENT`.
///
/// # Safety
/// `registry` live; `out_text` writable; `out_err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn waypost_render_metrics(
    registry: *const waypost_registry,
    out_text: *mut *mut c_char,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(out_err, |registry: &waypost_registry,
                   out_text: Cleared<c_char>| {
        let text = registry.lock()?.reg.render_metrics();
        out_text.set(owned(text)?);
    })
}

/// Fills `*out_info` with the registry clock, last event index, instance
/// count, membership epoch and self-preservation flag. Errors: `NULL_ARGUMENT`.
///
/// # Safety
/// `registry` live; `out_info` writable; `out_err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn waypost_registry_info(
    registry: *const waypost_registry,
    out_info: *mut waypost_info,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(out_err, |registry: &waypost_registry,
                   out_info: &mut waypost_info| {
        let locked = registry.lock()?;
        let r = &locked.reg;
        *out_info = waypost_info {
            clock: r.clock(),
            last_index: r.last_index(),
            instances: r.len() as u64,
            membership_epoch: r.membership_epoch(),
            self_preservation: r.in_self_preservation(),
        };
    })
}
