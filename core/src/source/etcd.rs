//! The etcd v3 adapter (SPEC §10.4): the JSON gateway's `/v3/kv/range` and
//! `/v3/watch` payloads (and, with `grpc`, the gRPC API's range answer,
//! `etcd/grpc.rs`) read into changes, and the mirror's state machine (read
//! the prefix, watch from the next revision, read again after a compaction
//! or a canceled watch).
//!
//! Gateway conventions (etcd 3.4 `api_grpc_gateway.md`, protobuf JSON
//! mapping): byte fields are base64, int64 fields are strings, fields at
//! their zero value are left out (an empty range has no `kvs`, a PUT event
//! has no `type`, a DELETE event's `kv` has no `value`).

use crate::prelude::*;

use super::base64;
use super::{Change, Feed, Rejected, SourceEntry, SourceRequest, SourceStatus};
use crate::error::{Error, Result};
use crate::instance::InstanceSpec;
use crate::json::{describe, get, Json, ObjectWriter};

#[cfg(feature = "etcd-grpc")]
mod grpc;
#[cfg(feature = "record-reader")]
mod record;
mod reference;
#[cfg(feature = "record-reader")]
mod walk;

#[doc(hidden)]
pub use reference::etcd_readers_agree;

/// Every member the reader looks at, at any depth; the JSON reader passes
/// over the others without building them (most of a range answer's kv is
/// revisions and a lease nobody reads). A watch message's own members
/// come last: a range answer is read without them.
const MEMBERS: [&str; 14] = [
    "error",
    "message",
    "result",
    "header",
    "revision",
    "kvs",
    "key",
    "value",
    "canceled",
    "compact_revision",
    "events",
    "type",
    "kv",
    "mod_revision",
];

/// How many of [`MEMBERS`] a range answer needs.
const RANGE_MEMBERS: usize = 8;

/// The mirror of every key under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Etcd {
    /// The key prefix, without a trailing `/`.
    prefix: String,
    /// The store revision the registry reflects; 0 before the first read.
    revision: u64,
    /// Whether the next request is the watch (else the range read).
    watching: bool,
    /// Whether the range is read over gRPC (else the JSON gateway).
    grpc: bool,
}

/// Where in a payload a problem is, for `invalid_argument`.
fn bad(what: &str, problem: &str) -> Error {
    Error::invalid(what, problem)
}

/// An int64 as the gateway writes it: a decimal string, or a number.
fn int64(v: Option<&Json>) -> Option<u64> {
    match v? {
        Json::String(s) => s.parse::<u64>().ok(),
        other => other.as_u64(),
    }
}

/// A boolean field, absent = false.
fn flag(v: Option<&Json>) -> bool {
    matches!(v, Some(Json::Bool(true)))
}

impl Etcd {
    pub fn new(prefix: String, grpc: bool) -> Etcd {
        Etcd {
            prefix,
            revision: 0,
            watching: false,
            grpc,
        }
    }

    /// The key range: every key from `prefix/` up to `prefix0` (the prefix
    /// with its last byte plus one: `/` + 1 is `0`).
    fn key_range(&self) -> (Vec<u8>, Vec<u8>) {
        let mut start = self.prefix.clone().into_bytes();
        start.push(b'/');
        let mut end = self.prefix.clone().into_bytes();
        end.push(b'0');
        (start, end)
    }

    /// Without the `etcd-grpc` feature the range is always the gateway's
    /// (the option is refused).
    #[cfg(not(feature = "etcd-grpc"))]
    fn grpc_request(&self) -> Option<SourceRequest> {
        None
    }

    /// The body members naming the key range.
    fn write_range(&self, w: &mut ObjectWriter) {
        let (start, end) = self.key_range();
        w.str("key", &base64::encode(&start));
        w.str("range_end", &base64::encode(&end));
    }

