//! The registry: instances, services, leases and everything hosts call.

use crate::prelude::*;
mod candidates;
mod entry;
mod id_index;
mod invariants;
mod mirrors;
mod names;
pub(crate) mod entry_status {
    pub use super::entry::InstanceStatus;
}
mod pick;
#[cfg(feature = "pickers")]
mod picker;
#[cfg(feature = "pickers")]
mod publication;
mod reports;
mod service;
#[cfg(feature = "pickers")]
mod slot_trie;
#[cfg(feature = "pickers")]
mod smooth_groups;
mod smooth_index;
mod snapshot;
mod sources;
#[cfg(feature = "pickers")]
mod table_parts;
mod time;

use alloc::collections::BinaryHeap;
use alloc::sync::Arc;
use core::cmp::Reverse;

use names::{NameIndex, NameKey};

use crate::config::{Config, MAX_ID_BYTES};
use crate::error::{Error, Result};
use crate::events::{Event, EventKind, EventLog};
use crate::health::{Health, HealthInputs};
use crate::instance::{check_name, Instance, InstanceSpec};
use crate::metrics::{RegistryMetrics, ServiceMetrics, ServiceMetricsView};
use crate::rng::Rng;
use crate::source::SourceStatus;

pub(crate) use entry::{Entry, Hold};
pub(crate) use id_index::IdSearch;
pub use pick::{DiscoverOptions, Discovery, Pick, PickOptions};
#[cfg(feature = "pickers")]
pub use picker::{
    pick_tables_alive, PickTable, Picked, Picker, PICKER_OUTCOME_BATCH, PICKER_OUTCOME_CAP,
    PICKER_OUTCOME_DELAY_MS,
};
pub(crate) use service::{RoundRobin, Service};
pub use snapshot::SNAPSHOT_FORMAT;

/// A stable handle to a registered instance: its slot and the slot's
/// generation, so a reused slot is never mistaken for its previous occupant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Handle {
    index: u32,
    generation: u32,
}

impl Handle {
    /// The slot number (small, dense: good as an index into a host-side cache).
    pub fn index(self) -> u32 {
        self.index
    }
    /// The slot's generation.
    pub fn generation(self) -> u32 {
        self.generation
    }
    /// Both parts in one integer: `generation << 32 | index`.
    pub fn to_bits(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }
    /// The inverse of [`Handle::to_bits`].
    pub fn from_bits(bits: u64) -> Handle {
        Handle {
            index: bits as u32,
            generation: (bits >> 32) as u32,
        }
    }
}

/// A stable reference to a service by position, for hosts that pick often
/// and would rather not pass the name each time. Valid for the registry's
/// lifetime (a service that loses all instances keeps its reference).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServiceRef(pub(crate) u32);

impl ServiceRef {
    /// The reference as a plain integer.
    pub fn index(self) -> u32 {
        self.0
    }
    /// The reference with this integer (checked on use).
    pub fn from_index(index: u32) -> ServiceRef {
        ServiceRef(index)
    }
}

/// A timer entry: due time, slot, generation.
pub(crate) type Timer = Reverse<(u64, u32, u32)>;

#[derive(Debug, Clone, Default)]
pub(crate) struct Slot {
    pub generation: u32,
    pub entry: Option<Box<Entry>>,
}

