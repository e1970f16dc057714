//! The range read over etcd's gRPC API (SPEC §10.4): the request message
//! a host sends to `etcdserverpb.KV/Range`, and the answer read straight
//! from its protobuf bytes. Each kv's key and value are borrowed from the
//! answer and handed to the same reading of a kv the JSON paths use, so a
//! gRPC answer and the gateway's answer of the same range give the same
//! report.
//!
//! Wire format (protocol buffers; `rpc.proto` and `kv.proto` of etcd 3.4):
//! `RangeRequest { bytes key = 1; bytes range_end = 2; … }`,
//! `RangeResponse { ResponseHeader header = 1; repeated KeyValue kvs = 2;
//! bool more = 3; int64 count = 4; }`, `ResponseHeader { …; int64
//! revision = 3; … }`, `KeyValue { bytes key = 1; …; bytes value = 5; … }`.
//! A gRPC message travels behind 5 bytes: a compression flag (0: none)
//! and its length, big-endian.

use crate::prelude::*;

use super::{bad, base64, list_record, Change, Etcd, Feed, SourceRequest};
use crate::error::Result;

/// The method a range read calls.
const RANGE_PATH: &str = "/etcdserverpb.KV/Range";

/// The request message for every key from `start` up to `end`, behind its
/// gRPC prefix, as base64 (what `SourceRequest::body` carries).
fn range_request(start: &[u8], end: &[u8]) -> String {
    let mut message = Vec::with_capacity(start.len() + end.len() + 6);
    for (tag, bytes) in [(0x0a, start), (0x12, end)] {
        message.push(tag);
        let mut n = bytes.len();
        while n >= 0x80 {
            message.push((n & 0x7f) as u8 | 0x80);
            n >>= 7;
        }
        message.push(n as u8);
        message.extend_from_slice(bytes);
    }
    let mut framed = vec![0];
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    base64::encode(&framed)
}

/// A field's value as the wire carries it.
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    /// A fixed-width value (nothing read here has one).
    Fixed,
}

/// The fields of one message, in order; `None` at the end, and for a
/// field that does not read (then `broken` is set).
struct Fields<'a> {
    rest: &'a [u8],
    broken: bool,
}

impl<'a> Fields<'a> {
    fn new(rest: &'a [u8]) -> Fields<'a> {
        Fields {
            rest,
            broken: false,
        }
    }

    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.rest.split_first()?;
            self.rest = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Some(value);
            }
        }
        None
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Some(taken)
    }

    fn field(&mut self) -> Option<(u64, Value<'a>)> {
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => self.take(8).map(|_| Value::Fixed)?,
            2 => {
                let n = usize::try_from(self.varint()?).ok()?;
                Value::Bytes(self.take(n)?)
            }
            5 => self.take(4).map(|_| Value::Fixed)?,
            // Groups (3, 4) and wire types 6, 7: nothing etcd writes.
            _ => return None,
        };
        Some((key >> 3, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = (u64, Value<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() || self.broken {
            return None;
        }
        let field = self.field();
        self.broken = field.is_none();
        field
    }
}

/// Why an answer is not a range response.
fn not_range(problem: &str) -> crate::error::Error {
    bad(
        "body",
        &text!(
            "not etcd's gRPC range answer (",
            problem,
            "); the mirror is unchanged"
        ),
    )
}

/// Whether a payload is a gRPC answer to read: a 2xx status, and the
/// message prefix's flag byte, 0 or 1, where JSON never starts.
fn is_answer(body: &[u8], status: u16) -> bool {
    matches!(body.first(), Some(0 | 1)) && (200..300).contains(&status)
}

/// The message behind the gRPC prefix: exactly one, uncompressed.
fn message(body: &[u8]) -> Result<&[u8]> {
    let Some((head, message)) = body.split_first_chunk::<5>() else {
        return Err(not_range("shorter than the 5-byte message prefix"));
    };
    let [flag, len @ ..] = *head;
    if flag != 0 {
        return Err(not_range("a compressed message"));
    }
    if u32::from_be_bytes(len) as usize != message.len() {
        return Err(not_range("the message length differs from the prefix"));
    }
    Ok(message)
}

/// One kv: its key and, when it has one, its value.
type Kv<'a> = (&'a [u8], Option<&'a [u8]>);

fn kv(bytes: &[u8]) -> Result<Kv<'_>> {
    let (mut key, mut value) = (None, None);
    let mut fields = Fields::new(bytes);
    for (number, v) in fields.by_ref() {
        match (number, v) {
            (1, Value::Bytes(b)) => key = Some(b),
            (5, Value::Bytes(b)) => value = Some(b),
            (1 | 5, _) => return Err(not_range("a kv's key or value is not bytes")),
            _ => {}
        }
    }
    if fields.broken {
        return Err(not_range("a kv does not read"));
    }
    Ok((key.unwrap_or_default(), value))
}

