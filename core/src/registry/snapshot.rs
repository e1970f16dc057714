//! Snapshots (SPEC §7): the whole registry as one JSON document, and back.
//!
//! Both directions are written out field by field on the core's own JSON
//! (no derived deserializers): every error names its path
//! (`instances[3].state.health`), and the WebAssembly module stays small.

use crate::prelude::*;
use alloc::collections::BinaryHeap;
use alloc::sync::Arc;
use core::cmp::Reverse;

use crate::balancer::fnv1a64;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::events::{Event, EventKind, EventLog};
use crate::health::{CheckStatus, Health, HealthInputs};
use crate::instance::{Instance, InstanceSpec};
use crate::json::{
    describe, write_array, write_i64, write_str, Fields, Json, ObjectWriter, Problems,
};
use crate::metrics::{RegistryMetrics, ServiceMetrics};
use crate::registry::{Entry, Registry, Service, Slot};
use crate::rng::Rng;

#[path = "snapshot_checks.rs"]
mod checks;
mod sources;

/// The `format` string of every snapshot this version writes and reads.
pub const SNAPSHOT_FORMAT: &str = "waypost.snapshot/1";

struct SnapshotDoc {
    config: Config,
    clock: u64,
    last_index: u64,
    rng: [u64; 4],
    self_preservation: bool,
    lease_blocked: bool,
    membership_epoch: u64,
    metrics: RegistryMetrics,
    services: Vec<ServiceDoc>,
    instances: Vec<InstanceDoc>,
    events: Vec<Event>,
    /// Declared sources, as written.
    mirrors: Vec<Json>,
    /// Source removals still in the self-preservation window.
    recent_removals: Vec<(u64, u64)>,
}

struct ServiceDoc {
    name: String,
    modify_index: u64,
    rr: u64,
    panic: bool,
    /// The unfiltered candidate table with smooth-WRR state: `[id, current]`.
    candidates: Vec<(String, i64)>,
    metrics: ServiceMetrics,
}

struct InstanceDoc {
    instance: InstanceSpec,
    /// The owning source's name (SPEC §10.1); `null` when local.
    source: Json,
    state: StateDoc,
}

struct StateDoc {
    health: Health,
    inputs: HealthInputs,
    last_renewal: u64,
    registered_at: u64,
    healthy_since: u64,
    modify_index: u64,
    revision: u64,
    check_pass_streak: u32,
    check_fail_streak: u32,
    last_check: Option<CheckStatus>,
    next_check_at: Option<u64>,
    failures: u32,
    ejections_in_row: u32,
    ejected_until: u64,
    probation: bool,
    inflight: u64,
    filtered_wrr: i64,
    held: Option<crate::registry::Hold>,
}

#[cold]
#[inline(never)]
fn bad(what: String) -> Error {
    Error::InvalidSnapshot(what)
}

/// The problems noted while reading, as the snapshot's error.
fn verdict(problems: &Problems) -> Result<()> {
    match problems.take_first() {
        Some(message) => Err(bad(message)),
        None => Ok(()),
    }
}

// The snapshot's own named values, read through the core's object reader.
impl Fields<'_> {
    #[inline(never)]
    fn health(&mut self, key: &str) -> Health {
        let name = self.string(key);
        self.named(key, "health", &name, Health::Healthy)
    }

    #[inline(never)]
    fn opt_health(&mut self, key: &str) -> Option<Health> {
        match self.optional(key) {
            None | Some(Json::Null) => None,
            Some(Json::String(name)) => Some(self.named(key, "health", &name, Health::Healthy)),
            Some(other) => {
                self.expected(key, "a string", &other);
                None
            }
        }
    }
}

