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

use super::{Change, Feed, Rejected, SourceEntry, SourceRequest, SourceStatus};
use crate::error::{Error, ErrorCode, Result};
use crate::instance::InstanceSpec;
use crate::json::{describe, get, Json, ObjectWriter};
use crate::meta::Meta;

#[cfg(test)]
pub(super) mod fuzz;
#[cfg(test)]
mod tests;

/// How long Consul may hold a blocking query (it adds up to wait/16 of jitter).
const WAIT: &str = "5m";
/// The check Consul adds while a node is in maintenance.
const NODE_MAINTENANCE: &str = "_node_maintenance";
/// The check Consul adds while a service is in maintenance, before its ID.
const SERVICE_MAINTENANCE: &str = "_service_maintenance:";

type Members = [(String, Json)];

/// The mirror of one Consul service: its name and the blocking-query index.
#[allow(dead_code)] // dispatched to by the registry's sources as they land
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConsulMirror {
    service: String,
    index: u64,
}

#[allow(dead_code)]
impl ConsulMirror {
    /// A mirror that has read nothing yet.
    pub(crate) fn new(service: &str) -> ConsulMirror {
        ConsulMirror {
            service: service.to_owned(),
            index: 0,
        }
    }

    /// The blocking-query index the next request waits on (0 = none).
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

/// How bad a status is, for "the worst wins".
pub(super) fn severity(status: SourceStatus) -> u8 {
    match status {
        SourceStatus::Passing => 0,
        SourceStatus::Warning => 1,
        SourceStatus::Critical => 2,
        SourceStatus::Maintenance => 3,
    }
}

fn worst(a: SourceStatus, b: SourceStatus) -> SourceStatus {
    if severity(b) > severity(a) {
        b
    } else {
        a
    }
}

/// One entry of the answer, read but not yet combined with its node.
struct Item {
    at: usize,
    node: String,
    spec: InstanceSpec,
    passing_weight: u32,
    warning_weight: u32,
    /// The worst of the entry's own checks.
    own: SourceStatus,
}

/// Every entry of the answer as a source entry, or the reason it was skipped.
fn read_entries(service: &str, items: &[Json]) -> (Vec<SourceEntry>, Vec<Rejected>) {
    let mut rejected = Vec::new();
    let mut read = Vec::with_capacity(items.len());
    // Node checks, worst first-seen per node name: they apply to every
    // service on the node, wherever in the answer they were listed.
    let mut nodes: Vec<(String, SourceStatus)> = Vec::new();
    for (at, item) in items.iter().enumerate() {
        match read_item(service, item, at, &mut nodes) {
            Ok(item) => read.push(item),
            Err(message) => rejected.push(reject(
                text!("[", at, "]"),
                ErrorCode::InvalidArgument,
                message,
            )),
        }
    }
    qualify_shared_ids(&mut read, &mut rejected);
    let mut entries = Vec::with_capacity(read.len());
    for mut item in read {
        let node = nodes
            .iter()
            .find(|(name, _)| *name == item.node)
            .map_or(SourceStatus::Passing, |(_, s)| *s);
        let status = worst(item.own, node);
        item.spec.weight = if status == SourceStatus::Warning {
            item.warning_weight
        } else {
            item.passing_weight
        };
        match item.spec.validate() {
            Ok(()) => entries.push(SourceEntry {
                spec: item.spec,
                status,
            }),
            Err(e) => rejected.push(reject(
                text!("[", item.at, "]"),
                ErrorCode::InvalidArgument,
                e.message(),
            )),
        }
    }
    // Rejections in answer order, whichever step made them.
    crate::sort::sort_by(&mut rejected, |a, b| position(&a.at) < position(&b.at));
    (entries, rejected)
}

/// The position in `[i]`.
fn position(at: &str) -> usize {
    let digits = at.trim_start_matches('[').trim_end_matches(']');
    digits.parse().unwrap_or(usize::MAX)
}

/// Names every entry whose `Service.ID` another entry shares
/// `<Node.Node>/<Service.ID>` (Consul keeps IDs unique per node only); an
/// entry that still repeats an earlier one (the same service twice on one
/// node) is skipped.
fn qualify_shared_ids(items: &mut Vec<Item>, rejected: &mut Vec<Rejected>) {
    let shared = repeated(items.iter().map(|i| i.spec.id.as_str()));
    for item in items.iter_mut() {
        if shared.binary_search(&item.spec.id).is_ok() {
            item.spec.id = text!(item.node, "/", item.spec.id);
        }
    }
    let twice = repeated(items.iter().map(|i| i.spec.id.as_str()));
    let mut seen: Vec<String> = Vec::new();
    items.retain(|item| {
        if twice.binary_search(&item.spec.id).is_err() {
            return true;
        }
        if seen.contains(&item.spec.id) {
            rejected.push(reject(
                text!("[", item.at, "]"),
                ErrorCode::Conflict,
                text!("Service.ID `", item.spec.id, "` repeats an earlier entry"),
            ));
            return false;
        }
        seen.push(item.spec.id.clone());
        true
    });
}

/// The names that occur more than once, sorted.
fn repeated<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut names: Vec<&str> = names.collect();
    crate::sort::sort_by(&mut names, |a, b| a < b);
    let mut out: Vec<String> = Vec::new();
    for pair in names.windows(2) {
        if let [a, b] = pair {
            if a == b && out.last().map(String::as_str) != Some(*a) {
                out.push(String::from(*a));
            }
        }
    }
    out
}