    /// The request the host sends next.
    pub fn request(&self) -> SourceRequest {
        let mut body = String::new();
        let mut w = ObjectWriter::new(&mut body);
        if self.watching {
            let mut c = ObjectWriter::new(w.key("create_request"));
            self.write_range(&mut c);
            c.str("start_revision", &text!(self.revision.saturating_add(1)));
            c.bool("progress_notify", true);
            c.end();
            w.end();
            SourceRequest {
                method: "POST",
                path: "/v3/watch".into(),
                body,
                stream: true,
                grpc: false,
            }
        } else if let Some(request) = self.grpc_request() {
            request
        } else {
            self.write_range(&mut w);
            w.end();
            SourceRequest {
                method: "POST",
                path: "/v3/kv/range".into(),
                body,
                stream: false,
                grpc: false,
            }
        }
    }

    /// Reads one payload: a range response (a full state) or one message
    /// of the watch stream (a batch); a canceled or compacted watch resets
    /// the mirror (`resync`).
    ///
    /// # Errors
    /// `invalid_argument` naming what and where when the status is not
    /// 2xx, the stream reports an error, or the payload is not the
    /// documented shape; the mirror is then unchanged (send the same
    /// request again).
    pub fn feed(&mut self, body: &str, status: u16, _index: Option<&str>) -> Result<Feed> {
        if !(200..300).contains(&status) {
            return Err(bad(
                "status",
                &text!(
                    "etcd answered HTTP ",
                    u32::from(status),
                    "; the mirror is unchanged"
                ),
            ));
        }
        // The gateway writes `result` first in a watch message.
        let watch = body.trim_start().starts_with("{\"result\"");
        #[cfg(feature = "record-reader")]
        if let Some((revision, feed)) = (!watch).then(|| self.walk_range(body)).flatten() {
            self.revision = revision;
            self.watching = true;
            return Ok(feed);
        }
        let keep = MEMBERS.get(..RANGE_MEMBERS).filter(|_| !watch);
        let mut doc = Json::parse_keeping(body, keep.unwrap_or(&MEMBERS));
        if keep.is_some() && doc.as_ref().is_ok_and(|d| d.get("result").is_some()) {
            doc = Json::parse_keeping(body, &MEMBERS);
        }
        self.read(doc, &KvReader::FAST)
    }

    /// Reads a parsed payload, each kv with `kvs`.
    fn read(&mut self, doc: core::result::Result<Json, String>, kvs: &KvReader) -> Result<Feed> {
        let doc = doc.map_err(|e| bad("body", &text!("not valid JSON: ", e)))?;
        let Json::Object(top) = doc else {
            return Err(bad(
                "body",
                &text!("expected an object, got ", describe(&doc)),
            ));
        };
        if let Some(error) = get(&top, "error") {
            // The gateway reports a failed stream as `{"error": {…}}`: the
            // host sends the same request again (the watch resumes from the
            // next revision).
            let message = error.get("message").and_then(Json::as_str).unwrap_or("");
            return Err(bad(
                "error",
                &text!("the stream failed (", message, "); the mirror is unchanged"),
            ));
        }
        match get(&top, "result") {
            Some(Json::Object(result)) => self.watch_message(result, kvs),
            Some(other) => Err(bad(
                "result",
                &text!("expected an object, got ", describe(other)),
            )),
            None => self.range(&top, kvs),
        }
    }

    fn reset(&mut self) -> Feed {
        self.watching = false;
        Feed {
            resync: true,
            ..Feed::default()
        }
    }

    fn header_revision(members: &[(String, Json)], at: &str) -> Result<u64> {
        let header = match get(members, "header") {
            Some(Json::Object(h)) => h,
            Some(other) => {
                return Err(bad(
                    &text!(at, "header"),
                    &text!("expected an object, got ", describe(other)),
                ))
            }
            None => return Err(bad(&text!(at, "header"), "is missing")),
        };
        match get(header, "revision") {
            None => Ok(0),
            v => int64(v).ok_or_else(|| {
                bad(
                    &text!(at, "header.revision"),
                    "expected an int64 (a decimal string)",
                )
            }),
        }
    }

