//! `waypost.Picker`: a worker-local picker (SPEC §5.2). A pick reads only
//! the picker and its table and returns the instance object cached for
//! that table position; the registry's lock is taken only when the service
//! changed (or outcomes are due). The object of a position is built, once
//! per instance revision, from the fields the table carries, so the pick
//! and its fields always come from the same table and no pick is repeated.

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
    /// The id of the table `by_position` belongs to.
    table: u64,
    /// Instance objects of that table, by candidate position.
    by_position: Vec<Option<Py<PyInstance>>>,
    /// `PickResult` objects of that table, by candidate position (the
    /// panic flag is the table's).
    results: Vec<Option<Py<PyPickResult>>>,
    /// Instance objects by slot with their handle and revision: carried
    /// from table to table while the instance is unchanged.
    by_slot: Vec<Option<(u64, u64, Py<PyInstance>)>>,
}

impl PyPicker {
    pub(crate) fn new(registry: Py<PyRegistry>, picker: Picker) -> PyPicker {
        PyPicker {
            registry,
            picker,
            table: 0,
            by_position: Vec::new(),
            results: Vec::new(),
            by_slot: Vec::new(),
        }
    }

    #[cold]
    #[inline(never)]
    fn refresh(&mut self, py: Python<'_>, now: u64) -> PyResult<()> {
        let picker = &mut self.picker;
        let done = self
            .registry
            .get()
            .with(py, |st| st.reg.refresh_picker(picker, now))?;
        errors::check(py, done)
    }

    #[inline]
    fn pick_impl(
        &mut self,
        py: Python<'_>,
        strategy: Option<&Bound<'_, PyAny>>,
        key: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(Py<PyInstance>, usize, bool)> {
        let strategy = convert::strategy(py, strategy)?;
        let now = now_arg(py, now)?;
        let key = opt_string(key, "key")?;
        if self.picker.needs_refresh(now) {
            self.refresh(py, now)?;
        }
        let picked = errors::check(py, self.picker.pick_entry(strategy, key.as_deref()))?;
        let (position, panic) = (picked.position, picked.pick.panic);
        if picked.table.id() == self.table {
            if let Some(Some(object)) = self.by_position.get(position) {
                return Ok((object.clone_ref(py), position, panic));
            }
        }
        Ok((self.build(py, position)?, position, panic))
    }

    /// The object of the candidate at `position` of the current table,
    /// from the slot cache or built from the table's fields.
    #[cold]
    #[inline(never)]
    fn build(&mut self, py: Python<'_>, position: usize) -> PyResult<Py<PyInstance>> {
        let table = self.picker.table();
        if table.id() != self.table {
            self.table = table.id();
            self.by_position.clear();
            self.by_position.resize_with(table.len(), || None);
            self.results.clear();
            self.results.resize_with(table.len(), || None);
        }
        let (Some(handle), Some(revision), Some(instance)) = (
            table.handle(position),
            table.revision(position),
            table.instance(position),
        ) else {
            return Err(errors::map(
                py,
                waypost::Error::NotFound {
                    id: "<picked instance>".into(),
                },
            ));
        };
        let slot = handle.index() as usize;
        let bits = handle.to_bits();
        let object = match self.by_slot.get(slot) {
            Some(Some((h, r, object))) if *h == bits && *r == revision => object.clone_ref(py),
            _ => {
                let object = Py::new(py, PyInstance::new(py, instance.to_spec(), handle)?)?;
                if slot >= self.by_slot.len() {
                    self.by_slot.resize_with(slot + 1, || None);
                }
                if let Some(entry) = self.by_slot.get_mut(slot) {
                    *entry = Some((bits, revision, object.clone_ref(py)));
                }
                object
            }
        };
        if let Some(entry) = self.by_position.get_mut(position) {
            *entry = Some(object.clone_ref(py));
        }
        Ok(object)
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
    ) -> PyResult<Py<PyPickResult>> {
        let (instance, position, panic) = self.pick_impl(py, strategy, key, now)?;
        // The result of a table position is the same object every time.
        if let Some(Some(result)) = self.results.get(position) {
            return Ok(result.clone_ref(py));
        }
        let result = Py::new(py, PyPickResult::new(py, instance, panic))?;
        if let Some(slot) = self.results.get_mut(position) {
            *slot = Some(result.clone_ref(py));
        }
        Ok(result)
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