/// The service registry: the whole state of one discovery domain.
///
/// Every time-dependent call takes `now` in milliseconds; the registry clock
/// only moves forward (`max(clock, now)`), and advancing it first applies
/// every expiry, eviction and ejection end that has fallen due.
#[derive(Debug, Clone)]
pub struct Registry {
    pub(crate) config: Config,
    pub(crate) clock: u64,
    pub(crate) rng: Rng,
    pub(crate) slots: Vec<Slot>,
    pub(crate) free: Vec<u32>,
    pub(crate) by_id: NameIndex,
    pub(crate) services: Vec<Service>,
    pub(crate) service_by_name: NameIndex,
    pub(crate) leases: BinaryHeap<Timer>,
    pub(crate) ejections: BinaryHeap<Timer>,
    pub(crate) checks: BinaryHeap<Timer>,
    pub(crate) events: EventLog,
    /// Registered instances.
    pub(crate) total: u64,
    /// Instances not draining.
    pub(crate) non_draining: u64,
    /// Instances not draining whose lease is live.
    pub(crate) live_non_draining: u64,
    pub(crate) self_preservation: bool,
    /// Lease processing is paused at a held-back expiry until something
    /// that could lift the live fraction happens.
    pub(crate) lease_blocked: bool,
    pub(crate) membership_epoch: u64,
    pub(crate) metrics: RegistryMetrics,
    /// Pickers made so far (the last picker's number).
    #[cfg(feature = "pickers")]
    pub(crate) pickers: u64,
    /// Picker tables published so far (each one's id).
    #[cfg(feature = "pickers")]
    pub(crate) publications: u64,
    /// Moves whenever a call begins or ends through the registry: picker
    /// tables read the registry's in-flight counts again after it moved.
    #[cfg(feature = "pickers")]
    pub(crate) load_moves: u64,
    /// The service the last by-name lookup found (`u32::MAX`: none yet).
    /// Callers usually pick from the same service over and over; checking
    /// it first skips the hash lookup. Service indexes never change, so
    /// it cannot go stale.
    pub(crate) recent_service: u32,
    /// What [`Registry::entry`] hands out for a slot without an entry: see
    /// there. Never part of the registry's state.
    pub(crate) detached: Box<Entry>,
    /// The source names seen, shared by their instances and events.
    pub(crate) source_names: Vec<Arc<str>>,
    /// Number of the latest reconcile pass (marks the entries it listed).
    pub(crate) sync_pass: u64,
    /// Ids of the source removals held back by self-preservation (any
    /// order: they are released smallest id first).
    pub(crate) held_ids: Vec<Arc<str>>,
    /// Live instances sources removed within the self-preservation window:
    /// they still count in the population it is measured against.
    pub(crate) recent_removals: time::RecentRemovals,
    /// The sources declared with `source_add`, in the order added.
    pub(crate) mirrors: Vec<mirrors::Mirror>,
    /// Mirrors a snapshot held, as written, until a mirror call reads
    /// them into `mirrors` (see `mirrors.rs`).
    pub(crate) written_mirrors: Vec<crate::json::Json>,
    /// Tests only: every change rebuilds the candidate tables from scratch,
    /// as they always did before they were updated in place (the reference
    /// the in-place updates are checked against).
    #[cfg(test)]
    pub(crate) reference: bool,
}

/// An empty registry with the default configuration (which is valid, so
/// this cannot fail).
impl Default for Registry {
    fn default() -> Registry {
        Registry::empty(Config::default())
    }
}

impl Registry {
    /// A new, empty registry.
    ///
    /// # Errors
    /// `invalid_argument` naming the configuration key out of range.
    pub fn new(config: Config) -> Result<Registry> {
        config.validate()?;
        Ok(Registry::empty(config))
    }

