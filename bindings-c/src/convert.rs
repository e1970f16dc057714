//! Argument conversion at the boundary: borrowed C strings in, owned C
//! strings out, checked pointers. Every failure is a [`Failure`], never a crash.

use std::ffi::{c_char, CStr, CString};

use waypost_core::{Error, Filter};

use crate::error::Failure;

/// Strings up to this length are measured and checked inline by [`text`].
const SHORT_TEXT: usize = 64;

/// A required borrowed UTF-8 string argument.
///
/// # Safety
/// `ptr` is NULL or a NUL-terminated string valid for the call.
pub(crate) unsafe fn text<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(Failure::null(name));
    }
    // Names on the hot paths (pick, heartbeat) are short ASCII: one pass
    // finds the end and whether any byte is non-ASCII, so they skip the
    // library strlen and UTF-8 validation calls. Anything else takes the
    // general path below.
    let mut len = 0usize;
    let mut high = 0u8;
    while len < SHORT_TEXT {
        // SAFETY: NUL-terminated by the function contract, and this loop
        // stops at the first NUL, so every byte read is inside the string.
        let b = unsafe { *ptr.add(len) } as u8;
        if b == 0 {
            // SAFETY: `len` bytes before the NUL were just read.
            let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) };
            if high < 0x80 {
                // SAFETY: every byte is ASCII, which is valid UTF-8.
                return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
            }
            break;
        }
        high |= b;
        len += 1;
    }
    // SAFETY: non-NULL, NUL-terminated by the function contract.
    let bytes = unsafe { CStr::from_ptr(ptr) };
    bytes.to_str().map_err(|e| {
        Failure::invalid(
            name,
            format!("not valid UTF-8 after byte {}", e.valid_up_to()),
        )
    })
}

/// An optional borrowed UTF-8 string argument (NULL = absent).
///
/// # Safety
/// As [`text`].
pub(crate) unsafe fn opt_text<'a>(
    ptr: *const c_char,
    name: &str,
) -> Result<Option<&'a str>, Failure> {
    if ptr.is_null() {
        Ok(None)
    } else {
        // SAFETY: as the caller's contract.
        unsafe { text(ptr, name) }.map(Some)
    }
}

/// A required out-pointer, checked before any work is done.
///
/// # Safety
/// `ptr` is NULL or valid for writes of `T`.
#[inline]
pub(crate) unsafe fn out<'a, T>(ptr: *mut T, name: &str) -> Result<&'a mut T, Failure> {
    // SAFETY: non-NULL pointers are valid for writes by the function contract.
    unsafe { ptr.as_mut() }.ok_or_else(|| Failure::null(name))
}

/// An optional out-pointer (NULL = the caller does not want this value).
///
/// # Safety
/// As [`out`].
#[inline]
pub(crate) unsafe fn opt_out<'a, T>(ptr: *mut T) -> Option<&'a mut T> {
    // SAFETY: as the caller's contract.
    unsafe { ptr.as_mut() }
}

/// A required borrowed input struct.
///
/// # Safety
/// `ptr` is NULL or valid for reads of `T`.
#[inline]
pub(crate) unsafe fn input<'a, T>(ptr: *const T, name: &str) -> Result<&'a T, Failure> {
    // SAFETY: as the caller's contract.
    unsafe { ptr.as_ref() }.ok_or_else(|| Failure::null(name))
}

/// An owned C string for the caller, released by `waypost_string_free`.
pub(crate) fn owned(text: String) -> Result<*mut c_char, Failure> {
    CString::new(text)
        .map(CString::into_raw)
        .map_err(|_| Failure::invalid("result", "contains a NUL byte"))
}

/// A tag and metadata filter from its JSON form (the core's
/// `Filter::from_json`), its errors naming the C argument.
pub(crate) fn filter_from_json(text: &str) -> Result<Filter, Failure> {
    Filter::from_json(text).map_err(|e| match e {
        Error::InvalidArgument { reason, .. } => Failure::invalid("filter_json", reason),
        other => Failure::from(other),
    })
}

/// Copies `text` into a fixed, NUL-terminated C buffer (it always fits:
/// the core bounds every field it is used for).
pub(crate) fn copy_into(buffer: &mut [c_char], text: &str) {
    let n = text.len().min(buffer.len() - 1);
    for (dst, &src) in buffer.iter_mut().zip(&text.as_bytes()[..n]) {
        *dst = src as c_char;
    }
    buffer[n] = 0;
}
