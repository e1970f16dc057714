//! What hosts report: active-check results, call outcomes, in-flight calls.

use core::cmp::Reverse;

use super::Registry;
use crate::config::MAX_ID_BYTES;
use crate::error::Result;
use crate::health::CheckStatus;
use crate::instance::check_name;

impl Registry {
    /// Records the result of an active check the host ran. `check_fall`
    /// failures in a row make the instance unhealthy, `check_rise` passes in
    /// a row make it healthy again; `warn` counts as a pass that leaves the
    /// instance degraded until a plain pass.
    ///
    /// # Errors
    /// `invalid_argument` for a malformed id; `not_found` when it is not registered.
    pub fn report_check(&mut self, id: &str, status: CheckStatus, now: u64) -> Result<()> {
        check_name("id", id, MAX_ID_BYTES)?;
        self.advance(now);
        let slot = self.slot_of(id)?;
        let at = self.clock;
        let (rise, fall) = (self.config.check_rise, self.config.check_fall);
        let generation = self.slots[slot as usize].generation;
        let entry = self.entry_mut(slot);
        entry.checks.last = Some(status);
        match status {
            CheckStatus::Pass | CheckStatus::Warn => {
                entry.checks.fail_streak = 0;
                entry.checks.pass_streak = entry.checks.pass_streak.saturating_add(1);
                if entry.inputs.check_failing && entry.checks.pass_streak >= rise {
                    entry.inputs.check_failing = false;
                }
                entry.inputs.check_warning = status == CheckStatus::Warn;
            }
            CheckStatus::Fail => {
                entry.checks.pass_streak = 0;
                entry.checks.fail_streak = entry.checks.fail_streak.saturating_add(1);
                if !entry.inputs.check_failing && entry.checks.fail_streak >= fall {
                    entry.inputs.check_failing = true;
                }
            }
        }
        if let Some(interval) = entry.instance.check_interval_ms {
            let next = at.saturating_add(interval);
            if entry.checks.next_at != Some(next) {
                entry.checks.next_at = Some(next);
                self.checks.push(Reverse((next, slot, generation)));
            }
        }
        let service_idx = self.entry(slot).service_idx;
        // Warning flags change the candidate set even when health is masked.
        self.note_member(service_idx, slot);
        self.refresh(slot, at);
        Ok(())
    }

    /// Records the outcome of one call to an instance (outlier detection).
    /// `consecutive_failures` failures in a row eject it for
    /// `base_ejection_ms × n` (n = ejections in a row), capped at
    /// `max_ejection_ms` and by `max_ejection_percent` of the service; after
    /// an ejection one success closes the circuit and one failure ejects again.
    ///
    /// # Errors
    /// `invalid_argument` for a malformed id; `not_found` when it is not registered.
    pub fn report_outcome(&mut self, id: &str, success: bool, now: u64) -> Result<()> {
        check_name("id", id, MAX_ID_BYTES)?;
        self.advance(now);
        let slot = self.slot_of(id)?;
        self.outcome_slot(slot, success);
        Ok(())
    }

    /// [`Registry::report_outcome`] by handle.
    ///
    /// # Errors
    /// `not_found` when the handle no longer names a registered instance.
    pub fn report_outcome_handle(
        &mut self,
        handle: super::Handle,
        success: bool,
        now: u64,
    ) -> Result<()> {
        self.advance(now);
        let slot = self.slot_of_handle(handle)?;
        self.outcome_slot(slot, success);
        Ok(())
    }

    pub(super) fn outcome_slot(&mut self, slot: u32, success: bool) {
        let threshold = self.config.consecutive_failures;
        let entry = self.entry_mut(slot);
        if entry.inputs.ejected {
            // Late results of calls made before the ejection change nothing.
            return;
        }
        if success {
            entry.outlier.failures = 0;
            if entry.outlier.probation {
                entry.outlier.probation = false;
                entry.outlier.ejections_in_row = 0;
            }
            return;
        }
        entry.outlier.failures = entry.outlier.failures.saturating_add(1);
        if threshold == 0 {
            return;
        }
        if entry.outlier.probation || entry.outlier.failures >= threshold {
            self.try_eject(slot);
        }
    }

