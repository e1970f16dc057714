//! Snapshots (SPEC §7): the whole registry as one JSON document, and back.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::balancer::fnv1a64;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::events::{Event, EventLog};
use crate::health::{CheckStatus, Health, HealthInputs};
use crate::instance::{describe, Instance, InstanceSpec};
use crate::metrics::{RegistryMetrics, ServiceMetrics};
use crate::registry::{Entry, Registry, Service, Slot};
use crate::rng::Rng;

/// The `format` string of every snapshot this version writes and reads.
pub const SNAPSHOT_FORMAT: &str = "waypost.snapshot/1";

#[derive(Serialize)]
struct SnapshotDoc {
    format: String,
    config: Config,
    clock: u64,
    last_index: u64,
    /// xoshiro256++ state words as 16-digit hex (JSON numbers lose u64 precision in JavaScript).
    rng: [String; 4],
    self_preservation: bool,
    lease_blocked: bool,
    membership_epoch: u64,
    metrics: RegistryMetrics,
    services: Vec<ServiceDoc>,
    instances: Vec<InstanceDoc>,
    events: Vec<Event>,
}

#[derive(Serialize)]
struct ServiceDoc {
    name: String,
    modify_index: u64,
    rr: u64,
    panic: bool,
    /// The unfiltered candidate table with smooth-WRR state: `[id, current]`.
    candidates: Vec<(String, i64)>,
    metrics: ServiceMetrics,
}

#[derive(Serialize)]
struct InstanceDoc {
    instance: InstanceSpec,
    state: StateDoc,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
}

fn bad(what: impl Into<String>) -> Error {
    Error::InvalidSnapshot(what.into())
}

/// A JSON object being taken apart field by field, so every error names
/// its path (`instances[3].state.health`) without a path-tracking
/// deserializer (which would double the code in the WebAssembly module).
struct Fields {
    map: Map<String, Value>,
    path: String,
}

impl Fields {
    fn of(value: Value, path: &str) -> Result<Fields> {
        match value {
            Value::Object(map) => Ok(Fields {
                map,
                path: path.to_owned(),
            }),
            other => Err(bad(format!(
                "{}: expected an object, got {}",
                Self::name(path),
                describe(&other)
            ))),
        }
    }

    fn name(path: &str) -> &str {
        if path.is_empty() {
            "document"
        } else {
            path
        }
    }

