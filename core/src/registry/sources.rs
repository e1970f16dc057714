//! Source-owned instances (SPEC §10.1–10.3): reconciling a source's list
//! into the registry under the ownership rules, and holding back the
//! removals that would take the fleet below its self-preservation floor.

use crate::prelude::*;
use alloc::sync::Arc;
use core::cmp::Reverse;

use super::entry::Hold;
use super::{Entry, Handle, Registry, Slot};
use crate::balancer::fnv1a64;
use crate::config::MAX_ID_BYTES;
use crate::error::{Error, Result};
use crate::events::EventKind;
use crate::instance::{check_name, Instance, InstanceSpec};
use crate::json::Json;
use crate::source::{Change, Rejected, SourceEntry, SourceStatus, SyncReport};

/// Which instances of a source a full reconcile covers.
#[derive(Clone, Copy)]
pub(crate) enum Scope<'a> {
    /// Those of one service.
    Service(&'a str),
    /// All of them, in every service.
    All,
}

/// Where an item of a reconcile came from, for the report: spelled out
/// only when the item is rejected (a sync of 10 000 entries would
/// otherwise format 10 000 positions).
#[derive(Clone, Copy)]
pub(crate) enum At {
    /// Its position in the caller's list.
    Position(usize),
    /// Its instance id (adapter records).
    Id,
}

impl At {
    fn text(self, id: &str) -> String {
        match self {
            At::Position(i) => text!(i),
            At::Id => String::from(id),
        }
    }
}

/// An entry [`Registry::check_entry`] accepted: the slot of its id, if
/// the id exists, and whether its fields equal the stored ones.
struct Checked {
    slot: Option<u32>,
    same_fields: bool,
}

/// What applying one entry did.
enum Outcome {
    Added,
    Updated,
    Unchanged,
}

impl Registry {
    /// Reconciles one service of `source` to exactly `entries` (SPEC
    /// §10.2): new ids are added, changed ones updated, unlisted ones
    /// removed (subject to SPEC §10.3); an entry equal to what the registry
    /// holds changes nothing and emits no event. A bad entry (invalid, in
    /// another service, a duplicate id, an id owned elsewhere) is skipped
    /// and listed in the report's `rejected` with its position; the rest
    /// applies.
    ///
    /// # Errors
    /// `invalid_argument` when `source` or `service` is not a valid name
    /// (nothing changes then).
    pub fn sync(
        &mut self,
        source: &str,
        service: &str,
        entries: Vec<SourceEntry>,
        now: u64,
    ) -> Result<SyncReport> {
        check_name("source", source, MAX_ID_BYTES)?;
        check_name("service", service, MAX_ID_BYTES)?;
        self.advance(now);
        let src = self.intern_source(source);
        let items = entries
            .into_iter()
            .enumerate()
            .map(|(i, e)| (At::Position(i), Ok(e)));
        let mut report = SyncReport::default();
        self.reconcile(&src, Scope::Service(service), items, &mut report);
        self.after_reconcile();
        Ok(report)
    }

    /// [`Registry::sync`] with the entries as a JSON array of entry objects
    /// (each the instance wire form plus an optional `"status"`). An item
    /// that does not parse is rejected at its position; the rest applies.
    ///
    /// # Errors
    /// `invalid_argument` when the text is not a JSON array, or a name is
    /// invalid (nothing changes then).
    pub fn sync_json(
        &mut self,
        source: &str,
        service: &str,
        entries_json: &str,
        now: u64,
    ) -> Result<SyncReport> {
        check_name("source", source, MAX_ID_BYTES)?;
        check_name("service", service, MAX_ID_BYTES)?;
        let items = match Json::parse(entries_json) {
            Ok(Json::Array(items)) => items,
            Ok(_) => return Err(Error::invalid("entries", "must be a JSON array")),
            Err(e) => return Err(Error::invalid("entries", text!("not valid JSON: ", e))),
        };
        let items = items.into_iter().enumerate().map(|(i, item)| {
            let entry = match item {
                Json::Object(members) => SourceEntry::from_object(members),
                _ => Err(Error::invalid("entry", "must be a JSON object")),
            };
            (At::Position(i), entry)
        });
        self.advance(now);
        let src = self.intern_source(source);
        let mut report = SyncReport::default();
        self.reconcile(&src, Scope::Service(service), items, &mut report);
        self.after_reconcile();
        Ok(report)
    }

