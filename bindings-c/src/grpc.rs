//! One gRPC unary call's HTTP/2, without I/O (SPEC §10.4): the host owns
//! the connection and moves bytes; the core says what to send and reads
//! the answer. Go's etcd helpers make their range read this way; a C or
//! C++ host can too.

use std::ffi::{c_char, CString};

use waypost_core::{GrpcCall, GrpcCallState};

use crate::convert::bytes;
use crate::error::{ffi, guard_value, waypost_error, waypost_status};

/// Where a gRPC call stands.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum waypost_grpc_state {
    /// The answer has not ended: read on.
    Waiting = 0,
    /// The answer is whole: `waypost_grpc_call_answer`.
    Answered = 1,
    /// The call failed: `waypost_grpc_call_failure` says how.
    Failed = 2,
}

impl From<GrpcCallState> for waypost_grpc_state {
    fn from(state: GrpcCallState) -> Self {
        match state {
            GrpcCallState::Waiting => waypost_grpc_state::Waiting,
            GrpcCallState::Answered => waypost_grpc_state::Answered,
            GrpcCallState::Failed => waypost_grpc_state::Failed,
        }
    }
}

/// One gRPC unary call. Used by one thread at a time.
pub struct waypost_grpc_call {
    call: GrpcCall,
    /// The bytes `waypost_grpc_call_output` handed out last.
    sending: Vec<u8>,
    /// The failure as a C string, made when first asked for.
    failure: Option<CString>,
}

/// Starts a call of `path` at `authority` (`host:port`) over `scheme`
/// (`"http"` or `"https"`; TLS and its ALPN `h2` offer are the host's) with
/// `message`, the length-prefixed gRPC request (at most 65 535 bytes). The
/// call fails once its answer exceeds `max_answer` bytes (0: 256 MiB, also
/// the most). Free it with `waypost_grpc_call_free`. Errors:
/// `INVALID_ARGUMENT` (another scheme; an empty authority or path, or one
/// with a byte outside visible ASCII; a longer message), `NULL_ARGUMENT`.
///
/// # Safety
/// `scheme`, `authority` and `path` NUL-terminated; `message` valid for
/// reads of `message_len` bytes (may be NULL when 0); `out_call` writable;
/// `out_err` NULL or writable.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn waypost_grpc_call_new(
    scheme: *const c_char,
    authority: *const c_char,
    path: *const c_char,
    message: *const u8,
    message_len: usize,
    max_answer: usize,
    out_call: *mut *mut waypost_grpc_call,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(
        out_err,
        |scheme: &str, authority: &str, path: &str, out_call: &mut *mut waypost_grpc_call| {
            *out_call = std::ptr::null_mut();
            // SAFETY: as the function contract.
            let message = unsafe { bytes(message, message_len, "message") }?;
            let call = GrpcCall::new(scheme, authority, path, message, max_answer)?;
            *out_call = Box::into_raw(Box::new(waypost_grpc_call {
                call,
                sending: Vec::new(),
                failure: None,
            }));
        }
    )
}

/// Sets `*out_bytes` / `*out_len` to what the host must send now (length 0
/// when nothing), borrowed until the next call on `call`: first the whole
/// request, then the acknowledgements HTTP/2 asks for, and after the
/// answer a goodbye that may be sent or dropped. Errors: `NULL_ARGUMENT`.
///
/// # Safety
/// `call` live and used by no other thread; `out_bytes` and `out_len`
/// writable; `out_err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn waypost_grpc_call_output(
    call: *mut waypost_grpc_call,
    out_bytes: *mut *const u8,
    out_len: *mut usize,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(out_err, |call: &mut waypost_grpc_call,
                   out_bytes: &mut *const u8,
                   out_len: &mut usize| {
        call.sending = call.call.take_output();
        *out_bytes = call.sending.as_ptr();
        *out_len = call.sending.len();
    })
}

/// Reads what the server sent (`len` bytes as read, in any pieces; `len`
/// 0: the server closed the connection) and sets `*out_state`. Send
/// `waypost_grpc_call_output` after each. Errors: `NULL_ARGUMENT`.
///
/// # Safety
/// `call` live and used by no other thread; `data` valid for reads of
/// `len` bytes (may be NULL when 0); `out_state` writable; `out_err` NULL
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn waypost_grpc_call_receive(
    call: *mut waypost_grpc_call,
    data: *const u8,
    len: usize,
    out_state: *mut waypost_grpc_state,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(
        out_err,
        |call: &mut waypost_grpc_call, out_state: &mut waypost_grpc_state| {
            // SAFETY: as the function contract.
            let data = unsafe { bytes(data, len, "data") }?;
            *out_state = call.call.receive(data).into();
        }
    )
}

/// Sets `*out_bytes` / `*out_len` to the answer (the DATA of the call's
/// stream: a length-prefixed gRPC message), borrowed until `call` is
/// freed; length 0 unless the call is answered. Errors: `NULL_ARGUMENT`.
///
/// # Safety
/// `call` live; `out_bytes` and `out_len` writable; `out_err` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn waypost_grpc_call_answer(
    call: *const waypost_grpc_call,
    out_bytes: *mut *const u8,
    out_len: *mut usize,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(out_err, |call: &waypost_grpc_call,
                   out_bytes: &mut *const u8,
                   out_len: &mut usize| {
        let answer = call.call.answer();
        *out_bytes = answer.as_ptr();
        *out_len = answer.len();
    })
}

/// How the call failed, borrowed until `call` is freed (`""` unless it
/// failed; `""` for NULL).
///
/// # Safety
/// `call` NULL or live and used by no other thread.
#[no_mangle]
pub unsafe extern "C" fn waypost_grpc_call_failure(call: *mut waypost_grpc_call) -> *const c_char {
    guard_value(c"".as_ptr(), || {
        // SAFETY: see the function contract.
        let Some(call) = (unsafe { call.as_mut() }) else {
            return c"".as_ptr();
        };
        let failure = call.call.failure();
        if failure.is_empty() {
            return c"".as_ptr();
        }
        call.failure
            .get_or_insert_with(|| {
                CString::new(failure.replace('\0', "\u{fffd}")).unwrap_or_default()
            })
            .as_ptr()
    })
}

/// Releases a call (NULL is fine).
///
/// # Safety
/// `call` NULL or from `waypost_grpc_call_new`, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn waypost_grpc_call_free(call: *mut waypost_grpc_call) {
    guard_value((), || {
        if !call.is_null() {
            // SAFETY: see the function contract: it came from `Box::into_raw`.
            drop(unsafe { Box::from_raw(call) });
        }
    })
}
