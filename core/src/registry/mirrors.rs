//! Mirrored sources (SPEC §10.4): the state machine of each source the
//! host declared with `source_add`, dispatched by kind to its adapter.

use crate::prelude::*;
use alloc::sync::Arc;

use super::Registry;
use crate::error::{Error, Result};
use crate::instance::check_name;
use crate::json::{get, Json, ObjectWriter};
use crate::source::etcd::Etcd;
use crate::source::{Feed, SourceKind, SourceRequest, SyncReport};

/// One declared source: its name and its adapter's state.
#[derive(Debug, Clone)]
pub(crate) struct Mirror {
    pub name: Arc<str>,
    pub adapter: Adapter,
}

/// The adapter state of a mirror, by kind.
#[derive(Debug, Clone)]
pub(crate) enum Adapter {
    Etcd(Etcd),
}

impl Adapter {
    fn new(kind: SourceKind) -> Result<Adapter> {
        match kind {
            SourceKind::Etcd { prefix } => Ok(Adapter::Etcd(Etcd::new(prefix))),
            other => Err(Error::invalid(
                "kind",
                text!("`", other.name(), "` is not supported yet"),
            )),
        }
    }

    fn request(&self) -> SourceRequest {
        match self {
            Adapter::Etcd(m) => m.request(),
        }
    }

    fn feed(&mut self, body: &str, status: u16, index: Option<&str>) -> Result<Feed> {
        match self {
            Adapter::Etcd(m) => m.feed(body, status, index),
        }
    }
}

impl Mirror {
    /// The mirror as a snapshot holds it: `{"name", "kind", …state}`.
    pub fn write_json(&self, out: &mut String) {
        let mut w = ObjectWriter::new(out);
        w.str("name", &self.name);
        match &self.adapter {
            Adapter::Etcd(m) => {
                w.str("kind", "etcd");
                m.write_state(&mut w);
            }
        }
        w.end();
    }
}

impl Registry {
    /// Restores a mirror from its snapshot form (see [`Mirror::write_json`]).
    pub(crate) fn restore_mirror(&mut self, members: &[(String, Json)]) -> Result<()> {
        let name = match get(members, "name") {
            Some(Json::String(n)) => n.as_str(),
            _ => return Err(Error::invalid("name", "expected a string")),
        };
        check_name("name", name, 256)?;
        if self.mirrors.iter().any(|m| *m.name == *name) {
            return Err(Error::invalid("name", text!("`", name, "` appears twice")));
        }
        let adapter = match get(members, "kind") {
            Some(Json::String(k)) if k == "etcd" => Adapter::Etcd(Etcd::restore(members)?),
            _ => return Err(Error::invalid("kind", "expected a supported kind")),
        };
        let name = self.intern_source(name);
        self.mirrors.push(Mirror { name, adapter });
        Ok(())
    }

    /// Declares a mirrored source named `name` (SPEC §10.4) from its
    /// options, e.g. `{"kind": "etcd", "prefix": "/waypost/services"}`.
    ///
    /// # Errors
    /// `invalid_argument` for a bad name or options (naming the option);
    /// `conflict` when a source with this name was already added.
    pub fn source_add(&mut self, name: &str, options_json: &str) -> Result<()> {
        check_name("name", name, 256)?;
        let kind = SourceKind::from_json(options_json)?;
        if self.mirrors.iter().any(|m| *m.name == *name) {
            return Err(Error::Conflict(text!(
                "source `",
                name,
                "` was already added"
            )));
        }
        let adapter = Adapter::new(kind)?;
        let name = self.intern_source(name);
        self.mirrors.push(Mirror { name, adapter });
        Ok(())
    }

    /// The request the host must send next for source `name`.
    ///
    /// # Errors
    /// `invalid_argument` when no source of that name was added.
    pub fn source_request(&self, name: &str) -> Result<SourceRequest> {
        Ok(self.mirror(name)?.adapter.request())
    }

    /// Hands source `name` what its last request brought back (a whole
    /// response, or one message of a stream), with the HTTP status and the
    /// store's index header when it has one; applies what it says.
    ///
    /// # Errors
    /// `invalid_argument` when no source of that name was added, or when
    /// the payload is not the documented shape at all (nothing changes
    /// then: neither the registry nor the mirror).
    pub fn source_feed(
        &mut self,
        name: &str,
        body: &str,
        now: u64,
        status: u16,
        index: Option<&str>,
    ) -> Result<SyncReport> {
        let position = self.mirror_position(name)?;
        let feed = match self.mirrors.get_mut(position) {
            Some(m) => m.adapter.feed(body, status, index)?,
            None => return Err(unknown_source(name)),
        };
        self.advance(now);
        let src = match self.mirrors.get(position) {
            Some(m) => m.name.clone(),
            None => return Err(unknown_source(name)),
        };
        let mut report = self.apply_changes(&src, feed.changes);
        report.rejected.splice(0..0, feed.rejected);
        report.resync |= feed.resync;
        self.after_reconcile();
        Ok(report)
    }

    fn mirror_position(&self, name: &str) -> Result<usize> {
        self.mirrors
            .iter()
            .position(|m| *m.name == *name)
            .ok_or_else(|| unknown_source(name))
    }

    fn mirror(&self, name: &str) -> Result<&Mirror> {
        self.mirrors
            .iter()
            .find(|m| *m.name == *name)
            .ok_or_else(|| unknown_source(name))
    }
}

fn unknown_source(name: &str) -> Error {
    Error::invalid("source", text!("no source `", name, "` was added"))
}
