//! A range answer of the plain shape etcd writes, read in one pass over
//! its text with no tree at all: each kv's key and value are borrowed
//! from the text and handed to the same reading of a kv the tree path
//! uses. Anything else (a kv that is not an object, a key or value that
//! is not a string, a repeated `header` or `kvs`, `error` or `result`
//! members, text that is not JSON) is left to the tree path, which then
//! names the problem: so what this answers is always what that answers.

use crate::prelude::*;

use super::{list_record, Buffers, Etcd};
use crate::json::Walker;
use crate::source::{Change, Feed};

impl Etcd {
    /// The range answer in `body` as `(revision, feed)`, or `None` to read
    /// it through the tree.
    pub(super) fn walk_range(&self, body: &str) -> Option<(u64, Feed)> {
        let mut w = Walker::new(body);
        w.open(b'{')?;
        let mut revision = None;
        let mut feed = None;
        let mut first = true;
        while let Some(name) = w.member(&mut first)? {
            match &*name {
                "header" if revision.is_none() => revision = Some(header_revision(&mut w)?),
                "kvs" if feed.is_none() => feed = Some(self.walk_kvs(&mut w)?),
                "header" | "kvs" | "error" | "result" => return None,
                _ => w.skip()?,
            }
        }
        w.end()?;
        Some((revision?, feed?))
    }

    /// `kvs`: the whole state, then the ids whose records were rejected.
    fn walk_kvs(&self, w: &mut Walker<'_>) -> Option<Feed> {
        w.open(b'[')?;
        let mut bufs = Buffers::default();
        let mut feed = Feed::default();
        let mut entries = Vec::new();
        let mut first = true;
        let mut i = 0usize;
        while w.item(&mut first)? {
            let (key, value) = kv(w)?;
            let at = || text!("kvs[", i, "]");
            let record = self.record_of(Some(&key), Ok(value.as_deref()), &mut bufs);
            list_record(record, at, &mut entries, &mut feed);
            i += 1;
        }
        feed.changes.insert(0, Change::ReplaceAll(entries));
        Some(feed)
    }
}

/// `header.revision` (0 when absent) when the header is an object and the
/// revision an int64.
fn header_revision(w: &mut Walker<'_>) -> Option<u64> {
    w.open(b'{')?;
    let mut revision = Some(0);
    let mut first = true;
    while let Some(name) = w.member(&mut first)? {
        if &*name == "revision" {
            revision = match w.peek()? {
                b'"' => w.str()?.parse::<u64>().ok(),
                _ => w.uint(),
            };
        } else {
            w.skip()?;
        }
    }
    revision
}

/// A kv object's `key` and `value` (the last of each; the value `None`
/// when absent), when both are strings.
fn kv<'a>(
    w: &mut Walker<'a>,
) -> Option<(
    alloc::borrow::Cow<'a, str>,
    Option<alloc::borrow::Cow<'a, str>>,
)> {
    w.open(b'{')?;
    let (mut key, mut value) = (None, None);
    let mut first = true;
    while let Some(name) = w.member(&mut first)? {
        match &*name {
            "key" => key = Some(w.str()?),
            "value" => value = Some(w.str()?),
            _ => w.skip()?,
        }
    }
    Some((key?, value))
}
