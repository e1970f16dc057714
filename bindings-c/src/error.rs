//! Status codes, the owned error object, and the one guard every entry
//! point runs inside.

use std::any::Any;
use std::ffi::{c_char, CString};
use std::panic::{self, AssertUnwindSafe};
use std::ptr;

pub use crate::names::waypost_status;

/// An error handed back through `waypost_error **out_err`: its status and a
/// human message. Owned by the caller, released with `waypost_error_free`.
pub struct waypost_error {
    status: waypost_status,
    message: CString,
}

/// A failed call on its way out: the one place errors are mapped.
#[derive(Debug)]
pub(crate) struct Failure {
    status: waypost_status,
    message: String,
}

impl Failure {
    pub(crate) fn new(status: waypost_status, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn null(argument: &str) -> Failure {
        Failure::new(
            waypost_status::NullArgument,
            format!("argument `{argument}` is NULL"),
        )
    }

    pub(crate) fn invalid(argument: &str, reason: impl std::fmt::Display) -> Failure {
        Failure::new(
            waypost_status::InvalidArgument,
            format!("invalid argument `{argument}`: {reason}"),
        )
    }

    fn panic(payload: Box<dyn Any + Send>) -> Failure {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown payload".to_owned());
        Failure::new(waypost_status::Panic, format!("internal panic: {what}"))
    }
}

impl From<waypost_core::Error> for Failure {
    fn from(e: waypost_core::Error) -> Failure {
        let status = waypost_status::of(e.code());
        Failure::new(status, e.to_string())
    }
}

/// Runs one entry point: catches any panic, and turns the outcome into a
/// status plus, when the caller asked for it, an owned error object.
#[inline]
pub(crate) fn guard(
    out_err: *mut *mut waypost_error,
    body: impl FnOnce() -> Result<(), Failure>,
) -> waypost_status {
    let outcome = match panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(outcome) => outcome,
        Err(payload) => Err(Failure::panic(payload)),
    };
    let (status, error) = match outcome {
        Ok(()) => (waypost_status::Ok, ptr::null_mut()),
        Err(failure) => {
            let status = failure.status;
            let error = if out_err.is_null() {
                ptr::null_mut()
            } else {
                let message =
                    CString::new(failure.message.replace('\0', "\\0")).unwrap_or_default();
                Box::into_raw(Box::new(waypost_error { status, message }))
            };
            (status, error)
        }
    };
    if !out_err.is_null() {
        // SAFETY: the caller passed a writable `waypost_error *` slot.
        unsafe { *out_err = error };
    }
    status
}

/// What an entry point's body may end with: nothing, or a result (the
/// core's error mapped by [`Failure::from`]).
pub(crate) trait Done {
    fn done(self) -> Result<(), Failure>;
}

impl Done for () {
    #[inline(always)]
    fn done(self) -> Result<(), Failure> {
        Ok(())
    }
}

impl Done for Result<(), Failure> {
    #[inline(always)]
    fn done(self) -> Result<(), Failure> {
        self
    }
}

impl Done for waypost_core::Result<()> {
    #[inline(always)]
    fn done(self) -> Result<(), Failure> {
        Ok(self?)
    }
}

/// The frame of a fallible entry point, written once: inside [`guard`]
/// (panics caught, the outcome handed back as a status and an error
/// object through `$out_err`), each listed parameter is converted to its
/// listed Rust type by [`FromC`](crate::convert::FromC), in order, under
/// its own name (a NULL or invalid one fails the call, naming it); then
/// the body runs on the converted arguments and the parameters left out,
/// its `?` mapping any error.
///
/// ```ignore
/// ffi!(out_err, |registry: &waypost_registry, id: &str| {
///     registry.lock()?.reg.deregister(id, now_ms)
/// })
/// ```
///
/// The `extern "C"` function around it stays written out, so cbindgen
/// (which does not expand macros) sees its signature and documentation.
macro_rules! ffi {
    ($out_err:ident, |$($arg:ident: $ty:ty),* $(,)?| $body:block) => {
        $crate::error::guard($out_err, || {
            $(
                // SAFETY: pointer validity is the caller's contract.
                let $arg: $ty =
                    unsafe { $crate::convert::FromC::from_c($arg, stringify!($arg)) }?;
            )*
            $crate::error::Done::done($body)
        })
    };
}
pub(crate) use ffi;

/// Like [`guard`] for entry points that cannot fail: a panic yields `fallback`.
pub(crate) fn guard_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    panic::catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// The status carried by an error; `WAYPOST_STATUS_NULL_ARGUMENT` for NULL.
///
/// # Safety
/// `error` is NULL or an error returned through an `out_err` argument and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn waypost_error_code(error: *const waypost_error) -> waypost_status {
    guard_value(waypost_status::Panic, || {
        // SAFETY: see the function contract.
        unsafe { error.as_ref() }.map_or(waypost_status::NullArgument, |e| e.status)
    })
}

/// The human message of an error (naming the field or id at fault), valid
/// until the error is freed; `""` for NULL.
///
/// # Safety
/// `error` is NULL or an error returned through an `out_err` argument and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn waypost_error_message(error: *const waypost_error) -> *const c_char {
    guard_value(c"".as_ptr(), || {
        // SAFETY: see the function contract.
        unsafe { error.as_ref() }.map_or(c"".as_ptr(), |e| e.message.as_ptr())
    })
}

/// Releases an error. NULL is accepted.
///
/// # Safety
/// `error` is NULL or an error returned through an `out_err` argument, freed only once.
#[no_mangle]
pub unsafe extern "C" fn waypost_error_free(error: *mut waypost_error) {
    guard_value((), || {
        if !error.is_null() {
            // SAFETY: see the function contract: it came from `Box::into_raw`.
            drop(unsafe { Box::from_raw(error) });
        }
    })
}

/// The stable code string of a status (`"ok"`, `"not_found"`, …, `"panic"`),
/// a static string; `"unknown"` for a value that is not a status.
#[no_mangle]
pub extern "C" fn waypost_status_code(status: i32) -> *const c_char {
    guard_value(c"unknown".as_ptr(), || {
        let all = [
            waypost_status::Ok,
            waypost_status::InvalidArgument,
            waypost_status::NotFound,
            waypost_status::UnknownService,
            waypost_status::NoEligibleInstance,
            waypost_status::Conflict,
            waypost_status::InvalidSnapshot,
            waypost_status::Compacted,
            waypost_status::NullArgument,
            waypost_status::Panic,
        ];
        all.iter()
            .find(|s| **s as i32 == status)
            .map_or(c"unknown".as_ptr(), |s| s.code().as_ptr())
    })
}