fn read_item(
    service: &str,
    item: &Json,
    at: usize,
    nodes: &mut Vec<(String, SourceStatus)>,
) -> Result<Item, String> {
    let entry = object(Some(item), "entry")?;
    let node = object(get(entry, "Node"), "Node")?;
    let svc = object(get(entry, "Service"), "Service")?;
    let id = string(svc, "ID", "Service.ID")?;
    if id.is_empty() {
        return Err("Service.ID is empty".into());
    }
    let name = string(svc, "Service", "Service.Service")?;
    if !name.eq_ignore_ascii_case(service) {
        return Err(text!(
            "Service.Service `",
            name,
            "` is not the mirrored service `",
            service,
            "`"
        ));
    }
    let node_name = string(node, "Node", "Node.Node")?;
    let address = match string(svc, "Address", "Service.Address")? {
        "" => string(node, "Address", "Node.Address")?,
        a => a,
    };
    if address.is_empty() {
        return Err("Service.Address and Node.Address are both empty".into());
    }
    let port = match get(svc, "Port").and_then(Json::as_u64) {
        Some(p @ 1..=65535) => p as u16,
        _ => {
            return Err(text!(
                "Service.Port must be an integer in 1..=65535, got ",
                shown(get(svc, "Port"))
            ))
        }
    };
    let mut spec = InstanceSpec::new(id, service, address, port);
    spec.tags = tags(get(svc, "Tags"))?;
    spec.meta = meta(get(svc, "Meta"), "Service.Meta")?;
    spec.zone = zone(svc, node)?;
    let (passing_weight, warning_weight) = weights(get(svc, "Weights"))?;
    let (own, on_node) = checks(get(entry, "Checks"), id)?;
    if let Some(status) = on_node {
        match nodes.iter_mut().find(|(n, _)| n == node_name) {
            Some((_, s)) => *s = worst(*s, status),
            None => nodes.push((node_name.to_owned(), status)),
        }
    }
    Ok(Item {
        at,
        node: node_name.to_owned(),
        spec,
        passing_weight,
        warning_weight,
        own,
    })
}

