//! Kubernetes: one service's EndpointSlices (`discovery.k8s.io/v1`)
//! mirrored by list and watch (SPEC §10.4).
//!
//! The host first lists the slices labelled
//! `kubernetes.io/service-name=<service>`, then watches them from the
//! list's `metadata.resourceVersion` with bookmarks, feeding each line of
//! the stream (or several whole lines at once). The mirror keeps every
//! slice it has read, already mapped, so each change rebuilds the service
//! from all of them: one [`Change::ReplaceService`] per list or watch
//! message that touched a slice.
//!
//! How one endpoint becomes an instance:
//!
//! | instance | from |
//! |---|---|
//! | `id` | `targetRef.name` (the pod), else the address |
//! | `address` | `addresses[0]` (the API says every address is fungible) |
//! | `port` | the slice's port named `port`, or its first port when `port` is empty; `protocol` is not looked at |
//! | `zone` | `zone` |
//! | `weight`, `tags`, `meta` | 1, none, none |
//! | status | `terminating` → maintenance while `serving`, else critical; otherwise `ready` → passing, else critical. Nil `ready` is true, nil `serving` is `ready`, nil `terminating` is false |
//!
//! One service has several slices and an endpoint may sit in two of them
//! (while it moves, or a pod in the IPv4 and the IPv6 slice of a
//! dual-stack service): endpoints with one id are one instance, the best
//! status winning (passing, warning, maintenance, critical), then the slice
//! whose name sorts first. A slice with endpoints but without the port is
//! rejected as a whole; a slice without endpoints (Kubernetes keeps an
//! empty placeholder) needs no port.
//!
//! HTTP 410, or an `ERROR` event, resets the mirror (resync): the next
//! request lists again. Any other status is an `invalid_argument` error that
//! changes nothing.

use crate::prelude::*;

use super::consul::{escape, object, optional_string, port, reject, shown};
use super::{Change, Feed, Rejected, SourceEntry, SourceRequest, SourceStatus};
use crate::error::{Error, ErrorCode, Result};
use crate::instance::InstanceSpec;
use crate::json::{describe, get, Json};

mod state;
#[cfg(test)]
mod tests;

type Members = [(String, Json)];

/// The label that ties a slice to its service.
const SERVICE_LABEL: &str = "kubernetes.io/service-name";

/// The mirror of one Kubernetes service port: where the watch stands and
/// every slice read so far, mapped.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct K8sMirror {
    namespace: String,
    service: String,
    port: String,
    /// Where to watch from; `None` until a list has been read.
    resource_version: Option<String>,
    /// The slices, by name.
    slices: Vec<Slice>,
}

/// One EndpointSlice, its endpoints already mapped (duplicates kept).
#[derive(Debug, Clone, PartialEq)]
struct Slice {
    name: String,
    entries: Vec<SourceEntry>,
}

impl K8sMirror {
    /// A mirror that has read nothing yet; `port` names the port to use
    /// (empty: each slice's first).
    pub(crate) fn new(namespace: &str, service: &str, port: &str) -> K8sMirror {
        K8sMirror {
            namespace: namespace.to_owned(),
            service: service.to_owned(),
            port: port.to_owned(),
            resource_version: None,
            slices: Vec::new(),
        }
    }

    /// Where the next watch starts (`None`: the next request lists).
    #[cfg_attr(not(test), allow(dead_code))] // read by the tests
    pub(crate) fn resource_version(&self) -> Option<&str> {
        self.resource_version.as_deref()
    }

    /// The request to send next: the list, or the watch from the last
    /// resource version seen (a stream of JSON lines).
    pub(crate) fn request(&self) -> SourceRequest {
        let mut path = String::from("/apis/discovery.k8s.io/v1/namespaces/");
        escape(&mut path, &self.namespace);
        path.push_str("/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3D");
        escape(&mut path, &self.service);
        let stream = match &self.resource_version {
            None => false,
            Some(rv) => {
                path.push_str("&watch=1&resourceVersion=");
                escape(&mut path, rv);
                path.push_str("&allowWatchBookmarks=true");
                true
            }
        };
        SourceRequest {
            method: "GET",
            path,
            body: String::new(),
            stream,
            grpc: false,
        }
    }

