//! The parts of a snapshot that concern sources (SPEC §10): each
//! instance's owner, source status and held removal. All are optional
//! members, left out for a local instance, so a snapshot taken before
//! sources existed restores unchanged.

use crate::prelude::*;

use super::{Fields, InstanceDoc};
use crate::json::{Json, ObjectWriter};
use crate::registry::{Entry, Hold, Registry};
use crate::source::SourceStatus;

/// Takes the `"source"` member out of an instance's wire form (the
/// instance parser does not know it); `Err` with a message when it is
/// not a string.
pub(super) fn take_source(members: &mut Vec<(String, Json)>) -> Result<Option<String>, String> {
    let mut found = Ok(None);
    members.retain(|(k, v)| {
        if k != "source" {
            return true;
        }
        found = match v {
            Json::String(s) => Ok(Some(s.clone())),
            _ => Err("source: expected a string".into()),
        };
        false
    });
    found
}

/// The optional `source` member of `state.inputs`.
pub(super) fn read_status(i: &mut Fields) -> SourceStatus {
    match i.opt_str("source") {
        None => SourceStatus::Passing,
        Some(name) => i.named("source", "source status", &name, SourceStatus::Passing),
    }
}

/// The optional `held` member of `state`.
pub(super) fn read_hold(f: &mut Fields) -> Option<Hold> {
    let name = f.opt_str("held")?;
    let hold = [Hold::Preservation, Hold::EmptySync]
        .into_iter()
        .find(|h| h.as_str() == name);
    if hold.is_none() {
        f.problems
            .note(text!(f.at("held"), ": unknown hold `", name, "`"));
    }
    hold
}

pub(super) fn write_status(i: &mut ObjectWriter, e: &Entry) {
    if e.inputs.source != SourceStatus::Passing {
        i.str("source", e.inputs.source.as_str());
    }
}

pub(super) fn write_hold(st: &mut ObjectWriter, e: &Entry) {
    if let Some(hold) = e.held {
        st.str("held", hold.as_str());
    }
}

/// What is wrong with an instance's source state, as `(field, problem)`.
pub(super) fn problem(d: &InstanceDoc) -> Option<(&'static str, String)> {
    match &d.source {
        Some(name) => crate::instance::check_name("source", name, 256)
            .err()
            .map(|e| ("instance.source", e.message())),
        None if d.state.inputs.source != SourceStatus::Passing => Some((
            "state.inputs.source",
            "a local instance has no source status".into(),
        )),
        None if d.state.held.is_some() => Some((
            "state.held",
            "a local instance has no removal to hold".into(),
        )),
        None => None,
    }
}

/// The declared sources' mirror states (optional top-level `sources`).
pub(super) fn read_mirrors(top: &mut Fields) -> Vec<(String, Vec<(String, Json)>)> {
    if top.optional_is_absent("sources") {
        return Vec::new();
    }
    let problems = top.problems;
    top.list("sources")
        .into_iter()
        .filter_map(|(path, item)| match item {
            Json::Object(members) => Some((path, members)),
            other => {
                problems.note(text!(
                    path,
                    ": expected an object, got ",
                    crate::json::describe(&other)
                ));
                None
            }
        })
        .collect()
}

pub(super) fn write_mirrors(w: &mut ObjectWriter, reg: &Registry) {
    if reg.mirrors.is_empty() {
        return;
    }
    crate::json::write_array(w.key("sources"), &reg.mirrors, |out, m| m.write_json(out));
}

impl Registry {
    /// Declares the mirrors of a snapshot, noting the first problem.
    pub(super) fn restore_mirrors(
        &mut self,
        mirrors: Vec<(String, Vec<(String, Json)>)>,
        problems: &super::Problems,
    ) {
        for (path, members) in mirrors {
            if let Err(e) = self.restore_mirror(&members) {
                problems.note(text!(path, ": ", e));
            }
        }
    }
}