    /// Adds or replaces one instance of `source` (a watch event).
    ///
    /// # Errors
    /// `invalid_argument` naming the field at fault; `conflict` when the id
    /// is registered locally, owned by another source, or registered by
    /// this source in another service. Nothing changes then.
    pub fn source_put(&mut self, source: &str, entry: SourceEntry, now: u64) -> Result<SyncReport> {
        check_name("source", source, MAX_ID_BYTES)?;
        self.advance(now);
        let src = self.intern_source(source);
        let mut report = SyncReport::default();
        self.events.source = Some(src.clone());
        let pass = self.next_pass();
        let outcome = self.put_entry(&src, entry, pass);
        self.events.source = None;
        count(&mut report, outcome?);
        self.after_reconcile();
        Ok(report)
    }

    /// [`Registry::source_put`] with the entry as JSON (the instance wire
    /// form plus an optional `"status"`).
    ///
    /// # Errors
    /// As [`Registry::source_put`].
    pub fn source_put_json(
        &mut self,
        source: &str,
        entry_json: &str,
        now: u64,
    ) -> Result<SyncReport> {
        let entry = SourceEntry::from_json(entry_json)?;
        self.source_put(source, entry, now)
    }

    /// Removes one instance of `source` (a watch event), subject to SPEC
    /// §10.3 (the report's `held` says when it is held back). An id the
    /// source does not hold is a no-op (every count 0), not an error:
    /// watch streams repeat deletes.
    ///
    /// # Errors
    /// `invalid_argument` for a malformed name; `conflict` when the id is
    /// registered locally or owned by another source.
    pub fn source_delete(&mut self, source: &str, id: &str, now: u64) -> Result<SyncReport> {
        check_name("source", source, MAX_ID_BYTES)?;
        check_name("id", id, MAX_ID_BYTES)?;
        self.advance(now);
        let src = self.intern_source(source);
        let mut report = SyncReport::default();
        if let Some(&slot) = self.by_id.get(id) {
            self.check_owner(slot, &src)?;
            self.events.source = Some(src);
            self.remove_for_source(slot, &mut report);
            self.events.source = None;
        }
        self.after_reconcile();
        Ok(report)
    }

    // ----- internals -------------------------------------------------------

    /// The registry's shared copy of a source name.
    pub(crate) fn intern_source(&mut self, name: &str) -> Arc<str> {
        if let Some(s) = self.source_names.iter().find(|s| ***s == *name) {
            return s.clone();
        }
        let name: Arc<str> = Arc::from(name);
        self.source_names.push(name.clone());
        name
    }

    fn next_pass(&mut self) -> u64 {
        self.sync_pass = self.sync_pass.wrapping_add(1).max(1);
        self.sync_pass
    }

    /// `conflict` unless `slot` is owned by `src`.
    fn check_owner(&self, slot: u32, src: &str) -> Result<()> {
        let instance = &self.entry(slot).instance;
        match instance.source.as_deref() {
            Some(owner) if owner == src => Ok(()),
            Some(owner) => Err(Error::Conflict(text!(
                "instance `",
                instance.id,
                "` is owned by source `",
                owner,
                "`, not `",
                src,
                "`"
            ))),
            None => Err(Error::Conflict(text!(
                "instance `",
                instance.id,
                "` is registered locally, not by source `",
                src,
                "`"
            ))),
        }
    }

    /// `conflict` when `slot` is owned by a source (a local call may not
    /// touch it).
    pub(crate) fn check_local(&self, slot: u32) -> Result<()> {
        let instance = &self.entry(slot).instance;
        match &instance.source {
            Some(owner) => Err(Error::Conflict(text!(
                "instance `",
                instance.id,
                "` is owned by source `",
                owner,
                "`"
            ))),
            None => Ok(()),
        }
    }