    /// Reads one answer: the list, or one or more whole lines of the watch.
    /// `index` is not used (the resource version travels in the payload).
    ///
    /// # Errors
    /// `invalid_argument` when the status is neither 200 nor 410, or the
    /// payload is not an EndpointSliceList (listing) or watch events
    /// (watching), naming what is wrong; the mirror is then unchanged.
    pub(crate) fn feed(&mut self, body: &str, status: u16, _index: Option<&str>) -> Result<Feed> {
        match status {
            410 => Ok(self.reset(Vec::new())),
            200 if self.resource_version.is_none() => self.feed_list(body),
            200 => self.feed_watch(body),
            _ => Err(Error::invalid(
                "status",
                text!(
                    "Kubernetes answered HTTP ",
                    u32::from(status),
                    "; the mirror is unchanged"
                ),
            )),
        }
    }

    /// Forgets everything: the next request lists again.
    fn reset(&mut self, rejected: Vec<Rejected>) -> Feed {
        self.resource_version = None;
        self.slices.clear();
        Feed {
            changes: Vec::new(),
            rejected,
            resync: true,
        }
    }

    fn feed_list(&mut self, body: &str) -> Result<Feed> {
        let value = parse(body, "EndpointSliceList")?;
        let top = object(Some(&value), "EndpointSliceList").map_err(bad_body)?;
        if optional_string(top, "kind", "kind").ok().flatten() == Some("Status") {
            return Ok(self.reset(vec![status_rejection(top)]));
        }
        let rv = version(top).map_err(|e| bad_body(text!("EndpointSliceList ", e)))?;
        let items = match get(top, "items") {
            None | Some(Json::Null) => &[][..],
            Some(Json::Array(items)) => items,
            Some(v) => {
                return Err(bad_body(text!(
                    "EndpointSliceList items must be an array, got ",
                    describe(v)
                )))
            }
        };
        let mut rejected = Vec::new();
        let mut slices: Vec<Slice> = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let at = || slice_name(item).map_or_else(|| text!("items[", i, "]"), String::from);
            match self.read_slice(item, &mut rejected) {
                Ok(slice) => upsert(&mut slices, slice),
                Err(message) => rejected.push(reject(at(), ErrorCode::InvalidArgument, message)),
            }
        }
        self.slices = slices;
        self.resource_version = Some(rv.to_owned());
        Ok(Feed {
            changes: vec![self.replace()],
            rejected,
            resync: false,
        })
    }

    fn feed_watch(&mut self, body: &str) -> Result<Feed> {
        // Every line is read before any applies: a broken one changes nothing.
        let mut events = Vec::new();
        for (n, line) in body.lines().filter(|l| !l.trim().is_empty()).enumerate() {
            let value = parse(line, "watch event")?;
            check_event(&value).map_err(|e| bad_body(text!("watch event ", n, ": ", e)))?;
            events.push(value);
        }
        if events.is_empty() {
            return Err(bad_body("a watch message needs at least one event".into()));
        }
        let mut rejected = Vec::new();
        let mut changed = false;
        for event in &events {
            let kind = event.get("type").and_then(Json::as_str).unwrap_or_default();
            let Some(obj) = event.get("object") else {
                continue;
            };
            match kind {
                "ERROR" => {
                    let members = obj.as_object().unwrap_or_default();
                    return Ok(self.reset(vec![status_rejection(members)]));
                }
                "DELETED" => {
                    if let Some(name) = slice_name(obj) {
                        self.slices.retain(|s| s.name != name);
                        changed = true;
                    }
                }
                "ADDED" | "MODIFIED" => match self.read_slice(obj, &mut rejected) {
                    Ok(slice) => {
                        upsert(&mut self.slices, slice);
                        changed = true;
                    }
                    Err(message) => {
                        let at = slice_name(obj).unwrap_or("object");
                        rejected.push(reject(at.into(), ErrorCode::InvalidArgument, message));
                    }
                },
                _ => {} // BOOKMARK: only the resource version moves.
            }
            if let Some(rv) = obj.as_object().and_then(|m| version(m).ok()) {
                self.resource_version = Some(rv.to_owned());
            }
        }
        Ok(Feed {
            changes: if changed {
                vec![self.replace()]
            } else {
                Vec::new()
            },
            rejected,
            resync: false,
        })
    }

    /// One slice, mapped; endpoints that cannot be read are listed in
    /// `rejected` and left out. `Err`: the slice as a whole is unusable.
    fn read_slice(&self, value: &Json, rejected: &mut Vec<Rejected>) -> Result<Slice, String> {
        let slice = object(Some(value), "EndpointSlice")?;
        let meta = object(get(slice, "metadata"), "metadata")?;
        let name = match optional_string(meta, "name", "metadata.name")? {
            Some(name) if !name.is_empty() => name,
            _ => return Err("metadata.name is missing".into()),
        };
        check_label(meta, &self.service)?;
        match optional_string(slice, "addressType", "addressType")? {
            Some("IPv4" | "IPv6" | "FQDN") => {}
            other => {
                return Err(text!(
                    "addressType must be IPv4, IPv6 or FQDN, got `",
                    other.unwrap_or_default(),
                    "`"
                ))
            }
        }
        let endpoints = match get(slice, "endpoints") {
            None | Some(Json::Null) => &[][..],
            Some(Json::Array(items)) => items,
            Some(v) => return Err(text!("endpoints must be an array, got ", describe(v))),
        };
        let mut entries = Vec::with_capacity(endpoints.len());
        if !endpoints.is_empty() {
            let port = self.pick_port(get(slice, "ports"))?;
            for (j, endpoint) in endpoints.iter().enumerate() {
                match self.read_endpoint(endpoint, port) {
                    Ok(entry) => entries.push(entry),
                    Err(message) => rejected.push(reject(
                        text!(name, "/endpoints[", j, "]"),
                        ErrorCode::InvalidArgument,
                        message,
                    )),
                }
            }
        }
        Ok(Slice {
            name: name.to_owned(),
            entries,
        })
    }

    /// The number of the port named `self.port` (or of the first port).
    fn pick_port(&self, ports: Option<&Json>) -> Result<u16, String> {
        let ports = match ports {
            None | Some(Json::Null) => &[][..],
            Some(Json::Array(ports)) => ports,
            Some(v) => return Err(text!("ports must be an array, got ", describe(v))),
        };
        for (k, p) in ports.iter().enumerate() {
            let p = object(Some(p), &text!("ports[", k, "]"))?;
            let name = optional_string(p, "name", &text!("ports[", k, "].name"))?;
            if !self.port.is_empty() && name.unwrap_or_default() != self.port {
                continue;
            }
            return port(get(p, "port"), &text!("ports[", k, "].port"));
        }
        if self.port.is_empty() {
            Err("ports lists no port".into())
        } else {
            Err(text!("ports has no port named `", self.port, "`"))
        }
    }

    fn read_endpoint(&self, value: &Json, port: u16) -> Result<SourceEntry, String> {
        let ep = object(Some(value), "endpoint")?;
        let address = match get(ep, "addresses") {
            Some(Json::Array(list)) => match list.first() {
                Some(Json::String(a)) if !a.is_empty() => a.as_str(),
                first => {
                    return Err(text!(
                        "addresses[0] must be a non-empty string, got ",
                        shown(first)
                    ))
                }
            },
            v => return Err(text!("addresses must be an array, got ", shown(v))),
        };
        let status = conditions(get(ep, "conditions"))?;
        let pod = match get(ep, "targetRef") {
            None | Some(Json::Null) => None,
            v => optional_string(object(v, "targetRef")?, "name", "targetRef.name")?,
        };
        let id = pod.filter(|p| !p.is_empty()).unwrap_or(address);
        let mut spec = InstanceSpec::new(id, self.service.as_str(), address, port);
        spec.zone = optional_string(ep, "zone", "zone")?.map(String::from);
        spec.validate().map_err(|e| e.message())?;
        Ok(SourceEntry { spec, status })
    }

    /// Every slice's entries, one per id, ordered by id.
    fn replace(&self) -> Change {
        let mut all: Vec<(usize, &SourceEntry)> = self
            .slices
            .iter()
            .enumerate()
            .flat_map(|(order, s)| s.entries.iter().map(move |e| (order, e)))
            .collect();
        crate::sort::sort_by(&mut all, |(oa, a), (ob, b)| {
            (a.spec.id.as_str(), preference(a.status), *oa)
                < (b.spec.id.as_str(), preference(b.status), *ob)
        });
        let mut merged: Vec<SourceEntry> = Vec::with_capacity(all.len());
        for (_, entry) in all {
            if merged.last().map(|m| &m.spec.id) != Some(&entry.spec.id) {
                merged.push(entry.clone());
            }
        }
        Change::ReplaceService(self.service.clone(), merged)
    }
}

