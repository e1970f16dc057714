//! Consul: one service mirrored through the health endpoint's blocking
//! queries (SPEC §10.4).
//!
//! The host sends `GET /v1/health/service/<service>` (the first time, and
//! after a reset, without an index; then `?index=N&wait=5m`) and feeds the
//! whole answer back with its `X-Consul-Index` header. Every answer is the
//! service's full state, so each one becomes one
//! [`Change::ReplaceService`]; an answer that changed nothing costs the
//! registry nothing, which is why a response is never taken as proof of
//! change.
//!
//! How one entry of the answer becomes an instance:
//!
//! | instance | from |
//! |---|---|
//! | `id` | `Service.ID`; when several entries share one (a service registered without an ID on several nodes gets its name as ID on each), each of them is `<Node.Node>/<Service.ID>` |
//! | `service` | the mirrored service (`Service.Service` must match it, ASCII case aside, as Consul's own lookup does) |
//! | `address` | `Service.Address`, else `Node.Address` |
//! | `port` | `Service.Port` (1–65535) |
//! | `tags`, `meta` | `Service.Tags`, `Service.Meta` (null = none) |
//! | `weight` | `Weights.Warning` when the status is warning, else `Weights.Passing`; each 1 when absent, clamped into 1–10000 |
//! | `zone` | `Service.Locality.Zone`, else `Node.Locality.Zone`, else `Node.Meta.zone`; `Node.Datacenter` is not used: one query reads one datacenter, so it cannot tell instances apart |
//! | status | the worst check of the entry and of every node check (`ServiceID` empty) of its node: maintenance (`_node_maintenance`, `_service_maintenance:<ID>`) > critical > warning > passing; no checks = passing |
//!
//! A non-200 answer is an `invalid_argument` error and changes nothing: the
//! index is kept, so the host backs off and asks again.

use crate::prelude::*;

use super::{Change, Feed, Rejected, SourceRequest};
use crate::config::MAX_PORT;
use crate::error::{Error, ErrorCode, Result};
use crate::json::{describe, get, Json, ObjectWriter};
use entry::read_entries;
#[cfg(feature = "consul-registration")]
pub use register::{ConsulRegistration, CONSUL_MAINTENANCE_REASON, MAX_CONSUL_CHECK_S};

mod entry;
#[cfg(test)]
pub(super) mod fuzz;
#[cfg(feature = "consul-registration")]
mod register;
#[cfg(all(test, feature = "consul-registration"))]
mod register_tests;
#[cfg(test)]
mod tests;

/// How long Consul may hold a blocking query (it adds up to wait/16 of jitter).
const WAIT: &str = "5m";

type Members = [(String, Json)];

/// The mirror of one Consul service: its name and the blocking-query index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConsulMirror {
    service: String,
    index: u64,
}

impl ConsulMirror {
    /// A mirror that has read nothing yet.
    pub(crate) fn new(service: &str) -> ConsulMirror {
        ConsulMirror {
            service: service.to_owned(),
            index: 0,
        }
    }

    /// The blocking-query index the next request waits on (0 = none).
    #[cfg_attr(not(test), allow(dead_code))] // read by the tests
    pub(crate) fn index(&self) -> u64 {
        self.index
    }

    /// The request to send next: without an index the first time (and
    /// after a reset), then a blocking query on the last index.
    pub(crate) fn request(&self) -> SourceRequest {
        let mut path = String::from("/v1/health/service/");
        escape(&mut path, &self.service);
        if self.index > 0 {
            put!(&mut path, "?index=", self.index, "&wait=", WAIT);
        }
        SourceRequest {
            method: "GET",
            path,
            body: String::new(),
            stream: false,
            grpc: false,
        }
    }

