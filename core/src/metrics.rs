//! Counters and gauges, rendered in the Prometheus text exposition format.

use crate::prelude::*;

use crate::balancer::Strategy;
use crate::health::Health;
use crate::json::{write_array, write_u64, ObjectWriter};
use crate::Registry;

/// Per-service counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ServiceMetrics {
    /// Successful picks, indexed by `Strategy as usize`.
    pub picks: [u64; 7],
    /// Picks that found no eligible instance.
    pub pick_failures: u64,
    /// Registrations, updates included.
    pub registrations: u64,
    /// Deregistrations by the host.
    pub deregistrations: u64,
    /// Heartbeats accepted.
    pub heartbeats: u64,
    /// Leases that expired.
    pub expiries: u64,
    /// Instances evicted after expiry.
    pub evictions: u64,
    /// Outlier ejections.
    pub ejections: u64,
}

impl ServiceMetrics {
    /// Appends the wire form: `{"picks":[…by strategy code],"pick_failures":…}`.
    pub fn write_json(&self, out: &mut String) {
        let mut w = ObjectWriter::new(out);
        write_array(w.key("picks"), self.picks, write_u64);
        w.u64("pick_failures", self.pick_failures);
        w.u64("registrations", self.registrations);
        w.u64("deregistrations", self.deregistrations);
        w.u64("heartbeats", self.heartbeats);
        w.u64("expiries", self.expiries);
        w.u64("evictions", self.evictions);
        w.u64("ejections", self.ejections);
        w.end();
    }
}

/// Registry-wide counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RegistryMetrics {
    /// Picks for services that do not exist.
    pub unknown_service_picks: u64,
}

/// A point-in-time copy of one service's metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceMetricsView {
    /// Service name.
    pub service: String,
    /// Instances by health, indexed by `Health as usize`.
    pub instances: [u32; 5],
    /// Whether the service is in panic.
    pub panic: bool,
    /// Its counters.
    pub counters: ServiceMetrics,
}

/// A counter family: name, help text, and how to read it.
type Counter = (&'static str, &'static str, fn(&ServiceMetrics) -> u64);

fn escape(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

// Written from the registry's public readings (`service_metrics`,
// `registry_metrics`, `len`) only.
impl Registry {
    /// Every metric in the Prometheus text exposition format (version 0.0.4),
    /// ready to serve at `/metrics`.
    pub fn render_metrics(&self) -> String {
        let views = self.service_metrics();
        let mut out = String::with_capacity(256 + views.len() * 1600);
        let mut label = String::new();
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            put!(
                out,
                "# HELP ",
                name,
                " ",
                help,
                "\n# TYPE ",
                name,
                " ",
                kind,
                "\n"
            );
        };
        family(
            &mut out,
            "waypost_instances",
            "gauge",
            "Registered instances by service and health.",
        );
        for v in &views {
            label.clear();
            escape(&v.service, &mut label);
            for h in Health::ALL {
                put!(
                    &mut out,
                    "waypost_instances{service=\"",
                    label,
                    "\",health=\"",
                    h.as_str(),
                    "\"} ",
                    v.instances[h as usize],
                    "\n"
                );
            }
        }
        family(
            &mut out,
            "waypost_service_panic",
            "gauge",
            "1 while the service is below its panic threshold.",
        );
        for v in &views {
            label.clear();
            escape(&v.service, &mut label);
            put!(
                &mut out,
                "waypost_service_panic{service=\"",
                label,
                "\"} ",
                u8::from(v.panic),
                "\n"
            );
        }
        family(
            &mut out,
            "waypost_picks_total",
            "counter",
            "Successful picks by service and strategy.",
        );
        for v in &views {
            label.clear();
            escape(&v.service, &mut label);
            for s in Strategy::ALL {
                put!(
                    &mut out,
                    "waypost_picks_total{service=\"",
                    label,
                    "\",strategy=\"",
                    s.as_str(),
                    "\"} ",
                    v.counters.picks[s as usize],
                    "\n"
                );
            }
        }
        family(
            &mut out,
            "waypost_pick_failures_total",
            "counter",
            "Failed picks by service and error code.",
        );
        for v in &views {
            label.clear();
            escape(&v.service, &mut label);
            put!(
                &mut out,
                "waypost_pick_failures_total{service=\"",
                label,
                "\",code=\"no_eligible_instance\"} ",
                v.counters.pick_failures,
                "\n"
            );
        }
        put!(
            &mut out,
            "waypost_pick_failures_total{service=\"\",code=\"unknown_service\"} ",
            self.registry_metrics().unknown_service_picks,
            "\n"
        );
        let counters: [Counter; 6] = [
            (
                "waypost_registrations_total",
                "Registrations (updates included).",
                |m| m.registrations,
            ),
            (
                "waypost_deregistrations_total",
                "Deregistrations by the host.",
                |m| m.deregistrations,
            ),
            ("waypost_heartbeats_total", "Heartbeats accepted.", |m| {
                m.heartbeats
            }),
            ("waypost_expiries_total", "Leases that expired.", |m| {
                m.expiries
            }),
            (
                "waypost_evictions_total",
                "Instances evicted after their lease expired.",
                |m| m.evictions,
            ),
            ("waypost_ejections_total", "Outlier ejections.", |m| {
                m.ejections
            }),
        ];
        for (name, help, get) in counters {
            family(&mut out, name, "counter", help);
            for v in &views {
                label.clear();
                escape(&v.service, &mut label);
                put!(
                    &mut out,
                    name,
                    "{service=\"",
                    label,
                    "\"} ",
                    get(&v.counters),
                    "\n"
                );
            }
        }
        family(
            &mut out,
            "waypost_registry_instances",
            "gauge",
            "Instances in the registry.",
        );
        put!(&mut out, "waypost_registry_instances ", self.len(), "\n");
        family(
            &mut out,
            "waypost_registry_services",
            "gauge",
            "Services with at least one instance.",
        );
        let services = self
            .services
            .iter()
            .filter(|s| !s.members.is_empty())
            .count();
        put!(&mut out, "waypost_registry_services ", services, "\n");
        family(
            &mut out,
            "waypost_self_preservation",
            "gauge",
            "1 while lease expiries are held back.",
        );
        put!(
            &mut out,
            "waypost_self_preservation ",
            u8::from(self.self_preservation),
            "\n"
        );
        family(
            &mut out,
            "waypost_events_index",
            "counter",
            "Index of the latest event.",
        );
        put!(
            &mut out,
            "waypost_events_index ",
            self.events.last_index(),
            "\n"
        );
        out
    }
}
