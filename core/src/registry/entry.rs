//! The stored state of one registered instance.

use crate::prelude::*;
use alloc::sync::Arc;
#[cfg(feature = "pickers")]
use core::sync::atomic::{AtomicU64, Ordering};

use crate::balancer::{effective_weight, WEIGHT_SCALE};
use crate::config::Config;
use crate::health::{CheckStatus, Health, HealthInputs};
use crate::instance::Instance;
use crate::json::ObjectWriter;
use crate::source::SourceStatus;

/// No timer of this kind is scheduled.
pub(crate) const NO_TIMER: u64 = u64::MAX;

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub instance: Instance,
    pub service_idx: u32,
    pub id_hash: u64,
    pub health: Health,
    pub inputs: HealthInputs,
    /// When it last became healthy (slow start counts from here).
    pub healthy_since: u64,
    pub modify_index: u64,
    /// Index of its registration or latest update.
    pub revision: u64,
    pub lease: Lease,
    pub checks: Checks,
    pub outlier: Outlier,
    pub load: Load,
    pub source: SourceState,
    /// The service's candidate sequence number at which it last joined
    /// the candidate table or changed weight there ([`NOT_CANDIDATE`]
    /// while it is not in the table): consistent-hash memos older than
    /// this do not know it.
    pub cand_since: u32,
}

/// Its lease: how long it lives unrenewed, and when it was renewed.
#[derive(Debug, Clone)]
pub(crate) struct Lease {
    pub ttl: u64,
    pub last_renewal: u64,
    pub registered_at: u64,
    /// Due time of this instance's live entry in the lease heap.
    pub timer: u64,
}

/// Its active health checks: the streaks, the last result, the next one due.
#[derive(Debug, Clone, Default)]
pub(crate) struct Checks {
    pub pass_streak: u32,
    pub fail_streak: u32,
    pub last: Option<CheckStatus>,
    pub next_at: Option<u64>,
}

/// Its outlier detection: failures in a row and the ejections they caused.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outlier {
    pub failures: u32,
    pub ejections_in_row: u32,
    pub ejected_until: u64,
    pub probation: bool,
}

/// The calls it carries and the balancing state picks keep for it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Load {
    pub inflight: u64,
    /// Calls in flight begun through pickers (shared by every picker;
    /// created at the first publication that lists the instance).
    #[cfg(feature = "pickers")]
    pub shared_inflight: Option<Arc<AtomicU64>>,
    /// Smooth-WRR state for picks with a tag or metadata filter.
    pub filtered_wrr: i64,
}

/// Where its owning source's reconcile passes left it.
#[derive(Debug, Clone, Default)]
pub(crate) struct SourceState {
    /// Why a removal its source asked for is held back, while it is.
    pub held: Option<Hold>,
    /// The reconcile pass that last listed it (see `Registry::sync`).
    pub sync_mark: u64,
}

/// `cand_since` of an instance not in its service's candidate table.
pub(crate) const NOT_CANDIDATE: u32 = u32::MAX;

/// Why a source-driven removal is held back (SPEC §10.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hold {
    /// Applying it would take the live fraction below the
    /// self-preservation threshold.
    Preservation,
    /// It came from a full sync with no entries, which is not trusted.
    EmptySync,
}

impl Hold {
    /// Every reason, in the order of the names below.
    pub const ALL: [Hold; 2] = [Hold::Preservation, Hold::EmptySync];
    /// Their names, in the same order.
    pub const NAMES: [&'static str; 2] = [Hold::ALL[0].as_str(), Hold::ALL[1].as_str()];

    /// The name a snapshot's `held` member gives.
    pub const fn as_str(self) -> &'static str {
        match self {
            Hold::Preservation => "self_preservation",
            Hold::EmptySync => "empty_sync",
        }
    }
}

impl Load {
    /// Calls in flight: begun through the registry plus through pickers.
    #[inline]
    pub fn total(&self) -> u64 {
        #[cfg(feature = "pickers")]
        {
            let shared = self
                .shared_inflight
                .as_ref()
                .map_or(0, |c| c.load(Ordering::Relaxed));
            self.inflight.saturating_add(shared)
        }
        #[cfg(not(feature = "pickers"))]
        self.inflight
    }
}

impl Entry {
    /// The placeholder [`Registry::entry`](super::Registry) falls back on:
    /// an empty instance in no service.
    pub fn detached() -> Entry {
        let empty: Arc<str> = Arc::from("");
        Entry::new(Instance::empty(empty.clone(), empty), u32::MAX, 0, 0, 0, 0)
    }

    pub fn new(
        instance: Instance,
        service_idx: u32,
        id_hash: u64,
        ttl: u64,
        at: u64,
        index: u64,
    ) -> Entry {
        Entry {
            instance,
            service_idx,
            id_hash,
            health: Health::Healthy,
            inputs: HealthInputs::default(),
            healthy_since: at,
            modify_index: index,
            revision: index,
            lease: Lease {
                ttl,
                last_renewal: at,
                registered_at: at,
                timer: NO_TIMER,
            },
            checks: Checks::default(),
            outlier: Outlier::default(),
            load: Load::default(),
            source: SourceState::default(),
            cand_since: NOT_CANDIDATE,
        }
    }