    /// A `/v3/kv/range` response: the whole state at `header.revision`.
    fn range(&mut self, top: &[(String, Json)], reader: &KvReader) -> Result<Feed> {
        let revision = Etcd::header_revision(top, "")?;
        let kvs: &[Json] = match get(top, "kvs") {
            None | Some(Json::Null) => &[],
            Some(Json::Array(items)) => items,
            Some(other) => {
                return Err(bad(
                    "kvs",
                    &text!("expected an array, got ", describe(other)),
                ))
            }
        };
        let mut feed = Feed::default();
        let mut bufs = Buffers::default();
        let mut entries = Vec::with_capacity(kvs.len());
        for (i, kv) in kvs.iter().enumerate() {
            let at = || text!("kvs[", i, "]");
            let Json::Object(kv) = kv else {
                feed.rejected
                    .push(rejected(at(), bad("kv", "expected an object")));
                continue;
            };
            let record = (reader.record)(self, kv, &mut bufs);
            list_record(record, at, &mut entries, &mut feed);
        }
        feed.changes.insert(0, Change::ReplaceAll(entries));
        self.revision = revision;
        self.watching = true;
        Ok(feed)
    }

    /// One message of the `/v3/watch` stream.
    fn watch_message(&mut self, result: &[(String, Json)], reader: &KvReader) -> Result<Feed> {
        if flag(get(result, "canceled")) || int64(get(result, "compact_revision")).unwrap_or(0) > 0
        {
            return Ok(self.reset());
        }
        let revision = match get(result, "header") {
            Some(_) => Etcd::header_revision(result, "result.")?,
            None => 0,
        };
        let events: &[Json] = match get(result, "events") {
            None | Some(Json::Null) => &[],
            Some(Json::Array(items)) => items,
            Some(other) => {
                return Err(bad(
                    "result.events",
                    &text!("expected an array, got ", describe(other)),
                ))
            }
        };
        let mut feed = Feed::default();
        let mut bufs = Buffers::default();
        let mut newest = revision;
        for (i, event) in events.iter().enumerate() {
            let at = || text!("events[", i, "]");
            let Json::Object(event) = event else {
                feed.rejected
                    .push(rejected(at(), bad("event", "expected an object")));
                continue;
            };
            let delete = match get(event, "type") {
                None | Some(Json::Null) => false,
                Some(Json::String(t)) if t == "PUT" => false,
                Some(Json::String(t)) if t == "DELETE" => true,
                Some(Json::String(t)) => {
                    feed.rejected.push(rejected(
                        at(),
                        bad("type", &text!("`", t, "` is not PUT or DELETE")),
                    ));
                    continue;
                }
                Some(other) => {
                    feed.rejected.push(rejected(
                        at(),
                        bad(
                            "type",
                            &text!("expected PUT or DELETE, got ", describe(other)),
                        ),
                    ));
                    continue;
                }
            };
            let Some(Json::Object(kv)) = get(event, "kv") else {
                feed.rejected
                    .push(rejected(at(), bad("kv", "expected an object")));
                continue;
            };
            newest = newest.max(int64(get(kv, "mod_revision")).unwrap_or(0));
            if delete {
                match (reader.id)(self, kv, &mut bufs) {
                    Ok(id) => feed.changes.push(Change::Delete(id)),
                    Err((key, e)) => feed.rejected.push(rejected(key.unwrap_or_else(at), e)),
                }
                continue;
            }
            match (reader.record)(self, kv, &mut bufs) {
                Ok(Record::Put(entry)) => feed.changes.push(Change::Put(entry)),
                Ok(Record::Delete(id)) => feed.changes.push(Change::Delete(id)),
                Err((key, _, e)) => feed.rejected.push(rejected(key.unwrap_or_else(at), e)),
            }
        }
        self.revision = self.revision.max(newest);
        Ok(feed)
    }