fn service_metrics(mut f: Fields) -> ServiceMetrics {
    let path = f.at("picks");
    let mut picks = [0u64; 7];
    let items = f.list("picks");
    if items.len() != picks.len() {
        f.problems
            .note(text!(path, ": expected 7 counters, got ", items.len()));
    }
    for (slot, (item_path, v)) in picks.iter_mut().zip(items) {
        match v.as_u64() {
            Some(n) => *slot = n,
            None => f.problems.note(text!(
                item_path,
                ": expected a non-negative integer, got ",
                describe(&v)
            )),
        }
    }
    let m = ServiceMetrics {
        picks,
        pick_failures: f.u64("pick_failures"),
        registrations: f.u64("registrations"),
        deregistrations: f.u64("deregistrations"),
        heartbeats: f.u64("heartbeats"),
        expiries: f.u64("expiries"),
        evictions: f.u64("evictions"),
        ejections: f.u64("ejections"),
    };
    f.done();
    m
}

fn event(mut f: Fields) -> Event {
    let index = f.u64("index");
    let kind_name = f.string("type");
    let kind = f.named("type", "event type", &kind_name, EventKind::Registered);
    let e = Event {
        index,
        kind,
        at: f.u64("at"),
        id: f.opt_str("id").map(Arc::from),
        service: f.opt_str("service").map(Arc::from),
        source: f.opt_str("source").map(Arc::from),
        from: f.opt_health("from"),
        to: f.opt_health("to"),
    };
    f.done();
    e
}

fn state(mut f: Fields) -> StateDoc {
    let health = f.health("health");
    let mut i = f.object("inputs");
    let inputs = HealthInputs {
        draining: i.bool("draining"),
        lease_expired: i.bool("lease_expired"),
        check_failing: i.bool("check_failing"),
        ejected: i.bool("ejected"),
        check_warning: i.bool("check_warning"),
        source: sources::read_status(&mut i),
    };
    i.done();
    let st = StateDoc {
        health,
        inputs,
        last_renewal: f.u64("last_renewal"),
        registered_at: f.u64("registered_at"),
        healthy_since: f.u64("healthy_since"),
        modify_index: f.u64("modify_index"),
        revision: f.u64("revision"),
        check_pass_streak: f.u32("check_pass_streak"),
        check_fail_streak: f.u32("check_fail_streak"),
        last_check: f
            .opt_str("last_check")
            .map(|s| f.named("last_check", "check status", &s, CheckStatus::Pass)),
        next_check_at: f.opt_u64("next_check_at"),
        failures: f.u32("failures"),
        ejections_in_row: f.u32("ejections_in_row"),
        ejected_until: f.u64("ejected_until"),
        probation: f.bool("probation"),
        inflight: f.u64("inflight"),
        filtered_wrr: f.i64("filtered_wrr"),
        held: sources::read_hold(&mut f),
    };
    f.done();
    st
}

fn service(mut f: Fields) -> ServiceDoc {
    let name = f.string("name");
    let modify_index = f.u64("modify_index");
    let rr = f.u64("rr");
    let panic = f.bool("panic");
    let mut candidates = Vec::new();
    for (item_path, item) in f.list("candidates") {
        let pair = match item.as_array() {
            Some([Json::String(id), current]) => current.as_i64().map(|c| (id.clone(), c)),
            _ => None,
        };
        match pair {
            Some(pair) => candidates.push(pair),
            None => f.problems.note(text!(
                item_path,
                ": expected [id, integer], got ",
                describe(&item)
            )),
        }
    }
    let metrics = service_metrics(f.object("metrics"));
    f.done();
    ServiceDoc {
        name,
        modify_index,
        rr,
        panic,
        candidates,
        metrics,
    }
}

fn instance(mut f: Fields) -> Option<InstanceDoc> {
    let mut members = f.members("instance");
    let source = sources::take_source(&mut members);
    // A missing or mistyped `instance` is already noted: skip its parser.
    let spec = if f.problems.first_is_none() {
        InstanceSpec::from_members(members)
            .map_err(|e| f.problems.note(text!(f.at("instance"), ": ", e)))
            .ok()
    } else {
        None
    };
    let state = state(f.object("state"));
    f.done();
    Some(InstanceDoc {
        instance: spec?,
        source,
        state,
    })
}

