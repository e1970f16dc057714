//! `waypost.Registry`: one core registry behind a mutex, safe to share
//! between threads. Cheap calls run with the GIL held; snapshot, restore,
//! tick and metrics rendering release it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, PoisonError};

use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::types::{PyDict, PyList, PyMapping, PyString};
use waypost::json::Json;
use waypost::{
    Config, ConfigKind, DiscoverOptions, DiscoverStamp, Error, Filter, Handle, Health,
    InstanceSpec, PickOptions, Registry, ServiceRef, Strategy, CONFIG_FIELDS, CONFIG_KEYS,
};

use crate::convert::{
    self, now as now_arg, opt_string, opt_uint, stored_u64, string, uint, uint_as, wire_to_py,
};
use crate::errors;
use crate::names;
use crate::objects::{PyDiscovery, PyEvent, PyInstance, PyInstanceView, PyPickResult};
use crate::picker::PyPicker;
use crate::sources;
use crate::state::{Lookup, Pending, State};

/// A pick's instance (to resolve) and panic flag.
type Picked = (Option<Lookup>, bool);

/// The options of a plain pick, built once.
static NO_PICK_OPTIONS: PickOptions = PickOptions {
    key: None,
    zone: None,
    filter: Filter {
        tags: Vec::new(),
        meta: Vec::new(),
    },
};

/// Keys whose values are ratios (floats); every other key is an integer.
/// Name → id caches grow with the names callers use; past this many
/// entries beyond the registry's size they are cleared.
const NAME_CACHE_SLACK: usize = 4096;

/// A service registry (SPEC.md). Every time-dependent method takes an
/// optional keyword `now` in ms (default: the wall clock).
#[pyclass(frozen, module = "waypost", name = "Registry")]
pub struct PyRegistry {
    state: Mutex<State>,
    /// Service name → `ServiceRef` index, for services known to exist.
    services: Py<PyDict>,
    /// Instance id → handle bits, checked by the core on every use.
    ids: Py<PyDict>,
}

impl PyRegistry {
    fn from_core(py: Python<'_>, reg: Registry) -> PyRegistry {
        PyRegistry {
            state: Mutex::new(State::new(reg)),
            services: PyDict::new(py).unbind(),
            ids: PyDict::new(py).unbind(),
        }
    }

    /// Runs `f` on the state with the GIL held (detaching only while
    /// waiting for another thread to release the lock).
    #[inline]
    pub(crate) fn with<R>(&self, py: Python<'_>, f: impl FnOnce(&mut State) -> R) -> PyResult<R> {
        let mut state = self
            .state
            .lock_py_attached(py)
            .unwrap_or_else(PoisonError::into_inner);
        catch_unwind(AssertUnwindSafe(|| f(&mut state))).map_err(|_| errors::panicked())
    }

