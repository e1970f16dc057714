//! The mutable state behind one Python `Registry`: the core registry plus
//! host-side caches of the Python objects handed out for it.
//!
//! Instance objects are cached by handle slot and stay valid while the
//! core's `membership_epoch` is unchanged; after a change an entry is kept
//! when its slot generation and revision still match. Unfiltered discover
//! answers are cached per (service, all) and stay valid while the
//! service's modify index, the membership epoch and the panic flag are
//! unchanged (every health change bumps the service's modify index).

use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::PyString;
use waypost::{Handle, InstanceSpec, Registry, ServiceRef};

use crate::objects::{PyDiscovery, PyInstance};

struct CachedInstance {
    generation: u32,
    revision: u64,
    epoch: u64,
    object: Py<PyInstance>,
}

/// The validity key of a cached discover answer.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct DiscoveryKey {
    pub epoch: u64,
    pub modify_index: u64,
    pub panic: bool,
}

/// A discover answer and the key it is valid for.
type CachedDiscovery = (DiscoveryKey, Py<PyDiscovery>);

pub(crate) struct State {
    pub reg: Registry,
    /// The service object of the last fast-path pick and its reference:
    /// callers usually pass the same (interned) string every time.
    pub last_service: Option<(Py<PyString>, ServiceRef)>,
    instances: Vec<Option<CachedInstance>>,
    discoveries: HashMap<String, [Option<CachedDiscovery>; 2]>,
}

/// An instance object to build outside the lock (building Python objects
/// can run arbitrary Python code through the garbage collector).
pub(crate) struct Pending {
    handle: Handle,
    revision: u64,
    epoch: u64,
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
            instances: Vec::new(),
            discoveries: HashMap::new(),
        }
    }

    /// The cached object of a live handle, or what is needed to build it.
    /// `None` when the handle no longer names an instance.
    #[inline]
    pub fn lookup(&mut self, py: Python<'_>, handle: Handle) -> Option<Lookup> {
        let epoch = self.reg.membership_epoch();
        if let Some(Some(c)) = self.instances.get_mut(handle.index() as usize) {
            if c.generation == handle.generation() {
                if c.epoch == epoch {
                    return Some(Lookup::Hit(c.object.clone_ref(py)));
                }
                let view = self.reg.view_handle(handle)?;
                if view.status.revision == c.revision {
                    c.epoch = epoch;
                    return Some(Lookup::Hit(c.object.clone_ref(py)));
                }
            }
        }
        let view = self.reg.view_handle(handle)?;
        Some(Lookup::Miss(Box::new(Pending {
            handle,
            revision: view.status.revision,
            epoch,
            spec: view.instance.to_spec(),
        })))
    }

    /// Remembers an object built for `pending`; returns the one replaced,
    /// for the caller to drop after releasing the lock.
    pub fn store(
        &mut self,
        py: Python<'_>,
        pending: &Pending,
        object: &Py<PyInstance>,
    ) -> Option<Py<PyInstance>> {
        let index = pending.handle.index() as usize;
        if self.instances.len() <= index {
            self.instances.resize_with(index + 1, || None);
        }
        let old = self.instances[index].replace(CachedInstance {
            generation: pending.handle.generation(),
            revision: pending.revision,
            epoch: pending.epoch,
            object: object.clone_ref(py),
        });
        old.map(|c| c.object)
    }

    pub fn cached_discovery(
        &self,
        py: Python<'_>,
        service: &str,
        all: bool,
        key: DiscoveryKey,
    ) -> Option<Py<PyDiscovery>> {
        match self.discoveries.get(service) {
            Some(slots) => match &slots[usize::from(all)] {
                Some((k, d)) if *k == key => Some(d.clone_ref(py)),
                _ => None,
            },
            None => None,
        }
    }

    pub fn store_discovery(
        &mut self,
        service: String,
        all: bool,
        key: DiscoveryKey,
        object: Py<PyDiscovery>,
    ) -> Option<Py<PyDiscovery>> {
        let slots = self.discoveries.entry(service).or_default();
        slots[usize::from(all)]
            .replace((key, object))
            .map(|(_, d)| d)
    }
}

impl Pending {
    pub fn build(self: Box<Self>, py: Python<'_>) -> PyResult<(Box<Self>, Py<PyInstance>)> {
        let spec = self.spec.clone();
        let object = Py::new(py, PyInstance::new(py, spec, self.handle)?)?;
        Ok((self, object))
    }
}
