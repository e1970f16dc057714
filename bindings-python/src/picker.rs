//! `waypost.Picker`: a worker-local picker (SPEC §5.2). A pick reads only
//! the picker and its table and returns the instance object cached for
//! that table position; the registry's lock is taken only when the service
//! changed (or outcomes are due). The object of a position is built, once
//! per instance revision, from the fields the table carries, so the pick
//! and its fields always come from the same table and no pick is repeated.

use std::cell::{Cell, UnsafeCell};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyString;
use waypost::{Handle, InstanceObjects, Picker};

use crate::convert::{self, now as now_arg, opt_string, uint};
use crate::errors;
use crate::objects::{PyInstance, PyPickResult};
use crate::registry::PyRegistry;

/// A picker for one service, made by `Registry.picker(service)`. Use one
/// per thread: a pick takes no lock and releases no GIL (it is shorter
/// than either); refreshing after a change takes the registry's lock with
/// the GIL released while it waits.
///
/// Frozen, with its state in an `UnsafeCell` behind a flag read and written
/// only with the GIL held: a pick then pays no atomic borrow check. The
/// flag stays set while a refresh waits for the registry with the GIL
/// released, so another thread calling the same picker meanwhile gets an
/// error instead of a second reference to the state. This relies on the
/// GIL: the module is built for the stable ABI, which free-threaded
/// CPython does not load.
#[pyclass(frozen, module = "waypost", name = "Picker")]
pub struct PyPicker {
    state: UnsafeCell<State>,
    busy: Cell<bool>,
}

// SAFETY: `state` and `busy` are only touched with the GIL held (see the
// type's documentation), and `state` only by the thread that set `busy`.
unsafe impl Sync for PyPicker {}

/// The picker's state, reached through [`PyPicker::enter`].
struct Entered<'a>(&'a PyPicker);

impl std::ops::Deref for Entered<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        // SAFETY: `busy` is set by this thread: no other reference exists.
        unsafe { &*self.0.state.get() }
    }
}

impl std::ops::DerefMut for Entered<'_> {
    fn deref_mut(&mut self) -> &mut State {
        // SAFETY: as in `deref`.
        unsafe { &mut *self.0.state.get() }
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        self.0.busy.set(false);
    }
}

impl PyPicker {
    pub(crate) fn new(registry: Py<PyRegistry>, picker: Picker) -> PyPicker {
        PyPicker {
            state: UnsafeCell::new(State::new(registry, picker)),
            busy: Cell::new(false),
        }
    }

    /// The state, for this call; an error while another call (on another
    /// thread, waiting for the registry) holds it.
    #[inline(always)]
    fn enter(&self, _py: Python<'_>) -> PyResult<Entered<'_>> {
        if self.busy.get() {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "this Picker is in use by another thread (use one picker per thread)",
            ));
        }
        self.busy.set(true);
        Ok(Entered(self))
    }
}

/// What a picker holds.
pub(crate) struct State {
    registry: Py<PyRegistry>,
    picker: Picker,
    /// The id of the table `by_position` belongs to.
    table: u64,
    /// Instance objects of that table, by candidate position.
    by_position: Vec<Option<Py<PyInstance>>>,
    /// `PickResult` objects of that table, by candidate position (the
    /// panic flag is the table's).
    results: Vec<Option<Py<PyPickResult>>>,
    /// Instance objects by slot, under the core's rule (SPEC §5.4): carried
    /// from table to table while the instance is unchanged.
    by_slot: InstanceObjects<Py<PyInstance>>,
}

