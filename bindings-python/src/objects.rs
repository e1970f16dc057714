//! The Python objects the registry hands out: instances, their status,
//! discovery and pick results, events. All are immutable snapshots.

use std::hash::{Hash, Hasher};

use pyo3::basic::CompareOp;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyInt, PyString, PyTuple};
use waypost::{Event, Handle, InstanceSpec, InstanceStatus};

use crate::convert::wire_to_py;
use crate::names;

/// Python's own `repr` of a string (quotes and escapes as Python writes them).
fn repr(py: Python<'_>, text: &str) -> String {
    PyString::new(py, text)
        .repr()
        .map_or_else(|_| format!("{text:?}"), |r| r.to_string())
}

/// A registered instance: the fields it was registered with (SPEC §2).
///
/// The registry returns the same object for the same registration as long
/// as its fields are unchanged, so picks allocate nothing.
#[pyclass(frozen, eq, hash, module = "waypost", name = "Instance")]
///
/// Every attribute but `meta` is a Python object stored in the instance, so
/// reading one is a plain member read (no call into Rust).
pub struct PyInstance {
    pub(crate) spec: InstanceSpec,
    handle_bits: u64,
    // BEGIN GENERATED Instance members (make gen: the core's instance fields)
    /// Unique id, 1–256 bytes, no control characters.
    #[pyo3(get)]
    id: Py<PyString>,
    /// Service name, same rule as `id`.
    #[pyo3(get)]
    service: Py<PyString>,
    /// Host name or IP, 1–256 bytes, no control characters.
    #[pyo3(get)]
    address: Py<PyString>,
    /// Port, 1–65535.
    #[pyo3(get)]
    port: Py<PyInt>,
    /// Weight, 1–10000 (default 1).
    #[pyo3(get)]
    weight: Py<PyInt>,
    /// Up to 64 tags of 1–256 bytes; duplicates are dropped, order kept.
    #[pyo3(get)]
    tags: Py<PyTuple>,
    /// Locality for zone preference, up to 128 bytes; empty or unset is no zone.
    #[pyo3(get)]
    zone: Py<PyAny>,
    /// Failover tier, 0–255, 0 preferred (default 0).
    #[pyo3(get)]
    priority: Py<PyInt>,
    // END GENERATED Instance members
    /// The registry's handle of this registration (generation << 32 | slot).
    #[pyo3(get)]
    handle: Py<PyInt>,
}

impl PartialEq for PyInstance {
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
}

impl Hash for PyInstance {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.spec.id.hash(state);
        self.spec.service.hash(state);
        self.spec.address.hash(state);
        self.spec.port.hash(state);
    }
}

impl PyInstance {
    pub(crate) fn new(py: Python<'_>, spec: InstanceSpec, handle: Handle) -> PyResult<PyInstance> {
        let int = |n: u64| n.into_pyobject(py).map(|i| i.unbind());
        Ok(PyInstance {
            handle_bits: handle.to_bits(),
            // BEGIN GENERATED Instance values (make gen: the core's instance fields)
            id: PyString::new(py, &spec.id).unbind(),
            service: PyString::new(py, &spec.service).unbind(),
            address: PyString::new(py, &spec.address).unbind(),
            port: int(spec.port.into())?,
            weight: int(spec.weight.into())?,
            tags: PyTuple::new(py, &spec.tags)?.unbind(),
            zone: match &spec.zone {
                Some(v) => PyString::new(py, v).into_any().unbind(),
                None => py.None(),
            },
            priority: int(spec.priority.into())?,
            // END GENERATED Instance values
            handle: int(handle.to_bits())?,
            spec,
        })
    }
}

