//! Discovery and picking (SPEC §5) over cached candidate tables.

use crate::prelude::*;
use alloc::borrow::Cow;

use super::candidates::rendezvous_among;
use super::candidates::Rule;
use super::names::same_bytes;
use super::{Handle, InstanceView, Registry, ServiceRef};
use crate::balancer::{key_bucket, smooth_wrr, two_choices, weighted_draw, Strategy};
use crate::config::{MAX_ID_BYTES, MAX_KEY_BYTES, MAX_META_KEY_BYTES, MAX_ZONE_BYTES};
use crate::error::{Error, Result};
use crate::health::Health;
use crate::instance::{check_name, Filter};

/// Options of `discover`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscoverOptions {
    /// List every instance with its health, not only the healthy ones.
    pub all: bool,
    /// Tags and metadata every listed instance must carry.
    pub filter: Filter,
}

/// Options of `pick`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PickOptions {
    /// Key for `consistent_hash` (required there, ignored elsewhere).
    /// `Some("")` means none (SPEC §5), as in every binding.
    pub key: Option<String>,
    /// The caller's zone: candidates in it are preferred when there are any.
    /// `Some("")` means none.
    pub zone: Option<String>,
    /// Tags and metadata every candidate must carry.
    pub filter: Filter,
}

impl PickOptions {
    /// The key, `None` when absent or empty: languages whose strings have
    /// no "absent" (Go, C++) spell none as `""`, so every binding does.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref().filter(|k| !k.is_empty())
    }

    /// The zone, `None` when absent or empty (as [`PickOptions::key`]).
    pub fn zone(&self) -> Option<&str> {
        self.zone.as_deref().filter(|z| !z.is_empty())
    }
}

/// The result of a pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    /// The chosen instance.
    pub handle: Handle,
    /// The service was in panic: the pick ignored health.
    pub panic: bool,
}

/// The answer of `discover`: instances in id order, borrowed from the
/// registry's cache when unfiltered.
#[derive(Debug, Clone)]
pub struct Discovery<'a> {
    registry: &'a Registry,
    slots: Cow<'a, [u32]>,
    /// The service is in panic (health is reported as is).
    pub panic: bool,
}

impl<'a> Discovery<'a> {
    /// Number of instances listed.
    pub fn len(&self) -> usize {
        self.slots.len()
    }
    /// True when no instance is listed.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
    /// The listed instances with their status.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = InstanceView<'a>> + '_ {
        let registry = self.registry;
        self.slots.iter().map(move |&s| registry.view(s))
    }
    /// The wire form every binding shares:
    /// `{"instances":[instance with status, …],"panic":bool}`.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        let mut w = crate::json::ObjectWriter::new(&mut out);
        crate::json::write_array(w.key("instances"), self.iter(), |out, v| v.write_json(out));
        w.bool("panic", self.panic);
        w.end();
        out
    }
    /// Handles and health of the listed instances, without the rest of
    /// their status (cheaper than [`Discovery::iter`] when that is all a
    /// host copies out).
    pub fn health(&self) -> impl ExactSizeIterator<Item = (Handle, Health)> + '_ {
        let registry = self.registry;
        self.slots.iter().map(move |&s| {
            let slot = registry.slots.get(s as usize);
            let handle = Handle {
                index: s,
                generation: slot.map_or(0, |x| x.generation),
            };
            let health = slot
                .and_then(|x| x.entry.as_deref())
                .map_or(Health::Unhealthy, |e| e.health);
            (handle, health)
        })
    }
    /// Handles of the listed instances.
    pub fn handles(&self) -> impl ExactSizeIterator<Item = Handle> + '_ {
        let registry = self.registry;
        self.slots.iter().map(move |&s| Handle {
            index: s,
            generation: registry.slots[s as usize].generation,
        })
    }
}

/// A subset of the service chosen for one filtered or zoned pick.
pub(super) enum Subset {
    /// Positions in the cached candidate table (zone preference only).
    Positions(Vec<usize>),
    /// Slots computed from the members (a tag or metadata filter).
    Slots(Vec<u32>),
}

