//! The one error type of the core, with the stable codes of the specification.

use crate::prelude::*;
use core::fmt;

/// Everything that can go wrong in a registry call.
///
/// Every variant maps to one stable code string ([`Error::code`]) that every
/// binding exposes unchanged; the message names the field or id at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// An argument or configuration value is out of range or malformed.
    InvalidArgument {
        /// The field, key or parameter at fault.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No instance with this id is registered.
    NotFound {
        /// The id that was looked up.
        id: String,
    },
    /// No service with this name has any registered instance.
    UnknownService {
        /// The service that was looked up.
        service: String,
    },
    /// The service exists but no instance is eligible for this pick.
    NoEligibleInstance {
        /// The service picked from.
        service: String,
        /// Extra context (empty or starting with a separator).
        detail: String,
    },
    /// The request contradicts the registry's state (e.g. an id owned by another service).
    Conflict(String),
    /// A snapshot document could not be restored.
    InvalidSnapshot(String),
    /// Some of the requested events were already dropped from the retained log.
    Compacted {
        /// The index the caller asked to continue from.
        requested: u64,
        /// The oldest index still retained.
        oldest: u64,
    },
}

impl Error {
    /// The stable code of this error (the same string in every language).
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidArgument { .. } => ErrorCode::InvalidArgument,
            Error::NotFound { .. } => ErrorCode::NotFound,
            Error::UnknownService { .. } => ErrorCode::UnknownService,
            Error::NoEligibleInstance { .. } => ErrorCode::NoEligibleInstance,
            Error::Conflict(_) => ErrorCode::Conflict,
            Error::InvalidSnapshot(_) => ErrorCode::InvalidSnapshot,
            Error::Compacted { .. } => ErrorCode::Compacted,
        }
    }

    /// The human message, as `Display` writes it: `instance `api-1` not found`.
    pub fn message(&self) -> String {
        text!(self)
    }

    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn not_found(id: &str) -> Self {
        Error::NotFound { id: id.to_owned() }
    }

    pub(crate) fn unknown_service(service: &str) -> Self {
        Error::UnknownService {
            service: service.to_owned(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl core::error::Error for Error {}

/// The message is written straight into the text it is part of (a snapshot
/// problem, `message()` itself).
impl crate::text::Piece for Error {
    fn put(&self, out: &mut String) {
        match self {
            Error::InvalidArgument { field, reason } => {
                put!(out, "invalid argument `", field, "`: ", reason)
            }
            Error::NotFound { id } => put!(out, "instance `", id, "` not found"),
            Error::UnknownService { service } => put!(out, "unknown service `", service, "`"),
            Error::NoEligibleInstance { service, detail } => {
                put!(
                    out,
                    "no eligible instance in service `",
                    service,
                    "`",
                    detail
                )
            }
            Error::Conflict(what) => put!(out, "conflict: ", what),
            Error::InvalidSnapshot(what) => put!(out, "invalid snapshot: ", what),
            Error::Compacted { requested, oldest } => put!(
                out,
                "events after index ",
                requested,
                " were compacted; oldest retained is ",
                oldest
            ),
        }
    }
}

name_table! {
    /// The stable error codes (SPEC §8), as a closed set bindings can map one to one.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum ErrorCode {
        /// `invalid_argument`: a value is out of range or malformed (including
        /// invalid UTF-8 and bad JSON).
        InvalidArgument = 1 => "invalid_argument",
        /// `not_found`: no instance with this id (or handle) is registered.
        NotFound = 2 => "not_found",
        /// `unknown_service`: the service has no registered instance.
        UnknownService = 3 => "unknown_service",
        /// `no_eligible_instance`: the service has no candidate for this pick.
        NoEligibleInstance = 4 => "no_eligible_instance",
        /// `conflict`: the id is registered under another service.
        Conflict = 5 => "conflict",
        /// `invalid_snapshot`: a snapshot document could not be restored.
        InvalidSnapshot = 6 => "invalid_snapshot",
        /// `compacted`: requested events were already dropped; resync from a snapshot.
        Compacted = 7 => "compacted",
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Result alias used throughout the core.
pub type Result<T, E = Error> = core::result::Result<T, E>;
