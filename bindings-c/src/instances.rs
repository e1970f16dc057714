//! Instance lifecycle and reports: register, heartbeat, drain, checks,
//! call outcomes, in-flight marks, and reading one instance back.

use std::ffi::c_char;

use waypost_core::{CheckStatus, Handle, InstanceSpec, MAX_PORT};

use crate::config::{WAYPOST_ID_BUFFER, WAYPOST_ZONE_BUFFER};
use crate::convert::{copy_into, owned, Cleared, FromC};
use crate::error::{ffi, waypost_error, waypost_status, Failure};
pub use crate::names::{waypost_check_status, waypost_health};
use crate::registry::waypost_registry;

/// A registered instance: `generation << 32 | slot index`. Stays valid until
/// the instance is removed; a reused slot never matches an old handle.
pub type waypost_handle = u64;

/// The fields of one instance, copied into fixed buffers (every field fits:
/// ids, services and addresses are at most `WAYPOST_MAX_ID_BYTES` bytes,
/// zones `WAYPOST_MAX_ZONE_BYTES`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct waypost_endpoint {
    /// Instance id, NUL-terminated.
    pub id: [c_char; WAYPOST_ID_BUFFER],
    /// Service name, NUL-terminated.
    pub service: [c_char; WAYPOST_ID_BUFFER],
    /// Host name or IP, NUL-terminated.
    pub address: [c_char; WAYPOST_ID_BUFFER],
    /// Zone, NUL-terminated ("" when none).
    pub zone: [c_char; WAYPOST_ZONE_BUFFER],
    /// Port.
    pub port: u16,
    /// Failover tier (0 preferred).
    pub priority: u8,
    /// Configured weight.
    pub weight: u32,
}

/// A `waypost_check_status` argument.
impl FromC<'_> for CheckStatus {
    type C = u32;
    unsafe fn from_c(raw: u32, name: &str) -> Result<Self, Failure> {
        match raw {
            0 => Ok(CheckStatus::Pass),
            1 => Ok(CheckStatus::Warn),
            2 => Ok(CheckStatus::Fail),
            other => Err(Failure::invalid(
                name,
                format!("{other} is not a waypost_check_status"),
            )),
        }
    }
}

/// The error for a handle that names no registered instance.
fn not_registered(handle: waypost_handle) -> Failure {
    Failure::new(
        waypost_status::NotFound,
        format!("handle {handle} is not registered"),
    )
}

/// Registers an instance with the required fields and every default (weight
/// 1, no tags, …), or replaces an existing one with the same id and service.
/// `out_handle` may be NULL.
///
/// Errors: `INVALID_ARGUMENT` naming the field (port outside 1–`WAYPOST_MAX_PORT` too);
/// `CONFLICT` when the id belongs to another service; `NULL_ARGUMENT`.
///
/// # Safety
/// `registry` live; strings NUL-terminated; out pointers NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn waypost_register(
    registry: *const waypost_registry,
    id: *const c_char,
    service: *const c_char,
    address: *const c_char,
    port: u32,
    now_ms: u64,
    out_handle: *mut waypost_handle,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(
        out_err,
        |registry: &waypost_registry,
         id: &str,
         service: &str,
         address: &str,
         out_handle: Option<&mut waypost_handle>| {
            let port = u16::try_from(port).map_err(|_| {
                Failure::invalid("port", format!("{port} is outside 1..={MAX_PORT}"))
            })?;
            let spec = InstanceSpec::new(id, service, address, port);
            let handle = registry.lock()?.reg.register(spec, now_ms)?;
            if let Some(slot) = out_handle {
                *slot = handle.to_bits();
            }
        }
    )
}

/// Registers an instance from a JSON object with the SPEC §2 fields (id,
/// service, address, port, weight, tags, meta, zone, priority, ttl_ms,
/// check_interval_ms). `out_handle` may be NULL.
///
/// Errors: as `waypost_register`, and `INVALID_ARGUMENT` for bad JSON.
///
/// # Safety
/// As `waypost_register`.
#[no_mangle]
pub unsafe extern "C" fn waypost_register_json(
    registry: *const waypost_registry,
    instance_json: *const c_char,
    now_ms: u64,
    out_handle: *mut waypost_handle,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(
        out_err,
        |registry: &waypost_registry,
         instance_json: &str,
         out_handle: Option<&mut waypost_handle>| {
            let spec = InstanceSpec::from_json(instance_json)?;
            let handle = registry.lock()?.reg.register(spec, now_ms)?;
            if let Some(slot) = out_handle {
                *slot = handle.to_bits();
            }
        }
    )
}