    /// An empty registry with a configuration already validated.
    fn empty(config: Config) -> Registry {
        let name_key = NameKey::from_seed(config.seed);
        Registry {
            rng: Rng::from_seed(config.seed),
            events: EventLog::new(config.event_retention),
            config,
            clock: 0,
            slots: Vec::new(),
            free: Vec::new(),
            by_id: NameIndex::with_key(name_key),
            services: Vec::new(),
            service_by_name: NameIndex::with_key(name_key),
            leases: BinaryHeap::new(),
            ejections: BinaryHeap::new(),
            checks: BinaryHeap::new(),
            total: 0,
            non_draining: 0,
            live_non_draining: 0,
            self_preservation: false,
            lease_blocked: false,
            membership_epoch: 0,
            metrics: RegistryMetrics::default(),
            #[cfg(feature = "pickers")]
            pickers: 0,
            #[cfg(feature = "pickers")]
            publications: 0,
            #[cfg(feature = "pickers")]
            load_moves: 0,
            recent_service: u32::MAX,
            detached: Box::new(Entry::detached()),
            source_names: Vec::new(),
            sync_pass: 0,
            held_ids: Vec::new(),
            recent_removals: time::RecentRemovals::default(),
            mirrors: Vec::new(),
            written_mirrors: Vec::new(),
            #[cfg(test)]
            reference: false,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The registry clock: the latest `now` seen, in ms.
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// Index of the latest event (0 before any).
    pub fn last_index(&self) -> u64 {
        self.events.last_index()
    }

    /// Metrics of every service that has instances, in name order.
    pub fn service_metrics(&self) -> Vec<ServiceMetricsView> {
        let mut views: Vec<ServiceMetricsView> = self
            .services
            .iter()
            .filter(|s| !s.members.is_empty() || s.metrics != ServiceMetrics::default())
            .map(|s| ServiceMetricsView {
                service: String::from(&*s.name),
                instances: s.counts,
                panic: s.panic,
                counters: s.metrics.clone(),
            })
            .collect();
        crate::sort::sort_by(&mut views, |a, b| a.service < b.service);
        views
    }

    /// The registry-wide counters.
    pub fn registry_metrics(&self) -> &RegistryMetrics {
        &self.metrics
    }

    /// Number of registered instances.
    pub fn len(&self) -> usize {
        self.total as usize
    }

    /// True when no instance is registered.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Whether lease expiries are being held back (self-preservation).
    pub fn in_self_preservation(&self) -> bool {
        self.self_preservation
    }

    /// A counter that changes whenever an instance is added, removed or has
    /// its fields replaced: host-side caches keyed by handle stay valid
    /// while it does not change.
    pub fn membership_epoch(&self) -> u64 {
        self.membership_epoch
    }

    /// Registers an instance, or replaces the fields of an existing one with
    /// the same id and service (renewing its lease and emitting `updated`).
    ///
    /// # Errors
    /// `invalid_argument` naming the field at fault; `conflict` when the id is
    /// registered under another service.
    pub fn register(&mut self, spec: InstanceSpec, now: u64) -> Result<Handle> {
        spec.validate()?;
        self.advance(now);
        let at = self.clock;
        if let Some(&slot) = self.by_id.get(spec.id.as_str()) {
            self.check_local(slot)?;
            return self.update(slot, spec, at);
        }
        let handle = self.insert(spec, None, SourceStatus::Passing, at);
        self.settle();
        Ok(handle)
    }

    fn update(&mut self, slot: u32, spec: InstanceSpec, at: u64) -> Result<Handle> {
        let (service_idx, id, generation) = {
            let entry = self.entry(slot);
            if *entry.instance.service != *spec.service {
                return Err(Error::Conflict(text!(
                    "instance `",
                    spec.id,
                    "` is registered in service `",
                    entry.instance.service,
                    "`, not `",
                    spec.service,
                    "`"
                )));
            }
            (
                entry.service_idx,
                entry.instance.id.clone(),
                self.slots[slot as usize].generation,
            )
        };
        let service_name = self.services[service_idx as usize].name.clone();
        let index = self.events.push(
            EventKind::Updated,
            at,
            Some(id.clone()),
            Some(service_name.clone()),
            None,
        );
        let instance = Instance::from_spec(spec, id, service_name);
        let ttl = instance.ttl_ms.unwrap_or(self.config.ttl_ms);
        let new_interval = instance.check_interval_ms;
        let entry = self.entry_mut(slot);
        let old_interval = entry.instance.check_interval_ms;
        entry.instance = instance;
        entry.lease.ttl = ttl;
        entry.revision = index;
        entry.modify_index = index;
        if new_interval != old_interval {
            entry.checks.next_at = new_interval.map(|_| at);
            if new_interval.is_some() {
                self.checks.push(Reverse((at, slot, generation)));
            }
        }
        self.services[service_idx as usize].metrics.registrations += 1;
        self.membership_epoch += 1;
        self.service_touch(service_idx, slot, index);
        self.renew(slot, at);
        Ok(Handle {
            index: slot,
            generation,
        })
    }

    /// Removes an instance.
    ///
    /// # Errors
    /// `invalid_argument` for a malformed id; `not_found` when it is not registered.
    pub fn deregister(&mut self, id: &str, now: u64) -> Result<()> {
        check_name("id", id, MAX_ID_BYTES)?;
        self.advance(now);
        let slot = self.slot_of(id)?;
        self.check_local(slot)?;
        let service_idx = self.entry(slot).service_idx;
        self.services[service_idx as usize].metrics.deregistrations += 1;
        self.remove(slot, EventKind::Deregistered, self.clock);
        self.settle();
        Ok(())
    }

    /// Renews an instance's lease; an expired lease recovers.
    ///
    /// # Errors
    /// `invalid_argument` for a malformed id; `not_found` when it is not
    /// registered (the host should register again).
    pub fn heartbeat(&mut self, id: &str, now: u64) -> Result<()> {
        self.advance(now);
        let slot = match self.by_id.get(id) {
            Some(&slot) => slot,
            None => {
                check_name("id", id, MAX_ID_BYTES)?;
                return Err(Error::not_found(id));
            }
        };
        self.heartbeat_slot(slot)
    }

    /// [`Registry::heartbeat`] by handle: no string crosses a binding boundary.
    ///
    /// # Errors
    /// `not_found` when the handle no longer names a registered instance.
    pub fn heartbeat_handle(&mut self, handle: Handle, now: u64) -> Result<()> {
        self.advance(now);
        let slot = self.slot_of_handle(handle)?;
        self.heartbeat_slot(slot)
    }

    /// A source-owned instance has no lease to renew: `conflict`.
    fn heartbeat_slot(&mut self, slot: u32) -> Result<()> {
        self.check_local(slot)?;
        let service_idx = self.entry(slot).service_idx;
        self.services[service_idx as usize].metrics.heartbeats += 1;
        self.renew(slot, self.clock);
        Ok(())
    }

    /// Puts an instance into maintenance (`on`) or takes it out.
    ///
    /// # Errors
    /// `invalid_argument` for a malformed id; `not_found` when it is not registered.
    pub fn drain(&mut self, id: &str, on: bool, now: u64) -> Result<()> {
        check_name("id", id, MAX_ID_BYTES)?;
        self.advance(now);
        let slot = self.slot_of(id)?;
        let at = self.clock;
        let entry = self.entry_mut(slot);
        if entry.inputs.draining == on {
            return Ok(());
        }
        let before = entry.inputs.is_draining();
        entry.inputs.draining = on;
        let after = entry.inputs.is_draining();
        let live = !entry.inputs.lease_expired;
        self.count_draining_change(before, after, live);
        self.lease_blocked = false;
        self.refresh(slot, at);
        self.settle();
        Ok(())
    }

    /// Keeps the draining and live counters right when an instance's
    /// draining state moves from `before` to `after`.
    pub(crate) fn count_draining_change(&mut self, before: bool, after: bool, live: bool) {
        if before == after {
            return;
        }
        if after {
            self.non_draining -= 1;
            if live {
                self.live_non_draining -= 1;
            }
        } else {
            self.non_draining += 1;
            if live {
                self.live_non_draining += 1;
            }
        }
    }

    /// The instance with this id, with its current status.
    ///
    /// # Errors
    /// `invalid_argument` for a malformed id; `not_found` when it is not registered.
    pub fn get(&mut self, id: &str, now: u64) -> Result<InstanceView<'_>> {
        check_name("id", id, MAX_ID_BYTES)?;
        self.advance(now);
        let slot = self.slot_of(id)?;
        Ok(self.view(slot))
    }

    /// The instance behind a handle, if it is still registered.
    pub fn instance(&self, handle: Handle) -> Option<&Instance> {
        let slot = self.slots.get(handle.index as usize)?;
        if slot.generation != handle.generation {
            return None;
        }
        slot.entry.as_ref().map(|e| &e.instance)
    }

    /// The instance and status behind a handle, if it is still registered
    /// (as of the registry clock; this call does not advance it).
    pub fn view_handle(&self, handle: Handle) -> Option<InstanceView<'_>> {
        self.slot_of_handle(handle).ok().map(|slot| self.view(slot))
    }

