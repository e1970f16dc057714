//! The parts of a snapshot that concern sources (SPEC §10): each
//! instance's owner, source status and held removal, and the mirrors. All
//! are optional members, left out where they do not apply, so a snapshot
//! taken before sources existed restores unchanged. The mirrors are kept
//! as written until a mirror call reads them (`Registry::read_mirrors`),
//! so restoring carries none of the adapters' code.

use crate::prelude::*;

use super::InstanceDoc;
use crate::json::{Fields, Json, Object, ObjectWriter};
use crate::registry::{Entry, Hold, Registry};
use crate::source::SourceStatus;

/// Takes the `"source"` member out of an instance's wire form (the
/// instance parser does not know it).
#[inline(never)]
pub(super) fn take_source(members: &mut Object) -> Json {
    members.take("source").unwrap_or(Json::Null)
}

/// An optional member naming one of `names`: its position.
fn one_of(f: &mut Fields, key: &str, names: &[&str]) -> Option<usize> {
    let name = f.opt_str(key)?;
    let found = names.iter().position(|n| *n == name);
    if found.is_none() {
        f.problems
            .note(text!(f.at(key), ": unknown name `", name, "`"));
    }
    found
}

/// The optional `source` member of `state.inputs`.
#[inline(never)]
pub(super) fn read_status(i: &mut Fields) -> SourceStatus {
    one_of(i, "source", &SourceStatus::NAMES)
        .and_then(|n| SourceStatus::ALL.get(n).copied())
        .unwrap_or_default()
}

/// The optional `held` member of `state`.
#[inline(never)]
pub(super) fn read_hold(f: &mut Fields) -> Option<Hold> {
    one_of(f, "held", &Hold::NAMES).and_then(|n| Hold::ALL.get(n).copied())
}

#[inline(never)]
pub(super) fn write_status(i: &mut ObjectWriter, e: &Entry) {
    if e.inputs.source != SourceStatus::Passing {
        i.str("source", e.inputs.source.as_str());
    }
}

#[inline(never)]
pub(super) fn write_hold(st: &mut ObjectWriter, e: &Entry) {
    if let Some(hold) = e.source.held {
        st.str("held", hold.as_str());
    }
}

/// The owning source of an instance, or what is wrong with its source
/// state, as `(field, problem)`.
pub(super) fn owner(d: &InstanceDoc) -> Result<Option<&str>, (&'static str, String)> {
    let local = d.state.inputs.source == SourceStatus::Passing && d.state.held.is_none();
    match &d.source {
        Json::String(name)
            if crate::instance::check_name("", name, crate::MAX_ID_BYTES).is_ok() =>
        {
            Ok(Some(name.as_str()))
        }
        Json::Null if local => Ok(None),
        _ => Err((
            "instance.source",
            "a source state needs a valid source name".into(),
        )),
    }
}

/// The optional top-level `sources`, kept as written.
pub(super) fn read_mirrors(top: &mut Fields) -> Vec<Json> {
    match top.optional("sources") {
        None => Vec::new(),
        Some(Json::Array(items)) => items,
        Some(_) => {
            top.problems.note("sources: expected an array".into());
            Vec::new()
        }
    }
}

#[inline(never)]
pub(super) fn write_mirrors(w: &mut ObjectWriter, reg: &Registry) {
    let count = reg.written_mirrors.len() + reg.mirrors.len();
    if count == 0 {
        return;
    }
    let out = w.key("sources");
    out.push('[');
    // One of the two lists is empty: reading the written mirrors moves
    // them all into `mirrors`.
    for (i, m) in reg.written_mirrors.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        m.write(out);
    }
    for (i, m) in reg.mirrors.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        m.write_json(out);
    }
    out.push(']');
}

/// The optional top-level `recent_removals`: `[[at, count], ...]`, the
/// source removals still in the self-preservation window (checked against
/// the clock once the whole document is read).
#[inline(never)]
pub(super) fn read_recent_removals(top: &mut Fields) -> Vec<(u64, u64)> {
    let mut batches = Vec::new();
    let Some(value) = top.optional("recent_removals") else {
        return batches;
    };
    if let Json::Array(items) = &value {
        for item in items {
            let pair = match item {
                Json::Array(pair) if pair.len() == 2 => pair[0].as_u64().zip(pair[1].as_u64()),
                _ => None,
            };
            match pair {
                Some(pair) => batches.push(pair),
                None => break,
            }
        }
        if batches.len() == items.len() {
            return batches;
        }
    }
    top.problems
        .note("recent_removals: expected an array of [at, count] pairs".into());
    Vec::new()
}

/// Writes `recent_removals` when any removal is still in the window
/// (those out of it are dropped when the population is next measured).
#[inline(never)]
pub(super) fn write_recent_removals(w: &mut ObjectWriter, reg: &Registry) {
    let window = reg.config.self_preservation_window_ms;
    let batches = &reg.recent_removals.batches;
    // In time order: those still in the window are the last ones.
    let mut start = 0;
    while start < batches.len() && batches[start].0.saturating_add(window) < reg.clock {
        start += 1;
    }
    let Some(kept) = batches.get(start..).filter(|kept| !kept.is_empty()) else {
        return;
    };
    let out = w.key("recent_removals");
    let mut sep = '[';
    for &(at, count) in kept {
        put!(out, sep, "[", at, ",", count, "]");
        sep = ',';
    }
    out.push(']');
}

/// Held removals outside self-preservation cannot happen: holding one
/// enters it, and it is left only when none stays held.
pub(super) fn holds_problem(reg: &Registry) -> Option<String> {
    if !reg.held_ids.is_empty() && !reg.self_preservation {
        return Some("self_preservation: false while source removals are held".into());
    }
    None
}