impl SnapshotDoc {
    fn parse(json: &str) -> Result<SnapshotDoc> {
        let value = Json::parse(json).map_err(|e| bad(text!("not a snapshot document: ", e)))?;
        let problems = Problems::default();
        let mut top = Fields::of(&problems, value, String::new());
        let format = top.string("format");
        if problems.first_is_none() && format != SNAPSHOT_FORMAT {
            problems.note(text!(
                "format: expected `",
                SNAPSHOT_FORMAT,
                "`, got `",
                format,
                "`"
            ));
        }
        let members = top.members("config");
        let config = if problems.first_is_none() {
            Config::from_members(members)
                .map_err(|e| problems.note(text!("config: ", e)))
                .unwrap_or_default()
        } else {
            Config::default()
        };
        let clock = top.u64("clock");
        let last_index = top.u64("last_index");
        let mut rng = [0u64; 4];
        let words = top.list("rng");
        if words.len() != 4 {
            problems.note(text!("rng: expected 4 words, got ", words.len()));
        }
        for (i, (word, (_, w))) in rng.iter_mut().zip(words).enumerate() {
            match w.as_str().and_then(hex_u64) {
                Some(n) => *word = n,
                None => problems.note(text!("rng[", i, "]: not a hex u64")),
            }
        }
        let self_preservation = top.bool("self_preservation");
        let lease_blocked = top.bool("lease_blocked");
        let membership_epoch = top.u64("membership_epoch");
        let mut m = top.object("metrics");
        let metrics = RegistryMetrics {
            unknown_service_picks: m.u64("unknown_service_picks"),
        };
        m.done();
        let services = top.each("services", service);
        let instances = top.each("instances", instance);
        let events = top.each("events", event);
        let mirrors = sources::read_mirrors(&mut top);
        let recent_removals = sources::read_recent_removals(&mut top);
        top.done();
        verdict(&problems)?;
        Ok(SnapshotDoc {
            config,
            clock,
            last_index,
            rng,
            self_preservation,
            lease_blocked,
            membership_epoch,
            metrics,
            services,
            instances: instances.into_iter().flatten().collect(),
            events,
            mirrors,
            recent_removals,
        })
    }
}

/// An RNG word: at most 16 characters of hex digits (either case, an
/// optional leading `+`, as `u64::from_str_radix` reads them); `None` for
/// anything else.
fn hex_u64(w: &str) -> Option<u64> {
    let digits = w.strip_prefix('+').unwrap_or(w);
    if digits.is_empty() || w.len() > 16 {
        return None;
    }
    digits.bytes().try_fold(0u64, |n, c| {
        let d = char::from(c).to_digit(16)?;
        Some(n << 4 | u64::from(d))
    })
}

fn write_hex(out: &mut String, w: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for i in (0..16).rev() {
        out.push(char::from(HEX[((w >> (i * 4)) & 15) as usize]));
    }
    out.push('"');
}