#[pymethods]
impl PyInstance {
    // BEGIN GENERATED Instance getters (make gen: the core's instance fields)
    /// Up to 64 entries; key 1–128 bytes, value up to 512 bytes.
    /// A new dict on each access.
    #[getter]
    fn meta<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (k, v) in &self.spec.meta {
            dict.set_item(k, v)?;
        }
        Ok(dict)
    }

    /// Lease length overriding the registry's `ttl_ms`, 1 ms – 1 day.
    #[getter]
    fn ttl_ms(&self) -> Option<u64> {
        self.spec.ttl_ms
    }

    /// How often the host should run this instance's active check, 1 ms – 1 day; unset: no check.
    #[getter]
    fn check_interval_ms(&self) -> Option<u64> {
        self.spec.check_interval_ms
    }
    // END GENERATED Instance getters

    /// The SPEC §2 fields as a dict (the wire form: unset optional fields are absent).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        wire_to_py(py, &self.spec.to_json())
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Instance(id={}, service={}, address={}, port={}, weight={})",
            repr(py, &self.spec.id),
            repr(py, &self.spec.service),
            repr(py, &self.spec.address),
            self.spec.port,
            self.spec.weight
        )
    }
}

/// An instance with its dynamic status at the registry clock.
#[pyclass(frozen, eq, module = "waypost", name = "InstanceView")]
pub struct PyInstanceView {
    #[pyo3(get)]
    instance: Py<PyInstance>,
    status: InstanceStatus,
    // BEGIN GENERATED InstanceView members (make gen: the core's instance fields)
    /// The source that owns it (SPEC §10.1), same rule as `id`; unset for a local instance.
    #[pyo3(get)]
    source: Option<String>,
    // END GENERATED InstanceView members
}

impl PartialEq for PyInstanceView {
    fn eq(&self, other: &Self) -> bool {
        self.instance.get() == other.instance.get()
            && self.status == other.status
            && self.source == other.source
    }
}

impl PyInstanceView {
    pub(crate) fn new(
        instance: Py<PyInstance>,
        status: InstanceStatus,
        source: Option<String>,
    ) -> PyInstanceView {
        PyInstanceView {
            instance,
            status,
            source,
        }
    }
}

#[pymethods]
impl PyInstanceView {
    /// The instance id.
    #[getter]
    fn id(&self, py: Python<'_>) -> Py<PyString> {
        self.instance.get().id.clone_ref(py)
    }
    /// The service.
    #[getter]
    fn service(&self, py: Python<'_>) -> Py<PyString> {
        self.instance.get().service.clone_ref(py)
    }
    // BEGIN GENERATED InstanceView status (make gen: the core's status fields)
    /// Public health.
    #[getter]
    fn health<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        names::get(py).health(py, self.status.health)
    }
    /// Index of the last event concerning this instance.
    #[getter]
    fn modify_index(&self) -> u64 {
        self.status.modify_index
    }
    /// Index of its registration or latest update (changes only when its fields change).
    #[getter]
    fn revision(&self) -> u64 {
        self.status.revision
    }
    /// When it was first registered.
    /// In ms on the registry clock.
    #[getter]
    fn registered_at(&self) -> u64 {
        self.status.registered_at
    }
    /// When its lease was last renewed.
    /// In ms on the registry clock.
    #[getter]
    fn last_renewal(&self) -> u64 {
        self.status.last_renewal
    }
    /// The lease is expired at any later instant; a source-owned instance has no lease.
    /// In ms on the registry clock; 2**64 - 1 when there is none.
    #[getter]
    fn lease_deadline(&self) -> u64 {
        self.status.lease_deadline
    }
    /// Weight after slow start.
    #[getter]
    fn effective_weight(&self) -> f64 {
        self.status.effective_weight
    }
    /// Calls begun and not yet ended.
    #[getter]
    fn inflight(&self) -> u64 {
        self.status.inflight
    }
    /// Call failures in a row (outlier detection).
    #[getter]
    fn consecutive_failures(&self) -> u32 {
        self.status.consecutive_failures
    }
    /// When the current ejection ends, while ejected.
    /// In ms on the registry clock.
    /// None when unset.
    #[getter]
    fn ejected_until(&self) -> Option<u64> {
        self.status.ejected_until
    }
    /// The last active-check result reported.
    /// None when unset.
    #[getter]
    fn last_check<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        self.status.last_check.map(|v| names::get(py).check(py, v))
    }
    /// The owning source's verdict, for a source-owned instance (SPEC §10.1).
    /// One of passing, warning, critical or maintenance.
    /// None when unset.
    #[getter]
    fn source_status(&self) -> Option<&'static str> {
        self.status.source_status.map(|v| v.as_str())
    }
    /// Whether a removal its source asked for is held back (SPEC §10.3).
    #[getter]
    fn held(&self) -> bool {
        self.status.held
    }
    // END GENERATED InstanceView status

    /// The wire form shared by every binding: SPEC §2 fields plus status.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let spec = &self.instance.get().spec;
        wire_to_py(py, &spec.view_json(self.source.as_deref(), &self.status))
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let spec = &self.instance.get().spec;
        format!(
            "InstanceView(id={}, service={}, health={}, inflight={})",
            repr(py, &spec.id),
            repr(py, &spec.service),
            repr(py, self.status.health.as_str()),
            self.status.inflight
        )
    }
}