    /// Applies a list of changes an adapter read from one payload.
    pub(crate) fn apply_changes(&mut self, src: &Arc<str>, changes: Vec<Change>) -> SyncReport {
        let mut report = SyncReport::default();
        let keep: Vec<String> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Keep(id) => Some(id.clone()),
                _ => None,
            })
            .collect();
        for change in changes {
            match change {
                Change::ReplaceAll(entries) => {
                    let items = tag_by_id(entries);
                    self.reconcile_keeping(src, Scope::All, items, &keep, &mut report);
                }
                Change::ReplaceService(service, entries) => {
                    let items = tag_by_id(entries);
                    let scope = Scope::Service(&service);
                    self.reconcile_keeping(src, scope, items, &keep, &mut report);
                }
                Change::Put(entry) => {
                    let id = entry.spec.id.clone();
                    self.events.source = Some(src.clone());
                    let pass = self.next_pass();
                    match self.put_entry(src, entry, pass) {
                        Ok(outcome) => count(&mut report, outcome),
                        Err(e) => report.rejected.push(Rejected::new(id, &e)),
                    }
                    self.events.source = None;
                }
                Change::Delete(id) => {
                    if let Some(&slot) = self.by_id.get(id.as_str()) {
                        match self.check_owner(slot, src) {
                            Ok(()) => {
                                self.events.source = Some(src.clone());
                                self.remove_for_source(slot, &mut report);
                                self.events.source = None;
                            }
                            Err(e) => report.rejected.push(Rejected::new(id, &e)),
                        }
                    }
                }
                Change::Keep(_) => {}
            }
        }
        report
    }

    /// Makes the instances of `src` in `scope` exactly `items` (each with
    /// where it came from, for the report).
    pub(crate) fn reconcile(
        &mut self,
        src: &Arc<str>,
        scope: Scope<'_>,
        items: impl IntoIterator<Item = (At, Result<SourceEntry>)>,
        report: &mut SyncReport,
    ) {
        self.reconcile_keeping(src, scope, items, &[], report);
    }

    /// [`Registry::reconcile`], leaving the instances of `keep` (ids whose
    /// records were rejected) as they are.
    fn reconcile_keeping(
        &mut self,
        src: &Arc<str>,
        scope: Scope<'_>,
        items: impl IntoIterator<Item = (At, Result<SourceEntry>)>,
        keep: &[String],
        report: &mut SyncReport,
    ) {
        let pass = self.next_pass();
        let mut items = items.into_iter().peekable();
        let listed_any = items.peek().is_some() || !keep.is_empty();
        for id in keep {
            if let Some(&slot) = self.by_id.get(id.as_str()) {
                self.entry_mut(slot).source.sync_mark = pass;
            }
        }
        self.events.source = Some(src.clone());
        let service = match scope {
            Scope::Service(name) => Some(name),
            Scope::All => None,
        };
        for (at, item) in items {
            let mut entry = match item {
                Ok(entry) => entry,
                Err(e) => {
                    report.rejected.push(Rejected::new(at.text(""), &e));
                    continue;
                }
            };
            // A source-owned instance has no lease (SPEC §10.1).
            entry.spec.ttl_ms = None;
            match self.check_entry(src, service, &entry, pass) {
                Ok(checked) => count(report, self.apply_entry(src, entry, checked, pass)),
                Err(e) => report
                    .rejected
                    .push(Rejected::new(at.text(&entry.spec.id), &e)),
            }
        }
        let gone = self.unlisted(src, scope, pass);
        if !listed_any && !gone.is_empty() && !self.config.trust_empty_sync {
            // Zero entries for a source that has instances here: most
            // likely a failed read or a broken push, not a real fleet.
            for slot in gone {
                self.hold(slot, Hold::EmptySync, report);
            }
        } else {
            for slot in gone {
                self.remove_for_source(slot, report);
            }
        }
        self.events.source = None;
    }

    /// The instances of `src` in `scope` not listed in pass `pass`, in
    /// id order.
    fn unlisted(&self, src: &Arc<str>, scope: Scope<'_>, pass: u64) -> Vec<u32> {
        let owned_unlisted = |slot: &u32| {
            let e = self.entry(*slot);
            e.source.sync_mark != pass
                && e.instance
                    .source
                    .as_ref()
                    .is_some_and(|s| Arc::ptr_eq(s, src))
        };
        match scope {
            Scope::Service(name) => match self.service_by_name.get(name) {
                Some(&idx) => self
                    .services
                    .get(idx as usize)
                    .map(|s| s.members.iter().copied().filter(owned_unlisted).collect())
                    .unwrap_or_default(),
                None => Vec::new(),
            },
            Scope::All => {
                let mut slots: Vec<u32> = self
                    .services
                    .iter()
                    .flat_map(|s| s.members.iter().copied())
                    .filter(owned_unlisted)
                    .collect();
                crate::sort::sort_by(&mut slots, |&a, &b| {
                    self.entry(a).instance.id < self.entry(b).instance.id
                });
                slots
            }
        }
    }

    /// Adds or updates one entry of `src`, marking it listed in `pass`.
    fn put_entry(&mut self, src: &Arc<str>, mut entry: SourceEntry, pass: u64) -> Result<Outcome> {
        entry.spec.ttl_ms = None;
        let checked = self.check_entry(src, None, &entry, pass)?;
        Ok(self.apply_entry(src, entry, checked, pass))
    }

    /// Whether `entry` may be applied for `src` (in `service`, when a
    /// whole service is being listed): its slot when the id exists.
    fn check_entry(
        &self,
        src: &Arc<str>,
        service: Option<&str>,
        entry: &SourceEntry,
        pass: u64,
    ) -> Result<Checked> {
        let spec = &entry.spec;
        if let Some(service) = service {
            if spec.service != service {
                return Err(Error::invalid(
                    "service",
                    text!("`", spec.service, "` is not `", service, "`"),
                ));
            }
        }
        let slot = self.by_id.get(spec.id.as_str()).copied();
        if let Some(slot) = slot {
            if self.entry(slot).source.sync_mark == pass {
                return Err(Error::invalid(
                    "id",
                    text!("`", spec.id, "` is listed twice"),
                ));
            }
        }
        if let Some(slot) = slot {
            // Listing what the registry holds is the common case (a
            // re-list): fields equal to the stored, validated ones need no
            // validation of their own.
            let current = self.entry(slot);
            let owned = current
                .instance
                .source
                .as_ref()
                .is_some_and(|s| Arc::ptr_eq(s, src));
            if owned
                && *current.instance.service == *spec.service
                && spec.tags.len() <= crate::MAX_TAGS
                && current.instance.same_fields(spec)
            {
                return Ok(Checked {
                    slot: Some(slot),
                    same_fields: true,
                });
            }
        }
        spec.validate()?;
        let Some(slot) = slot else {
            return Ok(Checked {
                slot: None,
                same_fields: false,
            });
        };
        self.check_owner(slot, src)?;
        let current = self.entry(slot);
        if *current.instance.service != *spec.service {
            return Err(Error::Conflict(text!(
                "instance `",
                spec.id,
                "` is in service `",
                current.instance.service,
                "`, not `",
                spec.service,
                "`"
            )));
        }
        Ok(Checked {
            slot: Some(slot),
            same_fields: current.instance.same_fields(spec),
        })
    }

    /// Applies an entry [`Registry::check_entry`] accepted.
    fn apply_entry(
        &mut self,
        src: &Arc<str>,
        entry: SourceEntry,
        checked: Checked,
        pass: u64,
    ) -> Outcome {
        let SourceEntry { spec, status } = entry;
        let Checked { slot, same_fields } = checked;
        let at = self.clock;
        let Some(slot) = slot else {
            let handle = self.insert(spec, Some(src.clone()), status, at);
            self.entry_mut(handle.index).source.sync_mark = pass;
            return Outcome::Added;
        };
        self.entry_mut(slot).source.sync_mark = pass;
        if self.entry(slot).source.held.is_some() {
            self.release_hold(slot, at);
        }
        let same_status = self.entry(slot).inputs.source == status;
        if same_fields && same_status {
            return Outcome::Unchanged;
        }
        let service_idx = self.entry(slot).service_idx;
        let service_name = self.entry(slot).instance.service.clone();
        let id = self.entry(slot).instance.id.clone();
        let generation = self.slots[slot as usize].generation;
        let index = self.events.push(
            EventKind::Updated,
            at,
            Some(id.clone()),
            Some(service_name.clone()),
            None,
        );
        if !same_fields {
            let mut instance = Instance::from_spec(spec, id, service_name);
            instance.source = Some(src.clone());
            let new_interval = instance.check_interval_ms;
            let entry = self.entry_mut(slot);
            let old_interval = entry.instance.check_interval_ms;
            entry.instance = instance;
            entry.revision = index;
            if new_interval != old_interval {
                entry.checks.next_at = new_interval.map(|_| at);
                if new_interval.is_some() {
                    self.checks.push(Reverse((at, slot, generation)));
                }
            }
            self.membership_epoch += 1;
        }
        self.entry_mut(slot).modify_index = index;
        self.service_touch(service_idx, slot, index);
        if !same_status {
            let entry = self.entry_mut(slot);
            let before = entry.inputs.is_draining();
            entry.inputs.source = status;
            let after = entry.inputs.is_draining();
            let live = !entry.inputs.lease_expired;
            self.count_draining_change(before, after, live);
            self.refresh(slot, at);
        }
        Outcome::Updated
    }

    /// Inserts a new instance (local when `source` is `None`): no event
    /// but `registered`, no settling. Inlined: `register` is its only
    /// caller where nothing mirrors (the WebAssembly module).
    #[inline]
    pub(crate) fn insert(
        &mut self,
        spec: InstanceSpec,
        source: Option<Arc<str>>,
        status: SourceStatus,
        at: u64,
    ) -> Handle {
        let id: Arc<str> = Arc::from(spec.id.as_str());
        let service_idx = self.service_index_or_insert(&spec.service);
        let service_name = self.services[service_idx as usize].name.clone();
        let mut instance = Instance::from_spec(spec, id.clone(), service_name.clone());
        instance.source = source;
        let ttl = instance.ttl_ms.unwrap_or(self.config.ttl_ms);
        let check_at = instance.check_interval_ms.map(|_| at);
        let index = self.events.push(
            EventKind::Registered,
            at,
            Some(id.clone()),
            Some(service_name),
            None,
        );
        let mut entry = Entry::new(
            instance,
            service_idx,
            fnv1a64(id.as_bytes()),
            ttl,
            at,
            index,
        );
        entry.inputs.source = status;
        entry.health = entry.inputs.health();
        let draining = entry.inputs.is_draining();
        // A new instance's first check is due at once.
        entry.checks.next_at = check_at;
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(Slot::default());
                (self.slots.len() - 1) as u32
            }
        };
        let generation = self.slots[slot as usize].generation;
        self.slots[slot as usize].entry = Some(Box::new(entry));
        self.by_id.insert(id, slot);
        self.total += 1;
        if !draining {
            self.non_draining += 1;
            self.live_non_draining += 1;
        }
        self.lease_blocked = false;
        self.membership_epoch += 1;
        self.schedule_lease(slot);
        if let Some(due) = check_at {
            self.checks.push(Reverse((due, slot, generation)));
        }
        self.service_add_member(service_idx, slot, index);
        self.services[service_idx as usize].metrics.registrations += 1;
        self.update_panic(service_idx, at);
        Handle {
            index: slot,
            generation,
        }
    }

    /// Removes a source-owned instance at its source's request, or holds
    /// the removal back while it would breach self-preservation.
    fn remove_for_source(&mut self, slot: u32, report: &mut SyncReport) {
        let at = self.clock;
        let (draining, held) = {
            let e = self.entry(slot);
            (e.inputs.is_draining(), e.source.held)
        };
        if held == Some(Hold::Preservation) {
            report.held += 1;
            return;
        }
        if !draining && self.would_breach_self_preservation() {
            self.hold(slot, Hold::Preservation, report);
            return;
        }
        if held.is_some() {
            self.release_hold(slot, at);
        }
        if !draining {
            self.recent_removals
                .record(at, self.config.self_preservation_window_ms);
        }
        let service_idx = self.entry(slot).service_idx;
        self.services[service_idx as usize].metrics.deregistrations += 1;
        self.remove(slot, EventKind::Deregistered, at);
        report.removed += 1;
    }

    /// Holds back the removal of `slot` for `why` (`removal_held`).
    fn hold(&mut self, slot: u32, why: Hold, report: &mut SyncReport) {
        report.held += 1;
        let at = self.clock;
        let previous = self.entry(slot).source.held;
        if previous == Some(why) {
            return;
        }
        self.entry_mut(slot).source.held = Some(why);
        let (id, service) = {
            let e = self.entry(slot);
            (e.instance.id.clone(), e.instance.service.clone())
        };
        if why == Hold::Preservation {
            self.list_held(id.clone());
            if !self.self_preservation {
                self.self_preservation = true;
                let source = self.events.source.take();
                self.events
                    .push(EventKind::SelfPreservationEntered, at, None, None, None);
                self.events.source = source;
            }
        } else if previous == Some(Hold::Preservation) {
            self.unlist_held(&id);
        }
        if previous.is_none() {
            let index = self
                .events
                .push(EventKind::RemovalHeld, at, Some(id), Some(service), None);
            self.entry_mut(slot).modify_index = index;
        }
    }

    /// Ends the hold on `slot` (`removal_released`).
    fn release_hold(&mut self, slot: u32, at: u64) {
        let Some(why) = self.entry_mut(slot).source.held.take() else {
            return;
        };
        let (id, service) = {
            let e = self.entry(slot);
            (e.instance.id.clone(), e.instance.service.clone())
        };
        if why == Hold::Preservation {
            self.unlist_held(&id);
        }
        let index = self.events.push(
            EventKind::RemovalReleased,
            at,
            Some(id),
            Some(service),
            None,
        );
        self.entry_mut(slot).modify_index = index;
    }

    /// Files `id` among the held removals.
    fn list_held(&mut self, id: Arc<str>) {
        if !self.held_ids.contains(&id) {
            self.held_ids.push(id);
        }
    }

    /// Takes `id` off the held removals.
    pub(crate) fn unlist_held(&mut self, id: &str) {
        if let Some(pos) = self.held_ids.iter().position(|h| **h == *id) {
            self.held_ids.swap_remove(pos);
        }
    }

    /// Rebuilds the held removals from the instances (after a restore).
    pub(crate) fn relist_held(&mut self) {
        self.held_ids.clear();
        for s in &self.slots {
            if let Some(e) = s.entry.as_deref() {
                if e.source.held == Some(Hold::Preservation) {
                    self.held_ids.push(e.instance.id.clone());
                }
            }
        }
    }

    /// After a reconcile: releases held removals the fraction now allows,
    /// then lets held lease expiries go as a renewal would.
    pub(crate) fn after_reconcile(&mut self) {
        self.lease_blocked = false;
        self.settle();
        self.release_held_removals();
    }

    /// Applies the removals held back by self-preservation once the live
    /// fraction (held removals counted as lost) is back at the threshold,
    /// in id order, and those of instances drained since; leaves
    /// self-preservation when nothing stays held.
    pub(crate) fn release_held_removals(&mut self) {
        if self.held_ids.is_empty() {
            return;
        }
        let at = self.clock;
        let recovered = self.fraction_recovered();
        let mut released = false;
        // In id order: the smallest held id that may go, until none may.
        while let Some(slot) = self
            .held_ids
            .iter()
            .filter_map(|id| self.by_id.get(id).copied())
            .filter(|&slot| recovered || self.entry(slot).inputs.is_draining())
            .min_by(|&a, &b| self.entry(a).instance.id.cmp(&self.entry(b).instance.id))
        {
            self.events.source = self.entry(slot).instance.source.clone();
            self.release_hold(slot, at);
            if !self.entry(slot).inputs.is_draining() {
                self.recent_removals
                    .record(at, self.config.self_preservation_window_ms);
            }
            let service_idx = self.entry(slot).service_idx;
            self.services[service_idx as usize].metrics.deregistrations += 1;
            self.remove(slot, EventKind::Deregistered, at);
            self.events.source = None;
            released = true;
        }
        if released {
            // Lease expiries held back behind these removals may be due
            // too: apply them (or hold them again) before leaving
            // self-preservation, as any advance does.
            self.lease_blocked = false;
            self.advance(self.clock);
        }
    }
}

/// Adapter entries, each tagged with its id for the report.
fn tag_by_id(entries: Vec<SourceEntry>) -> impl Iterator<Item = (At, Result<SourceEntry>)> {
    entries.into_iter().map(|e| (At::Id, Ok(e)))
}

fn count(report: &mut SyncReport, outcome: Outcome) {
    match outcome {
        Outcome::Added => report.added += 1,
        Outcome::Updated => report.updated += 1,
        Outcome::Unchanged => report.unchanged += 1,
    }
}