    /// The key of a kv (base64 text), decoded into `buf` and split into
    /// `(key, service, id)`; on failure the key text when it could be
    /// read, and why.
    fn key<'b>(
        &self,
        coded: Option<&str>,
        buf: &'b mut Vec<u8>,
    ) -> core::result::Result<(&'b str, &'b str, &'b str), KeyFailure> {
        let Some(coded) = coded else {
            return Err((None, bad("key", "expected a base64 string")));
        };
        if !base64::decode_into(coded, buf) {
            return Err((None, bad("key", "not base64")));
        }
        self.split_key(buf)
    }

    /// A key's bytes split into `(key, service, id)`.
    fn split_key<'b>(
        &self,
        raw: &'b [u8],
    ) -> core::result::Result<(&'b str, &'b str, &'b str), KeyFailure> {
        let Ok(key) = core::str::from_utf8(raw) else {
            return Err((None, bad("key", "not UTF-8")));
        };
        let rest = key
            .strip_prefix(self.prefix.as_str())
            .and_then(|r| r.strip_prefix('/'));
        match rest.and_then(|r| r.split_once('/')) {
            Some((service, id)) if !service.is_empty() && !id.is_empty() => Ok((key, service, id)),
            _ => Err((
                Some(key.into()),
                bad("key", "expected <prefix>/<service>/<id>"),
            )),
        }
    }

    /// The id a kv's key names.
    fn id(
        &self,
        kv: &[(String, Json)],
        bufs: &mut Buffers,
    ) -> core::result::Result<String, (Option<String>, Error)> {
        self.key(coded_key(kv), &mut bufs.key)
            .map(|(_, _, id)| id.into())
    }

    /// A kv with a value: the entry it describes.
    fn record(
        &self,
        kv: &[(String, Json)],
        bufs: &mut Buffers,
    ) -> core::result::Result<Record, Failure> {
        let value = match get(kv, "value") {
            Some(Json::String(coded)) => Ok(Some(coded.as_str())),
            None | Some(Json::Null) => Ok(None),
            Some(other) => Err(other),
        };
        self.record_of(coded_key(kv), value, bufs)
    }

    /// What a kv says from its key and value as the payload gave them
    /// (`None`: not a string; `Ok(None)`: no value; `Err`: not a string).
    fn record_of(
        &self,
        key: Option<&str>,
        value: core::result::Result<Option<&str>, &Json>,
        bufs: &mut Buffers,
    ) -> core::result::Result<Record, Failure> {
        let (key, service, id) = self
            .key(key, &mut bufs.key)
            .map_err(|(k, e)| (k, None, e))?;
        // The key and id are only copied into a rejection, never before.
        let fail = |e: Error| (Some(String::from(key)), Some(String::from(id)), e);
        let text = match value {
            Ok(Some(coded)) => {
                if !base64::decode_into(coded, &mut bufs.value) {
                    return Err(fail(bad("value", "not base64")));
                }
                core::str::from_utf8(&bufs.value).map_err(|_| fail(bad("value", "not UTF-8")))?
            }
            Ok(None) => "",
            Err(other) => {
                return Err(fail(bad(
                    "value",
                    &text!("expected a base64 string, got ", describe(other)),
                )))
            }
        };
        Etcd::entry_of(text, service, id).map_err(fail)
    }

    /// What a kv says from its key and value as raw bytes (a gRPC answer).
    #[cfg(feature = "etcd-grpc")]
    fn record_of_bytes(
        &self,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> core::result::Result<Record, Failure> {
        let (key, service, id) = self.split_key(key).map_err(|(k, e)| (k, None, e))?;
        let fail = |e: Error| (Some(String::from(key)), Some(String::from(id)), e);
        let text = match value {
            Some(v) => core::str::from_utf8(v).map_err(|_| fail(bad("value", "not UTF-8")))?,
            None => "",
        };
        Etcd::entry_of(text, service, id).map_err(fail)
    }

    /// What a value's text says about instance `id` of `service`.
    fn entry_of(text: &str, service: &str, id: &str) -> Result<Record> {
        #[cfg(feature = "record-reader")]
        if let Some(entry) = record::wire_entry(text, service, id) {
            return Ok(Record::Put(entry));
        }
        let members = match Json::parse(text) {
            Ok(Json::Object(members)) => members,
            Ok(other) => {
                return Err(bad(
                    "value",
                    &text!("expected a JSON object, got ", describe(&other)),
                ))
            }
            Err(e) => return Err(bad("value", &text!("not valid JSON: ", e))),
        };
        value_record(members, service, id)
    }

    /// Appends the mirror's progress: `{"revision", "watching"}`.
    pub fn write_state(&self, out: &mut String) {
        let mut w = ObjectWriter::new(out);
        w.u64("revision", self.revision);
        w.bool("watching", self.watching);
        w.end();
    }

    /// Takes up the progress [`Etcd::write_state`] wrote.
    ///
    /// # Errors
    /// `invalid_argument` naming the member at fault; the mirror is then
    /// unchanged.
    pub fn restore_state(&mut self, state: &Json) -> Result<()> {
        let members = state.as_object().unwrap_or(&[]);
        let revision = get(members, "revision").and_then(Json::as_u64);
        let watching = get(members, "watching").and_then(Json::as_bool);
        match (members.len(), revision, watching) {
            (2, Some(revision), Some(watching)) => {
                self.revision = revision;
                self.watching = watching;
                Ok(())
            }
            _ => Err(bad(
                "state",
                "expected {\"revision\": <integer>, \"watching\": <boolean>}",
            )),
        }
    }
}

