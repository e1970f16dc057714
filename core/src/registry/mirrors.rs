//! Mirrored sources (SPEC §10.4): the state machine of each source the
//! host declared with `source_add`, dispatched by kind to its adapter.

use crate::prelude::*;
use alloc::sync::Arc;

use super::Registry;
use crate::error::{Error, Result};
use crate::instance::check_name;
use crate::source::{SourceKind, SourceRequest, SyncReport};

/// One declared source: its name and its adapter's state.
#[derive(Debug, Clone)]
pub(crate) struct Mirror {
    pub name: Arc<str>,
    pub adapter: Adapter,
}

/// The adapter state of a mirror, by kind.
#[derive(Debug, Clone)]
pub(crate) enum Adapter {}

impl Adapter {
    fn new(kind: SourceKind) -> Result<Adapter> {
        Err(Error::invalid(
            "kind",
            text!("`", kind.name(), "` is not supported yet"),
        ))
    }

    fn request(&self) -> SourceRequest {
        match *self {}
    }

    fn feed(
        &mut self,
        _body: &str,
        _status: u16,
        _index: Option<&str>,
    ) -> Result<crate::source::Feed> {
        match *self {}
    }
}

impl Registry {
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