/// The worst of the entry's service checks, and of its node checks (None
/// when it lists none).
fn checks(value: Option<&Json>, id: &str) -> Result<(SourceStatus, Option<SourceStatus>), String> {
    let list = match value {
        None | Some(Json::Null) => return Ok((SourceStatus::Passing, None)),
        Some(Json::Array(list)) => list,
        Some(v) => return Err(text!("Checks must be an array, got ", describe(v))),
    };
    let mut own = SourceStatus::Passing;
    let mut node: Option<SourceStatus> = None;
    for (k, check) in list.iter().enumerate() {
        let path = |field: &str| text!("Checks[", k, "].", field);
        let check = object(Some(check), &text!("Checks[", k, "]"))?;
        let check_id = string(check, "CheckID", &path("CheckID"))?;
        let service_id = string(check, "ServiceID", &path("ServiceID"))?;
        let status = match string(check, "Status", &path("Status"))? {
            "passing" => SourceStatus::Passing,
            "warning" => SourceStatus::Warning,
            "critical" => SourceStatus::Critical,
            other => {
                return Err(text!(
                    path("Status"),
                    " must be passing, warning or critical, got `",
                    other,
                    "`"
                ))
            }
        };
        let maintenance =
            check_id == NODE_MAINTENANCE || check_id.strip_prefix(SERVICE_MAINTENANCE) == Some(id);
        let status = if maintenance {
            SourceStatus::Maintenance
        } else {
            status
        };
        if service_id.is_empty() {
            node = Some(worst(node.unwrap_or_default(), status));
        } else if service_id == id {
            own = worst(own, status);
        }
    }
    Ok((own, node))
}

/// `Weights.Passing` and `Weights.Warning`, 1 when absent, clamped into
/// waypost's 1..=10000 (Consul allows a warning weight of 0).
fn weights(value: Option<&Json>) -> Result<(u32, u32), String> {
    let w = match value {
        None | Some(Json::Null) => return Ok((1, 1)),
        Some(v) => object(Some(v), "Service.Weights")?,
    };
    let one = |key: &str| -> Result<u32, String> {
        match get(w, key) {
            None | Some(Json::Null) => Ok(1),
            Some(v) => v
                .as_u64()
                .map(|n| n.clamp(1, 10_000) as u32)
                .ok_or_else(|| {
                    text!(
                        "Service.Weights.",
                        key,
                        " must be a non-negative integer, got ",
                        describe(v)
                    )
                }),
        }
    };
    Ok((one("Passing")?, one("Warning")?))
}

fn zone(svc: &Members, node: &Members) -> Result<Option<String>, String> {
    for (owner, path) in [(svc, "Service.Locality"), (node, "Node.Locality")] {
        if let Some(locality) = get(owner, "Locality").filter(|v| **v != Json::Null) {
            let locality = object(Some(locality), path)?;
            let zone = optional_string(locality, "Zone", &text!(path, ".Zone"))?;
            if let Some(z) = zone.filter(|z| !z.is_empty()) {
                return Ok(Some(z.to_owned()));
            }
        }
    }
    let node_meta = meta(get(node, "Meta"), "Node.Meta")?;
    Ok(node_meta
        .get("zone")
        .filter(|z| !z.is_empty())
        .map(String::from))
}

fn tags(value: Option<&Json>) -> Result<Vec<String>, String> {
    match value {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, t)| {
                t.as_str().map(String::from).ok_or_else(|| {
                    text!("Service.Tags[", i, "] must be a string, got ", describe(t))
                })
            })
            .collect(),
        Some(v) => Err(text!("Service.Tags must be an array, got ", describe(v))),
    }
}

fn meta(value: Option<&Json>, path: &str) -> Result<Meta, String> {
    let mut meta = Meta::new();
    match value {
        None | Some(Json::Null) => {}
        Some(Json::Object(members)) => {
            for (k, v) in members {
                let v = v
                    .as_str()
                    .ok_or_else(|| text!(path, ".", k, " must be a string, got ", describe(v)))?;
                meta.insert(k.clone(), v.to_owned());
            }
        }
        Some(v) => return Err(text!(path, " must be an object, got ", describe(v))),
    }
    Ok(meta)
}

/// The members of an object, or a message naming `path`.
pub(super) fn object<'a>(value: Option<&'a Json>, path: &str) -> Result<&'a Members, String> {
    match value {
        Some(Json::Object(members)) => Ok(members),
        v => Err(text!(path, " must be an object, got ", shown(v))),
    }
}

/// A string member; absent or null reads as empty (Go's zero value).
fn string<'a>(members: &'a Members, key: &str, path: &str) -> Result<&'a str, String> {
    Ok(optional_string(members, key, path)?.unwrap_or_default())
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