/// The answer of `discover`: a sequence of instances in id order, with
/// their health (parallel) and the service's panic flag.
#[pyclass(frozen, sequence, module = "waypost", name = "Discovery")]
pub struct PyDiscovery {
    #[pyo3(get)]
    instances: Py<PyTuple>,
    #[pyo3(get)]
    health: Py<PyTuple>,
    #[pyo3(get)]
    panic: bool,
}

impl PyDiscovery {
    pub(crate) fn new(instances: Py<PyTuple>, health: Py<PyTuple>, panic: bool) -> PyDiscovery {
        PyDiscovery {
            instances,
            health,
            panic,
        }
    }
}

#[pymethods]
impl PyDiscovery {
    fn __len__(&self, py: Python<'_>) -> usize {
        self.instances.bind(py).len()
    }

    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        index: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.instances.bind(py).as_any().get_item(index)
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.instances.bind(py).as_any().try_iter()?.into_any())
    }

    /// The listed ids, in order.
    #[getter]
    fn ids<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let ids: Vec<Py<PyString>> = self
            .instances
            .bind(py)
            .iter()
            .map(|i| {
                i.cast_into::<PyInstance>()
                    .map(|i| i.get().id.clone_ref(py))
            })
            .collect::<Result<_, _>>()?;
        PyTuple::new(py, ids)
    }

    /// `{"instances": [...], "health": [...], "panic": bool}` in wire form.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        let instances: Vec<Bound<'py, PyAny>> = self
            .instances
            .bind(py)
            .iter()
            .map(|i| i.call_method0("to_dict"))
            .collect::<PyResult<_>>()?;
        let health: Vec<Bound<'py, PyAny>> = self
            .health
            .bind(py)
            .iter()
            .map(|h| h.getattr("value"))
            .collect::<PyResult<_>>()?;
        dict.set_item("instances", instances)?;
        dict.set_item("health", health)?;
        dict.set_item("panic", self.panic)?;
        Ok(dict)
    }

    fn __richcmp__(
        &self,
        py: Python<'_>,
        other: &Bound<'_, PyAny>,
        op: CompareOp,
    ) -> PyResult<Py<PyAny>> {
        let Ok(other) = other.cast::<PyDiscovery>() else {
            return Ok(py.NotImplemented());
        };
        let other = other.get();
        let equal = self.panic == other.panic
            && self.instances.bind(py).eq(other.instances.bind(py))?
            && self.health.bind(py).eq(other.health.bind(py))?;
        match op {
            CompareOp::Eq => Ok(equal.into_pyobject(py)?.to_owned().into_any().unbind()),
            CompareOp::Ne => Ok((!equal).into_pyobject(py)?.to_owned().into_any().unbind()),
            _ => Ok(py.NotImplemented()),
        }
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Discovery(ids={}, panic={})",
            self.ids(py)?.repr()?,
            if self.panic { "True" } else { "False" }
        ))
    }
}

