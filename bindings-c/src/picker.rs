//! Worker-local pickers (SPEC §5.2): picks that take the registry's lock
//! only when the service changed.

use std::ffi::c_char;
use std::sync::{Arc, Mutex};

use waypost_core::{Handle, PickOptions, Picked, Picker};

use crate::convert::{opt_text, Cleared};
use crate::error::{ffi, guard_value, waypost_error, waypost_status, Failure};
use crate::instances::waypost_handle;
use crate::pick::{
    hand_fields, strategy_of, waypost_pick_known, waypost_pick_options, waypost_pick_result,
    Options,
};
use crate::registry::{lock, waypost_registry, Locked};

/// A picker for one service. Use it from one thread at a time (each worker
/// thread makes its own); it keeps the registry's state alive until freed.
pub struct waypost_picker {
    shared: Arc<Mutex<Locked>>,
    picker: Picker,
}

impl waypost_picker {
    /// Refreshes the picker under the registry's lock when it asks for it.
    #[inline(always)]
    fn fresh(&mut self, now_ms: u64) -> Result<(), Failure> {
        if self.picker.needs_refresh(now_ms) {
            self.refresh(now_ms)?;
        }
        Ok(())
    }

    /// One pick: the key converted, the picker refreshed when it asks,
    /// one step of its sequences.
    ///
    /// # Safety
    /// `key` NULL or NUL-terminated.
    #[inline(always)]
    unsafe fn pick(
        &mut self,
        strategy: u32,
        key: *const c_char,
        now_ms: u64,
    ) -> Result<Picked<'_>, Failure> {
        let key = if key.is_null() {
            None
        } else {
            // SAFETY: as the caller's contract.
            unsafe { opt_text(key, "key") }?
        };
        let strategy = strategy_of(strategy)?;
        self.fresh(now_ms)?;
        Ok(self.picker.pick_entry(strategy, key)?)
    }

    #[cold]
    #[inline(never)]
    fn refresh(&mut self, now_ms: u64) -> Result<(), Failure> {
        lock(&self.shared)?
            .reg
            .refresh_picker(&mut self.picker, now_ms)?;
        Ok(())
    }
}

/// The error for a handle that is not a member of the picker's table.
fn not_member(handle: Handle) -> Failure {
    waypost_core::Error::NotFound {
        id: format!("#{}", handle.to_bits()),
    }
    .into()
}

/// Makes a worker-local picker for `service` (which need not have
/// instances yet). Free it with `waypost_picker_free`; it may outlive the
/// registry handle. Errors: `INVALID_ARGUMENT`, `NULL_ARGUMENT`.
///
/// # Safety
/// `registry` live; `service` NUL-terminated; `out_picker` writable;
/// `out_err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn waypost_picker_new(
    registry: *const waypost_registry,
    service: *const c_char,
    out_picker: *mut *mut waypost_picker,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    // SAFETY: as this function's contract; no options.
    unsafe { waypost_picker_new_with(registry, service, std::ptr::null(), out_picker, out_err) }
}

/// `waypost_picker_new` for a picker whose picks draw from the candidates
/// `waypost_pick` draws from with `options`' `zone` and `filter_json`
/// (SPEC §5.2); `options` may be NULL; its `key` must be NULL (the key
/// comes with each pick). Pickers with the same options share one table.
/// Errors: `INVALID_ARGUMENT` (also for a key or a malformed zone or
/// filter), `NULL_ARGUMENT`.
///
/// # Safety
/// As `waypost_picker_new`; `options` NULL or readable.
#[no_mangle]
pub unsafe extern "C" fn waypost_picker_new_with(
    registry: *const waypost_registry,
    service: *const c_char,
    options: *const waypost_pick_options,
    out_picker: *mut *mut waypost_picker,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(out_err, |registry: &waypost_registry,
                   service: &str,
                   out_picker: &mut *mut waypost_picker,
                   options: Option<Options>| {
        let options = match options {
            Some(o) => PickOptions {
                key: o.key.map(String::from),
                zone: o.zone.map(String::from),
                filter: o.filter.unwrap_or_default(),
            },
            None => PickOptions::default(),
        };
        let picker = registry.lock()?.reg.picker_with(service, &options)?;
        *out_picker = Box::into_raw(Box::new(waypost_picker {
            shared: registry.inner.clone(),
            picker,
        }));
    })
}

/// Picks with the picker's own state, taking the registry's lock only when
/// the service changed since its table was published (or its outcomes are
/// due). `key` is required for `consistent_hash`, else may be NULL. Fills
/// `*out_result` (`membership_epoch` is the one of the table picked from).
/// Errors: as `waypost_pick`.
///
/// # Safety
/// `picker` live and used by no other thread during the call; `key` NULL
/// or NUL-terminated; `out_result` writable; `out_err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn waypost_picker_pick(
    picker: *mut waypost_picker,
    strategy: u32,
    key: *const c_char,
    now_ms: u64,
    out_result: *mut waypost_pick_result,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(
        out_err,
        |picker: &mut waypost_picker, out_result: &mut waypost_pick_result| {
            // SAFETY: as the caller's contract.
            let picked = unsafe { picker.pick(strategy, key, now_ms) }?;
            *out_result = waypost_pick_result::of(picked.pick, picked.table.membership_epoch());
        }
    )
}