fn header_revision(bytes: &[u8]) -> Result<u64> {
    let mut revision = 0;
    let mut fields = Fields::new(bytes);
    for (number, v) in fields.by_ref() {
        if number == 3 {
            let Value::Varint(r) = v else {
                return Err(not_range("header.revision is not an integer"));
            };
            revision = r;
        }
    }
    if fields.broken {
        return Err(not_range("the header does not read"));
    }
    Ok(revision)
}

impl Etcd {
    /// Reads one payload as bytes: a gRPC range answer (its message prefix
    /// starts with a zero byte, or one for a compressed message, where
    /// JSON never does) with a 2xx status, else text as [`Etcd::feed`]
    /// reads it.
    ///
    /// # Errors
    /// As [`Etcd::feed`], and `invalid_argument` for a gRPC answer that is
    /// not one uncompressed range response.
    pub fn feed_bytes(&mut self, body: &[u8], status: u16, index: Option<&str>) -> Result<Feed> {
        if is_answer(body, status) {
            return self.grpc_range(body);
        }
        self.feed(crate::source::utf8(body)?, status, index)
    }

    /// Reads a text payload as [`Etcd::feed_bytes`] reads it: text can hold
    /// a gRPC answer too (rarely: it is seldom UTF-8), anything else is
    /// read as [`Etcd::feed`] reads it, without checking it again.
    ///
    /// # Errors
    /// As [`Etcd::feed_bytes`].
    pub fn feed_text(&mut self, body: &str, status: u16, index: Option<&str>) -> Result<Feed> {
        if is_answer(body.as_bytes(), status) {
            return self.grpc_range(body.as_bytes());
        }
        self.feed(body, status, index)
    }

    /// The range read as a gRPC call, when the mirror reads it so.
    pub(super) fn grpc_request(&self) -> Option<SourceRequest> {
        if !self.grpc {
            return None;
        }
        let (start, end) = self.key_range();
        Some(SourceRequest {
            method: "POST",
            path: RANGE_PATH.into(),
            body: range_request(&start, &end),
            stream: false,
            grpc: true,
        })
    }

    /// A gRPC range answer: the whole state at `header.revision`, each kv
    /// read as the JSON paths read one (a kv whose key or value is wrong is
    /// rejected, and a bad value keeps its instance); an answer that is not
    /// a range response at all changes nothing.
    fn grpc_range(&mut self, body: &[u8]) -> Result<Feed> {
        let mut fields = Fields::new(message(body)?);
        let mut revision = None;
        let mut kvs = Vec::new();
        for (number, v) in fields.by_ref() {
            match (number, v) {
                (1, Value::Bytes(h)) => revision = Some(header_revision(h)?),
                (2, Value::Bytes(k)) => kvs.push(kv(k)?),
                (3, Value::Varint(more)) if more != 0 => {
                    return Err(not_range("`more`: the answer is cut short"))
                }
                (1..=3, _) => return Err(not_range("a field of the wrong type")),
                _ => {}
            }
        }
        if fields.broken {
            return Err(not_range("a field does not read"));
        }
        let revision = revision.ok_or_else(|| bad("header", "is missing"))?;
        let mut feed = Feed::default();
        let mut entries = Vec::with_capacity(kvs.len());
        for (i, (key, value)) in kvs.into_iter().enumerate() {
            let record = self.record_of_bytes(key, value);
            list_record(record, || text!("kvs[", i, "]"), &mut entries, &mut feed);
        }
        feed.changes.insert(0, Change::ReplaceAll(entries));
        self.revision = revision;
        self.watching = true;
        Ok(feed)
    }
}
