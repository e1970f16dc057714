//! The mutable state behind one Python `Registry`: the core registry plus
//! the Python objects handed out for it, kept by the core's host caches
//! under their rule (SPEC §5.4): instance objects by handle slot, and the
//! last unfiltered discover answer per (service, all).

use pyo3::prelude::*;
use pyo3::types::PyString;
use waypost::{
    DiscoverAnswers, DiscoverStamp, Handle, InstanceObjects, InstanceSpec, InstanceStamp, Registry,
    ServiceRef,
};

use crate::objects::{PyDiscovery, PyInstance};

pub(crate) struct State {
    pub reg: Registry,
    /// The service object of the last fast-path pick and its reference:
    /// callers usually pass the same (interned) string every time.
    pub last_service: Option<(Py<PyString>, ServiceRef)>,
    instances: InstanceObjects<Py<PyInstance>>,
    discoveries: DiscoverAnswers<Py<PyDiscovery>>,
}

/// An instance object to build outside the lock (building Python objects
/// can run arbitrary Python code through the garbage collector).
pub(crate) struct Pending {
    stamp: InstanceStamp,
    spec: InstanceSpec,
}

pub(crate) enum Lookup {
    Hit(Py<PyInstance>),
    Miss(Box<Pending>),
}

impl State {
    pub fn new(reg: Registry) -> State {
        State {
            reg,
            last_service: None,
            instances: InstanceObjects::default(),
            discoveries: DiscoverAnswers::default(),
        }
    }

    /// The kept object of a live handle, or what is needed to build it.
    /// `None` when the handle no longer names an instance.
    #[inline]
    pub fn lookup(&mut self, py: Python<'_>, handle: Handle) -> Option<Lookup> {
        if let Some(object) = self.instances.get(&self.reg, handle) {
            return Some(Lookup::Hit(object.clone_ref(py)));
        }
        let stamp = self.reg.instance_stamp(handle)?;
        let spec = self.reg.view_handle(handle)?.instance.to_spec();
        Some(Lookup::Miss(Box::new(Pending { stamp, spec })))
    }

    /// Keeps an object built for `pending`; returns the one replaced, for
    /// the caller to drop after releasing the lock.
    pub fn store(
        &mut self,
        py: Python<'_>,
        pending: &Pending,
        object: &Py<PyInstance>,
    ) -> Option<Py<PyInstance>> {
        self.instances.insert(pending.stamp, object.clone_ref(py))
    }

    /// The kept discover answer at `stamp` (`Registry::discover_stamp`).
    pub fn cached_discovery(
        &self,
        py: Python<'_>,
        stamp: DiscoverStamp,
        all: bool,
    ) -> Option<Py<PyDiscovery>> {
        self.discoveries.get(stamp, all).map(|d| d.clone_ref(py))
    }

    pub fn store_discovery(
        &mut self,
        stamp: DiscoverStamp,
        all: bool,
        object: Py<PyDiscovery>,
    ) -> Option<Py<PyDiscovery>> {
        self.discoveries.insert(stamp, all, object)
    }
}

impl Pending {
    pub fn build(self: Box<Self>, py: Python<'_>) -> PyResult<(Box<Self>, Py<PyInstance>)> {
        let spec = self.spec.clone();
        let object = Py::new(py, PyInstance::new(py, spec, self.stamp.handle())?)?;
        Ok((self, object))
    }
}