    /// What a host object built from `handle`'s instance now is built
    /// from (SPEC §5.4, [`InstanceObjects`](crate::InstanceObjects));
    /// `None` when the handle names no instance (removed, or its slot
    /// reused).
    pub fn instance_stamp(&self, handle: Handle) -> Option<crate::InstanceStamp> {
        let view = self.view_handle(handle)?;
        Some(crate::InstanceStamp::new(
            handle,
            view.status.revision,
            self.membership_epoch,
        ))
    }

    /// The handle of a registered id.
    pub fn handle_of(&self, id: &str) -> Option<Handle> {
        let slot = *self.by_id.get(id)?;
        Some(Handle {
            index: slot,
            generation: self.slots[slot as usize].generation,
        })
    }

    /// Names of the services that have at least one instance, in byte order.
    pub fn services(&mut self, now: u64) -> Vec<Arc<str>> {
        self.advance(now);
        let mut names: Vec<Arc<str>> = self
            .services
            .iter()
            .filter(|s| !s.members.is_empty())
            .map(|s| s.name.clone())
            .collect();
        crate::sort::sort_by(&mut names, |a, b| a < b);
        names
    }

    /// A reference to a service by name, valid for the registry's lifetime.
    /// The service need not have instances (yet).
    pub fn service_ref(&mut self, name: &str) -> Result<ServiceRef> {
        check_name("service", name, MAX_ID_BYTES)?;
        Ok(ServiceRef(self.service_index_or_insert(name)))
    }

