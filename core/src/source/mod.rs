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

mod base64;
pub(crate) mod etcd;
#[doc(hidden)]
pub use etcd::etcd_readers_agree;

use crate::config::MAX_PREFIX_BYTES;
use crate::error::{Error, ErrorCode};
use crate::instance::InstanceSpec;
use crate::json::{describe, write_array, Json, Object, ObjectWriter};

pub(crate) mod consul;
#[cfg(feature = "consul-registration")]
pub use consul::{ConsulRegistration, CONSUL_MAINTENANCE_REASON, MAX_CONSUL_CHECK_S};
pub(crate) mod k8s;
#[cfg(test)]
mod tests;

name_table! {
    /// A source's verdict on one of its instances (SPEC §10.1).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
    #[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
    pub enum SourceStatus {
        /// Healthy.
        Passing = 0 => "passing",
        /// Degraded (Consul `warning`).
        Warning = 1 => "warning",
        /// Unhealthy (Consul `critical`, Kubernetes not ready).
        Critical = 2 => "critical",
        /// Draining (Consul maintenance, Kubernetes serving and terminating).
        Maintenance = 3 => "maintenance",
    }
}

/// A source that gives no status means passing.
impl Default for SourceStatus {
    fn default() -> SourceStatus {
        SourceStatus::Passing
    }
}

impl FromStr for SourceStatus {
    type Err = Error;

    fn from_str(s: &str) -> Result<SourceStatus, Error> {
        SourceStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| Error::invalid("status", text!("must be one of ", SourceStatus::LIST)))
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
    /// A gRPC unary call over HTTP/2 (`path` is the method, `body` the
    /// base64 of the length-prefixed request message): the host sends it
    /// with `content-type: application/grpc` and feeds back the answer's
    /// bytes as they came, prefix included.
    pub grpc: bool,
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
    /// An id whose record in this payload was rejected: a full replace in
    /// the same payload leaves its instance as it is rather than removing
    /// it (a bad write must not look like a deletion).
    Keep(String),
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

impl SourceEntry {
    /// An entry with the default status, `passing`.
    pub fn new(spec: InstanceSpec) -> SourceEntry {
        SourceEntry {
            spec,
            status: SourceStatus::Passing,
        }
    }

    /// Parses an entry: the instance wire form (SPEC §2) plus an optional
    /// `"status"`. A `"source"` member is ignored (the source feeding the
    /// entry owns it), so the wire form of a mirrored instance reads back.
    ///
    /// # Errors
    /// `invalid_argument` naming the field at fault.
    pub fn from_json(text: &str) -> Result<SourceEntry, Error> {
        match Json::parse(text) {
            Ok(Json::Object(members)) => SourceEntry::from_object(members),
            Ok(_) => Err(Error::invalid("entry", "must be a JSON object")),
            Err(e) => Err(Error::invalid("entry", text!("not valid JSON: ", e))),
        }
    }

    /// Like [`SourceEntry::from_json`], from the members of a parsed object.
    ///
    /// # Errors
    /// As [`SourceEntry::from_json`].
    pub fn from_object(members: Vec<(String, Json)>) -> Result<SourceEntry, Error> {
        let mut object = Object::new(members);
        let status = match object.take("status") {
            None | Some(Json::Null) => SourceStatus::Passing,
            Some(Json::String(s)) => s.parse()?,
            Some(other) => {
                return Err(Error::invalid(
                    "status",
                    text!("must be a string, got ", describe(&other)),
                ))
            }
        };
        object.take("source");
        let spec = InstanceSpec::from_members(object)?;
        Ok(SourceEntry { spec, status })
    }
}

impl Rejected {
    pub(crate) fn new(at: String, error: &Error) -> Rejected {
        Rejected {
            at,
            code: error.code(),
            message: error.message(),
        }
    }
}

impl SyncReport {
    /// Whether the call changed anything a host reacts to: an instance
    /// added, updated, removed or held back, or the mirror reset
    /// (`resync`). Unchanged entries and rejected records alone are not a
    /// change. Written into the report JSON as `"changed"`, so every
    /// binding's change callback fires on this one rule (SPEC §10.2).
    pub fn changed(&self) -> bool {
        self.added > 0 || self.updated > 0 || self.removed > 0 || self.held > 0 || self.resync
    }

    /// The report as a JSON object: `{"added", "updated", "removed",
    /// "unchanged", "held", "rejected": [{"at", "code", "message"}],
    /// "resync", "changed"}` (SPEC §10.2).
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        let mut w = ObjectWriter::new(&mut out);
        w.u64("added", self.added.into());
        w.u64("updated", self.updated.into());
        w.u64("removed", self.removed.into());
        w.u64("unchanged", self.unchanged.into());
        w.u64("held", self.held.into());
        write_array(w.key("rejected"), &self.rejected, |out, r| {
            let mut w = ObjectWriter::new(out);
            w.str("at", &r.at);
            w.str("code", r.code.as_str());
            w.str("message", &r.message);
            w.end();
        });
        w.bool("resync", self.resync);
        w.bool("changed", self.changed());
        w.end();
        out
    }
}

impl SourceRequest {
    /// The request as a JSON object: `{"method", "path", "body", "stream"}`,
    /// plus `"grpc": true` for a gRPC call.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        let mut w = ObjectWriter::new(&mut out);
        w.str("method", self.method);
        w.str("path", &self.path);
        w.str("body", &self.body);
        w.bool("stream", self.stream);
        #[cfg(feature = "etcd-grpc")]
        if self.grpc {
            w.bool("grpc", true);
        }
        w.end();
        out
    }
}

