//! `waypost.Picker`: a worker-local picker (SPEC §5.2). A pick reads only
//! the picker and its table; the registry's lock is taken when the service
//! changed (or outcomes are due) and on the first pick of each instance
//! after a change, to build its Python object.

use pyo3::prelude::*;
use pyo3::types::PyString;
use waypost::{Handle, Picker};

use crate::convert::{self, now as now_arg, opt_string, uint};
use crate::errors;
use crate::objects::{PyInstance, PyPickResult};
use crate::registry::PyRegistry;

/// A picker for one service, made by `Registry.picker(service)`. Use one
/// per thread: a pick takes no lock and releases no GIL (it is shorter
/// than either); refreshing after a change takes the registry's lock with
/// the GIL released while it waits.
#[pyclass(module = "waypost", name = "Picker")]
pub struct PyPicker {
    registry: Py<PyRegistry>,
    picker: Picker,
    /// Instance objects of this picker's table by slot (membership epoch).
    epoch: u64,
    instances: Vec<Option<(u64, Py<PyInstance>)>>,
}

impl PyPicker {
    pub(crate) fn new(registry: Py<PyRegistry>, picker: Picker) -> PyPicker {
        PyPicker {
            registry,
            picker,
            epoch: u64::MAX,
            instances: Vec::new(),
        }
    }

    fn refresh(&mut self, py: Python<'_>, now: u64) -> PyResult<()> {
        let picker = &mut self.picker;
        let done = self
            .registry
            .get()
            .with(py, |st| st.reg.refresh_picker(picker, now))?;
        errors::check(py, done)
    }

    fn pick_impl(
        &mut self,
        py: Python<'_>,
        strategy: Option<&Bound<'_, PyAny>>,
        key: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(Py<PyInstance>, bool)> {
        let strategy = convert::strategy(py, strategy)?;
        let now = now_arg(py, now)?;
        let key = opt_string(key, "key")?;
        for _ in 0..8 {
            if self.picker.needs_refresh(now) {
                self.refresh(py, now)?;
            }
            let picked = errors::check(py, self.picker.pick(strategy, key.as_deref()))?;
            if let Some(object) = self.instance(py, picked.handle)? {
                return Ok((object, picked.panic));
            }
            // Removed between the table's publication and this lookup:
            // refresh and pick again.
            self.refresh(py, now)?;
        }
        Err(errors::map(
            py,
            waypost::Error::NotFound {
                id: "<picked instance>".into(),
            },
        ))
    }

    /// The instance object of a picked handle: from this picker's cache
    /// while its table's membership epoch holds, else from the registry.
    fn instance(&mut self, py: Python<'_>, handle: Handle) -> PyResult<Option<Py<PyInstance>>> {
        let epoch = self.picker.table().membership_epoch();
        let slot = handle.index() as usize;
        let bits = handle.to_bits();
        if epoch == self.epoch {
            if let Some(Some((h, object))) = self.instances.get(slot) {
                if *h == bits {
                    return Ok(Some(object.clone_ref(py)));
                }
            }
        } else {
            self.instances.clear();
            self.epoch = epoch;
        }
        let registry = self.registry.get();
        let lookup = registry.with(py, |st| st.lookup(py, handle))?;
        if lookup.is_none() {
            return Ok(None);
        }
        let object = registry.resolve(py, lookup)?;
        if slot >= self.instances.len() {
            self.instances.resize_with(slot + 1, || None);
        }
        if let Some(entry) = self.instances.get_mut(slot) {
            *entry = Some((bits, object.clone_ref(py)));
        }
        Ok(Some(object))
    }
}

/// A handle: an `Instance` or its `handle` integer.
fn handle_arg(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<Handle> {
    if let Ok(instance) = obj.cast::<PyInstance>() {
        return Ok(Handle::from_bits(instance.get().handle_bits()));
    }
    if obj.is_instance_of::<PyString>() {
        return Err(pyo3::exceptions::PyTypeError::new_err(
            "instance: expected an Instance or its handle, not an id",
        ));
    }
    Ok(Handle::from_bits(uint(py, obj, "instance")?))
}

#[pymethods]
impl PyPicker {
    /// Picks one instance (round robin unless `strategy` says otherwise);
    /// `key` is required for consistent hashing.
    #[pyo3(signature = (strategy=None, *, now=None, key=None))]
    fn pick(
        &mut self,
        py: Python<'_>,
        strategy: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
        key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyInstance>> {
        Ok(self.pick_impl(py, strategy, key, now)?.0)
    }

    /// Like `pick`, with the service's panic flag beside the instance.
    #[pyo3(signature = (strategy=None, *, now=None, key=None))]
    fn pick_result(
        &mut self,
        py: Python<'_>,
        strategy: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
        key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyPickResult> {
        let (instance, panic) = self.pick_impl(py, strategy, key, now)?;
        Ok(PyPickResult::new(instance, panic))
    }

    /// Records a call's outcome for outlier detection; it reaches the
    /// registry within 64 outcomes or 100 ms, at a later call.
    #[pyo3(signature = (instance, success, *, now=None))]
    fn report_outcome(
        &mut self,
        py: Python<'_>,
        instance: &Bound<'_, PyAny>,
        success: &Bound<'_, PyAny>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let handle = handle_arg(py, instance)?;
        let success = convert::boolean(success, "success")?;
        let now = now_arg(py, now)?;
        if self.picker.report_outcome(handle, success, now) {
            self.refresh(py, now)?;
        }
        Ok(())
    }

    /// Marks a call as started (`least_request`): every picker of the
    /// registry sees the count at once. `NotFoundError` when the instance is
    /// not a member in this picker's table.
    fn begin(&self, py: Python<'_>, instance: &Bound<'_, PyAny>) -> PyResult<()> {
        let handle = handle_arg(py, instance)?;
        if self.picker.begin(handle) {
            Ok(())
        } else {
            Err(not_member(py, handle))
        }
    }

    /// Marks a call as finished.
    fn end(&self, py: Python<'_>, instance: &Bound<'_, PyAny>) -> PyResult<()> {
        let handle = handle_arg(py, instance)?;
        if self.picker.end(handle) {
            Ok(())
        } else {
            Err(not_member(py, handle))
        }
    }

    /// Its number in the registry (with the seed, it fixes its sequences).
    #[getter]
    fn number(&self) -> u64 {
        self.picker.number()
    }

    fn __repr__(&self) -> String {
        format!("Picker(number={})", self.picker.number())
    }
}

fn not_member(py: Python<'_>, handle: Handle) -> PyErr {
    errors::map(
        py,
        waypost::Error::NotFound {
            id: format!("#{}", handle.to_bits()),
        },
    )
}