impl Registry {
    /// The whole registry as a JSON document (`"format": "waypost.snapshot/1"`):
    /// configuration, clock, event log, every instance with its lease, check
    /// and outlier state, and the balancer and RNG state.
    pub fn snapshot(&self) -> String {
        let mut out = String::with_capacity(1024 + self.total as usize * 640);
        let mut w = ObjectWriter::new(&mut out);
        w.str("format", SNAPSHOT_FORMAT);
        self.config.write_snapshot_json(w.key("config"));
        w.u64("clock", self.clock);
        w.u64("last_index", self.events.last_index());
        write_array(w.key("rng"), self.rng.state(), write_hex);
        w.bool("self_preservation", self.self_preservation);
        w.bool("lease_blocked", self.lease_blocked);
        w.u64("membership_epoch", self.membership_epoch);
        let mut m = ObjectWriter::new(w.key("metrics"));
        m.u64("unknown_service_picks", self.metrics.unknown_service_picks);
        m.end();
        write_array(w.key("services"), &self.services, |out, s| {
            let mut w = ObjectWriter::new(out);
            w.str("name", &s.name);
            w.u64("modify_index", s.modify_index);
            w.u64("rr", s.rr.count);
            w.bool("panic", s.panic);
            let table = &s.candidates;
            let current = table.wrr_current();
            let live = table
                .slots
                .iter()
                .zip(current.iter())
                .filter_map(|(&slot, &current)| {
                    let entry = self.slots.get(slot as usize)?.entry.as_deref()?;
                    Some((entry, current))
                });
            write_array(w.key("candidates"), live, |out, (e, current)| {
                out.push('[');
                write_str(out, &e.instance.id);
                out.push(',');
                write_i64(out, current);
                out.push(']');
            });
            s.metrics.write_json(w.key("metrics"));
            w.end();
        });
        let members = self.services.iter().flat_map(|s| s.members.iter());
        write_array(w.key("instances"), members, |out, &slot| {
            let e = self.entry(slot);
            let mut w = ObjectWriter::new(out);
            e.instance.write_json(w.key("instance"));
            let mut st = ObjectWriter::new(w.key("state"));
            st.str("health", e.health.as_str());
            let mut i = ObjectWriter::new(st.key("inputs"));
            i.bool("draining", e.inputs.draining);
            i.bool("lease_expired", e.inputs.lease_expired);
            i.bool("check_failing", e.inputs.check_failing);
            i.bool("ejected", e.inputs.ejected);
            i.bool("check_warning", e.inputs.check_warning);
            sources::write_status(&mut i, e);
            i.end();
            st.u64("last_renewal", e.lease.last_renewal);
            st.u64("registered_at", e.lease.registered_at);
            st.u64("healthy_since", e.healthy_since);
            st.u64("modify_index", e.modify_index);
            st.u64("revision", e.revision);
            st.u64("check_pass_streak", e.checks.pass_streak.into());
            st.u64("check_fail_streak", e.checks.fail_streak.into());
            st.opt_str("last_check", e.checks.last.map(CheckStatus::as_str));
            st.opt_u64("next_check_at", e.checks.next_at);
            st.u64("failures", e.outlier.failures.into());
            st.u64("ejections_in_row", e.outlier.ejections_in_row.into());
            st.u64("ejected_until", e.outlier.ejected_until);
            st.bool("probation", e.outlier.probation);
            st.u64("inflight", e.load.inflight);
            st.i64("filtered_wrr", e.load.filtered_wrr);
            sources::write_hold(&mut st, e);
            st.end();
            w.end();
        });
        write_array(w.key("events"), self.events.retained(), |out, e| {
            e.write_json(out)
        });
        sources::write_recent_removals(&mut w, self);
        sources::write_mirrors(&mut w, self);
        w.end();
        out
    }

