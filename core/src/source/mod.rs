//! Sources: mirroring a store of record (etcd, Consul, Kubernetes, or any
//! host that reconciles a list) into the registry (SPEC §10).
//!
//! The types here are shared by the reconcile logic and by the store
//! adapters. An adapter is a pure state machine: it names the request the
//! host sends next and turns the store's own payloads into [`Change`]s,
//! which the registry then applies under the ownership and protection
//! rules of SPEC §10.

use crate::prelude::*;
use core::str::FromStr;

use crate::error::{Error, ErrorCode};
use crate::instance::InstanceSpec;

pub(crate) mod consul;
pub(crate) mod k8s;

/// A source's verdict on one of its instances (SPEC §10.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceStatus {
    /// Healthy.
    #[default]
    Passing,
    /// Degraded (Consul `warning`).
    Warning,
    /// Unhealthy (Consul `critical`, Kubernetes not ready).
    Critical,
    /// Draining (Consul maintenance, Kubernetes serving and terminating).
    Maintenance,
}

impl SourceStatus {
    /// Every status, in wire order.
    pub const ALL: [SourceStatus; 4] = [
        SourceStatus::Passing,
        SourceStatus::Warning,
        SourceStatus::Critical,
        SourceStatus::Maintenance,
    ];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            SourceStatus::Passing => "passing",
            SourceStatus::Warning => "warning",
            SourceStatus::Critical => "critical",
            SourceStatus::Maintenance => "maintenance",
        }
    }
}

impl FromStr for SourceStatus {
    type Err = Error;

    fn from_str(s: &str) -> Result<SourceStatus, Error> {
        SourceStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "status",
                    "must be one of passing, warning, critical, maintenance",
                )
            })
    }
}

/// One instance as a source reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceEntry {
    /// The instance's fields (its `ttl_ms` is ignored: the source decides
    /// when it exists).
    pub spec: InstanceSpec,
    /// The source's verdict on its health.
    pub status: SourceStatus,
}

/// A record that a reconcile skipped, and why; the rest of its batch applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// Where the record was: its position in a list, or its store key.
    pub at: String,
    /// Why, as an error code (`invalid_argument`, `conflict`).
    pub code: ErrorCode,
    /// What was wrong, naming the field.
    pub message: String,
}

/// What one reconcile call did (SPEC §10.2).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncReport {
    /// Instances the source added.
    pub added: u32,
    /// Instances whose fields or status changed.
    pub updated: u32,
    /// Instances removed.
    pub removed: u32,
    /// Entries equal to what the registry held.
    pub unchanged: u32,
    /// Removals held back (self-preservation or an untrusted empty sync).
    pub held: u32,
    /// Records skipped, each with its reason.
    pub rejected: Vec<Rejected>,
    /// The mirror was reset: the next request reads the full state again.
    pub resync: bool,
}

/// The request a mirror's host sends next (SPEC §10.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRequest {
    /// HTTP method: `GET` or `POST`.
    pub method: &'static str,
    /// Path and query, e.g. `/v3/kv/range`.
    pub path: String,
    /// Request body (JSON), empty for none.
    pub body: String,
    /// Whether the answer is a stream of messages, each fed on its own.
    pub stream: bool,
}

/// What an adapter read from one payload, for the registry to apply.
#[allow(dead_code)] // used by the reconcile and the adapters as they land
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    /// The source's whole state: every service it owns becomes exactly these.
    ReplaceAll(Vec<SourceEntry>),
    /// One service of the source becomes exactly these entries.
    ReplaceService(String, Vec<SourceEntry>),
    /// One entry added or replaced.
    Put(SourceEntry),
    /// One id removed.
    Delete(String),
}

/// An adapter's reading of one payload.
#[allow(dead_code)]
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Feed {
    /// Changes in the order the store made them.
    pub changes: Vec<Change>,
    /// Records skipped.
    pub rejected: Vec<Rejected>,
    /// The adapter reset itself and must read the full state again.
    pub resync: bool,
}