    /// Index of the last change to a service or any of its instances.
    ///
    /// # Errors
    /// `unknown_service` when it has no instances.
    pub fn service_modify_index(&self, service: &str) -> Result<u64> {
        self.service_stamp(service).map(|s| s.modify_index())
    }

    /// The service with its modify index; `unknown_service` when it has
    /// no instances.
    pub(crate) fn service_stamp(&self, service: &str) -> Result<crate::DiscoverStamp> {
        self.service_by_name
            .get(service)
            .map(|&i| (i, &self.services[i as usize]))
            .filter(|(_, s)| !s.members.is_empty())
            .map(|(i, s)| crate::DiscoverStamp::new(ServiceRef(i), s.modify_index))
            .ok_or_else(|| Error::unknown_service(service))
    }

    /// Retained events with index greater than `after`.
    ///
    /// # Errors
    /// `compacted` when some of those events were already dropped: resync
    /// from a snapshot.
    pub fn events_since(&self, after: u64) -> Result<Vec<Event>> {
        self.events.since(after)
    }

    // ----- internals -------------------------------------------------------

    /// The entry in `slot`. Slots named by `by_id`, by a service's members
    /// and by a live timer always hold one (`check_invariants`, run by the
    /// property and fuzz tests, checks it). Were an internal index ever
    /// corrupt, reads and writes land on a detached placeholder: that one
    /// instance is answered wrongly, but nothing panics, so no process
    /// aborts and no WebAssembly module traps. A debug build (every test
    /// run) stops there instead, so the fallback cannot hide a bug.
    pub(crate) fn entry(&self, slot: u32) -> &Entry {
        match self
            .slots
            .get(slot as usize)
            .and_then(|s| s.entry.as_deref())
        {
            Some(e) => e,
            None => {
                debug_assert!(
                    false,
                    "slot {slot} has no entry: an internal index is corrupt"
                );
                &self.detached
            }
        }
    }

