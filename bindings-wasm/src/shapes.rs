//! How core values cross the boundary. Cold-path values travel as JSON text
//! in the core's own wire forms (the facade parses it and reshapes keys);
//! instances, fetched once per slot whenever the facade's cache is rebuilt,
//! travel as a positional array, which is cheaper to make than to parse.
//! Filters arrive in their JSON form (the core's `Filter::from_json`).

use js_sys::Array;
use wasm_bindgen::JsValue;
use waypost::{Filter, Instance};

use crate::error::check;

/// A registered instance as `[id, service, address, port, weight, tags,
/// metaPairs, zone, priority, ttlMs, checkIntervalMs]`, where `metaPairs` is
/// `[key, value, key, value, ...]` and absent optional fields are `null`.
pub fn instance_fields(i: &Instance) -> Array {
    let tags: Array = i.tags().map(JsValue::from_str).collect();
    let meta = Array::new();
    for (k, v) in i.meta() {
        meta.push(&JsValue::from_str(k));
        meta.push(&JsValue::from_str(v));
    }
    let millis = |v: Option<u64>| v.map_or(JsValue::NULL, |v| JsValue::from_f64(v as f64));
    [
        JsValue::from_str(i.id()),
        JsValue::from_str(i.service()),
        JsValue::from_str(i.address()),
        JsValue::from_f64(f64::from(i.port())),
        JsValue::from_f64(f64::from(i.weight())),
        tags.into(),
        meta.into(),
        i.zone().map_or(JsValue::NULL, JsValue::from_str),
        JsValue::from_f64(f64::from(i.priority())),
        millis(i.ttl_ms()),
        millis(i.check_interval_ms()),
    ]
    .iter()
    .collect()
}

/// A filter from the JSON form the facade writes (none: the empty filter).
pub fn filter_of(json: Option<String>) -> Result<Filter, JsValue> {
    match json {
        Some(text) => check(Filter::from_json(&text)),
        None => Ok(Filter::default()),
    }
}

/// Milliseconds from a JS number: the facade has already rejected anything
/// but a finite, non-negative number; `as` saturates, so nothing here traps.
pub fn ms(now: f64) -> u64 {
    now as u64
}
