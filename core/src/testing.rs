//! What the unit tests use instead of unwrapping: a test returns
//! `TestResult` and reaches values with `?`, so even the tests of the core
//! hold to its rule that nothing panics on a value it was handed. Checks
//! stay `assert!`s.

use core::fmt;
use std::string::String;

/// Why a test stopped: an error, a value that was missing, or a call that
/// succeeded where it had to fail.
pub(crate) struct TestError(String);

// Not `Display`, so that any displayable error converts with `?`.
impl fmt::Debug for TestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<E: fmt::Display> From<E> for TestError {
    fn from(e: E) -> Self {
        TestError(std::format!("{e}"))
    }
}

/// A test stopped by a `TestError` inside a `proptest!` body fails its case.
impl From<TestError> for proptest::test_runner::TestCaseError {
    fn from(e: TestError) -> Self {
        proptest::test_runner::TestCaseError::fail(e.0)
    }
}

/// What a test returns.
pub(crate) type TestResult<T = ()> = Result<T, TestError>;

/// An `Option` that must hold a value.
pub(crate) trait Present<T> {
    /// The value, or a failure naming what was missing.
    fn or_fail(self, what: impl fmt::Display) -> TestResult<T>;
}

impl<T> Present<T> for Option<T> {
    fn or_fail(self, what: impl fmt::Display) -> TestResult<T> {
        self.ok_or_else(|| TestError(std::format!("missing: {what}")))
    }
}

/// A `Result` that must be an error.
pub(crate) trait Refused<E> {
    /// The error, or a failure showing the value returned instead.
    fn failure(self) -> TestResult<E>;
}

impl<T: fmt::Debug, E> Refused<E> for Result<T, E> {
    fn failure(self) -> TestResult<E> {
        match self {
            Ok(v) => Err(TestError(std::format!("expected an error, got {v:?}"))),
            Err(e) => Ok(e),
        }
    }
}

/// A failure with a message, for `return Err(fail(..))`.
pub(crate) fn fail(why: impl fmt::Display) -> TestError {
    TestError(std::format!("{why}"))
}