/// What a mirrored source is, with its options (SPEC §10.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// etcd v3: every key under `prefix`, watched through the JSON
    /// gateway.
    Etcd {
        /// Key prefix, e.g. `/waypost/services`.
        prefix: String,
        /// Read the whole range over etcd's gRPC API (`KV/Range`) rather
        /// than the gateway's `/v3/kv/range`: the same kvs, without etcd
        /// writing each one as base64 JSON (several times faster for a
        /// large prefix).
        grpc: bool,
    },
    /// One Consul service through `/v1/health/service/<service>`.
    Consul {
        /// The Consul service name.
        service: String,
    },
    /// One Kubernetes service through its EndpointSlices.
    K8s {
        /// The namespace.
        namespace: String,
        /// The service name.
        service: String,
        /// The port name; empty for the first port.
        port: String,
    },
}

/// A payload as text.
///
/// # Errors
/// `invalid_argument` for `body` when it is not UTF-8.
pub(crate) fn utf8(body: &[u8]) -> Result<&str, Error> {
    core::str::from_utf8(body).map_err(|_| Error::invalid("body", "not valid UTF-8"))
}

/// The default etcd key prefix.
pub const DEFAULT_ETCD_PREFIX: &str = "/waypost/services";

impl SourceKind {
    /// Parses the options of `source_add`: `{"kind": "etcd", "prefix": …}`,
    /// `{"kind": "consul", "service": …}` or `{"kind": "k8s", "namespace":
    /// …, "service": …, "port": …}`.
    ///
    /// # Errors
    /// `invalid_argument` naming the option at fault: `kind`, then the
    /// kind's options, then an option the kind does not have.
    pub fn from_json(text: &str) -> Result<SourceKind, Error> {
        let mut object = match Json::parse(text) {
            Ok(Json::Object(members)) => Object::new(members),
            Ok(_) => return Err(Error::invalid("options", "must be a JSON object")),
            Err(e) => return Err(Error::invalid("options", text!("not valid JSON: ", e))),
        };
        let mut text_of = |key: &str, default: Option<&str>| -> Result<String, Error> {
            match object.take(key) {
                Some(Json::String(s)) => Ok(s),
                None | Some(Json::Null) => default
                    .map(String::from)
                    .ok_or_else(|| Error::invalid(key, "is required")),
                Some(other) => Err(Error::invalid(
                    key,
                    text!("must be a string, got ", describe(&other)),
                )),
            }
        };
        let kind = text_of("kind", None)?;
        let source = match kind.as_str() {
            "etcd" => {
                let prefix = text_of("prefix", Some(DEFAULT_ETCD_PREFIX))?;
                let trimmed = prefix.trim_end_matches('/');
                if trimmed.is_empty() || prefix.len() > MAX_PREFIX_BYTES {
                    return Err(Error::invalid(
                        "prefix",
                        text!(
                            "must be 1-",
                            MAX_PREFIX_BYTES,
                            " bytes and not only slashes"
                        ),
                    ));
                }
                // Without the feature `grpc` is an unknown option.
                #[cfg(feature = "etcd-grpc")]
                let grpc = match object.take("grpc") {
                    None | Some(Json::Null) => false,
                    Some(Json::Bool(b)) => b,
                    Some(other) => {
                        return Err(Error::invalid(
                            "grpc",
                            text!("must be a boolean, got ", describe(&other)),
                        ))
                    }
                };
                #[cfg(not(feature = "etcd-grpc"))]
                let grpc = false;
                SourceKind::Etcd {
                    prefix: String::from(trimmed),
                    grpc,
                }
            }
            "consul" => SourceKind::Consul {
                service: text_of("service", None)?,
            },
            "k8s" => SourceKind::K8s {
                namespace: text_of("namespace", Some("default"))?,
                service: text_of("service", None)?,
                port: text_of("port", Some(""))?,
            },
            _ => {
                return Err(Error::invalid(
                    "kind",
                    text!("`", kind, "` is not one of etcd, consul, k8s"),
                ))
            }
        };
        if let Some(key) = object.unknown() {
            return Err(Error::invalid(key, text!("unknown option for kind ", kind)));
        }
        Ok(source)
    }

    /// The options in their canonical form (what `from_json` reads back).
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        let mut w = ObjectWriter::new(&mut out);
        w.str("kind", self.name());
        match self {
            SourceKind::Etcd { prefix, grpc } => {
                w.str("prefix", prefix);
                #[cfg(feature = "etcd-grpc")]
                if *grpc {
                    w.bool("grpc", true);
                }
                #[cfg(not(feature = "etcd-grpc"))]
                let _ = grpc;
            }
            SourceKind::Consul { service } => w.str("service", service),
            SourceKind::K8s {
                namespace,
                service,
                port,
            } => {
                w.str("namespace", namespace);
                w.str("service", service);
                w.str("port", port);
            }
        }
        w.end();
        out
    }

    /// The kind's name: `etcd`, `consul` or `k8s`.
    pub fn name(&self) -> &'static str {
        match self {
            SourceKind::Etcd { .. } => "etcd",
            SourceKind::Consul { .. } => "consul",
            SourceKind::K8s { .. } => "k8s",
        }
    }
}