/// `waypost_picker_pick` that also hands back the picked instance's
/// registered fields (JSON: the instance wire form of SPEC §2, with
/// `source` for a source-owned one, and no status) as the table it was
/// picked from holds them, in the same call and
/// without the registry's lock: `*out_instance_json` receives them (free
/// with `waypost_string_free`) unless `known` (may be NULL) says the caller
/// already holds slot `index` at the table's membership epoch, and is NULL
/// then. As with `waypost_pick_fields`, nothing can remove the instance
/// between the pick and its fields, so a host never picks twice.
/// Errors: as `waypost_picker_pick`.
///
/// # Safety
/// As `waypost_picker_pick`; `known` NULL or readable, with `slots`
/// readable for `words` words; `out_instance_json` writable.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn waypost_picker_pick_fields(
    picker: *mut waypost_picker,
    strategy: u32,
    key: *const c_char,
    now_ms: u64,
    known: *const waypost_pick_known,
    out_result: *mut waypost_pick_result,
    out_instance_json: *mut *mut c_char,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(
        out_err,
        |picker: &mut waypost_picker,
         out_result: &mut waypost_pick_result,
         out_instance_json: Cleared<c_char>| {
            // SAFETY: as the caller's contract.
            let picked = unsafe { picker.pick(strategy, key, now_ms) }?;
            *out_result = waypost_pick_result::of(picked.pick, picked.table.membership_epoch());
            // SAFETY: as the caller's contract.
            unsafe {
                hand_fields(known, out_result, out_instance_json, || {
                    picked.instance().map(|i| i.to_json())
                })
            }
        }
    )
}

/// Records the outcome of a call for outlier detection; it reaches the
/// registry within `WAYPOST_PICKER_OUTCOME_BATCH` outcomes or
/// `WAYPOST_PICKER_OUTCOME_DELAY_MS` ms, at the picker's next call.
/// Errors: `NULL_ARGUMENT`.
///
/// # Safety
/// `picker` live and used by no other thread during the call.
#[no_mangle]
pub unsafe extern "C" fn waypost_picker_report_outcome(
    picker: *mut waypost_picker,
    handle: waypost_handle,
    success: bool,
    now_ms: u64,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(out_err, |picker: &mut waypost_picker, handle: Handle| {
        if picker.picker.report_outcome(handle, success, now_ms) {
            picker.refresh(now_ms)?;
        }
    })
}

/// Marks a call to `handle` as started (`least_request`), in a counter
/// every picker of the registry reads at once. Errors: `NOT_FOUND` when
/// the handle is not a member in the picker's table; `NULL_ARGUMENT`.
///
/// # Safety
/// `picker` live and used by no other thread during the call.
#[no_mangle]
pub unsafe extern "C" fn waypost_picker_begin(
    picker: *mut waypost_picker,
    handle: waypost_handle,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(out_err, |picker: &mut waypost_picker, handle: Handle| {
        if !picker.picker.begin(handle) {
            return Err(not_member(handle));
        }
    })
}

/// Marks a call to `handle` as finished. Errors: as `waypost_picker_begin`.
///
/// # Safety
/// `picker` live and used by no other thread during the call.
#[no_mangle]
pub unsafe extern "C" fn waypost_picker_end(
    picker: *mut waypost_picker,
    handle: waypost_handle,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(out_err, |picker: &mut waypost_picker, handle: Handle| {
        if !picker.picker.end(handle) {
            return Err(not_member(handle));
        }
    })
}

/// Candidate tables alive in the process (every registry together): a
/// diagnostic for leak tests.
#[no_mangle]
pub extern "C" fn waypost_pick_tables_alive() -> usize {
    guard_value(0, waypost_core::pick_tables_alive)
}

/// Outcomes a picker holds before it reports them.
pub const WAYPOST_PICKER_OUTCOME_BATCH: u32 = 64;
/// Milliseconds a picker holds its first unreported outcome at most
/// (counted in the `now_ms` of its calls).
pub const WAYPOST_PICKER_OUTCOME_DELAY_MS: u64 = 100;
// cbindgen writes literals only: the core's values are checked here.
const _: () = assert!(WAYPOST_PICKER_OUTCOME_BATCH as usize == waypost_core::PICKER_OUTCOME_BATCH);
const _: () = assert!(WAYPOST_PICKER_OUTCOME_DELAY_MS == waypost_core::PICKER_OUTCOME_DELAY_MS);

/// Releases a picker (NULL is fine). Its unreported outcomes are folded
/// into the registry first.
///
/// # Safety
/// `picker` NULL or from `waypost_picker_new`, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn waypost_picker_free(picker: *mut waypost_picker) {
    guard_value((), || {
        if !picker.is_null() {
            // SAFETY: see the function contract: it came from `Box::into_raw`.
            let mut p = unsafe { Box::from_raw(picker) };
            if p.picker.pending_outcomes() > 0 {
                if let Ok(mut locked) = lock(&p.shared) {
                    let now = locked.reg.clock();
                    let _ = locked.reg.refresh_picker(&mut p.picker, now);
                }
            }
        }
    })
}