fn validate_filter(filter: &Filter) -> Result<()> {
    for tag in &filter.tags {
        check_name("tags", tag, MAX_ID_BYTES)?;
    }
    crate::Meta::check_count(filter.meta.len())?;
    for (k, _) in &filter.meta {
        check_name("meta key", k, MAX_META_KEY_BYTES)?;
    }
    Ok(())
}

impl Registry {
    fn service_index(&self, name: &str) -> Result<u32> {
        match self.service_by_name.get(name) {
            Some(&i) if !self.services[i as usize].members.is_empty() => Ok(i),
            _ => Err(Error::unknown_service(name)),
        }
    }

    /// Advances to `now` and gives what an unfiltered discover answer of
    /// `service` is kept under (SPEC §5.4,
    /// [`DiscoverAnswers`](crate::DiscoverAnswers)): two answers with the
    /// same `all` taken at the same stamp are equal, instance fields,
    /// health and panic flag included. The stamp is the service with its
    /// modify index.
    ///
    /// # Errors
    /// `invalid_argument` for a malformed name; `unknown_service` when the
    /// service has no instance.
    pub fn discover_stamp(&mut self, service: &str, now: u64) -> Result<crate::DiscoverStamp> {
        check_name("service", service, MAX_ID_BYTES)?;
        self.advance(now);
        self.service_stamp(service)
    }