/// Takes what one kv of a range answer says: its entry, or its rejection
/// (at its key, else at `at`) with its id kept as it is.
fn list_record(
    record: core::result::Result<Record, Failure>,
    at: impl FnOnce() -> String,
    entries: &mut Vec<SourceEntry>,
    feed: &mut Feed,
) {
    match record {
        Ok(Record::Put(entry)) => entries.push(entry),
        // A naming record that says "deleted": simply not listed.
        Ok(Record::Delete(_)) => {}
        Err((key, id, e)) => {
            if let Some(id) = id {
                feed.changes.push(Change::Keep(id));
            }
            feed.rejected.push(rejected(key.unwrap_or_else(at), e));
        }
    }
}

/// A kv's `key`, when it is a string.
fn coded_key(kv: &[(String, Json)]) -> Option<&str> {
    match get(kv, "key") {
        Some(Json::String(coded)) => Some(coded),
        _ => None,
    }
}

/// The entry a value's members describe: etcd's naming record or waypost's
/// wire form.
fn value_record(members: Vec<(String, Json)>, service: &str, id: &str) -> Result<Record> {
    let naming = members
        .iter()
        .any(|(k, _)| k == "Addr" || k == "Op" || k == "Metadata");
    if naming {
        naming_record(&members, service, id)
    } else {
        wire_record(members, service, id)
    }
}

/// Buffers the keys and values of one payload are decoded into, in turn.
#[derive(Default)]
struct Buffers {
    key: Vec<u8>,
    value: Vec<u8>,
}

/// Why a kv was rejected: its key text when it could be read, its id when
/// the key named one, and the error.
type Failure = (Option<String>, Option<String>, Error);

/// The members of a kv.
type KvMembers = [(String, Json)];

/// Why a key was rejected: its text when it could be read, and the error.
type KeyFailure = (Option<String>, Error);

/// How the kvs of a payload are read: the id of a deleted key, and what a
/// kv with a value says.
struct KvReader {
    id: fn(&Etcd, &KvMembers, &mut Buffers) -> core::result::Result<String, KeyFailure>,
    record: fn(&Etcd, &KvMembers, &mut Buffers) -> core::result::Result<Record, Failure>,
}

impl KvReader {
    /// Keys and values decoded into reused buffers, a value in the wire
    /// form read straight into its entry.
    const FAST: KvReader = KvReader {
        id: Etcd::id,
        record: Etcd::record,
    };
}

/// What one kv says.
enum Record {
    Put(SourceEntry),
    Delete(String),
}

fn rejected(at: String, e: Error) -> Rejected {
    Rejected::new(at, &e)
}