    /// Reads one answer: `status` is its HTTP status, `index` its
    /// `X-Consul-Index` header (absent: the index stays as it was).
    ///
    /// # Errors
    /// `invalid_argument` when the status is not 200, the index is not a
    /// decimal integer, or the body is not a JSON array; the mirror is then
    /// unchanged.
    pub(crate) fn feed(&mut self, body: &str, status: u16, index: Option<&str>) -> Result<Feed> {
        if status != 200 {
            return Err(Error::invalid(
                "status",
                text!(
                    "Consul answered HTTP ",
                    u32::from(status),
                    "; the index stays at ",
                    self.index
                ),
            ));
        }
        let next = index.map(parse_index).transpose()?;
        let value = Json::parse(body)
            .map_err(|e| Error::invalid("body", text!("Consul health answer: ", e)))?;
        let items = value.as_array().ok_or_else(|| {
            Error::invalid(
                "body",
                text!(
                    "Consul health answer must be an array, got ",
                    describe(&value)
                ),
            )
        })?;
        let (entries, rejected) = read_entries(&self.service, items);
        if let Some(next) = next {
            self.index = next_index(self.index, next);
        }
        Ok(Feed {
            changes: vec![Change::ReplaceService(self.service.clone(), entries)],
            rejected,
            resync: false,
        })
    }

    /// Writes the mirror's progress for a snapshot: `{"index": N}`.
    pub(crate) fn write_state(&self, out: &mut String) {
        let mut w = ObjectWriter::new(out);
        w.u64("index", self.index);
        w.end();
    }

    /// Takes up the progress [`ConsulMirror::write_state`] wrote.
    ///
    /// # Errors
    /// `invalid_snapshot` naming the field at fault; the mirror is unchanged.
    pub(crate) fn restore_state(&mut self, state: &Json) -> Result<()> {
        let index = state.get("index").and_then(Json::as_u64);
        match (state.as_object().map(<[_]>::len), index) {
            (Some(1), Some(index)) => {
                self.index = index;
                Ok(())
            }
            _ => Err(Error::InvalidSnapshot(
                "consul mirror state: expected {\"index\": <integer>}".into(),
            )),
        }
    }
}

/// The blocking-query rules: an index going backwards starts over from 0
/// (the next request does not block); one that is 0 becomes 1, so a
/// misbehaving server cannot make the loop spin.
fn next_index(old: u64, new: u64) -> u64 {
    if new < old {
        0
    } else {
        new.max(1)
    }
}

/// `X-Consul-Index`: a decimal integer; a negative one counts as 0.
fn parse_index(text: &str) -> Result<u64> {
    let t = text.trim();
    let (negative, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let value = if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        None
    } else if negative {
        Some(0)
    } else {
        digits.parse::<u64>().ok()
    };
    value.ok_or_else(|| {
        Error::invalid(
            "index",
            text!("X-Consul-Index must be a decimal integer, got `", t, "`"),
        )
    })
}

/// Appends `s` percent-encoded: every byte but the unreserved ones of
/// RFC 3986 (`A-Z a-z 0-9 - . _ ~`), so it is safe as a path segment or a
/// query value. Shared with the Kubernetes adapter.
pub(super) fn escape(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

/// A skipped record. Shared with the Kubernetes adapter.
pub(super) fn reject(at: String, code: ErrorCode, message: String) -> Rejected {
    Rejected { at, code, message }
}

/// The members of an object, or a message naming `path`.
pub(super) fn object<'a>(value: Option<&'a Json>, path: &str) -> Result<&'a Members, String> {
    match value {
        Some(Json::Object(members)) => Ok(members),
        v => Err(text!(path, " must be an object, got ", shown(v))),
    }
}

/// A string member that may be absent or null.
pub(super) fn optional_string<'a>(
    members: &'a Members,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, String> {
    match get(members, key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s)),
        Some(v) => Err(text!(path, " must be a string, got ", describe(v))),
    }
}

/// How a message names a value that may be missing.
pub(super) fn shown(value: Option<&Json>) -> String {
    value.map_or_else(|| "nothing".into(), describe)
}

/// A port number (1..=[`MAX_PORT`]) at `path`.
pub(super) fn port(value: Option<&Json>, path: &str) -> Result<u16, String> {
    match value.and_then(Json::as_u64).map(u16::try_from) {
        Some(Ok(p)) if (1..=MAX_PORT).contains(&p) => Ok(p),
        _ => Err(text!(
            path,
            " must be an integer in 1..=",
            u32::from(MAX_PORT),
            ", got ",
            shown(value)
        )),
    }
}
