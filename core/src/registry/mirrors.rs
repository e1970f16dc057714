//! Mirrored sources (SPEC §10.4): the state machine of each source the
//! host declared with `source_add`, dispatched by kind to its adapter.
//!
//! Mirrors restored from a snapshot stay in their written form until a
//! mirror call reads them, and a live adapter is reached through a trait
//! object: a registry that never mirrors (the WebAssembly module, today)
//! carries none of the adapters' code, while its snapshots still keep
//! every mirror.

use crate::prelude::*;
use alloc::sync::Arc;
use core::fmt::Debug;

use super::Registry;
use crate::config::MAX_ID_BYTES;
use crate::error::{Error, Result};
use crate::instance::check_name;
use crate::json::{describe, Json, ObjectWriter};
use crate::source::consul::ConsulMirror;
use crate::source::etcd::Etcd;
use crate::source::k8s::K8sMirror;
use crate::source::{Feed, SourceKind, SourceRequest, SyncReport};

/// What the registry asks of a store adapter's state machine.
pub(crate) trait Adapter: Debug + Send + Sync {
    /// The request the host sends next.
    fn request(&self) -> SourceRequest;
    /// Reads one payload; on `Err` the adapter is unchanged.
    fn feed(&mut self, body: &str, status: u16, index: Option<&str>) -> Result<Feed>;
    /// Reads one payload as bytes: text (refused unless UTF-8), or what
    /// only some adapters read, a binary answer (etcd's gRPC range).
    #[cfg(feature = "etcd-grpc")]
    fn feed_bytes(&mut self, body: &[u8], status: u16, index: Option<&str>) -> Result<Feed> {
        self.feed(crate::source::utf8(body)?, status, index)
    }
    /// Appends the adapter's progress as a JSON object.
    fn write_state(&self, out: &mut String);
    /// Takes up the progress [`Adapter::write_state`] wrote.
    fn restore_state(&mut self, state: &Json) -> Result<()>;
    /// A copy (the registry is `Clone`).
    fn boxed_clone(&self) -> Box<dyn Adapter>;
}

/// The adapters share one shape; this forwards to each one's own methods
/// (given, to its own readings of a payload as text and as bytes).
macro_rules! adapter {
    ($t:ty) => {
        adapter!($t, feed);
    };
    ($t:ty, $text:ident $(, $bytes:ident)?) => {
        impl Adapter for $t {
            fn request(&self) -> SourceRequest {
                <$t>::request(self)
            }
            fn feed(&mut self, body: &str, status: u16, index: Option<&str>) -> Result<Feed> {
                <$t>::$text(self, body, status, index)
            }
            $(
                fn feed_bytes(&mut self, body: &[u8], status: u16, index: Option<&str>) -> Result<Feed> {
                    <$t>::$bytes(self, body, status, index)
                }
            )?
            fn write_state(&self, out: &mut String) {
                <$t>::write_state(self, out)
            }
            fn restore_state(&mut self, state: &Json) -> Result<()> {
                <$t>::restore_state(self, state)
            }
            fn boxed_clone(&self) -> Box<dyn Adapter> {
                Box::new(self.clone())
            }
        }
    };
}

#[cfg(feature = "etcd-grpc")]
adapter!(Etcd, feed_text, feed_bytes);
#[cfg(not(feature = "etcd-grpc"))]
adapter!(Etcd);
adapter!(ConsulMirror);
adapter!(K8sMirror);

/// A new adapter for `kind`.
fn adapter(kind: &SourceKind) -> Box<dyn Adapter> {
    match kind {
        SourceKind::Etcd { prefix, grpc } => Box::new(Etcd::new(prefix.clone(), *grpc)),
        SourceKind::Consul { service } => Box::new(ConsulMirror::new(service)),
        SourceKind::K8s {
            namespace,
            service,
            port,
        } => Box::new(K8sMirror::new(namespace, service, port)),
    }
}

/// One declared source: its name, its options as `source_add` took them
/// (the kind's canonical form) and its adapter.
#[derive(Debug)]
pub(crate) struct Mirror {
    pub name: Arc<str>,
    pub options: Json,
    pub adapter: Box<dyn Adapter>,
}

impl Clone for Mirror {
    fn clone(&self) -> Mirror {
        Mirror {
            name: self.name.clone(),
            options: self.options.clone(),
            adapter: self.adapter.boxed_clone(),
        }
    }
}

impl Mirror {
    /// The mirror as a snapshot holds it: `{"name", "options", "state"}`.
    pub fn write_json(&self, out: &mut String) {
        let mut w = ObjectWriter::new(out);
        w.str("name", &self.name);
        self.options.write(w.key("options"));
        self.adapter.write_state(w.key("state"));
        w.end();
    }
}

/// A mirror as [`Mirror::write_json`] wrote it: its name, options and live
/// adapter.
fn revive(written: &Json) -> Result<(&str, Json, Box<dyn Adapter>)> {
    let members = written
        .as_object()
        .ok_or_else(|| Error::invalid("source", "expected an object"))?;
    let (mut name, mut options, mut state) = (None, None, None);
    for (key, value) in members {
        match (key.as_str(), value) {
            ("name", Json::String(n)) => name = Some(n.as_str()),
            ("options", v @ Json::Object(_)) => options = Some(v),
            ("state", v @ Json::Object(_)) => state = Some(v),
            (key, v) => {
                return Err(Error::invalid(
                    key,
                    text!("unexpected member, got ", describe(v)),
                ))
            }
        }
    }
    let (Some(name), Some(options), Some(state)) = (name, options, state) else {
        return Err(Error::invalid(
            "source",
            "needs a name, and options and state objects",
        ));
    };
    check_name("name", name, MAX_ID_BYTES)?;
    let kind = SourceKind::from_json(&options.to_json())?;
    let mut live = adapter(&kind);
    live.restore_state(state)?;
    Ok((name, options.clone(), live))
}

