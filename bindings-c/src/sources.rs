//! Sources (SPEC §10): reconcile calls and mirrored stores. The host sends
//! the request `waypost_registry_source_request` names and hands the answer
//! back with `waypost_registry_source_feed`; every decision is the core's.
//! Reports and requests come back as owned JSON text
//! (`waypost_string_free`).

use std::ffi::c_char;

use crate::convert::{owned, Cleared};
use crate::error::{ffi, waypost_error, waypost_status};
use crate::registry::waypost_registry;
use waypost_core::ConsulRegistration;

/// Makes the instances of `service` owned by `source` exactly the entries
/// of `entries_json` (a JSON array of instance wire forms, each with an
/// optional `"status"`), and sets `*out_report_json` to the report
/// (`{"added", "updated", "removed", "unchanged", "held", "rejected",
/// "resync", "changed"}`; `"changed"`: anything added, updated, removed or
/// held back, or a resync). Errors: `NULL_ARGUMENT`, `INVALID_ARGUMENT`,
/// `CONFLICT`.
///
/// # Safety
/// `registry` live; strings NUL-terminated; `out_report_json` writable;
/// `out_err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn waypost_registry_sync(
    registry: *const waypost_registry,
    source: *const c_char,
    service: *const c_char,
    entries_json: *const c_char,
    now_ms: u64,
    out_report_json: *mut *mut c_char,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(
        out_err,
        |registry: &waypost_registry,
         source: &str,
         service: &str,
         entries_json: &str,
         out_report_json: Cleared<c_char>| {
            let report = registry
                .lock()?
                .reg
                .sync_json(source, service, entries_json, now_ms)?;
            out_report_json.set(owned(report.to_json())?);
        }
    )
}

/// Adds or replaces one entry of `source` (a watch event's put); the report
/// as for `waypost_registry_sync`.
///
/// # Safety
/// As `waypost_registry_sync`.
#[no_mangle]
pub unsafe extern "C" fn waypost_registry_source_put(
    registry: *const waypost_registry,
    source: *const c_char,
    entry_json: *const c_char,
    now_ms: u64,
    out_report_json: *mut *mut c_char,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(
        out_err,
        |registry: &waypost_registry,
         source: &str,
         entry_json: &str,
         out_report_json: Cleared<c_char>| {
            let report = registry
                .lock()?
                .reg
                .source_put_json(source, entry_json, now_ms)?;
            out_report_json.set(owned(report.to_json())?);
        }
    )
}

/// Removes one id of `source` (a watch event's delete; an id the source
/// does not hold is a no-op); the report as for `waypost_registry_sync`.
///
/// # Safety
/// As `waypost_registry_sync`.
#[no_mangle]
pub unsafe extern "C" fn waypost_registry_source_delete(
    registry: *const waypost_registry,
    source: *const c_char,
    id: *const c_char,
    now_ms: u64,
    out_report_json: *mut *mut c_char,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(
        out_err,
        |registry: &waypost_registry, source: &str, id: &str, out_report_json: Cleared<c_char>| {
            let report = registry.lock()?.reg.source_delete(source, id, now_ms)?;
            out_report_json.set(owned(report.to_json())?);
        }
    )
}

/// Declares a mirrored source `name` from `options_json`, e.g.
/// `{"kind": "etcd", "prefix": "/waypost/services"}`. Errors:
/// `NULL_ARGUMENT`, `INVALID_ARGUMENT`, `CONFLICT` (the name is taken).
///
/// # Safety
/// `registry` live; strings NUL-terminated; `out_err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn waypost_registry_source_add(
    registry: *const waypost_registry,
    name: *const c_char,
    options_json: *const c_char,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(out_err, |registry: &waypost_registry,
                   name: &str,
                   options_json: &str| {
        registry.lock()?.reg.source_add(name, options_json)
    })
}