    /// [`Registry::entry`], mutably.
    pub(crate) fn entry_mut(&mut self, slot: u32) -> &mut Entry {
        match self
            .slots
            .get_mut(slot as usize)
            .and_then(|s| s.entry.as_deref_mut())
        {
            Some(e) => e,
            None => {
                debug_assert!(
                    false,
                    "slot {slot} has no entry: an internal index is corrupt"
                );
                &mut self.detached
            }
        }
    }

    pub(crate) fn slot_of(&self, id: &str) -> Result<u32> {
        self.by_id
            .get(id)
            .copied()
            .ok_or_else(|| Error::not_found(id))
    }

    pub(crate) fn slot_of_handle(&self, handle: Handle) -> Result<u32> {
        match self.slots.get(handle.index as usize) {
            Some(s) if s.generation == handle.generation && s.entry.is_some() => Ok(handle.index),
            _ => Err(Error::NotFound {
                id: text!("#", handle.to_bits()),
            }),
        }
    }

    pub(crate) fn view(&self, slot: u32) -> InstanceView<'_> {
        let entry = self.entry(slot);
        InstanceView {
            handle: Handle {
                index: slot,
                generation: self.slots[slot as usize].generation,
            },
            instance: &entry.instance,
            status: entry.status(&self.config, self.clock),
        }
    }

    fn service_index_or_insert(&mut self, name: &str) -> u32 {
        if let Some(i) = self.find_service(name) {
            return i;
        }
        let name: Arc<str> = Arc::from(name);
        let i = self.services.len() as u32;
        self.services.push(Service::new(name.clone()));
        self.service_by_name.insert(name, i);
        i
    }

    /// Renews the lease of `slot` at `at`, recovering an expired one.
    fn renew(&mut self, slot: u32, at: u64) {
        let entry = self.entry_mut(slot);
        entry.lease.last_renewal = at;
        if entry.inputs.lease_expired {
            entry.inputs.lease_expired = false;
            if !entry.inputs.is_draining() {
                self.live_non_draining += 1;
            }
            self.lease_blocked = false;
            self.refresh(slot, at);
        } else if self.lease_blocked {
            // This may be an expiry self-preservation held back: look again.
            self.lease_blocked = false;
        }
        self.schedule_lease(slot);
        self.settle();
    }

    /// Removes `slot` entirely, emitting `kind` (deregistered or evicted).
    pub(crate) fn remove(&mut self, slot: u32, kind: EventKind, at: u64) {
        let Some(entry) = self.slots[slot as usize].entry.take() else {
            debug_assert!(false, "removing slot {slot}, which has no entry");
            return;
        };
        if entry.source.held == Some(entry::Hold::Preservation) {
            self.unlist_held(&entry.instance.id);
        }
        let slot_ref = &mut self.slots[slot as usize];
        slot_ref.generation = slot_ref.generation.wrapping_add(1);
        self.free.push(slot);
        self.by_id.remove(&entry.instance.id);
        self.total -= 1;
        if !entry.inputs.is_draining() {
            self.non_draining -= 1;
            if !entry.inputs.lease_expired {
                self.live_non_draining -= 1;
            }
        }
        self.lease_blocked = false;
        self.membership_epoch += 1;
        let service_idx = entry.service_idx;
        let index = self.events.push(
            kind,
            at,
            Some(entry.instance.id.clone()),
            Some(entry.instance.service.clone()),
            None,
        );
        self.service_remove_member(service_idx, slot, &entry, index);
        self.update_panic(service_idx, at);
    }

    /// Recomputes the public health of `slot`; on a change, emits
    /// `health_changed`, updates the service's counts and panic state.
    pub(crate) fn refresh(&mut self, slot: u32, at: u64) {
        let slow_start = self.config.slow_start_ms > 0;
        let entry = self.entry_mut(slot);
        let old = entry.health;
        let new = entry.inputs.health();
        if old == new {
            return;
        }
        entry.health = new;
        if old == Health::Unhealthy
            && matches!(new, Health::Healthy | Health::Degraded)
            && slow_start
        {
            entry.healthy_since = at;
        }
        entry.load.filtered_wrr = 0;
        let service_idx = entry.service_idx;
        let id = entry.instance.id.clone();
        let service_name = entry.instance.service.clone();
        let index = self.events.push(
            EventKind::HealthChanged,
            at,
            Some(id),
            Some(service_name),
            Some((old, new)),
        );
        self.entry_mut(slot).modify_index = index;
        let service = &mut self.services[service_idx as usize];
        service.counts[old as usize] -= 1;
        service.counts[new as usize] += 1;
        service.modify_index = index;
        self.note_member(service_idx, slot);
        self.update_panic(service_idx, at);
    }
}

