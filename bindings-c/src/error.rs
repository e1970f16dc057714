//! Status codes, the owned error object, and the one guard every entry
//! point runs inside.

use std::any::Any;
use std::ffi::{c_char, CStr, CString};
use std::panic::{self, AssertUnwindSafe};
use std::ptr;

use waypost_core::ErrorCode;

/// The result of every fallible call: 0 is success. Codes 1–7 are the
/// stable error codes of the specification, in the same order.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum waypost_status {
    /// Success.
    Ok = 0,
    /// `invalid_argument`: a value is out of range or malformed (including
    /// invalid UTF-8 and bad JSON).
    InvalidArgument = 1,
    /// `not_found`: no instance with this id (or handle) is registered.
    NotFound = 2,
    /// `unknown_service`: the service has no registered instance.
    UnknownService = 3,
    /// `no_eligible_instance`: the service has no candidate for this pick.
    NoEligibleInstance = 4,
    /// `conflict`: the id is registered under another service.
    Conflict = 5,
    /// `invalid_snapshot`: a snapshot document could not be restored.
    InvalidSnapshot = 6,
    /// `compacted`: requested events were already dropped; resync from a snapshot.
    Compacted = 7,
    /// `null_argument`: a required pointer argument was NULL.
    NullArgument = 8,
    /// `panic`: the library caught an internal panic. A registry that was
    /// in use at that moment answers every later call with this status.
    Panic = 9,
}

impl waypost_status {
    /// The stable code string, e.g. `"not_found"`.
    pub(crate) fn code(self) -> &'static CStr {
        match self {
            waypost_status::Ok => c"ok",
            waypost_status::InvalidArgument => c"invalid_argument",
            waypost_status::NotFound => c"not_found",
            waypost_status::UnknownService => c"unknown_service",
            waypost_status::NoEligibleInstance => c"no_eligible_instance",
            waypost_status::Conflict => c"conflict",
            waypost_status::InvalidSnapshot => c"invalid_snapshot",
            waypost_status::Compacted => c"compacted",
            waypost_status::NullArgument => c"null_argument",
            waypost_status::Panic => c"panic",
        }
    }
}

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
        let status = match e.code() {
            ErrorCode::InvalidArgument => waypost_status::InvalidArgument,
            ErrorCode::NotFound => waypost_status::NotFound,
            ErrorCode::UnknownService => waypost_status::UnknownService,
            ErrorCode::NoEligibleInstance => waypost_status::NoEligibleInstance,
            ErrorCode::Conflict => waypost_status::Conflict,
            ErrorCode::InvalidSnapshot => waypost_status::InvalidSnapshot,
            ErrorCode::Compacted => waypost_status::Compacted,
        };
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