/// A pick with its panic flag (the service was in panic: health was ignored).
#[pyclass(frozen, eq, module = "waypost", name = "PickResult")]
pub struct PyPickResult {
    #[pyo3(get)]
    instance: Py<PyInstance>,
    /// The service was in panic: the pick ignored health.
    #[pyo3(get, name = "panic")]
    panic_flag: Py<PyBool>,
    panic: bool,
}

impl PartialEq for PyPickResult {
    fn eq(&self, other: &Self) -> bool {
        self.panic == other.panic && self.instance.get() == other.instance.get()
    }
}

impl PyPickResult {
    pub(crate) fn new(py: Python<'_>, instance: Py<PyInstance>, panic: bool) -> PyPickResult {
        PyPickResult {
            instance,
            panic_flag: PyBool::new(py, panic).to_owned().unbind(),
            panic,
        }
    }
}

#[pymethods]
impl PyPickResult {
    /// `{"id": ..., "panic": ...}`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        dict.set_item("id", self.instance.get().id.clone_ref(py))?;
        dict.set_item("panic", self.panic)?;
        Ok(dict)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "PickResult(id={}, panic={})",
            repr(py, &self.instance.get().spec.id),
            if self.panic { "True" } else { "False" }
        )
    }
}

/// One registry event (SPEC §6).
#[pyclass(frozen, eq, module = "waypost", name = "Event")]
pub struct PyEvent {
    event: Event,
}

impl PartialEq for PyEvent {
    fn eq(&self, other: &Self) -> bool {
        self.event == other.event
    }
}

impl PyEvent {
    pub(crate) fn new(event: Event) -> PyEvent {
        PyEvent { event }
    }
}

#[pymethods]
impl PyEvent {
    /// Registry-wide index, strictly increasing from 1.
    #[getter]
    fn index(&self) -> u64 {
        self.event.index
    }
    /// What happened.
    #[getter(r#type)]
    fn kind<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        names::get(py).event(py, self.event.kind)
    }
    /// Registry time of the change (ms).
    #[getter]
    fn at(&self) -> u64 {
        self.event.at
    }
    /// The instance concerned, or None.
    #[getter]
    fn id(&self) -> Option<&str> {
        self.event.id.as_deref()
    }
    /// The service concerned, or None.
    #[getter]
    fn service(&self) -> Option<&str> {
        self.event.service.as_deref()
    }
    /// Health before a `health_changed`, else None.
    #[getter(from_)]
    fn health_before<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        self.event.from.map(|h| names::get(py).health(py, h))
    }
    /// Health after a `health_changed`, else None.
    #[getter(to)]
    fn health_after<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        self.event.to.map(|h| names::get(py).health(py, h))
    }

    /// The wire form shared by every binding (`from`/`to` only when set).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        wire_to_py(py, &self.event.to_json())
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let e = &self.event;
        let mut out = format!(
            "Event(index={}, type={}, at={}",
            e.index,
            repr(py, e.kind.as_str()),
            e.at
        );
        if let Some(id) = &e.id {
            out += &format!(", id={}", repr(py, id));
        }
        if let Some(service) = &e.service {
            out += &format!(", service={}", repr(py, service));
        }
        if let (Some(from), Some(to)) = (e.from, e.to) {
            out += &format!(
                ", from_={}, to={}",
                repr(py, from.as_str()),
                repr(py, to.as_str())
            );
        }
        out + ")"
    }
}

impl PyInstance {
    /// The handle bits, for Rust callers.
    pub(crate) fn handle_bits(&self) -> u64 {
        self.handle_bits
    }
}