/// A value in waypost's instance wire form (plus `status`); `id` and
/// `service` may be left out (the key gives them) but must agree with it.
fn wire_record(mut members: Vec<(String, Json)>, service: &str, id: &str) -> Result<Record> {
    for (field, from_key) in [("id", id), ("service", service)] {
        match get(&members, field) {
            None => members.push((field.into(), Json::String(from_key.into()))),
            Some(Json::String(s)) if s == from_key => {}
            Some(_) => {
                return Err(bad(
                    field,
                    &text!("differs from the key's `", from_key, "`"),
                ))
            }
        }
    }
    Ok(Record::Put(SourceEntry::from_object(members)?))
}

/// A record of etcd's naming package (`clientv3/naming/endpoints`):
/// `{"Op": 0, "Addr": "host:port", "Metadata": …}`. `Op` 0 adds, 1
/// deletes; `Metadata` becomes `meta` (an object's string members as
/// they are, any other value as JSON text under `metadata`).
fn naming_record(members: &[(String, Json)], service: &str, id: &str) -> Result<Record> {
    match get(members, "Op") {
        None | Some(Json::Null) => {}
        Some(op) => match op.as_u64() {
            Some(0) => {}
            Some(1) => return Ok(Record::Delete(id.into())),
            _ => return Err(bad("Op", &text!("expected 0 or 1, got ", describe(op)))),
        },
    }
    let addr = match get(members, "Addr") {
        Some(Json::String(a)) => a.as_str(),
        Some(other) => {
            return Err(bad(
                "Addr",
                &text!("expected a string, got ", describe(other)),
            ))
        }
        None => return Err(bad("Addr", "is required")),
    };
    let (host, port) = split_host_port(addr)
        .ok_or_else(|| bad("Addr", &text!("`", addr, "` is not host:port")))?;
    let mut spec = InstanceSpec::new(id, service, host, port);
    match get(members, "Metadata") {
        None | Some(Json::Null) => {}
        Some(Json::Object(meta)) => {
            crate::Meta::check_count(meta.len())?;
            for (k, v) in meta {
                let value = match v {
                    Json::String(s) => s.clone(),
                    other => other.to_json(),
                };
                spec.meta.insert(k.clone(), value);
            }
        }
        Some(other) => {
            let value = match other {
                Json::String(s) => s.clone(),
                other => other.to_json(),
            };
            spec.meta.insert("metadata".into(), value);
        }
    }
    spec.validate()?;
    Ok(Record::Put(SourceEntry {
        spec,
        status: SourceStatus::Passing,
    }))
}

/// `host:port` or `[v6]:port`.
fn split_host_port(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = match host.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']')?,
        None if host.contains(':') => return None,
        None => host,
    };
    let port: u16 = port.parse().ok()?;
    if host.is_empty() || port == 0 {
        return None;
    }
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port() {
        assert_eq!(split_host_port("10.0.0.1:80"), Some(("10.0.0.1", 80)));
        assert_eq!(split_host_port("[::1]:8080"), Some(("::1", 8080)));
        assert_eq!(split_host_port("h:0"), None);
        assert_eq!(split_host_port("::1:80"), None);
        assert_eq!(split_host_port("h"), None);
        assert_eq!(split_host_port(":80"), None);
    }

    #[test]
    fn requests() -> Result<()> {
        let mut m = Etcd::new("/p".into(), false);
        let r = m.request();
        assert_eq!(r.path, "/v3/kv/range");
        // "/p/" and "/p0"
        assert_eq!(r.body, r#"{"key":"L3Av","range_end":"L3Aw"}"#);
        m.feed(r#"{"header":{"revision":"7"}}"#, 200, None)?;
        let r = m.request();
        assert_eq!(r.path, "/v3/watch");
        assert!(r.stream);
        assert_eq!(
            r.body,
            r#"{"create_request":{"key":"L3Av","range_end":"L3Aw","start_revision":"8","progress_notify":true}}"#
        );
        Ok(())
    }
}
