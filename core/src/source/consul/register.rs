//! The other direction: what a registrar sends the local Consul agent to
//! keep one instance registered (SPEC §10.4, "Consul registration").
//!
//! Each binding's registrar only moves bytes: it sends [`ConsulRegistration::body`]
//! to `PUT /v1/agent/service/register`, puts [`ConsulRegistration::heartbeat_path`]
//! every TTL/3, turns the agent's maintenance mode on or off as
//! [`ConsulRegistration::maintenance`] says (with
//! [`ConsulRegistration::maintenance_on_path`] /
//! [`ConsulRegistration::maintenance_off_path`]), and leaves with
//! [`ConsulRegistration::deregister_path`]. The status maps so that the
//! mirror ([`super::ConsulMirror`]) reads back the status it was given.

use crate::prelude::*;

use super::escape;
use crate::config::DAY_MS;
use crate::error::{Error, Result};
use crate::json::{write_array, write_str, Json, ObjectWriter};
use crate::source::{SourceEntry, SourceStatus};

/// The longest TTL and `DeregisterCriticalServiceAfter`, in seconds: a day,
/// as every duration setting.
pub const MAX_CONSUL_CHECK_S: u64 = DAY_MS / 1000;

/// The `reason` a registrar gives with the agent's maintenance mode (Consul
/// keeps it in the `_service_maintenance:<id>` check's `Notes`).
pub const CONSUL_MAINTENANCE_REASON: &str = "waypost: maintenance";

/// What a registrar sends for one instance: built by
/// [`ConsulRegistration::new`], every binding sends these bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsulRegistration {
    /// The instance id (Consul's service `ID`).
    pub id: String,
    /// The service name (Consul's `Name`).
    pub service: String,
    /// The TTL check's id: `service:<id>`.
    pub check_id: String,
    /// The JSON body of `PUT /v1/agent/service/register`.
    pub body: String,
    /// The heartbeat that keeps the check's status:
    /// `/v1/agent/check/<pass|warn|fail>/service:<id percent-encoded>`.
    pub heartbeat_path: String,
    /// Whether the agent's maintenance mode for the service is on
    /// (status `maintenance`).
    pub maintenance: bool,
    /// What leaves at once on a clean stop:
    /// `/v1/agent/service/deregister/<id percent-encoded>`.
    pub deregister_path: String,
    /// What turns the agent's maintenance mode on:
    /// `/v1/agent/service/maintenance/<id>?enable=true&reason=<reason>`,
    /// the reason [`CONSUL_MAINTENANCE_REASON`], both percent-encoded.
    pub maintenance_on_path: String,
    /// What turns it off again:
    /// `/v1/agent/service/maintenance/<id>?enable=false`.
    pub maintenance_off_path: String,
}

