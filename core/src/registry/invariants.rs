//! A full consistency check of the registry's internal indexes, for tests
//! and fuzzing: everything derived must agree with the instances.

use super::Registry;
use crate::health::Health;
use crate::prelude::*;

impl Registry {
    /// Checks every internal index against the instances; `Err` says which
    /// one disagrees. Costs O(n log n): meant for tests, not hot paths.
    ///
    /// # Errors
    /// A description of the first inconsistency found.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut total = 0u64;
        let (mut non_draining, mut live) = (0u64, 0u64);
        let mut held_ids = Vec::new();
        for (slot, s) in self.slots.iter().enumerate() {
            let Some(e) = s.entry.as_deref() else {
                if !self.free.contains(&(slot as u32)) {
                    return Err(format!("empty slot {slot} is not on the free list"));
                }
                continue;
            };
            total += 1;
            if self.by_id.get(&e.instance.id) != Some(&(slot as u32)) {
                return Err(format!(
                    "by_id does not map `{}` to slot {slot}",
                    e.instance.id
                ));
            }
            if e.health != e.inputs.health() {
                return Err(format!(
                    "`{}` health {} disagrees with its inputs",
                    e.instance.id, e.health
                ));
            }
            let service = self
                .services
                .get(e.service_idx as usize)
                .ok_or_else(|| format!("`{}` names a missing service", e.instance.id))?;
            if *service.name != *e.instance.service {
                return Err(format!(
                    "`{}` is filed under the wrong service",
                    e.instance.id
                ));
            }
            if !service.members.contains(&(slot as u32)) {
                return Err(format!(
                    "`{}` is missing from its service's members",
                    e.instance.id
                ));
            }
            if e.source.held == Some(super::Hold::Preservation) {
                held_ids.push(e.instance.id.clone());
            }
            if e.source.held.is_some() && e.instance.source.is_none() {
                return Err(format!("local `{}` has a held removal", e.instance.id));
            }
            if !e.inputs.is_draining() {
                non_draining += 1;
                live += u64::from(!e.inputs.lease_expired);
            }
            if let Some(due) = e.lease_due(self.config.evict_after_ms) {
                let filed = self
                    .leases
                    .iter()
                    .any(|t| t.0 .1 == slot as u32 && t.0 .2 == s.generation && t.0 .0 <= due);
                if !filed {
                    return Err(format!(
                        "`{}` has no lease timer at or before {due}",
                        e.instance.id
                    ));
                }
            }
        }
        if self.by_id.len() as u64 != total || self.total != total {
            return Err(format!(
                "{} ids, {} counted, {total} instances",
                self.by_id.len(),
                self.total
            ));
        }
        held_ids.sort();
        let mut listed = self.held_ids.clone();
        listed.sort();
        if listed != held_ids {
            return Err("held removal ids disagree".into());
        }
        if !self.held_ids.is_empty() && !self.self_preservation {
            return Err("removals held outside self-preservation".into());
        }
        if let Some(problem) = self.recent_removals.problem(self.clock) {
            return Err(problem.into());
        }
        let window = self.config.self_preservation_window_ms;
        let due = self
            .recent_removals
            .batches
            .first()
            .map_or(u64::MAX, |&(at, _)| {
                at.saturating_add(window).saturating_add(1)
            });
        if self.recent_removals.due != due {
            return Err("recent removals: stale due time".into());
        }
        if self.non_draining != non_draining || self.live_non_draining != live {
            return Err("draining or live counters disagree".into());
        }
        for service in &self.services {
            let ids: Vec<&str> = service
                .members
                .iter()
                .map(|&m| &*self.entry(m).instance.id)
                .collect();
            if service
                .member_ids
                .iter()
                .map(|m| &**m)
                .ne(ids.iter().copied())
            {
                return Err(format!(
                    "member ids of `{}` disagree with members",
                    service.name
                ));
            }
            if ids.windows(2).any(|w| w[0] >= w[1]) {
                return Err(format!("members of `{}` are not in id order", service.name));
            }
            let mut counts = [0u32; 5];
            let mut ejected = 0;
            for &m in &service.members {
                let e = self.entry(m);
                counts[e.health as usize] += 1;
                ejected += u32::from(e.inputs.ejected);
            }
            if counts != service.counts || ejected != service.ejected {
                return Err(format!("health counts of `{}` disagree", service.name));
            }
            if service.panic != service.below_threshold(self.config.panic_threshold) {
                return Err(format!("panic flag of `{}` is stale", service.name));
            }
            if let Some(index) = &service.candidates.smooth {
                let c = &service.candidates;
                index
                    .check(&c.slots, &c.weights)
                    .map_err(|e| format!("smooth-WRR index of `{}`: {e}", service.name))?;
                if !c.current.is_empty() {
                    return Err(format!("`{}` keeps both smooth-WRR states", service.name));
                }
            }
            if !service.dirty && service.keeps_healthy() {
                let healthy: Vec<u32> = service
                    .members
                    .iter()
                    .copied()
                    .filter(|&m| self.entry(m).health == Health::Healthy)
                    .collect();
                if healthy != service.healthy {
                    return Err(format!("healthy cache of `{}` is stale", service.name));
                }
            }
        }
        Ok(())
    }
}