    /// Builds a registry from a [`Registry::snapshot`] document; it behaves
    /// exactly as the original from then on.
    ///
    /// # Errors
    /// `invalid_snapshot` saying what is wrong and where.
    pub fn restore(json: &str) -> Result<Registry> {
        let doc = SnapshotDoc::parse(json)?;
        doc.config
            .validate()
            .map_err(|e| bad(text!("config: ", e)))?;
        let rng = Rng::from_state(doc.rng).ok_or_else(|| bad("rng: all-zero state".into()))?;
        checks::check_events(&doc)?;
        let mut reg = Registry::new(doc.config.clone()).map_err(|e| bad(e.message()))?;
        reg.rng = rng;
        reg.clock = doc.clock;
        reg.events = EventLog::restore(doc.events, doc.last_index, doc.config.event_retention);
        reg.self_preservation = doc.self_preservation;
        reg.lease_blocked = doc.lease_blocked;
        reg.membership_epoch = doc.membership_epoch;
        reg.metrics = doc.metrics;
        // As in parsing, a problem is noted and its item skipped: one exit.
        let problems = Problems::default();
        for (i, s) in doc.services.iter().enumerate() {
            reg.restore_service(i, s, doc.last_index, &problems);
        }
        for (i, d) in doc.instances.into_iter().enumerate() {
            reg.restore_instance(i, d, doc.last_index, &problems);
        }
        reg.written_mirrors = doc.mirrors;
        reg.recent_removals
            .restore(doc.recent_removals, doc.config.self_preservation_window_ms);
        // Every service is in place (candidate tables below index them).
        verdict(&problems)?;
        reg.rebuild_indexes();
        if let Some(problem) = sources::holds_problem(&reg) {
            problems.note(problem);
        }
        if let Some(problem) = reg.recent_removals.problem(reg.clock) {
            problems.note(problem.into());
        }
        let window = reg.config.self_preservation_window_ms;
        let oldest = reg.recent_removals.batches.first();
        if oldest.is_some_and(|&(at, _)| at.saturating_add(window) < reg.clock) {
            problems.note("recent_removals: a batch out of the window".into());
        }
        for (i, s) in doc.services.iter().enumerate() {
            let mut slots = Vec::with_capacity(s.candidates.len());
            let mut current = Vec::with_capacity(s.candidates.len());
            for (id, c) in &s.candidates {
                match reg.by_id.get(id.as_str()) {
                    Some(&slot) => {
                        slots.push(slot);
                        current.push(*c);
                    }
                    None => {
                        problems.note(text!("services[", i, "].candidates: unknown id `", id, "`"))
                    }
                }
            }
            let table = &mut reg.services[i].candidates;
            table.slots = slots;
            table.current = current;
        }
        verdict(&problems)?;
        reg.check_restored()?;
        Ok(reg)
    }

    #[inline(never)]
    fn restore_service(&mut self, i: usize, s: &ServiceDoc, last_index: u64, problems: &Problems) {
        if let Err(e) = crate::instance::check_name("service", &s.name, crate::MAX_ID_BYTES) {
            return problems.note(text!("services[", i, "].name: ", e));
        }
        if self.service_by_name.contains_key(&s.name) {
            return problems.note(text!(
                "services[",
                i,
                "].name: `",
                s.name,
                "` appears twice"
            ));
        }
        if s.modify_index > last_index {
            return problems.note(text!("services[", i, "].modify_index: beyond last_index"));
        }
        let name: Arc<str> = Arc::from(s.name.as_str());
        let mut service = Service::new(name.clone());
        service.modify_index = s.modify_index;
        service.rr = crate::registry::RoundRobin::at(s.rr);
        service.panic = s.panic;
        service.metrics = s.metrics.clone();
        self.service_by_name
            .insert(name, self.services.len() as u32);
        self.services.push(service);
    }

    /// What is wrong with a document's instance, as `(field, problem)`, or
    /// the index of its service. One verdict, so `restore_instance` has one
    /// early exit (and one drop of the document) instead of one per check.
    fn instance_problem(
        &self,
        d: &InstanceDoc,
        last_index: u64,
    ) -> Result<u32, (&'static str, String)> {
        if let Err(e) = d.instance.validate() {
            return Err(("instance", e.message()));
        }
        sources::owner(d)?;
        let st = &d.state;
        if st.health != st.inputs.health() {
            return Err(("state.health", "does not follow from state.inputs".into()));
        }
        if st.modify_index > last_index || st.revision > last_index {
            return Err(("state.modify_index", "beyond last_index".into()));
        }
        let Some(&service_idx) = self.service_by_name.get(d.instance.service.as_str()) else {
            return Err(("instance.service", "not listed in services".into()));
        };
        if self.by_id.contains_key(d.instance.id.as_str()) {
            return Err(("instance.id", text!("`", d.instance.id, "` appears twice")));
        }
        Ok(service_idx)
    }