/// An instance together with its dynamic status.
#[derive(Debug, Clone, Copy)]
pub struct InstanceView<'a> {
    /// Its handle.
    pub handle: Handle,
    /// Its registered fields.
    pub instance: &'a Instance,
    /// Its health and state at the registry clock.
    pub status: entry::InstanceStatus,
}

impl InstanceView<'_> {
    /// The wire form shared by every binding: the SPEC §2 fields plus
    /// `health`, `modify_index` and the rest of the status.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    /// Appends the wire form of [`InstanceView::to_json`].
    pub fn write_json(&self, out: &mut String) {
        let mut w = crate::json::ObjectWriter::new(out);
        self.instance.write_members(&mut w);
        self.status.write_members(&mut w);
        w.end();
    }
}

#[doc(hidden)]
pub fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Registry>();
    let _ = HealthInputs::default();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InstanceSpec, PickOptions, Strategy};

    /// A release build answers from the placeholder; a debug build stops
    /// at the first read, so tests see the corruption.
    #[test]
    #[cfg_attr(debug_assertions, should_panic(expected = "internal index is corrupt"))]
    fn a_slot_without_its_entry_reads_as_the_detached_placeholder() {
        assert_eq!(placeholder_reads(), Ok(()));
    }

    fn placeholder_reads() -> Result<()> {
        let mut reg = Registry::new(Config::default())?;
        let handle = reg.register(InstanceSpec::new("api-1", "api", "10.0.0.1", 80), 0)?;
        let slot = handle.index();
        assert_eq!(reg.entry(slot).instance.id(), "api-1");

        // An index that names a slot with no entry, or no slot at all.
        reg.slots[slot as usize].entry = None;
        assert_eq!(reg.entry(slot).instance.id(), "");
        assert_eq!(reg.entry(u32::MAX).service_idx, u32::MAX);
        reg.entry_mut(slot).load.inflight = 7;
        assert_eq!(reg.entry(u32::MAX).load.inflight, 7);
        assert!(reg.slots[slot as usize].entry.is_none());

        // The public calls that reach the slot answer instead of panicking:
        // a pick names the instance or finds no candidate (a rebuilt table
        // skips the slot), never anything else.
        let picked = reg.pick("api", Strategy::RoundRobin, &PickOptions::default(), 1);
        assert!(
            matches!(
                picked.as_ref().map(|p| p.handle),
                Ok(h) if h == handle
            ) || matches!(picked, Err(Error::NoEligibleInstance { .. })),
            "{picked:?}"
        );
        assert!(reg.get("api-1", 1).is_ok());
        assert!(!reg.snapshot().is_empty());
        Ok(())
    }
}