    fn try_eject(&mut self, slot: u32) {
        let at = self.clock;
        let (base, max, percent) = (
            self.config.base_ejection_ms,
            self.config.max_ejection_ms,
            self.config.max_ejection_percent,
        );
        let service_idx = self.entry(slot).service_idx;
        let svc = &self.services[service_idx as usize];
        let cap = (svc.members.len() as u64 * u64::from(percent) / 100).max(1);
        if u64::from(svc.ejected) >= cap {
            return;
        }
        let generation = self.slots[slot as usize].generation;
        let entry = self.entry_mut(slot);
        entry.outlier.ejections_in_row = entry.outlier.ejections_in_row.saturating_add(1);
        let length = base
            .saturating_mul(u64::from(entry.outlier.ejections_in_row))
            .min(max);
        let until = at.saturating_add(length);
        entry.inputs.ejected = true;
        entry.outlier.ejected_until = until;
        entry.outlier.failures = 0;
        entry.outlier.probation = false;
        self.ejections.push(Reverse((until, slot, generation)));
        let svc = &mut self.services[service_idx as usize];
        svc.ejected += 1;
        svc.metrics.ejections += 1;
        self.note_member(service_idx, slot);
        self.refresh(slot, at);
    }

    /// Marks a call to an instance as started (for `least_request`).
    ///
    /// # Errors
    /// `invalid_argument` for a malformed id; `not_found` when it is not registered.
    pub fn begin(&mut self, id: &str, now: u64) -> Result<()> {
        check_name("id", id, MAX_ID_BYTES)?;
        self.advance(now);
        let slot = self.slot_of(id)?;
        self.load_moved();
        let entry = self.entry_mut(slot);
        entry.load.inflight = entry.load.inflight.saturating_add(1);
        Ok(())
    }

    /// Marks a call to an instance as finished; ending more calls than were
    /// begun leaves the count at zero.
    ///
    /// # Errors
    /// `invalid_argument` for a malformed id; `not_found` when it is not registered.
    pub fn end(&mut self, id: &str, now: u64) -> Result<()> {
        check_name("id", id, MAX_ID_BYTES)?;
        self.advance(now);
        let slot = self.slot_of(id)?;
        self.load_moved();
        let entry = self.entry_mut(slot);
        entry.load.inflight = entry.load.inflight.saturating_sub(1);
        Ok(())
    }

    /// [`Registry::begin`] by handle. It does not advance the clock:
    /// in-flight counts do not depend on time, and the hot path stays short.
    ///
    /// # Errors
    /// `not_found` when the handle no longer names a registered instance.
    pub fn begin_handle(&mut self, handle: super::Handle) -> Result<()> {
        let slot = self.slot_of_handle(handle)?;
        self.load_moved();
        let entry = self.entry_mut(slot);
        entry.load.inflight = entry.load.inflight.saturating_add(1);
        Ok(())
    }

    /// [`Registry::end`] by handle; like [`Registry::begin_handle`], it does
    /// not advance the clock.
    ///
    /// # Errors
    /// `not_found` when the handle no longer names a registered instance.
    pub fn end_handle(&mut self, handle: super::Handle) -> Result<()> {
        let slot = self.slot_of_handle(handle)?;
        self.load_moved();
        let entry = self.entry_mut(slot);
        entry.load.inflight = entry.load.inflight.saturating_sub(1);
        Ok(())
    }

    /// A call began or ended through the registry.
    #[inline(always)]
    fn load_moved(&mut self) {
        #[cfg(feature = "pickers")]
        {
            self.load_moves = self.load_moves.wrapping_add(1);
        }
    }
}
