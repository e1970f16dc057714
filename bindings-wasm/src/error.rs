//! The one place where core errors become the text the facade makes its
//! `WaypostError` from (`takeError`). Every fallible export keeps its error
//! and returns a marker (-1, `undefined`, or a registry that `failed`), so
//! the module builds no JavaScript values of its own.

use alloc::borrow::ToOwned;
use alloc::string::String;

/// The error as text, `code message`; `None` reads as a binding misuse.
pub fn error_text(error: Option<&waypost::Error>) -> String {
    match error {
        Some(e) => {
            let mut text = String::from(e.code().as_str());
            text.push(' ');
            text.push_str(&e.message());
            text
        }
        None => "invalid_argument no error recorded".to_owned(),
    }
}
