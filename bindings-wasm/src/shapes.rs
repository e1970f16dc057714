//! JavaScript shapes of core values (camelCase keys, plain objects) and the
//! conversions of JSON arguments the facade sends.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use wasm_bindgen::JsValue;
use waypost::{
    Filter, Health, Instance, InstanceStatus, InstanceView, ServiceMetricsView, Strategy,
};

use crate::error::invalid;

/// Serializes to a plain JS value: objects, not `Map`s; numbers, not BigInts.
pub fn to_js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, JsValue> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| invalid(&e.to_string()))
}

/// A registered instance as the JS API shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JsInstance<'a> {
    id: &'a str,
    service: &'a str,
    address: &'a str,
    port: u16,
    weight: u32,
    tags: Vec<&'a str>,
    meta: BTreeMap<&'a str, &'a str>,
    zone: Option<&'a str>,
    priority: u8,
    ttl_ms: Option<u64>,
    check_interval_ms: Option<u64>,
}

impl<'a> From<&'a Instance> for JsInstance<'a> {
    fn from(i: &'a Instance) -> Self {
        JsInstance {
            id: i.id(),
            service: i.service(),
            address: i.address(),
            port: i.port(),
            weight: i.weight(),
            tags: i.tags().collect(),
            meta: i.meta().collect(),
            zone: i.zone(),
            priority: i.priority(),
            ttl_ms: i.ttl_ms(),
            check_interval_ms: i.check_interval_ms(),
        }
    }
}

/// An instance with its status at the registry clock (`get`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JsInstanceState<'a> {
    instance: JsInstance<'a>,
    health: &'static str,
    modify_index: u64,
    revision: u64,
    registered_at: u64,
    last_renewal: u64,
    lease_deadline: u64,
    effective_weight: f64,
    inflight: u64,
    consecutive_failures: u32,
    ejected_until: Option<u64>,
    last_check: Option<&'static str>,
}

impl<'a> From<InstanceView<'a>> for JsInstanceState<'a> {
    fn from(view: InstanceView<'a>) -> Self {
        let s: InstanceStatus = view.status;
        JsInstanceState {
            instance: view.instance.into(),
            health: s.health.as_str(),
            modify_index: s.modify_index,
            revision: s.revision,
            registered_at: s.registered_at,
            last_renewal: s.last_renewal,
            lease_deadline: s.lease_deadline,
            effective_weight: s.effective_weight,
            inflight: s.inflight,
            consecutive_failures: s.consecutive_failures,
            ejected_until: s.ejected_until,
            last_check: s.last_check.map(|c| c.as_str()),
        }
    }
}

/// One service's metrics (`serviceMetrics`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JsServiceMetrics<'a> {
    service: &'a str,
    instances: BTreeMap<&'static str, u32>,
    panic: bool,
    picks: BTreeMap<&'static str, u64>,
    pick_failures: u64,
    registrations: u64,
    deregistrations: u64,
    heartbeats: u64,
    expiries: u64,
    evictions: u64,
    ejections: u64,
}

impl<'a> From<&'a ServiceMetricsView> for JsServiceMetrics<'a> {
    fn from(v: &'a ServiceMetricsView) -> Self {
        let c = &v.counters;
        JsServiceMetrics {
            service: &v.service,
            instances: Health::ALL
                .iter()
                .map(|h| (h.as_str(), v.instances[*h as usize]))
                .collect(),
            panic: v.panic,
            picks: Strategy::ALL
                .iter()
                .map(|s| (s.as_str(), c.picks[*s as usize]))
                .collect(),
            pick_failures: c.pick_failures,
            registrations: c.registrations,
            deregistrations: c.deregistrations,
            heartbeats: c.heartbeats,
            expiries: c.expiries,
            evictions: c.evictions,
            ejections: c.ejections,
        }
    }
}

/// Parses the facade's filter document `{"tags": [...], "meta": {...}}`.
pub fn filter_from_json(text: Option<String>) -> Result<Filter, JsValue> {
    let Some(text) = text else {
        return Ok(Filter::default());
    };
    let value: Value = serde_json::from_str(&text).map_err(|e| invalid(&format!("filter: {e}")))?;
    let mut filter = Filter::default();
    match value.get("tags") {
        None | Some(Value::Null) => {}
        Some(Value::Array(tags)) => {
            for tag in tags {
                let tag = tag
                    .as_str()
                    .ok_or_else(|| invalid("invalid argument `tags`: must be strings"))?;
                filter.tags.push(tag.to_owned());
            }
        }
        Some(_) => {
            return Err(invalid(
                "invalid argument `tags`: must be an array of strings",
            ))
        }
    }
    match value.get("meta") {
        None | Some(Value::Null) => {}
        Some(Value::Object(meta)) => {
            for (k, v) in meta {
                let v = v.as_str().ok_or_else(|| {
                    invalid(&format!("invalid argument `meta.{k}`: must be a string"))
                })?;
                filter.meta.push((k.clone(), v.to_owned()));
            }
        }
        Some(_) => {
            return Err(invalid(
                "invalid argument `meta`: must be an object of strings",
            ))
        }
    }
    Ok(filter)
}

/// Milliseconds from a JS number: the facade has already rejected anything
/// but a finite, non-negative number; `as` saturates, so nothing here traps.
pub fn ms(now: f64) -> u64 {
    now as u64
}