    fn at(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn raw(&mut self, key: &str) -> Result<Value> {
        self.map
            .remove(key)
            .ok_or_else(|| bad(format!("{}: missing field `{key}`", self.at(key))))
    }

    fn take<T: DeserializeOwned>(&mut self, key: &str) -> Result<T> {
        let value = self.raw(key)?;
        serde_json::from_value(value).map_err(|e| bad(format!("{}: {e}", self.at(key))))
    }

    fn list(&mut self, key: &str) -> Result<Vec<(String, Value)>> {
        let path = self.at(key);
        match self.raw(key)? {
            Value::Array(items) => Ok(items
                .into_iter()
                .enumerate()
                .map(|(i, v)| (format!("{path}[{i}]"), v))
                .collect()),
            other => Err(bad(format!(
                "{path}: expected an array, got {}",
                describe(&other)
            ))),
        }
    }

    fn done(self) -> Result<()> {
        match self.map.keys().next() {
            Some(key) => Err(bad(format!(
                "{}: unknown field `{key}`",
                Self::name(&self.path)
            ))),
            None => Ok(()),
        }
    }
}

impl SnapshotDoc {
    fn parse(json: &str) -> Result<SnapshotDoc> {
        let value: Value =
            serde_json::from_str(json).map_err(|e| bad(format!("not a snapshot document: {e}")))?;
        let mut top = Fields::of(value, "")?;
        let format: String = top.take("format")?;
        if format != SNAPSHOT_FORMAT {
            return Err(bad(format!(
                "format: expected `{SNAPSHOT_FORMAT}`, got `{format}`"
            )));
        }
        let config = match top.raw("config")? {
            Value::Object(map) => {
                Config::from_map(&map).map_err(|e| bad(format!("config: {e}")))?
            }
            other => {
                return Err(bad(format!(
                    "config: expected an object, got {}",
                    describe(&other)
                )))
            }
        };
        let mut doc = SnapshotDoc {
            format,
            config,
            clock: top.take("clock")?,
            last_index: top.take("last_index")?,
            rng: top.take("rng")?,
            self_preservation: top.take("self_preservation")?,
            lease_blocked: top.take("lease_blocked")?,
            membership_epoch: top.take("membership_epoch")?,
            metrics: top.take("metrics")?,
            services: Vec::new(),
            instances: Vec::new(),
            events: Vec::new(),
        };
        for (path, value) in top.list("services")? {
            let mut f = Fields::of(value, &path)?;
            doc.services.push(ServiceDoc {
                name: f.take("name")?,
                modify_index: f.take("modify_index")?,
                rr: f.take("rr")?,
                panic: f.take("panic")?,
                candidates: f.take("candidates")?,
                metrics: f.take("metrics")?,
            });
            f.done()?;
        }
        for (path, value) in top.list("instances")? {
            let mut f = Fields::of(value, &path)?;
            let instance = match f.raw("instance")? {
                Value::Object(map) => InstanceSpec::from_map(&map)
                    .map_err(|e| bad(format!("{}: {e}", f.at("instance"))))?,
                other => {
                    return Err(bad(format!(
                        "{}: expected an object, got {}",
                        f.at("instance"),
                        describe(&other)
                    )))
                }
            };
            let state = f.take("state")?;
            f.done()?;
            doc.instances.push(InstanceDoc { instance, state });
        }
        for (path, value) in top.list("events")? {
            let event = serde_json::from_value(value).map_err(|e| bad(format!("{path}: {e}")))?;
            doc.events.push(event);
        }
        top.done()?;
        Ok(doc)
    }
}

impl Registry {
    /// The whole registry as a JSON document (`"format": "waypost.snapshot/1"`):
    /// configuration, clock, event log, every instance with its lease, check
    /// and outlier state, and the balancer and RNG state.
    pub fn snapshot(&self) -> String {
        let doc = SnapshotDoc {
            format: SNAPSHOT_FORMAT.to_owned(),
            config: self.config.clone(),
            clock: self.clock,
            last_index: self.events.last_index(),
            rng: self.rng.state().map(|w| format!("{w:016x}")),
            self_preservation: self.self_preservation,
            lease_blocked: self.lease_blocked,
            membership_epoch: self.membership_epoch,
            metrics: self.metrics.clone(),
            services: self
                .services
                .iter()
                .map(|s| ServiceDoc {
                    name: s.name.to_string(),
                    modify_index: s.modify_index,
                    rr: s.rr.count,
                    panic: s.panic,
                    candidates: s
                        .candidates
                        .slots
                        .iter()
                        .zip(&s.candidates.generations)
                        .zip(&s.candidates.current)
                        .filter_map(|((&slot, &generation), &current)| {
                            let e = self.live_entry(slot, generation)?;
                            Some((e.instance.id.to_string(), current))
                        })
                        .collect(),
                    metrics: s.metrics.clone(),
                })
                .collect(),
            instances: self
                .services
                .iter()
                .flat_map(|s| s.members.iter())
                .map(|&slot| {
                    let e = self.entry(slot);
                    InstanceDoc {
                        instance: e.instance.to_spec(),
                        state: StateDoc {
                            health: e.health,
                            inputs: e.inputs,
                            last_renewal: e.last_renewal,
                            registered_at: e.registered_at,
                            healthy_since: e.healthy_since,
                            modify_index: e.modify_index,
                            revision: e.revision,
                            check_pass_streak: e.check_pass_streak,
                            check_fail_streak: e.check_fail_streak,
                            last_check: e.last_check,
                            next_check_at: e.next_check_at,
                            failures: e.failures,
                            ejections_in_row: e.ejections_in_row,
                            ejected_until: e.ejected_until,
                            probation: e.probation,
                            inflight: e.inflight,
                            filtered_wrr: e.filtered_wrr,
                        },
                    }
                })
                .collect(),
            events: self.events.retained().cloned().collect(),
        };
        serde_json::to_string(&doc).unwrap_or_default()
    }

