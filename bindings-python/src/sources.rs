//! Conversions for the sources API (SPEC §10): entries in as JSON text for
//! the core's `*_json` calls, reports and requests out as dicts.

use std::borrow::Cow;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyMapping, PyString};
use waypost::json::Json;
use waypost::{ConsulRegistration, SourceRequest, SyncReport};

use crate::convert::{self, type_error};
use crate::errors;

/// The entries as JSON text: any JSON-like value (the core requires an
/// array and judges each element, so a bad one is a rejected record).
pub(crate) fn entries_json(py: Python<'_>, entries: &Bound<'_, PyAny>) -> PyResult<String> {
    Ok(convert::py_to_json(py, entries, "entries")?.to_json())
}

/// One entry mapping (or options mapping) as JSON object text.
pub(crate) fn object_json(py: Python<'_>, obj: &Bound<'_, PyAny>, field: &str) -> PyResult<String> {
    let mapping = obj
        .cast::<PyMapping>()
        .map_err(|_| type_error(field, "a mapping", obj))?;
    Ok(Json::Object(convert::json_object(py, mapping, field)?).to_json())
}

/// A payload as the caller gave it, borrowed: both are immutable and the
/// caller holds them for the call, so the core reads them with the GIL
/// released and nothing is copied.
pub(crate) enum Body<'a> {
    /// A `str`: text, already UTF-8.
    Text(Cow<'a, str>),
    /// `bytes`: text the core checks is UTF-8, or a binary answer (etcd's
    /// gRPC range).
    Bytes(&'a [u8]),
}

/// A payload given as `str` or `bytes`.
pub(crate) fn body<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<Body<'a>> {
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Body::Text(s.to_cow()?));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Body::Bytes(b.as_bytes()));
    }
    Err(type_error("body", "str or bytes", obj))
}

/// A report as a dict: `{"added", "updated", "removed", "unchanged",
/// "held", "rejected": [{"at", "code", "message"}], "resync", "changed"}`.
pub(crate) fn report<'py>(py: Python<'py>, r: &SyncReport) -> PyResult<Bound<'py, PyAny>> {
    let d = PyDict::new(py);
    d.set_item("added", r.added)?;
    d.set_item("updated", r.updated)?;
    d.set_item("removed", r.removed)?;
    d.set_item("unchanged", r.unchanged)?;
    d.set_item("held", r.held)?;
    let rejected = PyList::empty(py);
    for x in &r.rejected {
        let item = PyDict::new(py);
        item.set_item("at", &x.at)?;
        item.set_item("code", x.code.as_str())?;
        item.set_item("message", &x.message)?;
        rejected.append(item)?;
    }
    d.set_item("rejected", rejected)?;
    d.set_item("resync", r.resync)?;
    d.set_item("changed", r.changed())?;
    Ok(d.into_any())
}

/// A request as a dict: `{"method", "path", "body", "stream"}`, plus
/// `"grpc": True` for a gRPC call.
pub(crate) fn request<'py>(py: Python<'py>, r: &SourceRequest) -> PyResult<Bound<'py, PyAny>> {
    let d = PyDict::new(py);
    d.set_item("method", r.method)?;
    d.set_item("path", &r.path)?;
    d.set_item("body", &r.body)?;
    d.set_item("stream", r.stream)?;
    if r.grpc {
        d.set_item("grpc", true)?;
    }
    Ok(d.into_any())
}

/// What a Consul registrar sends for `instance` (an entry mapping: the
/// instance wire form plus an optional `status`) with a TTL check of
/// `ttl_s` seconds, deregistered after `deregister_after_s` seconds
/// critical (SPEC §10.4, Consul registration): `{"id", "service",
/// "check_id", "body", "heartbeat_path", "maintenance", "deregister_path",
/// "maintenance_on_path", "maintenance_off_path"}`.
#[pyfunction]
pub(crate) fn consul_registration<'py>(
    py: Python<'py>,
    instance: &Bound<'_, PyAny>,
    ttl_s: &Bound<'_, PyAny>,
    deregister_after_s: &Bound<'_, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let instance = object_json(py, instance, "instance")?;
    let ttl_s = convert::uint(py, ttl_s, "ttl_s")?;
    let deregister_after_s = convert::uint(py, deregister_after_s, "deregister_after_s")?;
    let registration = ConsulRegistration::new(&instance, ttl_s, deregister_after_s);
    convert::wire_to_py(py, &errors::check(py, registration)?.to_json())
}