    pub fn deadline(&self) -> u64 {
        self.lease.last_renewal.saturating_add(self.lease.ttl)
    }

    /// When the lease heap must next look at this instance: the first
    /// instant of expiry, or of eviction once expired. A source-owned
    /// instance has no lease: never. `None` too when that instant lies
    /// past the end of time (u64::MAX ms): a lease renewed that late never
    /// expires, and its due time must not collide with `NO_TIMER`.
    pub fn lease_due(&self, evict_after: u64) -> Option<u64> {
        if self.instance.source.is_some() {
            None
        } else if !self.inputs.lease_expired {
            self.deadline().checked_add(1)
        } else if evict_after > 0 {
            self.deadline().checked_add(evict_after)?.checked_add(1)
        } else {
            None
        }
    }

    /// Effective weight in thousandths (slow start applied).
    pub fn effective_weight(&self, config: &Config, now: u64) -> u64 {
        effective_weight(
            self.instance.weight,
            self.healthy_since,
            now,
            config.slow_start_ms,
        )
    }

    pub fn status(&self, config: &Config, now: u64) -> InstanceStatus {
        InstanceStatus {
            health: self.health,
            modify_index: self.modify_index,
            revision: self.revision,
            registered_at: self.lease.registered_at,
            last_renewal: self.lease.last_renewal,
            lease_deadline: if self.instance.source.is_some() {
                u64::MAX
            } else {
                self.deadline()
            },
            effective_weight: self.effective_weight(config, now) as f64 / WEIGHT_SCALE as f64,
            inflight: self.load.inflight,
            consecutive_failures: self.outlier.failures,
            ejected_until: if self.inputs.ejected {
                Some(self.outlier.ejected_until)
            } else {
                None
            },
            last_check: self.checks.last,
            source_status: self.instance.source.as_ref().map(|_| self.inputs.source),
            held: self.source.held.is_some(),
        }
    }
}

/// The dynamic state of an instance at the registry clock. Its fields'
/// wire keys, kinds and presence are [`STATUS_FIELDS`](crate::STATUS_FIELDS).
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct InstanceStatus {
    /// Public health.
    pub health: Health,
    /// Index of the last event concerning this instance.
    pub modify_index: u64,
    /// Index of its registration or latest update (changes only when its
    /// fields change).
    pub revision: u64,
    /// When it was first registered, in ms.
    pub registered_at: u64,
    /// When its lease was last renewed, in ms.
    pub last_renewal: u64,
    /// `last_renewal + ttl`: the lease is expired at any later instant.
    /// `u64::MAX` (and left out of the wire form) for a source-owned
    /// instance, which has no lease.
    #[cfg_attr(
        feature = "serde",
        serde(default = "no_lease", skip_serializing_if = "is_no_lease")
    )]
    pub lease_deadline: u64,
    /// Weight after slow start.
    pub effective_weight: f64,
    /// Calls begun and not yet ended.
    pub inflight: u64,
    /// Call failures in a row (outlier detection).
    pub consecutive_failures: u32,
    /// When an ejection ends, while ejected.
    pub ejected_until: Option<u64>,
    /// The last active-check result reported.
    pub last_check: Option<CheckStatus>,
    /// The owning source's verdict, for a source-owned instance.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "status", default, skip_serializing_if = "Option::is_none")
    )]
    pub source_status: Option<SourceStatus>,
    /// Whether a removal its source asked for is held back (SPEC §10.3);
    /// in the wire form only when true.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "is_false"))]
    pub held: bool,
}

#[cfg(feature = "serde")]
fn no_lease() -> u64 {
    u64::MAX
}

fn is_no_lease(deadline: &u64) -> bool {
    *deadline == u64::MAX
}

#[cfg(feature = "serde")]
fn is_false(b: &bool) -> bool {
    !*b
}

impl InstanceStatus {
    /// Appends the status members (wire form, snake_case keys) to an open
    /// object, in `STATUS_FIELDS`'s order and presence (a test holds it).
    pub(crate) fn write_members(&self, w: &mut ObjectWriter) {
        w.str("health", self.health.as_str());
        w.u64("modify_index", self.modify_index);
        w.u64("revision", self.revision);
        w.u64("registered_at", self.registered_at);
        w.u64("last_renewal", self.last_renewal);
        if !is_no_lease(&self.lease_deadline) {
            w.u64("lease_deadline", self.lease_deadline);
        }
        w.f64("effective_weight", self.effective_weight);
        w.u64("inflight", self.inflight);
        w.u64("consecutive_failures", self.consecutive_failures.into());
        w.opt_u64("ejected_until", self.ejected_until);
        w.opt_str("last_check", self.last_check.map(CheckStatus::as_str));
        if let Some(status) = self.source_status {
            w.str("status", status.as_str());
        }
        if self.held {
            w.bool("held", true);
        }
    }

    /// The status alone as a JSON object.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        let mut w = ObjectWriter::new(&mut out);
        self.write_members(&mut w);
        w.end();
        out
    }
}