    /// Builds a registry from a [`Registry::snapshot`] document; it behaves
    /// exactly as the original from then on.
    ///
    /// # Errors
    /// `invalid_snapshot` saying what is wrong and where.
    pub fn restore(json: &str) -> Result<Registry> {
        let doc = SnapshotDoc::parse(json)?;
        if doc.format != SNAPSHOT_FORMAT {
            return Err(bad(format!(
                "format: expected `{SNAPSHOT_FORMAT}`, got `{}`",
                doc.format
            )));
        }
        doc.config
            .validate()
            .map_err(|e| bad(format!("config: {e}")))?;
        let mut words = [0u64; 4];
        for (i, w) in doc.rng.iter().enumerate() {
            words[i] = u64::from_str_radix(w, 16)
                .map_err(|_| bad(format!("rng[{i}]: `{w}` is not a hex u64")))?;
        }
        let rng = Rng::from_state(words).ok_or_else(|| bad("rng: all-zero state"))?;
        if doc.events.len() > doc.config.event_retention as usize {
            return Err(bad("events: more than event_retention"));
        }
        let mut previous = 0;
        for (i, e) in doc.events.iter().enumerate() {
            if e.index <= previous || e.index > doc.last_index {
                return Err(bad(format!("events[{i}].index: {} out of order", e.index)));
            }
            previous = e.index;
        }
        let mut reg = Registry::new(doc.config.clone()).map_err(|e| bad(e.to_string()))?;
        reg.rng = rng;
        reg.clock = doc.clock;
        reg.events = EventLog::restore(doc.events, doc.last_index, doc.config.event_retention);
        reg.self_preservation = doc.self_preservation;
        reg.lease_blocked = doc.lease_blocked;
        reg.membership_epoch = doc.membership_epoch;
        reg.metrics = doc.metrics;
        let mut names = HashSet::new();
        for (i, s) in doc.services.iter().enumerate() {
            crate::instance::check_name("service", &s.name, 256)
                .map_err(|e| bad(format!("services[{i}].name: {e}")))?;
            if !names.insert(s.name.clone()) {
                return Err(bad(format!(
                    "services[{i}].name: `{}` appears twice",
                    s.name
                )));
            }
            if s.modify_index > doc.last_index {
                return Err(bad(format!(
                    "services[{i}].modify_index: beyond last_index"
                )));
            }
            let name: Arc<str> = Arc::from(s.name.as_str());
            let mut service = Service::new(name.clone());
            service.modify_index = s.modify_index;
            service.rr = crate::registry::RoundRobin::at(s.rr);
            service.panic = s.panic;
            service.metrics = s.metrics.clone();
            reg.service_by_name.insert(name, i as u32);
            reg.services.push(service);
        }
        for (i, d) in doc.instances.into_iter().enumerate() {
            let at = |field: &str, e: &dyn std::fmt::Display| {
                bad(format!("instances[{i}].{field}: {e}"))
            };
            d.instance.validate().map_err(|e| at("instance", &e))?;
            let st = d.state;
            if st.health != st.inputs.health() {
                return Err(at("state.health", &"does not follow from state.inputs"));
            }
            if st.modify_index > doc.last_index || st.revision > doc.last_index {
                return Err(at("state.modify_index", &"beyond last_index"));
            }
            let Some(&service_idx) = reg.service_by_name.get(d.instance.service.as_str()) else {
                return Err(at("instance.service", &"not listed in services"));
            };
            if reg.by_id.contains_key(d.instance.id.as_str()) {
                return Err(at(
                    "instance.id",
                    &format!("`{}` appears twice", d.instance.id),
                ));
            }
            let id: Arc<str> = Arc::from(d.instance.id.as_str());
            let service_name = reg.services[service_idx as usize].name.clone();
            let instance = Instance::from_spec(d.instance, id.clone(), service_name);
            let ttl = instance.ttl_ms.unwrap_or(doc.config.ttl_ms);
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
            entry.last_renewal = st.last_renewal;
            entry.healthy_since = st.healthy_since;
            entry.modify_index = st.modify_index;
            entry.check_pass_streak = st.check_pass_streak;
            entry.check_fail_streak = st.check_fail_streak;
            entry.last_check = st.last_check;
            entry.next_check_at = if entry.instance.check_interval_ms.is_some() {
                st.next_check_at
            } else {
                None
            };
            entry.failures = st.failures;
            entry.ejections_in_row = st.ejections_in_row;
            entry.ejected_until = st.ejected_until;
            entry.probation = st.probation;
            entry.inflight = st.inflight;
            entry.filtered_wrr = st.filtered_wrr;
            let slot = reg.slots.len() as u32;
            reg.slots.push(Slot {
                generation: 0,
                entry: Some(Box::new(entry)),
            });
            reg.by_id.insert(id, slot);
        }
        reg.rebuild_indexes();
        for (i, s) in doc.services.iter().enumerate() {
            let mut slots = Vec::with_capacity(s.candidates.len());
            let mut current = Vec::with_capacity(s.candidates.len());
            for (id, c) in &s.candidates {
                let Some(&slot) = reg.by_id.get(id.as_str()) else {
                    return Err(bad(format!("services[{i}].candidates: unknown id `{id}`")));
                };
                slots.push(slot);
                current.push(*c);
            }
            let table = &mut reg.services[i].candidates;
            table.generations = vec![0; slots.len()];
            table.slots = slots;
            table.current = current;
        }
        Ok(reg)
    }

