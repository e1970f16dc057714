//! A deliberate panic, compiled only with the `panic-test` feature, so the
//! test suites can prove the guard turns a panic into a status.

use crate::error::{guard, waypost_error, waypost_status};
use crate::registry::waypost_registry;

/// Panics inside the guard. With a registry, panics while holding its lock:
/// that registry then answers `WAYPOST_STATUS_PANIC` to every call.
///
/// # Safety
/// `registry` NULL or live; `out_err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn waypost_test_panic(
    registry: *const waypost_registry,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    guard(out_err, || {
        // SAFETY: as the function contract.
        let _locked = match unsafe { registry.as_ref() } {
            Some(reg) => Some(reg.lock()?),
            None => None,
        };
        panic!("forced by waypost_test_panic");
    })
}