/// Which copy of a duplicated endpoint wins: the lowest.
fn preference(status: SourceStatus) -> u8 {
    match status {
        SourceStatus::Passing => 0,
        SourceStatus::Warning => 1,
        SourceStatus::Maintenance => 2,
        SourceStatus::Critical => 3,
    }
}

/// The status of an endpoint from its conditions and their nil defaults.
fn conditions(value: Option<&Json>) -> Result<SourceStatus, String> {
    let c = match value {
        None | Some(Json::Null) => &[][..],
        v => object(v, "conditions")?,
    };
    let flag = |key: &str| -> Result<Option<bool>, String> {
        match get(c, key) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(text!(
                "conditions.",
                key,
                " must be a boolean, got ",
                describe(v)
            )),
        }
    };
    let ready = flag("ready")?.unwrap_or(true);
    let serving = flag("serving")?.unwrap_or(ready);
    let terminating = flag("terminating")?.unwrap_or(false);
    Ok(match (terminating, serving, ready) {
        (true, true, _) => SourceStatus::Maintenance,
        (false, _, true) => SourceStatus::Passing,
        _ => SourceStatus::Critical,
    })
}

/// A slice whose service label names another service is not ours.
fn check_label(meta: &Members, service: &str) -> Result<(), String> {
    let labels = match get(meta, "labels") {
        None | Some(Json::Null) => return Ok(()),
        v => object(v, "metadata.labels")?,
    };
    let path = text!("metadata.labels.", SERVICE_LABEL);
    match optional_string(labels, SERVICE_LABEL, &path)? {
        Some(s) if s != service => Err(text!(path, " is `", s, "`, not `", service, "`")),
        _ => Ok(()),
    }
}