/// Removes an instance. Errors: `NOT_FOUND`, `INVALID_ARGUMENT`, `NULL_ARGUMENT`.
///
/// # Safety
/// `registry` live; `id` NUL-terminated; `out_err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn waypost_deregister(
    registry: *const waypost_registry,
    id: *const c_char,
    now_ms: u64,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(out_err, |registry: &waypost_registry, id: &str| {
        registry.lock()?.reg.deregister(id, now_ms)
    })
}

/// Renews an instance's lease (an expired lease recovers). Allocates nothing
/// unless it fails. Errors: `NOT_FOUND` (register again), `INVALID_ARGUMENT`,
/// `NULL_ARGUMENT`.
///
/// # Safety
/// As `waypost_deregister`.
#[no_mangle]
pub unsafe extern "C" fn waypost_heartbeat(
    registry: *const waypost_registry,
    id: *const c_char,
    now_ms: u64,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(out_err, |registry: &waypost_registry, id: &str| {
        registry.lock()?.reg.heartbeat(id, now_ms)
    })
}

/// `waypost_heartbeat` by handle: no string crosses the boundary.
/// Errors: `NOT_FOUND` when the handle is stale; `NULL_ARGUMENT`.
///
/// # Safety
/// `registry` live; `out_err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn waypost_heartbeat_handle(
    registry: *const waypost_registry,
    handle: waypost_handle,
    now_ms: u64,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(out_err, |registry: &waypost_registry, handle: Handle| {
        registry.lock()?.reg.heartbeat_handle(handle, now_ms)
    })
}

/// Puts an instance in maintenance (`on`) or takes it out.
/// Errors: `NOT_FOUND`, `INVALID_ARGUMENT`, `NULL_ARGUMENT`.
///
/// # Safety
/// As `waypost_deregister`.
#[no_mangle]
pub unsafe extern "C" fn waypost_drain(
    registry: *const waypost_registry,
    id: *const c_char,
    on: bool,
    now_ms: u64,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(out_err, |registry: &waypost_registry, id: &str| {
        registry.lock()?.reg.drain(id, on, now_ms)
    })
}

/// Reports the result of an active check: `status` is a `waypost_check_status`.
/// Errors: `INVALID_ARGUMENT` (also for a status out of range), `NOT_FOUND`,
/// `NULL_ARGUMENT`.
///
/// # Safety
/// As `waypost_deregister`.
#[no_mangle]
pub unsafe extern "C" fn waypost_report_check(
    registry: *const waypost_registry,
    id: *const c_char,
    status: u32,
    now_ms: u64,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(out_err, |status: CheckStatus,
                   registry: &waypost_registry,
                   id: &str| {
        registry.lock()?.reg.report_check(id, status, now_ms)
    })
}

/// Reports the outcome of one call to an instance (outlier detection).
/// Errors: `NOT_FOUND`, `INVALID_ARGUMENT`, `NULL_ARGUMENT`.
///
/// # Safety
/// As `waypost_deregister`.
#[no_mangle]
pub unsafe extern "C" fn waypost_report_outcome(
    registry: *const waypost_registry,
    id: *const c_char,
    success: bool,
    now_ms: u64,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(out_err, |registry: &waypost_registry, id: &str| {
        registry.lock()?.reg.report_outcome(id, success, now_ms)
    })
}

/// `waypost_report_outcome` by handle. Errors: `NOT_FOUND`, `NULL_ARGUMENT`.
///
/// # Safety
/// As `waypost_heartbeat_handle`.
#[no_mangle]
pub unsafe extern "C" fn waypost_report_outcome_handle(
    registry: *const waypost_registry,
    handle: waypost_handle,
    success: bool,
    now_ms: u64,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(out_err, |registry: &waypost_registry, handle: Handle| {
        registry
            .lock()?
            .reg
            .report_outcome_handle(handle, success, now_ms)
    })
}

/// Marks a call to an instance as started (for `least_request`).
/// Errors: `NOT_FOUND`, `INVALID_ARGUMENT`, `NULL_ARGUMENT`.
///
/// # Safety
/// As `waypost_deregister`.
#[no_mangle]
pub unsafe extern "C" fn waypost_begin(
    registry: *const waypost_registry,
    id: *const c_char,
    now_ms: u64,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(out_err, |registry: &waypost_registry, id: &str| {
        registry.lock()?.reg.begin(id, now_ms)
    })
}