    /// Runs `f` on the state with the GIL released.
    fn detached<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut State) -> R + Send,
    ) -> PyResult<R> {
        py.detach(|| {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            catch_unwind(AssertUnwindSafe(|| f(&mut state)))
        })
        .map_err(|_| errors::panicked())
    }

    /// The Python object of a live handle (cached).
    pub(crate) fn resolve(
        &self,
        py: Python<'_>,
        lookup: Option<Lookup>,
    ) -> PyResult<Py<PyInstance>> {
        match lookup {
            Some(Lookup::Hit(object)) => Ok(object),
            Some(Lookup::Miss(pending)) => self.build(py, pending),
            None => Err(errors::map(
                py,
                Error::NotFound {
                    id: "<handle>".into(),
                },
            )),
        }
    }

    fn build(&self, py: Python<'_>, pending: Box<Pending>) -> PyResult<Py<PyInstance>> {
        let (pending, object) = pending.build(py)?;
        let old = self.with(py, |st| st.store(py, &pending, &object))?;
        drop(old);
        Ok(object)
    }

    fn remember(
        &self,
        py: Python<'_>,
        cache: &Py<PyDict>,
        key: &Bound<'_, PyAny>,
        value: u64,
    ) -> PyResult<()> {
        if !key.is_exact_instance_of::<PyString>() {
            return Ok(());
        }
        let dict = cache.bind(py);
        let limit = self.with(py, |st| st.reg.len())? + NAME_CACHE_SLACK;
        if dict.len() > limit {
            dict.clear();
        }
        dict.set_item(key, value)
    }

    /// One core call on an instance named by id: convert the id, then `now`,
    /// make the call under the lock, map the error.
    fn on_id(
        &self,
        py: Python<'_>,
        id: &Bound<'_, PyAny>,
        now: Option<&Bound<'_, PyAny>>,
        op: impl FnOnce(&mut Registry, &str, u64) -> waypost::Result<()>,
    ) -> PyResult<()> {
        let id = string(id, "id")?;
        let now = now_arg(py, now)?;
        let r = self.with(py, |st| op(&mut st.reg, &id, now))?;
        errors::check(py, r)
    }

    /// An id-taking call with a fast path by cached handle. `fast` must be
    /// the handle form of `slow`; a stale handle falls back to the id.
    fn by_id(
        &self,
        py: Python<'_>,
        id: &Bound<'_, PyAny>,
        fast: impl Fn(&mut Registry, Handle) -> waypost::Result<()>,
        slow: impl Fn(&mut Registry, &str) -> waypost::Result<()>,
    ) -> PyResult<()> {
        let ids = self.ids.bind(py);
        if id.is_exact_instance_of::<PyString>() {
            if let Some(bits) = ids.get_item(id)? {
                let handle = Handle::from_bits(stored_u64(&bits)?);
                match self.with(py, |st| fast(&mut st.reg, handle))? {
                    Ok(()) => return Ok(()),
                    // Stale (another thread removed or replaced the
                    // instance): forget it and ask by id below. Another
                    // thread may have forgotten it first.
                    Err(Error::NotFound { .. }) => match ids.del_item(id) {
                        Err(e) if !e.is_instance_of::<PyKeyError>(py) => return Err(e),
                        _ => {}
                    },
                    Err(e) => return Err(errors::map(py, e)),
                }
            }
        }
        let name = string(id, "id")?;
        let handle = self.with(py, |st| {
            slow(&mut st.reg, &name)?;
            Ok(st.reg.handle_of(&name))
        })?;
        match errors::check(py, handle)? {
            Some(h) => self.remember(py, &self.ids, id, h.to_bits()),
            None => Ok(()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn pick_impl(
        &self,
        py: Python<'_>,
        service: &Bound<'_, PyAny>,
        strategy: Option<&Bound<'_, PyAny>>,
        key: Option<&Bound<'_, PyAny>>,
        zone: Option<&Bound<'_, PyAny>>,
        tags: Option<&Bound<'_, PyAny>>,
        meta: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(Py<PyInstance>, bool)> {
        let strategy = convert::strategy(py, strategy)?;
        let now = now_arg(py, now)?;
        let given;
        let options = if key.is_none() && zone.is_none() && tags.is_none() && meta.is_none() {
            &NO_PICK_OPTIONS
        } else {
            given = PickOptions {
                key: opt_string(key, "key")?,
                zone: opt_string(zone, "zone")?,
                filter: convert::filter(tags, meta)?,
            };
            &given
        };
        let services = self.services.bind(py);
        if let Ok(service) = service.cast_exact::<PyString>() {
            let found = self.with(py, |st| -> PyResult<waypost::Result<Option<Picked>>> {
                let sref = match &st.last_service {
                    Some((s, r)) if s.is(service) => *r,
                    _ => match services.get_item(service)? {
                        Some(index) => {
                            let r = ServiceRef::from_index(stored_u64(&index)? as u32);
                            st.last_service = Some((service.clone().unbind(), r));
                            r
                        }
                        None => return Ok(Ok(None)),
                    },
                };
                Ok(match st.reg.pick_ref(sref, strategy, options, now) {
                    Ok(p) => Ok(Some((st.lookup(py, p.handle), p.panic))),
                    // The service lost its last instance: the core counted
                    // the failure; forget the cached reference.
                    Err(e @ Error::UnknownService { .. }) => {
                        st.last_service = None;
                        Err(e)
                    }
                    Err(e) => Err(e),
                })
            })??;
            if let Some((lookup, panic)) = errors::check(py, found)? {
                return Ok((self.resolve(py, lookup)?, panic));
            }
            services.del_item(service).ok();
        }
        let name = string(service, "service")?;
        let found = self.with(py, |st| {
            let p = st.reg.pick(&name, strategy, options, now)?;
            let sref = st.reg.service_ref(&name)?;
            Ok((st.lookup(py, p.handle), p.panic, sref))
        })?;
        let (lookup, panic, sref) = errors::check(py, found)?;
        self.remember(py, &self.services, service, u64::from(sref.index()))?;
        Ok((self.resolve(py, lookup)?, panic))
    }

    fn register_core(
        &self,
        py: Python<'_>,
        spec: InstanceSpec,
        now: u64,
    ) -> PyResult<Py<PyInstance>> {
        let found = self.with(py, |st| {
            st.reg.register(spec, now).map(|h| st.lookup(py, h))
        })?;
        let lookup = errors::check(py, found)?;
        self.resolve(py, lookup)
    }

    fn events_list<'py>(
        py: Python<'py>,
        events: Vec<waypost::Event>,
    ) -> PyResult<Bound<'py, PyList>> {
        let objects = events
            .into_iter()
            .map(|e| Py::new(py, PyEvent::new(e)))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, objects)
    }
}