fn unreadable(i: usize, e: Error) -> Error {
    Error::InvalidSnapshot(text!("sources[", i, "]: ", e.message()))
}

impl Registry {
    /// Reads the mirrors a snapshot held into live ones (once, at the
    /// first mirror call).
    ///
    /// # Errors
    /// `invalid_snapshot` saying which mirror does not read; they all stay
    /// as written then.
    fn read_mirrors(&mut self) -> Result<()> {
        if self.written_mirrors.is_empty() {
            return Ok(());
        }
        let written = core::mem::take(&mut self.written_mirrors);
        let mut mirrors: Vec<Mirror> = Vec::with_capacity(written.len());
        let mut problem = None;
        for (i, w) in written.iter().enumerate() {
            match revive(w) {
                Ok((name, _, _)) if mirrors.iter().any(|m| *m.name == *name) => {
                    problem = Some(unreadable(
                        i,
                        Error::invalid("name", text!("`", name, "` appears twice")),
                    ));
                    break;
                }
                Ok((name, options, adapter)) => {
                    let name = self.intern_source(name);
                    mirrors.push(Mirror {
                        name,
                        options,
                        adapter,
                    });
                }
                Err(e) => {
                    problem = Some(unreadable(i, e));
                    break;
                }
            }
        }
        if let Some(e) = problem {
            self.written_mirrors = written;
            return Err(e);
        }
        self.mirrors = mirrors;
        Ok(())
    }

    /// Declares a mirrored source named `name` (SPEC §10.4) from its
    /// options, e.g. `{"kind": "etcd", "prefix": "/waypost/services"}`.
    ///
    /// # Errors
    /// `invalid_argument` for a bad name or options (naming the option);
    /// `conflict` when a source with this name was already added.
    pub fn source_add(&mut self, name: &str, options_json: &str) -> Result<()> {
        check_name("name", name, MAX_ID_BYTES)?;
        let kind = SourceKind::from_json(options_json)?;
        self.read_mirrors()?;
        if self.mirrors.iter().any(|m| *m.name == *name) {
            return Err(Error::Conflict(text!(
                "source `",
                name,
                "` was already added"
            )));
        }
        let live = adapter(&kind);
        let options = Json::parse(&kind.to_json()).map_err(|e| Error::invalid("options", e))?;
        let name = self.intern_source(name);
        self.mirrors.push(Mirror {
            name,
            options,
            adapter: live,
        });
        Ok(())
    }

    /// The request the host must send next for source `name`.
    ///
    /// # Errors
    /// `invalid_argument` when no source of that name was added;
    /// `invalid_snapshot` when its state, restored from a snapshot, does
    /// not read.
    pub fn source_request(&self, name: &str) -> Result<SourceRequest> {
        if let Some(mirror) = self.mirrors.iter().find(|m| *m.name == *name) {
            return Ok(mirror.adapter.request());
        }
        // Mirrors still as a snapshot wrote them: read the one asked for.
        for (i, w) in self.written_mirrors.iter().enumerate() {
            if w.get("name").and_then(Json::as_str) == Some(name) {
                let (_, _, adapter) = revive(w).map_err(|e| unreadable(i, e))?;
                return Ok(adapter.request());
            }
        }
        Err(unknown_source(name))
    }

    /// Hands source `name` what its last request brought back (a whole
    /// response, or one message of a stream), with the HTTP status and the
    /// store's index header when it has one; applies what it says.
    ///
    /// # Errors
    /// `invalid_argument` when no source of that name was added, or when
    /// the payload is not the documented shape at all (nothing changes
    /// then: neither the registry nor the mirror); `invalid_snapshot` when
    /// its state, restored from a snapshot, does not read.
    pub fn source_feed(
        &mut self,
        name: &str,
        body: &str,
        now: u64,
        status: u16,
        index: Option<&str>,
    ) -> Result<SyncReport> {
        self.feed_mirror(name, now, |a| a.feed(body, status, index))
    }

    /// [`Registry::source_feed`] for a payload as bytes: what a gRPC call
    /// answers (etcd's range read with `"grpc": true`), or text not yet
    /// checked to be UTF-8 (a text payload that is not is refused as
    /// `invalid_argument` for `body`).
    ///
    /// # Errors
    /// As [`Registry::source_feed`].
    pub fn source_feed_bytes(
        &mut self,
        name: &str,
        body: &[u8],
        now: u64,
        status: u16,
        index: Option<&str>,
    ) -> Result<SyncReport> {
        #[cfg(feature = "etcd-grpc")]
        return self.feed_mirror(name, now, |a| a.feed_bytes(body, status, index));
        #[cfg(not(feature = "etcd-grpc"))]
        self.source_feed(name, crate::source::utf8(body)?, now, status, index)
    }

    /// Applies what mirror `name`'s adapter reads from a payload.
    fn feed_mirror(
        &mut self,
        name: &str,
        now: u64,
        read: impl FnOnce(&mut dyn Adapter) -> Result<Feed>,
    ) -> Result<SyncReport> {
        self.read_mirrors()?;
        let mirror = self
            .mirrors
            .iter_mut()
            .find(|m| *m.name == *name)
            .ok_or_else(|| unknown_source(name))?;
        let feed = read(&mut *mirror.adapter)?;
        let src = mirror.name.clone();
        self.advance(now);
        let mut report = self.apply_changes(&src, feed.changes);
        report.rejected.splice(0..0, feed.rejected);
        report.resync |= feed.resync;
        self.after_reconcile();
        Ok(report)
    }
}

fn unknown_source(name: &str) -> Error {
    Error::invalid("source", text!("no source `", name, "` was added"))
}
