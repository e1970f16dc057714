//! Per-service state: members in id order, health counts, panic, caches.

use crate::prelude::*;
use alloc::sync::Arc;

use super::picker::Publication;
use super::{Entry, Registry};
use crate::balancer::AliasTable;
use crate::events::EventKind;
use crate::health::Health;
use crate::metrics::ServiceMetrics;

/// The cached candidate table of unfiltered picks.
#[derive(Debug, Clone, Default)]
pub(crate) struct Candidates {
    /// Slots in id order.
    pub slots: Vec<u32>,
    /// Slot generations when the table was built, parallel to `slots`.
    pub generations: Vec<u32>,
    /// Effective weights (thousandths), parallel to `slots`.
    pub weights: Vec<u64>,
    /// Prefix sums of `weights`.
    pub prefix: Vec<u64>,
    /// Alias table of `weights` (weighted random in O(1)).
    pub alias: AliasTable,
    /// Smooth-WRR `current`, parallel to `slots`.
    pub current: Vec<i64>,
    /// Until when some weight is still ramping (slow start); weights are
    /// recomputed per pick before then.
    pub ramp_until: u64,
    /// When `weights` were last computed.
    pub weights_at: u64,
    /// Consistent-hash winners per key bucket (`u32::MAX` = not computed yet).
    pub buckets: Vec<u32>,
}

/// The round-robin counter `c` of SPEC §5, with `c mod len` kept so the
/// hot path needs no division while the candidate count is unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RoundRobin {
    pub count: u64,
    pos: usize,
    /// The `len` that `pos` belongs to (0: not known).
    len: usize,
}

impl RoundRobin {
    pub fn at(count: u64) -> RoundRobin {
        RoundRobin {
            count,
            pos: 0,
            len: 0,
        }
    }

    /// Round robin over `len` candidates: `c mod len`, then `c += 1`.
    #[inline(always)]
    pub fn next(&mut self, len: usize) -> usize {
        let pos = if self.len == len {
            self.pos
        } else {
            (self.count % len as u64) as usize
        };
        self.count = self.count.wrapping_add(1);
        let next = pos + 1;
        // After a wrap of the u64 counter the position restarts from the division.
        if self.count == 0 {
            self.len = 0;
        } else {
            self.pos = if next == len { 0 } else { next };
            self.len = len;
        }
        pos
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Service {
    pub name: Arc<str>,
    /// Member slots in id order.
    pub members: Vec<u32>,
    /// The members' ids, parallel to `members`: searching them touches one
    /// allocation per comparison instead of three.
    pub member_ids: Vec<Arc<str>>,
    /// Members by public health, indexed by `Health as usize`.
    pub counts: [u32; 5],
    /// Instances with an ejection in force (outlier detection).
    pub ejected: u32,
    pub panic: bool,
    pub modify_index: u64,
    /// Round-robin counter `c` of SPEC §5.
    pub rr: RoundRobin,
    /// Caches need rebuilding before the next pick or discover.
    pub dirty: bool,
    /// Healthy members in id order (discover's default answer).
    pub healthy: Vec<u32>,
    pub candidates: Candidates,
    pub metrics: ServiceMetrics,
    /// What pickers of this service read (empty until the first picker).
    pub publication: Publication,
}

impl Service {
    pub fn new(name: Arc<str>) -> Service {
        Service {
            name,
            members: Vec::new(),
            member_ids: Vec::new(),
            counts: [0; 5],
            ejected: 0,
            panic: false,
            modify_index: 0,
            rr: RoundRobin::default(),
            dirty: true,
            healthy: Vec::new(),
            candidates: Candidates::default(),
            metrics: ServiceMetrics::default(),
            publication: Publication::default(),
        }
    }

    /// The candidate set may have changed: rebuild the caches before the
    /// next pick, and tell this service's pickers their table is stale.
    #[inline]
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
        self.publication.changed();
    }

    /// Whether healthy / non-draining is below `threshold`.
    pub fn below_threshold(&self, threshold: f64) -> bool {
        if threshold <= 0.0 {
            return false;
        }
        let non_draining = self.members.len() as u32 - self.counts[Health::Draining as usize];
        if non_draining == 0 {
            return false;
        }
        f64::from(self.counts[Health::Healthy as usize]) / f64::from(non_draining) < threshold
    }
}

impl Registry {
    /// Where `id` is or would go among a service's members (id order);
    /// appending past the last member, the usual case, skips the search.
    fn member_position(&self, service_idx: u32, id: &str) -> Result<usize, usize> {
        let ids = &self.services[service_idx as usize].member_ids;
        match ids.last() {
            Some(last) if **last < *id => Err(ids.len()),
            None => Err(0),
            _ => ids.binary_search_by(|m| (**m).cmp(id)),
        }
    }

    pub(crate) fn service_add_member(&mut self, service_idx: u32, slot: u32, index: u64) {
        let id = self.entry(slot).instance.id.clone();
        let pos = match self.member_position(service_idx, &id) {
            Ok(p) | Err(p) => p,
        };
        let health = self.entry(slot).health;
        let service = &mut self.services[service_idx as usize];
        service.members.insert(pos, slot);
        service.member_ids.insert(pos, id);
        service.counts[health as usize] += 1;
        service.modify_index = index;
        service.mark_dirty();
    }

    pub(crate) fn service_remove_member(
        &mut self,
        service_idx: u32,
        slot: u32,
        entry: &Entry,
        index: u64,
    ) {
        if let Ok(pos) = self.member_position(service_idx, &entry.instance.id) {
            let service = &mut self.services[service_idx as usize];
            if service.members[pos] == slot {
                service.members.remove(pos);
                service.member_ids.remove(pos);
            }
        }
        let service = &mut self.services[service_idx as usize];
        service.counts[entry.health as usize] -= 1;
        if entry.inputs.ejected {
            service.ejected -= 1;
        }
        service.modify_index = index;
        service.mark_dirty();
    }

    pub(crate) fn service_touch(&mut self, service_idx: u32, index: u64) {
        let service = &mut self.services[service_idx as usize];
        service.modify_index = index;
        service.mark_dirty();
    }

    /// Enters or leaves panic when the service's health counts cross the threshold.
    pub(crate) fn update_panic(&mut self, service_idx: u32, at: u64) {
        let threshold = self.config.panic_threshold;
        let service = &self.services[service_idx as usize];
        let panic = service.below_threshold(threshold);
        if panic == service.panic {
            return;
        }
        let name = service.name.clone();
        let kind = if panic {
            EventKind::PanicEntered
        } else {
            EventKind::PanicExited
        };
        let index = self.events.push(kind, at, None, Some(name), None);
        let service = &mut self.services[service_idx as usize];
        service.panic = panic;
        service.modify_index = index;
        service.mark_dirty();
    }
}
