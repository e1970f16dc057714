//! A Kubernetes mirror's progress in a snapshot, so a restarted client
//! resumes the watch where it stopped instead of listing again:
//!
//! ```json
//! {"resource_version": "1043",
//!  "slices": [{"name": "api-abc12",
//!              "entries": [[{"id": "api-7d9f-x2", "service": "api", "address": "10.1.2.3", "port": 8080, …}, "passing"]]}]}
//! ```
//!
//! `resource_version` is `null` before the first list; each slice keeps its
//! endpoints as mapped (the instance wire form, then the status), in the
//! slice's order, duplicates included: merging happens on every change.

use crate::prelude::*;

use super::{K8sMirror, Slice};
use crate::error::{Error, Result};
use crate::instance::InstanceSpec;
use crate::json::{get, write_array, write_str, Json, ObjectWriter};
use crate::source::{SourceEntry, SourceStatus};

impl K8sMirror {
    /// Writes the mirror's progress for a snapshot (format above).
    pub(crate) fn write_state(&self, out: &mut String) {
        let mut w = ObjectWriter::new(out);
        w.opt_str("resource_version", self.resource_version.as_deref());
        write_array(w.key("slices"), &self.slices, |out, slice| {
            let mut s = ObjectWriter::new(out);
            s.str("name", &slice.name);
            write_array(s.key("entries"), &slice.entries, |out, e| {
                out.push('[');
                out.push_str(&e.spec.to_json());
                out.push(',');
                write_str(out, e.status.as_str());
                out.push(']');
            });
            s.end();
        });
        w.end();
    }

    /// Takes up the progress [`K8sMirror::write_state`] wrote.
    ///
    /// # Errors
    /// `invalid_snapshot` naming the field at fault; the mirror is unchanged.
    pub(crate) fn restore_state(&mut self, state: &Json) -> Result<()> {
        let bad = |what: String| Error::InvalidSnapshot(text!("k8s mirror state: ", what));
        let members = state
            .as_object()
            .ok_or_else(|| bad("must be an object".into()))?;
        if let Some((key, _)) = members
            .iter()
            .find(|(k, _)| k != "resource_version" && k != "slices")
        {
            return Err(bad(text!("unknown field `", key, "`")));
        }
        let resource_version = match get(members, "resource_version") {
            Some(Json::Null) => None,
            Some(Json::String(rv)) if !rv.is_empty() => Some(rv.clone()),
            _ => {
                return Err(bad(
                    "resource_version: must be a non-empty string or null".into()
                ))
            }
        };
        let list = get(members, "slices")
            .and_then(Json::as_array)
            .ok_or_else(|| bad("slices: must be an array".into()))?;
        let mut slices: Vec<Slice> = Vec::with_capacity(list.len());
        for (i, value) in list.iter().enumerate() {
            let slice = self
                .read_slice_state(value)
                .map_err(|e| bad(text!("slices[", i, "]", e)))?;
            if slices.last().is_some_and(|last| last.name >= slice.name) {
                return Err(bad(text!(
                    "slices[",
                    i,
                    "]: names must be unique and in order"
                )));
            }
            slices.push(slice);
        }
        if resource_version.is_none() && !slices.is_empty() {
            return Err(bad("slices without a resource_version".into()));
        }
        self.resource_version = resource_version;
        self.slices = slices;
        Ok(())
    }

    fn read_slice_state(&self, value: &Json) -> Result<Slice, String> {
        let name = value
            .get("name")
            .and_then(Json::as_str)
            .filter(|n| !n.is_empty())
            .ok_or(".name: must be a non-empty string")?;
        let list = value
            .get("entries")
            .and_then(Json::as_array)
            .ok_or(".entries: must be an array")?;
        let mut entries = Vec::with_capacity(list.len());
        for (j, pair) in list.iter().enumerate() {
            let at = || text!(".entries[", j, "]");
            let (spec, status) = match pair.as_array() {
                Some([Json::Object(spec), Json::String(status)]) => (spec, status),
                _ => return Err(text!(at(), ": must be [instance, status]")),
            };
            let spec = InstanceSpec::from_object(spec.clone()).map_err(|e| text!(at(), ": ", e))?;
            if spec.service != self.service {
                return Err(text!(at(), ": service is not `", self.service, "`"));
            }
            let status: SourceStatus = status.parse().map_err(|e| text!(at(), ": ", e))?;
            entries.push(SourceEntry { spec, status });
        }
        Ok(Slice {
            name: name.to_owned(),
            entries,
        })
    }
}
