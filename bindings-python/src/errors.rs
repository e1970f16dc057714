//! The one place core errors become Python exceptions (SPEC §8).

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::names;

/// Maps a core error to the `waypost.Error` subclass of its code, with the
/// core's message.
pub(crate) fn map(py: Python<'_>, error: waypost::Error) -> PyErr {
    let class = &names::get(py).errors[error.code() as usize - 1];
    match class.bind(py).call1((error.to_string(),)) {
        Ok(instance) => PyErr::from_value(instance),
        Err(e) => e,
    }
}

/// Shorthand for `map` over a result.
pub(crate) fn check<T>(py: Python<'_>, result: waypost::Result<T>) -> PyResult<T> {
    result.map_err(|e| map(py, e))
}

/// An `invalid_argument` error raised by the binding's own conversions
/// (a value of the right Python type but out of the range of the core's type).
pub(crate) fn invalid(py: Python<'_>, field: &str, reason: impl Into<String>) -> PyErr {
    map(
        py,
        waypost::Error::InvalidArgument {
            field: field.to_owned(),
            reason: reason.into(),
        },
    )
}

/// The core promises never to panic; should it ever, the caller gets an
/// ordinary exception instead of a `BaseException` that `except Exception`
/// would miss.
pub(crate) fn panicked() -> PyErr {
    PyRuntimeError::new_err("waypost: internal error (the core panicked); please report it")
}