/// Sets `*out_request_json` to the request the host must send next for
/// source `name`: `{"method", "path", "body", "stream"}` (with `stream`
/// true, feed each message of the answer on its own). Errors:
/// `NULL_ARGUMENT`, `INVALID_ARGUMENT` (no such source).
///
/// # Safety
/// `registry` live; `name` NUL-terminated; `out_request_json` writable;
/// `out_err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn waypost_registry_source_request(
    registry: *const waypost_registry,
    name: *const c_char,
    out_request_json: *mut *mut c_char,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(
        out_err,
        |registry: &waypost_registry, name: &str, out_request_json: Cleared<c_char>| {
            let report = registry.lock()?.reg.source_request(name)?;
            out_request_json.set(owned(report.to_json())?);
        }
    )
}

/// Hands source `name` what its last request brought back: `body` (a whole
/// response, or one message of a stream), the HTTP `status` and the store's
/// index header (`index`, NULL when none). Sets `*out_report_json` to the
/// report; `"resync": true` means the next request reads everything again.
/// Errors: `NULL_ARGUMENT`, `INVALID_ARGUMENT` (no such source, or a
/// payload that is not the store's documented shape: nothing changes then).
///
/// # Safety
/// `registry` live; strings NUL-terminated (`index` may be NULL);
/// `out_report_json` writable; `out_err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn waypost_registry_source_feed(
    registry: *const waypost_registry,
    name: *const c_char,
    body: *const c_char,
    now_ms: u64,
    status: u16,
    index: *const c_char,
    out_report_json: *mut *mut c_char,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(
        out_err,
        |registry: &waypost_registry,
         name: &str,
         body: &str,
         index: Option<&str>,
         out_report_json: Cleared<c_char>| {
            let report = registry
                .lock()?
                .reg
                .source_feed(name, body, now_ms, status, index)?;
            out_report_json.set(owned(report.to_json())?);
        }
    )
}

/// `waypost_registry_source_feed` for a payload of `body_len` bytes that
/// may be binary (etcd's gRPC range answer, SPEC §10.4) or hold NUL bytes;
/// a text payload must still be UTF-8. `body` may be NULL when `body_len`
/// is 0.
///
/// # Safety
/// `registry` live; `name` NUL-terminated; `body` valid for reads of
/// `body_len` bytes; `index` NULL or NUL-terminated; `out_report_json`
/// writable; `out_err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn waypost_registry_source_feed_bytes(
    registry: *const waypost_registry,
    name: *const c_char,
    body: *const u8,
    body_len: usize,
    now_ms: u64,
    status: u16,
    index: *const c_char,
    out_report_json: *mut *mut c_char,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(
        out_err,
        |registry: &waypost_registry,
         name: &str,
         index: Option<&str>,
         out_report_json: Cleared<c_char>| {
            // SAFETY: as the function contract.
            let body = unsafe { crate::convert::bytes(body, body_len, "body") }?;
            let report = registry
                .lock()?
                .reg
                .source_feed_bytes(name, body, now_ms, status, index)?;
            out_report_json.set(owned(report.to_json())?);
        }
    )
}

/// Sets `*out_registration_json` to what a Consul registrar sends the
/// local agent for `entry_json` (the instance wire form plus an optional
/// `"status"`) with a TTL check of `ttl_s` seconds that Consul removes
/// after `deregister_after_s` seconds critical (SPEC §10.4, Consul
/// registration): `{"id", "service", "check_id", "body", "heartbeat_path",
/// "maintenance", "deregister_path", "maintenance_on_path",
/// "maintenance_off_path"}`, `body` the text of `PUT
/// /v1/agent/service/register`, each path ready to `PUT`.
/// Needs no registry. Errors: `NULL_ARGUMENT`, `INVALID_ARGUMENT` (a bad
/// instance or status, or a duration outside 1–86400 s).
///
/// # Safety
/// `entry_json` NUL-terminated; `out_registration_json` writable; `out_err`
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn waypost_consul_registration(
    entry_json: *const c_char,
    ttl_s: u64,
    deregister_after_s: u64,
    out_registration_json: *mut *mut c_char,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(
        out_err,
        |entry_json: &str, out_registration_json: Cleared<c_char>| {
            let registration = ConsulRegistration::new(entry_json, ttl_s, deregister_after_s)?;
            out_registration_json.set(owned(registration.to_json())?);
        }
    )
}