    /// Lists a service's instances in id order: the healthy ones, or with
    /// `all` every one with its health; both filtered by tags and metadata.
    ///
    /// # Errors
    /// `invalid_argument` for a malformed name or filter; `unknown_service`
    /// when the service has no instances.
    pub fn discover(
        &mut self,
        service: &str,
        options: &DiscoverOptions,
        now: u64,
    ) -> Result<Discovery<'_>> {
        check_name("service", service, MAX_ID_BYTES)?;
        validate_filter(&options.filter)?;
        self.advance(now);
        let idx = self.service_index(service)?;
        self.ensure_candidates(idx);
        #[cfg(feature = "pickers")]
        if !options.all && !self.services[idx as usize].healthy_kept {
            self.keep_healthy(idx);
        }
        let this: &Registry = self;
        let svc = &this.services[idx as usize];
        let source: &[u32] = if options.all {
            &svc.members
        } else {
            &svc.healthy
        };
        let slots = if options.filter.is_empty() {
            Cow::Borrowed(source)
        } else {
            Cow::Owned(
                source
                    .iter()
                    .copied()
                    .filter(|&s| this.entry(s).instance.matches(&options.filter))
                    .collect(),
            )
        };
        Ok(Discovery {
            registry: this,
            slots,
            panic: svc.panic,
        })
    }

    /// Picks one instance of `service` with `strategy`.
    ///
    /// # Errors
    /// `invalid_argument` for a malformed name or option, or
    /// `consistent_hash` without a key; `unknown_service` when the service has
    /// no instances; `no_eligible_instance` when none is a candidate.
    pub fn pick(
        &mut self,
        service: &str,
        strategy: Strategy,
        options: &PickOptions,
        now: u64,
    ) -> Result<Pick> {
        // A name found in the map was validated when it was registered, so
        // only a miss pays for validation (the hot path stays short).
        let known = self.find_service(service);
        if known.is_none() {
            check_name("service", service, MAX_ID_BYTES)?;
        }
        Self::validate_pick(strategy, options)?;
        self.advance(now);
        match known {
            Some(idx) if !self.services[idx as usize].members.is_empty() => {
                self.pick_at(idx, strategy, options)
            }
            _ => {
                self.metrics.unknown_service_picks += 1;
                Err(Error::unknown_service(service))
            }
        }
    }

    /// [`Registry::pick`] by service reference: the fast path for bindings.
    ///
    /// # Errors
    /// As [`Registry::pick`].
    #[inline(always)]
    pub fn pick_ref(
        &mut self,
        service: ServiceRef,
        strategy: Strategy,
        options: &PickOptions,
        now: u64,
    ) -> Result<Pick> {
        Self::validate_pick(strategy, options)?;
        self.advance(now);
        match self.services.get(service.0 as usize) {
            Some(s) if !s.members.is_empty() => {}
            Some(s) => {
                let err = Error::unknown_service(&s.name);
                self.metrics.unknown_service_picks += 1;
                return Err(err);
            }
            None => {
                return Err(Error::invalid(
                    "service",
                    text!("no service reference ", service.0),
                ))
            }
        }
        self.pick_at(service.0, strategy, options)
    }

    /// The index of the service named `name`, looking at the one found
    /// last time before the name index.
    #[inline]
    pub(super) fn find_service(&mut self, name: &str) -> Option<u32> {
        let recent = self.recent_service;
        if let Some(s) = self.services.get(recent as usize) {
            if same_bytes(s.name.as_bytes(), name.as_bytes()) {
                return Some(recent);
            }
        }
        let found = self.service_by_name.get(name).copied();
        if let Some(i) = found {
            self.recent_service = i;
        }
        found
    }

    #[inline(always)]
    pub(super) fn validate_pick(strategy: Strategy, options: &PickOptions) -> Result<()> {
        // The common pick has no options: nothing to check.
        // A pre-filter on the raw fields: `Some("")` takes the slow path,
        // which reads them through `key()` and `zone()`.
        if options.key.is_none()
            && options.zone.is_none()
            && options.filter.is_empty()
            && strategy != Strategy::ConsistentHash
        {
            return Ok(());
        }
        Self::validate_pick_options(strategy, options)
    }

    #[inline(never)]
    fn validate_pick_options(strategy: Strategy, options: &PickOptions) -> Result<()> {
        if strategy == Strategy::ConsistentHash && options.key().is_none() {
            return Err(Error::invalid("key", "consistent_hash needs a key"));
        }
        if let Some(key) = options.key() {
            if key.len() > MAX_KEY_BYTES {
                return Err(crate::instance::too_long("key", MAX_KEY_BYTES));
            }
        }
        if let Some(zone) = options.zone() {
            if zone.len() > MAX_ZONE_BYTES {
                return Err(crate::instance::too_long("zone", MAX_ZONE_BYTES));
            }
        }
        validate_filter(&options.filter)
    }

    /// The hot path: inlined into its callers (the core is built for size
    /// in the WebAssembly module, where a call per step would show), with
    /// everything but a plain round robin out of line.
    #[inline(always)]
    fn pick_at(&mut self, idx: u32, strategy: Strategy, options: &PickOptions) -> Result<Pick> {
        self.ensure_candidates(idx);
        let result = if options.filter.is_empty() && options.zone().is_none() {
            let svc = &mut self.services[idx as usize];
            let len = svc.candidates.slots.len();
            if strategy == Strategy::RoundRobin && len > 0 {
                let pos = svc.rr.next(len);
                svc.candidates.slots.get(pos).copied()
            } else {
                self.pick_table(idx, strategy, options.key())
            }
        } else {
            self.pick_filtered(idx, strategy, options)
        };
        match result {
            Some(slot) => {
                let service = &mut self.services[idx as usize];
                service.metrics.picks[strategy as usize] += 1;
                Ok(Pick {
                    handle: Handle {
                        index: slot,
                        generation: self.slots[slot as usize].generation,
                    },
                    panic: service.panic,
                })
            }
            None => Err(self.pick_failed(idx)),
        }
    }

    #[inline(never)]
    fn pick_filtered(
        &mut self,
        idx: u32,
        strategy: Strategy,
        options: &PickOptions,
    ) -> Option<u32> {
        let subset = self.subset(idx, options);
        self.pick_subset(idx, strategy, options.key(), subset)
    }

    #[cold]
    #[inline(never)]
    fn pick_failed(&mut self, idx: u32) -> Error {
        let service = &mut self.services[idx as usize];
        service.metrics.pick_failures += 1;
        Error::NoEligibleInstance {
            service: String::from(&*service.name),
            detail: String::new(),
        }
    }

    /// Starts keeping service `idx`'s healthy list (its first discover of
    /// healthy members): built once from the members, then kept up to
    /// date with every change.
    #[cfg(feature = "pickers")]
    #[cold]
    #[inline(never)]
    fn keep_healthy(&mut self, idx: u32) {
        let Some(svc) = self.services.get(idx as usize) else {
            return;
        };
        let healthy: Vec<u32> = svc
            .members
            .iter()
            .copied()
            .filter(|&s| {
                super::candidates::member(&self.slots, s, idx)
                    .is_some_and(|e| e.health == Health::Healthy)
            })
            .collect();
        let svc = &mut self.services[idx as usize];
        svc.healthy = healthy;
        svc.healthy_kept = true;
    }

    /// Rebuilds a service's caches after a change, and its weights while
    /// slow start ramps them.
    #[inline(always)]
    pub(super) fn ensure_candidates(&mut self, idx: u32) {
        let svc = &self.services[idx as usize];
        if !svc.dirty {
            let c = &svc.candidates;
            if c.ramp_until != 0 && c.weights_at != self.clock {
                self.reweigh(idx);
            }
            return;
        }
        self.update_candidates(idx);
    }

    /// The candidates among `slots` (id order): lowest priority tier with a
    /// healthy (else degraded) instance, or every non-draining one in panic
    /// (lowest tier first), then the zone if it has any.
    pub(super) fn eligible(&self, slots: &[u32], panic: bool, zone: Option<&str>) -> Vec<u32> {
        let rule = slots.iter().fold(Rule::Nothing, |rule, &s| {
            let e = self.entry(s);
            rule.min(Rule::of(e.instance.priority, e.health, panic))
        });
        let chosen: Vec<u32> = slots
            .iter()
            .copied()
            .filter(|&s| {
                let e = self.entry(s);
                rule.admits(e.instance.priority, e.health)
            })
            .collect();
        match zone {
            Some(z) => {
                let local: Vec<u32> = chosen
                    .iter()
                    .copied()
                    .filter(|&s| self.entry(s).instance.zone() == Some(z))
                    .collect();
                if local.is_empty() {
                    chosen
                } else {
                    local
                }
            }
            None => chosen,
        }
    }

    pub(super) fn subset(&self, idx: u32, options: &PickOptions) -> Subset {
        let svc = &self.services[idx as usize];
        if options.filter.is_empty() {
            let c = &svc.candidates;
            let zone = options.zone();
            let local: Vec<usize> = (0..c.slots.len())
                .filter(|&i| self.entry(c.slots[i]).instance.zone() == zone)
                .collect();
            if local.is_empty() {
                Subset::Positions((0..c.slots.len()).collect())
            } else {
                Subset::Positions(local)
            }
        } else {
            let matching: Vec<u32> = svc
                .members
                .iter()
                .copied()
                .filter(|&s| self.entry(s).instance.matches(&options.filter))
                .collect();
            Subset::Slots(self.eligible(&matching, svc.panic, options.zone()))
        }
    }

    #[inline(never)]
    fn pick_table(&mut self, idx: u32, strategy: Strategy, key: Option<&str>) -> Option<u32> {
        if strategy == Strategy::ConsistentHash {
            // `validate_pick_options` refused a consistent_hash pick without a key.
            debug_assert!(key.is_some(), "consistent_hash pick without a key");
            return self.hash_winner(idx, key_bucket(key.unwrap_or("")));
        }
        let svc = &mut self.services[idx as usize];
        let c = &mut svc.candidates;
        let len = c.slots.len();
        if len == 0 {
            return None;
        }
        let pos = match strategy {
            Strategy::RoundRobin => svc.rr.next(len),
            Strategy::Random => self.rng.below(len as u64) as usize,
            Strategy::WeightedRandom => c.weighted_draw(&mut self.rng)?,
            Strategy::WeightedRoundRobin => return c.smooth_slot(c.ramp_until > 0),
            Strategy::FirstAvailable => 0,
            Strategy::LeastRequest => {
                let slots = &self.slots;
                let (cs, ws) = (&c.slots, &c.weights);
                two_choices(&mut self.rng, len, |i| {
                    let inflight = slots[cs[i] as usize]
                        .entry
                        .as_ref()
                        .map_or(0, |e| e.load.total());
                    (inflight, u64::from(ws[i]))
                })?
            }
            // Answered above.
            Strategy::ConsistentHash => return None,
        };
        c.slots.get(pos).copied()
    }

    /// The slots of a subset and their effective weights (what a filtered
    /// or zoned pick draws from; pickers with options read the same).
    pub(super) fn subset_weights(&self, idx: u32, subset: &Subset) -> (Vec<u32>, Vec<u64>) {
        let clock = self.clock;
        match subset {
            Subset::Positions(p) => {
                let c = &self.services[idx as usize].candidates;
                p.iter()
                    .map(|&i| {
                        let w = c.weights.get(i).copied().unwrap_or(0);
                        (c.slots.get(i).copied().unwrap_or(u32::MAX), u64::from(w))
                    })
                    .unzip()
            }
            Subset::Slots(s) => s
                .iter()
                .map(|&slot| (slot, self.entry(slot).effective_weight(&self.config, clock)))
                .unzip(),
        }
    }

    fn pick_subset(
        &mut self,
        idx: u32,
        strategy: Strategy,
        key: Option<&str>,
        subset: Subset,
    ) -> Option<u32> {
        let (slots, weights) = self.subset_weights(idx, &subset);
        let len = slots.len();
        if len == 0 {
            return None;
        }
        let pos = match strategy {
            Strategy::RoundRobin => self.services[idx as usize].rr.next(len),
            Strategy::Random => self.rng.below(len as u64) as usize,
            Strategy::WeightedRandom => {
                let prefix: Vec<u64> = weights
                    .iter()
                    .scan(0u64, |sum, &w| {
                        *sum += w;
                        Some(*sum)
                    })
                    .collect();
                weighted_draw(&mut self.rng, &prefix)?
            }
            Strategy::WeightedRoundRobin => {
                let total: u64 = weights.iter().sum();
                match &subset {
                    Subset::Positions(p) => {
                        let c = &mut self.services[idx as usize].candidates;
                        c.settle_period();
                        c.use_current();
                        let mut current: Vec<i64> = p.iter().map(|&i| c.wrr_state_at(i)).collect();
                        let pos = smooth_wrr(&weights, &mut current, total)?;
                        for (&i, v) in p.iter().zip(current) {
                            c.set_wrr_state_at(i, v);
                        }
                        pos
                    }
                    Subset::Slots(s) => {
                        let mut current: Vec<i64> =
                            s.iter().map(|&x| self.entry(x).load.filtered_wrr).collect();
                        let pos = smooth_wrr(&weights, &mut current, total)?;
                        for (&x, v) in s.iter().zip(current) {
                            self.entry_mut(x).load.filtered_wrr = v;
                        }
                        pos
                    }
                }
            }
            Strategy::FirstAvailable => 0,
            Strategy::LeastRequest => {
                let inflight: Vec<u64> =
                    slots.iter().map(|&s| self.entry(s).load.total()).collect();
                two_choices(&mut self.rng, len, |i| (inflight[i], weights[i]))?
            }
            Strategy::ConsistentHash => {
                // `validate_pick_options` refused a consistent_hash pick without a key.
                debug_assert!(key.is_some(), "consistent_hash pick without a key");
                rendezvous_among(key_bucket(key.unwrap_or("")), &slots, &weights, &self.slots)?
            }
        };
        slots.get(pos).copied()
    }
}