    /// Recomputes every derived index from the instances: service members and
    /// counts, registry counters and the timer heaps.
    fn rebuild_indexes(&mut self) {
        let evict_after = self.config.evict_after_ms;
        let mut members: FxHashMap<u32, Vec<u32>> = FxHashMap::default();
        let (mut total, mut non_draining, mut live) = (0, 0, 0);
        let mut leases = Vec::new();
        let mut ejections = Vec::new();
        let mut checks = Vec::new();
        for (slot, s) in self.slots.iter_mut().enumerate() {
            let Some(e) = s.entry.as_deref_mut() else {
                continue;
            };
            let slot = slot as u32;
            members.entry(e.service_idx).or_default().push(slot);
            total += 1;
            if !e.inputs.draining {
                non_draining += 1;
                if !e.inputs.lease_expired {
                    live += 1;
                }
            }
            if let Some(due) = e.lease_due(evict_after) {
                e.lease_timer = due;
                leases.push(Reverse((due, slot, s.generation)));
            }
            if e.inputs.ejected {
                ejections.push(Reverse((e.ejected_until, slot, s.generation)));
            }
            if let Some(due) = e.next_check_at {
                checks.push(Reverse((due, slot, s.generation)));
            }
        }
        self.total = total;
        self.non_draining = non_draining;
        self.live_non_draining = live;
        self.leases = BinaryHeap::from(leases);
        self.ejections = BinaryHeap::from(ejections);
        self.checks = BinaryHeap::from(checks);
        for (idx, mut slots) in members {
            slots.sort_unstable_by(|&a, &b| {
                self.entry(a).instance.id.cmp(&self.entry(b).instance.id)
            });
            let mut counts = [0u32; 5];
            let mut ejected = 0;
            for &s in &slots {
                let e = self.entry(s);
                counts[e.health as usize] += 1;
                ejected += u32::from(e.inputs.ejected);
            }
            let member_ids = slots
                .iter()
                .map(|&s| self.entry(s).instance.id.clone())
                .collect();
            let service = &mut self.services[idx as usize];
            service.member_ids = member_ids;
            service.members = slots;
            service.counts = counts;
            service.ejected = ejected;
            service.dirty = true;
        }
    }
}