    #[inline(never)]
    fn restore_instance(&mut self, i: usize, d: InstanceDoc, last_index: u64, problems: &Problems) {
        let service_idx = match self.instance_problem(&d, last_index) {
            Ok(service_idx) => service_idx,
            Err((field, problem)) => {
                return problems.note(text!("instances[", i, "].", field, ": ", problem));
            }
        };
        let source = match sources::owner(&d) {
            Ok(Some(name)) => Some(self.intern_source(name)),
            _ => None,
        };
        let st = d.state;
        let id: Arc<str> = Arc::from(d.instance.id.as_str());
        let service_name = self.services[service_idx as usize].name.clone();
        let mut instance = Instance::from_spec(d.instance, id.clone(), service_name);
        instance.source = source;
        let ttl = instance.ttl_ms.unwrap_or(self.config.ttl_ms);
        let mut entry = Entry::new(
            instance,
            service_idx,
            fnv1a64(id.as_bytes()),
            ttl,
            st.registered_at,
            st.revision,
        );
        entry.health = st.health;
        entry.inputs = st.inputs;
        entry.lease.last_renewal = st.last_renewal;
        entry.healthy_since = st.healthy_since;
        entry.modify_index = st.modify_index;
        entry.checks.pass_streak = st.check_pass_streak;
        entry.checks.fail_streak = st.check_fail_streak;
        entry.checks.last = st.last_check;
        entry.checks.next_at = if entry.instance.check_interval_ms.is_some() {
            st.next_check_at
        } else {
            None
        };
        entry.outlier.failures = st.failures;
        entry.outlier.ejections_in_row = st.ejections_in_row;
        entry.outlier.ejected_until = st.ejected_until;
        entry.outlier.probation = st.probation;
        entry.load.inflight = st.inflight;
        entry.load.filtered_wrr = st.filtered_wrr;
        entry.source.held = st.held;
        let slot = self.slots.len() as u32;
        self.slots.push(Slot {
            generation: 0,
            entry: Some(Box::new(entry)),
        });
        self.by_id.insert(id, slot);
    }

    /// Recomputes every derived index from the instances: service members and
    /// counts, registry counters and the timer heaps.
    fn rebuild_indexes(&mut self) {
        let evict_after = self.config.evict_after_ms;
        let mut members: Vec<Vec<u32>> = vec![Vec::new(); self.services.len()];
        let (mut total, mut non_draining, mut live) = (0, 0, 0);
        let mut leases = Vec::new();
        let mut ejections = Vec::new();
        let mut checks = Vec::new();
        for (slot, s) in self.slots.iter_mut().enumerate() {
            let Some(e) = s.entry.as_deref_mut() else {
                continue;
            };
            let slot = slot as u32;
            members[e.service_idx as usize].push(slot);
            total += 1;
            if !e.inputs.is_draining() {
                non_draining += 1;
                if !e.inputs.lease_expired {
                    live += 1;
                }
            }
            if let Some(due) = e.lease_due(evict_after) {
                e.lease.timer = due;
                leases.push(Reverse((due, slot, s.generation)));
            }
            if e.inputs.ejected {
                ejections.push(Reverse((e.outlier.ejected_until, slot, s.generation)));
            }
            if let Some(due) = e.checks.next_at {
                checks.push(Reverse((due, slot, s.generation)));
            }
        }
        self.total = total;
        self.non_draining = non_draining;
        self.live_non_draining = live;
        self.relist_held();
        self.leases = BinaryHeap::from(leases);
        self.ejections = BinaryHeap::from(ejections);
        self.checks = BinaryHeap::from(checks);
        for (idx, mut slots) in members.into_iter().enumerate() {
            if slots.is_empty() {
                continue;
            }
            crate::sort::sort_by(&mut slots, |&a, &b| {
                self.entry(a).instance.id < self.entry(b).instance.id
            });
            let mut counts = [0u32; 5];
            let mut ejected = 0;
            for &s in &slots {
                let e = self.entry(s);
                counts[e.health as usize] += 1;
                ejected += u32::from(e.inputs.ejected);
            }
            let member_ids: Vec<Arc<str>> = slots
                .iter()
                .map(|&s| self.entry(s).instance.id.clone())
                .collect();
            let service = &mut self.services[idx];
            service.member_ids = crate::registry::IdSearch::from_sorted(member_ids);
            service.members = slots;
            service.counts = counts;
            service.ejected = ejected;
            service.mark_dirty();
        }
    }
}