#[pymethods]
impl PyRegistry {
    #[new]
    #[pyo3(signature = (**config))]
    fn new(py: Python<'_>, config: Option<&Bound<'_, PyDict>>) -> PyResult<PyRegistry> {
        // The keys and the kind of value each takes are the core's table.
        let mut given = Vec::new();
        if let Some(config) = config {
            for (key, value) in config.iter() {
                let key: String = key.extract()?;
                let Some(field) = CONFIG_FIELDS.iter().find(|f| f.key == key) else {
                    return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                        "Registry() got an unexpected keyword argument '{key}'"
                    )));
                };
                given.push((field, value));
            }
        }
        // In the table's order, as keyword parameters were checked.
        given.sort_by_key(|(field, _)| CONFIG_KEYS.iter().position(|k| *k == field.key));
        let mut config = Config::default();
        let mut seeded = false;
        for (field, value) in &given {
            let key = field.key;
            if value.is_none() {
                continue;
            }
            let json = if field.kind == ConfigKind::Flag {
                if !value.is_instance_of::<pyo3::types::PyBool>() {
                    return Err(convert::type_error(key, "bool", value));
                }
                Json::Bool(value.is_truthy()?)
            } else if field.kind == ConfigKind::Ratio {
                if value.is_instance_of::<pyo3::types::PyBool>() {
                    return Err(convert::type_error(key, "float", value));
                }
                let f: f64 = value
                    .extract()
                    .map_err(|_| convert::type_error(key, "float", value))?;
                if !f.is_finite() {
                    return Err(errors::invalid(
                        py,
                        key,
                        format!("{f} is not a finite number"),
                    ));
                }
                Json::from(f)
            } else {
                Json::from(uint(py, value, key)?)
            };
            errors::check(py, config.set(key, &json))?;
            seeded |= key == "seed";
        }
        if !seeded {
            // The core never draws entropy: the host does.
            let bytes: Vec<u8> = py.import("os")?.call_method1("urandom", (8,))?.extract()?;
            let mut seed = [0u8; 8];
            seed.copy_from_slice(&bytes[..8]);
            config.seed = u64::from_le_bytes(seed);
        }
        let reg = errors::check(py, Registry::new(config))?;
        Ok(PyRegistry::from_core(py, reg))
    }

    /// Restores a registry from a `snapshot()` document (GIL released).
    #[staticmethod]
    fn restore(py: Python<'_>, text: &Bound<'_, PyAny>) -> PyResult<PyRegistry> {
        let text = string(text, "text")?;
        let reg = py
            .detach(|| catch_unwind(|| Registry::restore(&text)))
            .map_err(|_| errors::panicked())?;
        let reg = errors::check(py, reg)?;
        Ok(PyRegistry::from_core(py, reg))
    }

    /// The whole state as a JSON document (GIL released).
    fn snapshot(&self, py: Python<'_>) -> PyResult<String> {
        self.detached(py, |st| st.reg.snapshot())
    }

    /// Registers an instance (or replaces the fields of one with the same id
    /// and service) and returns it. The parameters are the core's instance
    /// fields (SPEC §2), in its table's order.
    #[pyo3(signature = (
        // BEGIN GENERATED register signature (make gen: the core's instance fields)
        id, service, address, port,
        *, weight=None, tags=None, meta=None, zone=None, priority=None, ttl_ms=None, check_interval_ms=None,
        // END GENERATED register signature
        now=None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn register(
        &self,
        py: Python<'_>,
        // BEGIN GENERATED register parameters (make gen: the core's instance fields)
        id: &Bound<'_, PyAny>,
        service: &Bound<'_, PyAny>,
        address: &Bound<'_, PyAny>,
        port: &Bound<'_, PyAny>,
        weight: Option<&Bound<'_, PyAny>>,
        tags: Option<&Bound<'_, PyAny>>,
        meta: Option<&Bound<'_, PyAny>>,
        zone: Option<&Bound<'_, PyAny>>,
        priority: Option<&Bound<'_, PyAny>>,
        ttl_ms: Option<&Bound<'_, PyAny>>,
        check_interval_ms: Option<&Bound<'_, PyAny>>,
        // END GENERATED register parameters
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyInstance>> {
        let spec = convert::instance_spec(
            py,
            [
                // BEGIN GENERATED register arguments (make gen: the core's instance fields)
                Some(id),
                Some(service),
                Some(address),
                Some(port),
                weight,
                tags,
                meta,
                zone,
                priority,
                ttl_ms,
                check_interval_ms,
                // END GENERATED register arguments
            ],
        )?;
        let now = now_arg(py, now)?;
        self.register_core(py, spec, now)
    }

    /// Registers an instance given as a mapping of SPEC §2 fields (the
    /// wire form, e.g. from JSON); validation is exactly the core's.
    #[pyo3(signature = (spec, *, now=None))]
    fn register_spec(
        &self,
        py: Python<'_>,
        spec: &Bound<'_, PyAny>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyInstance>> {
        let mapping = spec
            .cast::<PyMapping>()
            .map_err(|_| convert::type_error("spec", "a mapping", spec))?;
        let map = convert::json_object(py, mapping, "spec")?;
        let spec = errors::check(py, InstanceSpec::from_object(map))?;
        let now = now_arg(py, now)?;
        self.register_core(py, spec, now)
    }

    /// Makes the instances of `service` owned by `source` exactly `entries`
    /// (instance wire forms, each with an optional `status`; SPEC §10.2) and
    /// returns the report.
    #[pyo3(signature = (source, service, entries, *, now=None))]
    fn sync<'py>(
        &self,
        py: Python<'py>,
        source: &Bound<'_, PyAny>,
        service: &Bound<'_, PyAny>,
        entries: &Bound<'_, PyAny>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (source, service) = (string(source, "source")?, string(service, "service")?);
        let entries = sources::entries_json(py, entries)?;
        let now = now_arg(py, now)?;
        let report = self.with(py, |st| st.reg.sync_json(&source, &service, &entries, now))?;
        sources::report(py, &errors::check(py, report)?)
    }

    /// Adds or replaces one entry of `source` (a watch event's put).
    #[pyo3(signature = (source, entry, *, now=None))]
    fn source_put<'py>(
        &self,
        py: Python<'py>,
        source: &Bound<'_, PyAny>,
        entry: &Bound<'_, PyAny>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let source = string(source, "source")?;
        let entry = sources::object_json(py, entry, "entry")?;
        let now = now_arg(py, now)?;
        let report = self.with(py, |st| st.reg.source_put_json(&source, &entry, now))?;
        sources::report(py, &errors::check(py, report)?)
    }

    /// Removes one id of `source` (an id it does not hold is a no-op).
    #[pyo3(signature = (source, id, *, now=None))]
    fn source_delete<'py>(
        &self,
        py: Python<'py>,
        source: &Bound<'_, PyAny>,
        id: &Bound<'_, PyAny>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (source, id) = (string(source, "source")?, string(id, "id")?);
        let now = now_arg(py, now)?;
        let report = self.with(py, |st| st.reg.source_delete(&source, &id, now))?;
        sources::report(py, &errors::check(py, report)?)
    }

    /// Declares a mirrored source, e.g. `{"kind": "etcd", "prefix": "/waypost/services"}`.
    fn source_add(
        &self,
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        options: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let name = string(name, "name")?;
        let options = sources::object_json(py, options, "options")?;
        let r = self.with(py, |st| st.reg.source_add(&name, &options))?;
        errors::check(py, r)
    }

    /// The request to send next for source `name`: `{"method", "path", "body", "stream"}`.
    fn source_request<'py>(
        &self,
        py: Python<'py>,
        name: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let name = string(name, "name")?;
        let request = self.with(py, |st| st.reg.source_request(&name))?;
        sources::request(py, &errors::check(py, request)?)
    }

    /// Hands source `name` what its last request brought back (a whole
    /// response or one stream message; `str`, or `bytes`: UTF-8 text or a
    /// binary answer such as etcd's gRPC range) and returns
    /// the report; `"resync": True` means the next request reads everything
    /// again; `status` is the HTTP status (default 200), `index` the
    /// store's index header. Payloads are applied with the GIL released.
    #[pyo3(signature = (name, body, *, now=None, status=None, index=None))]
    fn source_feed<'py>(
        &self,
        py: Python<'py>,
        name: &Bound<'_, PyAny>,
        body: &Bound<'_, PyAny>,
        now: Option<&Bound<'_, PyAny>>,
        status: Option<&Bound<'_, PyAny>>,
        index: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let name = string(name, "name")?;
        let body = sources::body(body)?;
        let now = now_arg(py, now)?;
        let status = match status {
            Some(s) => uint_as::<u16>(py, s, "status")?,
            None => 200,
        };
        let index = opt_string(index, "index")?;
        let index = index.as_deref();
        let report = self.detached(py, |st| match &body {
            sources::Body::Text(text) => st.reg.source_feed(&name, text, now, status, index),
            sources::Body::Bytes(bytes) => {
                st.reg.source_feed_bytes(&name, bytes, now, status, index)
            }
        })?;
        sources::report(py, &errors::check(py, report)?)
    }

    /// Removes an instance.
    #[pyo3(signature = (id, *, now=None))]
    fn deregister(
        &self,
        py: Python<'_>,
        id: &Bound<'_, PyAny>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.on_id(py, id, now, |r, id, now| r.deregister(id, now))
    }

    /// Renews an instance's lease (an expired one recovers).
    #[pyo3(signature = (id, *, now=None))]
    fn heartbeat(
        &self,
        py: Python<'_>,
        id: &Bound<'_, PyAny>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let now = now_arg(py, now)?;
        self.by_id(
            py,
            id,
            |r, h| r.heartbeat_handle(h, now),
            |r, id| r.heartbeat(id, now),
        )
    }

    /// Puts an instance into maintenance (`on=True`) or takes it out.
    #[pyo3(signature = (id, on=true, *, now=None))]
    fn drain(
        &self,
        py: Python<'_>,
        id: &Bound<'_, PyAny>,
        on: bool,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.on_id(py, id, now, |r, id, now| r.drain(id, on, now))
    }

    /// Records the result of an active check the host ran.
    #[pyo3(signature = (id, status, *, now=None))]
    fn report_check(
        &self,
        py: Python<'_>,
        id: &Bound<'_, PyAny>,
        status: &Bound<'_, PyAny>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let id = string(id, "id")?;
        let status = convert::check_status(py, status)?;
        let now = now_arg(py, now)?;
        let r = self.with(py, |st| st.reg.report_check(&id, status, now))?;
        errors::check(py, r)
    }

    /// Records the outcome of one call to an instance (outlier detection).
    #[pyo3(signature = (id, success, *, now=None))]
    fn report_outcome(
        &self,
        py: Python<'_>,
        id: &Bound<'_, PyAny>,
        success: &Bound<'_, PyAny>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let success = convert::boolean(success, "success")?;
        let now = now_arg(py, now)?;
        self.by_id(
            py,
            id,
            |r, h| r.report_outcome_handle(h, success, now),
            |r, id| r.report_outcome(id, success, now),
        )
    }

    /// Marks a call to an instance as started (for `least_request`).
    #[pyo3(signature = (id, *, now=None))]
    fn begin(
        &self,
        py: Python<'_>,
        id: &Bound<'_, PyAny>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.on_id(py, id, now, |r, id, now| r.begin(id, now))
    }

    /// Marks a call to an instance as finished.
    #[pyo3(signature = (id, *, now=None))]
    fn end(
        &self,
        py: Python<'_>,
        id: &Bound<'_, PyAny>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.on_id(py, id, now, |r, id, now| r.end(id, now))
    }

    /// The instance with this id and its status.
    #[pyo3(signature = (id, *, now=None))]
    fn get(
        &self,
        py: Python<'_>,
        id: &Bound<'_, PyAny>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyInstanceView> {
        let id = string(id, "id")?;
        let now = now_arg(py, now)?;
        let found = self.with(py, |st| {
            let view = st.reg.get(&id, now)?;
            let (handle, status) = (view.handle, view.status);
            let source = view.instance.source().map(str::to_owned);
            Ok((st.lookup(py, handle), status, source))
        })?;
        let (lookup, status, source) = errors::check(py, found)?;
        Ok(PyInstanceView::new(
            self.resolve(py, lookup)?,
            status,
            source,
        ))
    }

    /// Names of the services that have instances, in byte order.
    #[pyo3(signature = (*, now=None))]
    fn services(&self, py: Python<'_>, now: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<String>> {
        let now = now_arg(py, now)?;
        self.with(py, |st| {
            st.reg.services(now).iter().map(|s| s.to_string()).collect()
        })
    }

    /// Lists a service's instances in id order: the healthy ones, or with
    /// `all=True` every one; `health` holds their health, in parallel.
    #[pyo3(signature = (service, *, all=false, tags=None, meta=None, now=None))]
    fn discover(
        &self,
        py: Python<'_>,
        service: &Bound<'_, PyAny>,
        all: bool,
        tags: Option<&Bound<'_, PyAny>>,
        meta: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyDiscovery>> {
        let name = string(service, "service")?;
        let options = DiscoverOptions {
            all,
            filter: convert::filter(tags, meta)?,
        };
        let now = now_arg(py, now)?;
        let cacheable = options.filter.is_empty();
        enum Found {
            Cached(Py<PyDiscovery>),
            Fresh(Vec<(Option<Lookup>, Health)>, bool, Option<DiscoverStamp>),
        }
        let found = self.with(py, |st| -> waypost::Result<Found> {
            let mut key = None;
            if cacheable {
                let stamp = st.reg.discover_stamp(&name, now)?;
                if let Some(d) = st.cached_discovery(py, stamp, all) {
                    return Ok(Found::Cached(d));
                }
                key = Some(stamp);
            }
            let d = st.reg.discover(&name, &options, now)?;
            let panic = d.panic;
            let listed: Vec<(Handle, Health)> =
                d.iter().map(|v| (v.handle, v.status.health)).collect();
            let items = listed
                .into_iter()
                .map(|(h, health)| (st.lookup(py, h), health))
                .collect();
            Ok(Found::Fresh(items, panic, key))
        })?;
        match errors::check(py, found)? {
            Found::Cached(d) => Ok(d),
            Found::Fresh(items, panic, key) => {
                let names = names::get(py);
                let mut instances = Vec::with_capacity(items.len());
                let mut health = Vec::with_capacity(items.len());
                for (lookup, h) in items {
                    instances.push(self.resolve(py, lookup)?);
                    health.push(names.health(py, h));
                }
                let d = Py::new(
                    py,
                    PyDiscovery::new(
                        pyo3::types::PyTuple::new(py, instances)?.unbind(),
                        pyo3::types::PyTuple::new(py, health)?.unbind(),
                        panic,
                    ),
                )?;
                if let Some(k) = key {
                    let old = self.with(py, |st| st.store_discovery(k, all, d.clone_ref(py)))?;
                    drop(old);
                }
                Ok(d)
            }
        }
    }

    /// A worker-local picker for `service` (SPEC §5.2): picks without the
    /// registry's lock, which it takes only when the service changed. Make
    /// one per thread. With `zone`, `tags` or `meta` its picks draw from
    /// the candidates `pick` draws from with the same options.
    #[pyo3(signature = (service, *, zone=None, tags=None, meta=None))]
    fn picker(
        slf: &Bound<'_, Self>,
        service: &Bound<'_, PyAny>,
        zone: Option<&Bound<'_, PyAny>>,
        tags: Option<&Bound<'_, PyAny>>,
        meta: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyPicker> {
        let py = slf.py();
        let name = string(service, "service")?;
        let options = PickOptions {
            key: None,
            zone: opt_string(zone, "zone")?,
            filter: convert::filter(tags, meta)?,
        };
        let made = slf
            .get()
            .with(py, |st| st.reg.picker_with(&name, &options))?;
        let picker = errors::check(py, made)?;
        Ok(PyPicker::new(slf.clone().unbind(), picker))
    }

    /// Picks one instance of `service` (round robin unless `strategy` says
    /// otherwise) and returns it.
    #[pyo3(signature = (service, strategy=None, *, now=None, key=None, zone=None, tags=None, meta=None))]
    #[allow(clippy::too_many_arguments)]
    fn pick(
        &self,
        py: Python<'_>,
        service: &Bound<'_, PyAny>,
        strategy: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
        key: Option<&Bound<'_, PyAny>>,
        zone: Option<&Bound<'_, PyAny>>,
        tags: Option<&Bound<'_, PyAny>>,
        meta: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyInstance>> {
        Ok(self
            .pick_impl(py, service, strategy, key, zone, tags, meta, now)?
            .0)
    }

    /// Like `pick`, with the service's panic flag beside the instance.
    #[pyo3(signature = (service, strategy=None, *, now=None, key=None, zone=None, tags=None, meta=None))]
    #[allow(clippy::too_many_arguments)]
    fn pick_result(
        &self,
        py: Python<'_>,
        service: &Bound<'_, PyAny>,
        strategy: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
        key: Option<&Bound<'_, PyAny>>,
        zone: Option<&Bound<'_, PyAny>>,
        tags: Option<&Bound<'_, PyAny>>,
        meta: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyPickResult> {
        let (instance, panic) =
            self.pick_impl(py, service, strategy, key, zone, tags, meta, now)?;
        Ok(PyPickResult::new(py, instance, panic))
    }

    /// Advances the clock to `now` and returns the events that produced
    /// (GIL released while the core works).
    #[pyo3(signature = (*, now=None))]
    fn tick<'py>(
        &self,
        py: Python<'py>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let now = now_arg(py, now)?;
        let events = self.detached(py, |st| st.reg.tick(now))?;
        Self::events_list(py, events)
    }

    /// When advancing the clock would next change state (ms), or None.
    fn next_deadline(&self, py: Python<'_>) -> PyResult<Option<u64>> {
        self.with(py, |st| st.reg.next_deadline())
    }

    /// Ids of the instances whose active check is due (each is rescheduled).
    #[pyo3(signature = (*, now=None))]
    fn due_checks(&self, py: Python<'_>, now: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<String>> {
        let now = now_arg(py, now)?;
        self.with(py, |st| {
            st.reg
                .due_checks(now)
                .iter()
                .map(|s| s.to_string())
                .collect()
        })
    }

    /// Retained events with index greater than `after`.
    #[pyo3(signature = (after=None))]
    fn events_since<'py>(
        &self,
        py: Python<'py>,
        after: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let after = opt_uint(py, after, "after")?.unwrap_or(0);
        let events = self.with(py, |st| st.reg.events_since(after))?;
        Self::events_list(py, errors::check(py, events)?)
    }

    /// Index of the last change to a service or any of its instances.
    fn service_modify_index(&self, py: Python<'_>, service: &Bound<'_, PyAny>) -> PyResult<u64> {
        let name = string(service, "service")?;
        let r = self.with(py, |st| st.reg.service_modify_index(&name))?;
        errors::check(py, r)
    }

    /// Every metric in the Prometheus text format (GIL released).
    fn render_metrics(&self, py: Python<'_>) -> PyResult<String> {
        self.detached(py, |st| st.reg.render_metrics())
    }

    /// Per-service metrics as dicts, in service name order.
    fn service_metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let views = self.with(py, |st| st.reg.service_metrics())?;
        let list = PyList::empty(py);
        for v in views {
            let d = PyDict::new(py);
            d.set_item("service", &v.service)?;
            let instances = PyDict::new(py);
            for h in Health::ALL {
                instances.set_item(h.as_str(), v.instances[h as usize])?;
            }
            d.set_item("instances", instances)?;
            d.set_item("panic", v.panic)?;
            let picks = PyDict::new(py);
            for s in Strategy::ALL {
                picks.set_item(s.as_str(), v.counters.picks[s as usize])?;
            }
            let c = &v.counters;
            d.set_item("picks", picks)?;
            d.set_item("pick_failures", c.pick_failures)?;
            d.set_item("registrations", c.registrations)?;
            d.set_item("deregistrations", c.deregistrations)?;
            d.set_item("heartbeats", c.heartbeats)?;
            d.set_item("expiries", c.expiries)?;
            d.set_item("evictions", c.evictions)?;
            d.set_item("ejections", c.ejections)?;
            list.append(d)?;
        }
        Ok(list)
    }

    /// The configuration in force, as a dict of SPEC §4 keys.
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let text = self.with(py, |st| st.reg.config().to_json())?;
        wire_to_py(py, &text)
    }

    /// The registry clock: the latest `now` seen (ms).
    #[getter]
    fn clock(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, |st| st.reg.clock())
    }

    /// Index of the latest event (0 before any).
    #[getter]
    fn last_index(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, |st| st.reg.last_index())
    }

    /// Changes whenever an instance is added, removed or updated.
    #[getter]
    fn membership_epoch(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, |st| st.reg.membership_epoch())
    }

    /// Whether lease expiries are being held back.
    #[getter]
    fn in_self_preservation(&self, py: Python<'_>) -> PyResult<bool> {
        self.with(py, |st| st.reg.in_self_preservation())
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, |st| st.reg.len())
    }

    fn __contains__(&self, py: Python<'_>, id: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Ok(id) = id.cast::<PyString>() else {
            return Ok(false);
        };
        // No id holds a lone surrogate (it has no UTF-8 form): not there.
        let Ok(id) = id.to_cow() else {
            return Ok(false);
        };
        self.with(py, |st| st.reg.handle_of(&id).is_some())
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        self.with(py, |st| {
            format!(
                "Registry(instances={}, clock={}, last_index={})",
                st.reg.len(),
                st.reg.clock(),
                st.reg.last_index()
            )
        })
    }

    /// Pickling goes through a snapshot (`pickle`, `copy.deepcopy`).
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, (String,))> {
        let restore = slf.get_type().getattr("restore")?;
        Ok((restore, (slf.get().snapshot(slf.py())?,)))
    }

    /// An empty call into the extension: the floor every other call pays
    /// (benchmarks report it beside their figures).
    fn _noop(&self) {}

    /// The core's full consistency check of its internal indexes, for
    /// tests (adversarial and load): `None`, or what disagrees.
    fn _check_invariants(&self, py: Python<'_>) -> PyResult<Option<String>> {
        self.with(py, |st| st.reg.check_invariants().err())
    }
}