/// Marks a call to an instance as finished.
/// Errors: `NOT_FOUND`, `INVALID_ARGUMENT`, `NULL_ARGUMENT`.
///
/// # Safety
/// As `waypost_deregister`.
#[no_mangle]
pub unsafe extern "C" fn waypost_end(
    registry: *const waypost_registry,
    id: *const c_char,
    now_ms: u64,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(out_err, |registry: &waypost_registry, id: &str| {
        registry.lock()?.reg.end(id, now_ms)
    })
}

/// `waypost_begin` by handle. Errors: `NOT_FOUND`, `NULL_ARGUMENT`.
///
/// # Safety
/// As `waypost_heartbeat_handle`.
#[no_mangle]
pub unsafe extern "C" fn waypost_begin_handle(
    registry: *const waypost_registry,
    handle: waypost_handle,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(out_err, |registry: &waypost_registry, handle: Handle| {
        registry.lock()?.reg.begin_handle(handle)
    })
}

/// `waypost_end` by handle. Errors: `NOT_FOUND`, `NULL_ARGUMENT`.
///
/// # Safety
/// As `waypost_heartbeat_handle`.
#[no_mangle]
pub unsafe extern "C" fn waypost_end_handle(
    registry: *const waypost_registry,
    handle: waypost_handle,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(out_err, |registry: &waypost_registry, handle: Handle| {
        registry.lock()?.reg.end_handle(handle)
    })
}

/// One instance with its status, as a JSON object (the shared wire form:
/// SPEC §2 fields plus `health`, `modify_index`, `inflight`, …), at `now_ms`.
/// Free `*out_json` with `waypost_string_free`.
///
/// Errors: `NOT_FOUND`, `INVALID_ARGUMENT`, `NULL_ARGUMENT`.
///
/// # Safety
/// `registry` live; `id` NUL-terminated; out pointers writable (`out_err` may be NULL).
#[no_mangle]
pub unsafe extern "C" fn waypost_get(
    registry: *const waypost_registry,
    id: *const c_char,
    now_ms: u64,
    out_json: *mut *mut c_char,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(out_err, |registry: &waypost_registry,
                   id: &str,
                   out_json: Cleared<c_char>| {
        let json = registry.lock()?.reg.get(id, now_ms)?.to_json();
        out_json.set(owned(json)?);
    })
}

/// The instance behind a handle as JSON (as `waypost_get`, at the registry
/// clock, without advancing it). `out_membership_epoch` (may be NULL)
/// receives the registry's membership epoch at that moment: a host-side
/// cache keyed by handle stays valid while the epoch is unchanged.
///
/// Errors: `NOT_FOUND` for a stale handle; `NULL_ARGUMENT`.
///
/// # Safety
/// As `waypost_get`.
#[no_mangle]
pub unsafe extern "C" fn waypost_instance(
    registry: *const waypost_registry,
    handle: waypost_handle,
    out_json: *mut *mut c_char,
    out_membership_epoch: *mut u64,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(
        out_err,
        |registry: &waypost_registry,
         out_json: Cleared<c_char>,
         out_membership_epoch: Option<&mut u64>| {
            let locked = registry.lock()?;
            let view = locked
                .reg
                .view_handle(Handle::from_bits(handle))
                .ok_or_else(|| not_registered(handle))?;
            out_json.set(owned(view.to_json())?);
            if let Some(epoch) = out_membership_epoch {
                *epoch = locked.reg.membership_epoch();
            }
        }
    )
}

/// Copies the fields of the instance behind a handle into a caller-owned
/// struct: no allocation. Errors: `NOT_FOUND` for a stale handle; `NULL_ARGUMENT`.
///
/// # Safety
/// `registry` live; `out_endpoint` writable; `out_err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn waypost_instance_endpoint(
    registry: *const waypost_registry,
    handle: waypost_handle,
    out_endpoint: *mut waypost_endpoint,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(
        out_err,
        |registry: &waypost_registry, out_endpoint: &mut waypost_endpoint| {
            let locked = registry.lock()?;
            let instance = locked
                .reg
                .instance(Handle::from_bits(handle))
                .ok_or_else(|| not_registered(handle))?;
            copy_into(&mut out_endpoint.id, instance.id());
            copy_into(&mut out_endpoint.service, instance.service());
            copy_into(&mut out_endpoint.address, instance.address());
            copy_into(&mut out_endpoint.zone, instance.zone().unwrap_or(""));
            out_endpoint.port = instance.port();
            out_endpoint.priority = instance.priority();
            out_endpoint.weight = instance.weight();
        }
    )
}
