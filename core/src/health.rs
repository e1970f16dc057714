//! Public health (SPEC §3) and the reports hosts feed into it.

use crate::prelude::*;
use core::fmt;
use core::str::FromStr;

use crate::error::Error;
use crate::source::SourceStatus;

name_table! {
    /// The public health of an instance.
    ///
    /// Precedence when several apply: draining > unhealthy > ejected > degraded > healthy.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
    #[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
    pub enum Health {
        /// Lease alive, checks passing, not draining, not ejected.
        Healthy = 0 => "healthy",
        /// Lease expired, or active checks failing.
        Unhealthy = 1 => "unhealthy",
        /// In maintenance: still registered, never picked.
        Draining = 2 => "draining",
        /// Temporarily removed by outlier detection.
        Ejected = 3 => "ejected",
        /// Active check warns: picked only when its tier has no healthy candidate.
        Degraded = 4 => "degraded",
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

name_table! {
    /// The result of one active check the host ran.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
    #[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
    pub enum CheckStatus {
        /// The check passed.
        Pass = 0 => "pass",
        /// The check passed with a warning: the instance is degraded.
        Warn = 1 => "warn",
        /// The check failed.
        Fail = 2 => "fail",
    }
}

impl FromStr for CheckStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        CheckStatus::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "status",
                    text!("`", s, "` is not one of ", CheckStatus::LIST),
                )
            })
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
