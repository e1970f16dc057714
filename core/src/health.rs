//! Public health (SPEC §3) and the reports hosts feed into it.

use crate::prelude::*;
use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::source::SourceStatus;

/// The public health of an instance.
///
/// Precedence when several apply: draining > unhealthy > ejected > degraded > healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Health {
    /// Lease alive, checks passing, not draining, not ejected.
    Healthy = 0,
    /// Lease expired, or active checks failing.
    Unhealthy = 1,
    /// In maintenance: still registered, never picked.
    Draining = 2,
    /// Temporarily removed by outlier detection.
    Ejected = 3,
    /// Active check warns: picked only when its tier has no healthy candidate.
    Degraded = 4,
}

impl Health {
    /// Every health value, in numeric order.
    pub const ALL: [Health; 5] = [
        Health::Healthy,
        Health::Unhealthy,
        Health::Draining,
        Health::Ejected,
        Health::Degraded,
    ];

    /// The stable name, e.g. `"healthy"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
            Health::Draining => "draining",
            Health::Ejected => "ejected",
            Health::Degraded => "degraded",
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Health {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Health::ALL
            .into_iter()
            .find(|h| h.as_str() == s)
            .ok_or_else(|| Error::invalid("health", text!("unknown health `", s, "`")))
    }
}

/// The result of one active check the host ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum CheckStatus {
    /// The check passed.
    Pass = 0,
    /// The check passed with a warning: the instance is degraded.
    Warn = 1,
    /// The check failed.
    Fail = 2,
}

impl CheckStatus {
    /// The stable name: `pass`, `warn` or `fail`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Pass => "pass",
            CheckStatus::Warn => "warn",
            CheckStatus::Fail => "fail",
        }
    }
}

impl FromStr for CheckStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "pass" => Ok(CheckStatus::Pass),
            "warn" => Ok(CheckStatus::Warn),
            "fail" => Ok(CheckStatus::Fail),
            _ => Err(Error::invalid(
                "status",
                text!("`", s, "` is not one of pass, warn, fail"),
            )),
        }
    }
}

/// The raw health inputs of one instance, from which [`Health`] follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct HealthInputs {
    /// Drained by the host (a local operator).
    pub draining: bool,
    pub lease_expired: bool,
    pub check_failing: bool,
    pub ejected: bool,
    pub check_warning: bool,
    /// The owning source's verdict (`Passing` for a local instance).
    pub source: SourceStatus,
}

impl HealthInputs {
    /// Draining for any reason: drained locally or in maintenance at its
    /// source. Such an instance is outside the live fraction (§3).
    pub fn is_draining(&self) -> bool {
        self.draining || self.source == SourceStatus::Maintenance
    }

    pub fn health(&self) -> Health {
        if self.is_draining() {
            Health::Draining
        } else if self.lease_expired || self.check_failing || self.source == SourceStatus::Critical
        {
            Health::Unhealthy
        } else if self.ejected {
            Health::Ejected
        } else if self.check_warning || self.source == SourceStatus::Warning {
            Health::Degraded
        } else {
            Health::Healthy
        }
    }
}
