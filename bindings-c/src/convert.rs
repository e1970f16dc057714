//! Argument conversion at the boundary: borrowed C strings in, owned C
//! strings out, checked pointers. Every failure is a [`Failure`], never a crash.

use std::ffi::{c_char, CStr, CString};

use waypost_core::{Error, Filter, Handle};

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

/// A borrowed byte buffer of `len` bytes (NULL only when `len` is 0).
///
/// # Safety
/// `ptr` is NULL or valid for reads of `len` bytes for the call.
pub(crate) unsafe fn bytes<'a>(
    ptr: *const u8,
    len: usize,
    name: &str,
) -> Result<&'a [u8], Failure> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Failure::null(name));
    }
    // SAFETY: non-NULL and valid for `len` bytes by the function contract.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// An optional borrowed UTF-8 string argument (NULL = absent).
///
/// # Safety
/// As [`text`].
#[inline]
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

/// A Rust argument made from its C parameter: what `ffi!` does to each
/// argument it lists, in the order listed, before any work. `name` is the
/// parameter's name, for the error.
pub(crate) trait FromC<'a>: Sized {
    /// The parameter's C type.
    type C;

    /// # Safety
    /// `raw` is valid as the entry point's contract says of that parameter.
    unsafe fn from_c(raw: Self::C, name: &str) -> Result<Self, Failure>;
}

/// A required borrowed string ([`text`]).
impl<'a> FromC<'a> for &'a str {
    type C = *const c_char;
    #[inline(always)]
    unsafe fn from_c(raw: *const c_char, name: &str) -> Result<Self, Failure> {
        // SAFETY: as the caller's contract.
        unsafe { text(raw, name) }
    }
}

/// An optional borrowed string ([`opt_text`]).
impl<'a> FromC<'a> for Option<&'a str> {
    type C = *const c_char;
    #[inline(always)]
    unsafe fn from_c(raw: *const c_char, name: &str) -> Result<Self, Failure> {
        // SAFETY: as the caller's contract.
        unsafe { opt_text(raw, name) }
    }
}

/// A required input struct or handle ([`input`]).
impl<'a, T> FromC<'a> for &'a T {
    type C = *const T;
    #[inline(always)]
    unsafe fn from_c(raw: *const T, name: &str) -> Result<Self, Failure> {
        // SAFETY: as the caller's contract.
        unsafe { input(raw, name) }
    }
}

/// A required out-pointer or mutable handle ([`out`]), left as it is.
impl<'a, T> FromC<'a> for &'a mut T {
    type C = *mut T;
    #[inline(always)]
    unsafe fn from_c(raw: *mut T, name: &str) -> Result<Self, Failure> {
        // SAFETY: as the caller's contract.
        unsafe { out(raw, name) }
    }
}

/// An optional out-pointer ([`opt_out`]).
impl<'a, T> FromC<'a> for Option<&'a mut T> {
    type C = *mut T;
    #[inline(always)]
    unsafe fn from_c(raw: *mut T, _name: &str) -> Result<Self, Failure> {
        // SAFETY: as the caller's contract.
        Ok(unsafe { opt_out(raw) })
    }
}

/// A handle argument: any value is one (a stale one is the core's to find).
impl FromC<'_> for Handle {
    type C = u64;
    #[inline(always)]
    unsafe fn from_c(raw: u64, _name: &str) -> Result<Self, Failure> {
        Ok(Handle::from_bits(raw))
    }
}

/// A required out-pointer to a pointer the caller will own (a string, a
/// registry), set to NULL as soon as it is checked: NULL on every failure,
/// whatever the caller's variable held.
pub(crate) struct Cleared<'a, T>(&'a mut *mut T);

impl<'a, T> FromC<'a> for Cleared<'a, T> {
    type C = *mut *mut T;
    #[inline(always)]
    unsafe fn from_c(raw: *mut *mut T, name: &str) -> Result<Self, Failure> {
        // SAFETY: as the caller's contract.
        let slot = unsafe { out(raw, name) }?;
        *slot = std::ptr::null_mut();
        Ok(Cleared(slot))
    }
}

impl<'a, T> Cleared<'a, T> {
    /// Hands `value` to the caller.
    #[inline(always)]
    pub(crate) fn set(self, value: *mut T) {
        *self.0 = value;
    }
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