impl State {
    fn new(registry: Py<PyRegistry>, picker: Picker) -> State {
        State {
            registry,
            picker,
            table: 0,
            by_position: Vec::new(),
            results: Vec::new(),
            by_slot: InstanceObjects::default(),
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
        let (Some(stamp), Some(instance)) = (table.stamp(position), table.instance(position))
        else {
            return Err(errors::map(
                py,
                waypost::Error::NotFound {
                    id: "<picked instance>".into(),
                },
            ));
        };
        let object = match self.by_slot.get_at(stamp) {
            Some(object) => object.clone_ref(py),
            None => {
                let object = Py::new(py, PyInstance::new(py, instance.to_spec(), stamp.handle())?)?;
                drop(self.by_slot.insert(stamp, object.clone_ref(py)));
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
        &self,
        py: Python<'_>,
        strategy: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
        key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyInstance>> {
        self.enter(py)?.pick(py, strategy, now, key)
    }

    /// Like `pick`, with the service's panic flag beside the instance.
    #[pyo3(signature = (strategy=None, *, now=None, key=None))]
    fn pick_result(
        &self,
        py: Python<'_>,
        strategy: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
        key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyPickResult>> {
        self.enter(py)?.pick_result(py, strategy, now, key)
    }

    /// Records a call's outcome for outlier detection; it reaches the
    /// registry within 64 outcomes or 100 ms, at a later call.
    #[pyo3(signature = (instance, success, *, now=None))]
    fn report_outcome(
        &self,
        py: Python<'_>,
        instance: &Bound<'_, PyAny>,
        success: &Bound<'_, PyAny>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.enter(py)?.report_outcome(py, instance, success, now)
    }

    /// Marks a call as started (`least_request`): every picker of the
    /// registry sees the count at once. `NotFoundError` when the instance is
    /// not a member in this picker's table.
    fn begin(&self, py: Python<'_>, instance: &Bound<'_, PyAny>) -> PyResult<()> {
        self.enter(py)?.begin(py, instance)
    }

    /// Marks a call as finished.
    fn end(&self, py: Python<'_>, instance: &Bound<'_, PyAny>) -> PyResult<()> {
        self.enter(py)?.end(py, instance)
    }

    /// An empty call that takes `pick`'s arguments: the floor of a pick
    /// with pyo3's argument handling in it (benchmarks report it beside
    /// `Registry._noop`).
    #[pyo3(signature = (strategy=None, *, now=None, key=None))]
    fn _noop(
        &self,
        strategy: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
        key: Option<&Bound<'_, PyAny>>,
    ) {
        let _ = (strategy, now, key);
    }

    /// Its number in the registry (with the seed, it fixes its sequences).
    #[getter]
    fn number(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(self.enter(py)?.number())
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self.enter(py)?.__repr__())
    }
}

impl State {
    /// Picks one instance (round robin unless `strategy` says otherwise);
    /// `key` is required for consistent hashing.
    pub(crate) fn pick(
        &mut self,
        py: Python<'_>,
        strategy: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
        key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyInstance>> {
        Ok(self.pick_impl(py, strategy, key, now)?.0)
    }

    /// Like `pick`, with the service's panic flag beside the instance.
    pub(crate) fn pick_result(
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
    pub(crate) fn report_outcome(
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
    pub(crate) fn begin(&self, py: Python<'_>, instance: &Bound<'_, PyAny>) -> PyResult<()> {
        let handle = handle_arg(py, instance)?;
        if self.picker.begin(handle) {
            Ok(())
        } else {
            Err(not_member(py, handle))
        }
    }

    /// Marks a call as finished.
    pub(crate) fn end(&self, py: Python<'_>, instance: &Bound<'_, PyAny>) -> PyResult<()> {
        let handle = handle_arg(py, instance)?;
        if self.picker.end(handle) {
            Ok(())
        } else {
            Err(not_member(py, handle))
        }
    }

    /// Its number in the registry (with the seed, it fixes its sequences).
    pub(crate) fn number(&self) -> u64 {
        self.picker.number()
    }

    pub(crate) fn __repr__(&self) -> String {
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

/// `Picker.pick` and `Picker.pick_result` as `METH_FASTCALL |
/// METH_KEYWORDS` methods, installed over the ones pyo3 generates: under
/// the limited API pyo3 matches each keyword by comparing its UTF-8 bytes,
/// which cost more than the pick itself. These match `now`, `key` and
/// `strategy` by the interned name objects Python passes (falling back to
/// comparing the text), and then do exactly what the pyo3 methods do.
pub(crate) fn install_fast_methods(ty: &Bound<'_, pyo3::types::PyType>) -> PyResult<()> {
    for (slot, name) in ARG_NAMES.iter().zip(["strategy", "now", "key"]) {
        let interned = pyo3::types::PyString::intern(ty.py(), name).unbind();
        slot.store(interned.into_ptr(), std::sync::atomic::Ordering::Relaxed);
    }
    let methods: [(
        &str,
        ffi::PyCFunctionFastWithKeywords,
        &'static std::ffi::CStr,
    ); 2] = [
        ("pick", pick_fast, PICK_DOC),
        ("pick_result", pick_result_fast, PICK_RESULT_DOC),
    ];
    for (name, meth, doc) in methods {
        let def: &'static mut ffi::PyMethodDef = Box::leak(Box::new(ffi::PyMethodDef {
            ml_name: Box::leak(std::ffi::CString::new(name)?.into_boxed_c_str()).as_ptr(),
            ml_meth: ffi::PyMethodDefPointer {
                PyCFunctionFastWithKeywords: meth,
            },
            ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
            ml_doc: doc.as_ptr(),
        }));
        // SAFETY: `ty` is a live type object and `def` lives for the process.
        let descr = unsafe {
            Bound::from_owned_ptr_or_err(ty.py(), ffi::PyDescr_NewMethod(ty.as_type_ptr(), def))
        }?;
        ty.setattr(name, descr)?;
    }
    Ok(())
}

const PICK_DOC: &std::ffi::CStr = c"pick($self, /, strategy=None, *, now=None, key=None)\n--\n\nPicks one instance (round robin unless `strategy` says otherwise);\n`key` is required for consistent hashing.";
const PICK_RESULT_DOC: &std::ffi::CStr = c"pick_result($self, /, strategy=None, *, now=None, key=None)\n--\n\nLike `pick`, with the service's panic flag beside the instance.";

/// The interned names `strategy`, `now` and `key` (kept alive for the
/// process): keywords written in Python source arrive as these objects.
static ARG_NAMES: [std::sync::atomic::AtomicPtr<ffi::PyObject>; 3] = [
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut()),
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut()),
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut()),
];

/// The `strategy`, `now` and `key` arguments of a vectorcall.
type PickArgs<'a, 'py> = [Option<Borrowed<'a, 'py, PyAny>>; 3];

/// Reads `(strategy=None, *, now=None, key=None)` from a vectorcall.
///
/// # Safety
/// `args` holds `nargs` positional arguments followed by one value per
/// name in `kwnames` (NULL or a tuple of str), as CPython passes them.
unsafe fn pick_args<'a, 'py>(
    py: Python<'py>,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> PyResult<PickArgs<'a, 'py>> {
    use pyo3::exceptions::PyTypeError;
    let mut out: PickArgs<'a, 'py> = [None, None, None];
    if nargs > 1 {
        return Err(PyTypeError::new_err(format!(
            "pick() takes at most 1 positional argument ({nargs} given)"
        )));
    }
    // SAFETY: as the caller's contract.
    let arg = |i: ffi::Py_ssize_t| unsafe { Borrowed::from_ptr(py, *args.offset(i)) };
    if nargs == 1 {
        out[0] = Some(arg(0));
    }
    if kwnames.is_null() {
        return Ok(out);
    }
    let interned: [*mut ffi::PyObject; 3] =
        std::array::from_fn(|i| ARG_NAMES[i].load(std::sync::atomic::Ordering::Relaxed));
    // SAFETY: `kwnames` is a tuple, as the caller's contract.
    let count = unsafe { ffi::PyTuple_Size(kwnames) };
    for i in 0..count {
        // SAFETY: `i` is within the tuple; the item is borrowed from it.
        let name = unsafe { Borrowed::from_ptr(py, ffi::PyTuple_GetItem(kwnames, i)) };
        let at = match interned.iter().position(|&n| n == name.as_ptr()) {
            Some(at) => Some(at),
            None => ["strategy", "now", "key"]
                .iter()
                .position(|n| name.eq(*n).unwrap_or(false)),
        };
        match at.and_then(|at| out.get_mut(at)) {
            Some(slot @ None) => *slot = Some(arg(nargs + i)),
            Some(Some(_)) => {
                return Err(PyTypeError::new_err(format!(
                    "pick() got multiple values for argument '{}'",
                    &*name
                )))
            }
            None => {
                return Err(PyTypeError::new_err(format!(
                    "pick() got an unexpected keyword argument '{}'",
                    &*name
                )))
            }
        }
    }
    Ok(out)
}

/// Runs `body` as a Python method: its error is raised, a panic becomes
/// `PanicException`.
///
/// # Safety
/// Called by CPython with the thread attached.
unsafe fn method(
    body: impl FnOnce(Python<'_>) -> PyResult<*mut ffi::PyObject>,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls methods with the thread attached.
    let py = unsafe { Python::assume_attached() };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(py)));
    let err = match outcome {
        Ok(Ok(object)) => return object,
        Ok(Err(err)) => err,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic in pick".to_owned());
            pyo3::panic::PanicException::new_err(message)
        }
    };
    err.restore(py);
    std::ptr::null_mut()
}

/// One of `Picker`'s fast methods of `(strategy=None, *, now=None,
/// key=None)`: the arguments read, the state entered, `call` made.
///
/// # Safety
/// CPython's vectorcall contract for `slf`, `args`, `nargs`, `kwnames`.
#[inline(always)]
unsafe fn fast_method(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
    call: impl FnOnce(
        &mut State,
        Python<'_>,
        PickArg<'_>,
        PickArg<'_>,
        PickArg<'_>,
    ) -> PyResult<*mut ffi::PyObject>,
) -> *mut ffi::PyObject {
    // SAFETY: as this function's contract.
    unsafe {
        method(|py| {
            let [strategy, now, key] = pick_args(py, args, nargs, kwnames)?;
            // The method descriptor checked that `slf` is a Picker.
            let this = Borrowed::from_ptr(py, slf).cast_unchecked::<PyPicker>();
            let mut state = this.get().enter(py)?;
            call(
                &mut state,
                py,
                strategy.as_deref(),
                now.as_deref(),
                key.as_deref(),
            )
        })
    }
}

type PickArg<'a> = Option<&'a Bound<'a, PyAny>>;

/// A `METH_FASTCALL | METH_KEYWORDS` entry point running `fast_method`.
macro_rules! fast_entry {
    ($name:ident, |$st:ident, $py:ident, $strategy:ident, $now:ident, $key:ident| $body:expr) => {
        unsafe extern "C" fn $name(
            slf: *mut ffi::PyObject,
            args: *const *mut ffi::PyObject,
            nargs: ffi::Py_ssize_t,
            kwnames: *mut ffi::PyObject,
        ) -> *mut ffi::PyObject {
            // SAFETY: CPython's vectorcall contract.
            unsafe {
                fast_method(
                    slf,
                    args,
                    nargs,
                    kwnames,
                    |$st, $py, $strategy, $now, $key| $body,
                )
            }
        }
    };
}

fast_entry!(pick_fast, |st, py, strategy, now, key| Ok(st
    .pick_impl(py, strategy, key, now)?
    .0
    .into_ptr()));
fast_entry!(pick_result_fast, |st, py, strategy, now, key| Ok(st
    .pick_result(py, strategy, now, key)?
    .into_ptr()));