impl ConsulRegistration {
    /// The registration of `entry_json` (the instance wire form plus an
    /// optional `"status"`, read as [`SourceEntry::from_json`] reads it)
    /// with a TTL check of `ttl_s` seconds that Consul deregisters after it
    /// stayed critical for `deregister_after_s` seconds.
    ///
    /// | status | check `Status` | heartbeat | maintenance |
    /// |---|---|---|---|
    /// | `passing` (default) | `passing` | `pass` | off |
    /// | `warning` | `warning` | `warn` | off |
    /// | `critical` | `critical` | `fail` | off |
    /// | `maintenance` | `passing` | `pass` | on |
    ///
    /// # Errors
    /// `invalid_argument` naming the field at fault: the instance (as every
    /// reader of it), `status`, or `ttl_s` / `deregister_after_s` outside
    /// 1..=[`MAX_CONSUL_CHECK_S`].
    pub fn new(
        entry_json: &str,
        ttl_s: u64,
        deregister_after_s: u64,
    ) -> Result<ConsulRegistration> {
        for (field, s) in [("ttl_s", ttl_s), ("deregister_after_s", deregister_after_s)] {
            if !(1..=MAX_CONSUL_CHECK_S).contains(&s) {
                return Err(Error::invalid(
                    field,
                    text!(s, " is outside 1..=", MAX_CONSUL_CHECK_S, " seconds"),
                ));
            }
        }
        let entry = match Json::parse(entry_json) {
            Ok(Json::Object(members)) => SourceEntry::from_object(members)?,
            Ok(_) => return Err(Error::invalid("instance", "must be a JSON object")),
            Err(e) => return Err(Error::invalid("instance", text!("not valid JSON: ", e))),
        };
        let maintenance = entry.status == SourceStatus::Maintenance;
        // Maintenance is the agent's own mode on top of a passing check:
        // the instance is alive, only drained.
        let check = if maintenance {
            SourceStatus::Passing
        } else {
            entry.status
        };
        let verb = match check {
            SourceStatus::Warning => "warn",
            SourceStatus::Critical => "fail",
            SourceStatus::Passing | SourceStatus::Maintenance => "pass",
        };
        let spec = &entry.spec;
        let check_id = text!("service:", spec.id.as_str());
        // `head` and then `tail`, percent-encoded.
        let escaped = |head: String, tail: &str| {
            let mut path = head;
            escape(&mut path, tail);
            path
        };
        let heartbeat_path = escaped(text!("/v1/agent/check/", verb, "/service:"), &spec.id);
        let deregister_path = escaped("/v1/agent/service/deregister/".into(), &spec.id);
        let maintenance_path = escaped("/v1/agent/service/maintenance/".into(), &spec.id);
        let maintenance_on_path = escaped(
            text!(maintenance_path.as_str(), "?enable=true&reason="),
            CONSUL_MAINTENANCE_REASON,
        );
        let maintenance_off_path = text!(maintenance_path.as_str(), "?enable=false");

        let mut body = String::new();
        let mut w = ObjectWriter::new(&mut body);
        w.str("ID", &spec.id);
        w.str("Name", &spec.service);
        w.str("Address", &spec.address);
        w.u64("Port", spec.port.into());
        write_array(w.key("Tags"), &spec.tags, |out, t| write_str(out, t));
        let mut meta = ObjectWriter::new(w.key("Meta"));
        for (k, v) in spec.meta.iter() {
            meta.str(k, v);
        }
        meta.end();
        let mut weights = ObjectWriter::new(w.key("Weights"));
        weights.u64("Passing", spec.weight.into());
        weights.u64("Warning", 1);
        weights.end();
        let mut c = ObjectWriter::new(w.key("Check"));
        c.str("CheckID", &check_id);
        c.str("Name", &text!("waypost TTL for ", spec.id.as_str()));
        c.str("TTL", &text!(ttl_s, "s"));
        c.str("Status", check.as_str());
        c.str(
            "DeregisterCriticalServiceAfter",
            &text!(deregister_after_s, "s"),
        );
        c.end();
        if let Some(zone) = spec.zone.as_deref().filter(|z| !z.is_empty()) {
            let mut locality = ObjectWriter::new(w.key("Locality"));
            locality.str("Zone", zone);
            locality.end();
        }
        w.end();

        Ok(ConsulRegistration {
            id: entry.spec.id,
            service: entry.spec.service,
            check_id,
            body,
            heartbeat_path,
            maintenance,
            deregister_path,
            maintenance_on_path,
            maintenance_off_path,
        })
    }

    /// The registration as a JSON object for the bindings: `{"id",
    /// "service", "check_id", "body", "heartbeat_path", "maintenance",
    /// "deregister_path", "maintenance_on_path", "maintenance_off_path"}`,
    /// `body` as a string (the bytes to send).
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        let mut w = ObjectWriter::new(&mut out);
        w.str("id", &self.id);
        w.str("service", &self.service);
        w.str("check_id", &self.check_id);
        w.str("body", &self.body);
        w.str("heartbeat_path", &self.heartbeat_path);
        w.bool("maintenance", self.maintenance);
        w.str("deregister_path", &self.deregister_path);
        w.str("maintenance_on_path", &self.maintenance_on_path);
        w.str("maintenance_off_path", &self.maintenance_off_path);
        w.end();
        out
    }
}
