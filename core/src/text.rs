//! Messages built by appending pieces, never through `core::fmt`.
//!
//! Every message the core produces (errors, snapshot problems, the metrics
//! exposition) is a handful of literals, names and integers. Building them
//! with `format!` would link the formatting machinery into every binding —
//! on wasm32 a tenth of the module — for no gain, so they are built with
//! [`text!`] (a new `String`) and [`put!`] (append to one) instead:
//!
//! ```ignore
//! let m = text!("instance `", id, "` not found");
//! put!(&mut out, "waypost_registry_instances ", total, "\n");
//! ```
//!
//! `to_string()` is `format!` in disguise for anything but `str` and
//! `String` (an `Arc<str>` goes through `Display`): one such call linked
//! ~3.4 KB of formatting code. Copy a name with `String::from(&*name)`.

use crate::json::{write_i64, write_u64};
use crate::prelude::*;
use alloc::sync::Arc;

/// Something a message can be built from.
pub(crate) trait Piece {
    /// Appends the piece to `out`.
    fn put(&self, out: &mut String);
}

impl Piece for str {
    fn put(&self, out: &mut String) {
        out.push_str(self);
    }
}

impl Piece for String {
    fn put(&self, out: &mut String) {
        out.push_str(self);
    }
}

impl Piece for Arc<str> {
    fn put(&self, out: &mut String) {
        out.push_str(self);
    }
}

impl Piece for char {
    fn put(&self, out: &mut String) {
        out.push(*self);
    }
}

impl Piece for u64 {
    fn put(&self, out: &mut String) {
        write_u64(out, *self);
    }
}

impl Piece for u32 {
    fn put(&self, out: &mut String) {
        write_u64(out, u64::from(*self));
    }
}

impl Piece for u8 {
    fn put(&self, out: &mut String) {
        write_u64(out, u64::from(*self));
    }
}

impl Piece for usize {
    fn put(&self, out: &mut String) {
        write_u64(out, *self as u64);
    }
}

impl Piece for i64 {
    fn put(&self, out: &mut String) {
        write_i64(out, *self);
    }
}

impl<T: Piece + ?Sized> Piece for &T {
    fn put(&self, out: &mut String) {
        (**self).put(out);
    }
}

/// A code point as `U+` and at least four upper-case hex digits.
pub(crate) struct CodePoint(pub char);

impl Piece for CodePoint {
    fn put(&self, out: &mut String) {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let c = u32::from(self.0);
        out.push_str("U+");
        let digits = (32 - c.leading_zeros()).div_ceil(4).max(4);
        for i in (0..digits).rev() {
            out.push(char::from(HEX[((c >> (i * 4)) & 0xf) as usize]));
        }
    }
}

/// Appends every piece to a `&mut String`.
macro_rules! put {
    ($out:expr, $($piece:expr),+ $(,)?) => {{
        let out: &mut String = $out;
        $( $crate::text::Piece::put(&$piece, out); )+
    }};
}

/// A new `String` of every piece.
macro_rules! text {
    ($($piece:expr),+ $(,)?) => {{
        let mut out = String::new();
        put!(&mut out, $($piece),+);
        out
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_read_as_format_would_write_them() {
        let id: Arc<str> = Arc::from("api-1");
        let owned = String::from("x");
        let s = text!(
            "a",
            id,
            ' ',
            0u64,
            " ",
            u64::MAX,
            " ",
            -5i64,
            " ",
            i64::MIN,
            " ",
            7u8
        );
        assert_eq!(s, format!("a{id} 0 {} -5 {} 7", u64::MAX, i64::MIN));
        let mut out = owned.clone();
        put!(&mut out, &owned, 12usize, '\n', 3u32);
        assert_eq!(out, "xx12\n3");
    }

    #[test]
    fn code_points_read_as_upper_hex_of_at_least_four_digits() {
        for c in [
            '\0',
            '\u{1f}',
            '\u{7f}',
            '\u{ab}',
            '\u{2028}',
            '\u{1F600}',
            '\u{10FFFF}',
        ] {
            assert_eq!(text!(CodePoint(c)), format!("U+{:04X}", u32::from(c)));
        }
    }
}