/// A watch event has a known `type` and an `object`.
fn check_event(value: &Json) -> Result<(), String> {
    let event = object(Some(value), "event")?;
    match optional_string(event, "type", "type")? {
        Some("ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR") => {}
        other => {
            return Err(text!(
                "type must be ADDED, MODIFIED, DELETED, BOOKMARK or ERROR, got `",
                other.unwrap_or_default(),
                "`"
            ))
        }
    }
    object(get(event, "object"), "object").map(|_| ())
}

/// The reason a `Status` object (an `ERROR` event, or a failed list) gives.
fn status_rejection(status: &Members) -> Rejected {
    let code = get(status, "code")
        .and_then(Json::as_u64)
        .unwrap_or_default();
    let field = |k: &str| get(status, k).and_then(Json::as_str).unwrap_or_default();
    reject(
        "status".into(),
        ErrorCode::InvalidArgument,
        text!(
            "Kubernetes Status ",
            code,
            " ",
            field("reason"),
            ": ",
            field("message")
        ),
    )
}

/// `metadata.resourceVersion`, required and non-empty.
fn version(members: &Members) -> Result<&str, String> {
    let meta = object(get(members, "metadata"), "metadata")?;
    match optional_string(meta, "resourceVersion", "metadata.resourceVersion")? {
        Some(rv) if !rv.is_empty() => Ok(rv),
        _ => Err("metadata.resourceVersion is missing".into()),
    }
}

fn slice_name(value: &Json) -> Option<&str> {
    value.get("metadata")?.get("name")?.as_str()
}

/// Inserts `slice` in name order, replacing one of the same name.
fn upsert(slices: &mut Vec<Slice>, slice: Slice) {
    match slices.binary_search_by(|s| s.name.as_str().cmp(&slice.name)) {
        Ok(i) => {
            if let Some(old) = slices.get_mut(i) {
                *old = slice;
            }
        }
        Err(i) => slices.insert(i, slice),
    }
}

fn parse(text: &str, what: &str) -> Result<Json> {
    Json::parse(text).map_err(|e| bad_body(text!(what, ": ", e)))
}

fn bad_body(reason: String) -> Error {
    Error::invalid("body", reason)
}
