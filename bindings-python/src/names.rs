//! The Python objects the binding hands out for core enums and errors,
//! imported once from the facade's pure-Python modules.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyString, PyType};
use waypost::{CheckStatus, EventKind, Health, Strategy};

pub(crate) struct Names {
    /// Exception classes by `ErrorCode as usize - 1`.
    pub errors: Vec<Py<PyType>>,
    /// `Health` members by `Health as usize`.
    pub health: Vec<Py<PyAny>>,
    /// `CheckStatus` members by `CheckStatus as usize`.
    pub check: Vec<Py<PyAny>>,
    /// `EventType` members by `EventKind as usize`.
    pub event: Vec<Py<PyAny>>,
    /// `Strategy` members by `Strategy as usize`.
    pub strategy: Vec<Py<PyAny>>,
    /// Interned strategy names by `Strategy as usize` (string literals in
    /// Python code are the same objects, so a pointer compare finds them).
    pub strategy_str: Vec<Py<PyString>>,
}

static NAMES: PyOnceLock<Names> = PyOnceLock::new();

fn members<'py>(
    enum_class: &Bound<'py, PyAny>,
    values: impl Iterator<Item = &'static str>,
) -> PyResult<Vec<Py<PyAny>>> {
    values
        .map(|v| enum_class.call1((v,)).map(Bound::unbind))
        .collect()
}

pub(crate) fn init(py: Python<'_>) -> PyResult<()> {
    let enums = py.import("waypost._enums")?;
    let errors = py.import("waypost._errors")?;
    let by_code = errors.getattr("BY_CODE")?;
    let mut error_classes = Vec::new();
    for code in waypost::ErrorCode::ALL {
        let class = by_code.get_item(code as usize - 1)?;
        let class = class.cast_into::<PyType>()?;
        // scripts/gen writes the classes from the core's list; a stale
        // file still fails here, on import, rather than mapping codes wrongly.
        if class.getattr("code")?.extract::<String>()? != code.as_str() {
            return Err(pyo3::exceptions::PyImportError::new_err(format!(
                "waypost._errors.BY_CODE does not follow the core's error codes at `{code}`"
            )));
        }
        error_classes.push(class.unbind());
    }
    let names = Names {
        errors: error_classes,
        health: members(&enums.getattr("Health")?, Health::NAMES.into_iter())?,
        check: members(
            &enums.getattr("CheckStatus")?,
            CheckStatus::NAMES.into_iter(),
        )?,
        event: members(&enums.getattr("EventType")?, EventKind::NAMES.into_iter())?,
        strategy: members(&enums.getattr("Strategy")?, Strategy::NAMES.into_iter())?,
        strategy_str: Strategy::NAMES
            .iter()
            .map(|s| PyString::intern(py, s).unbind())
            .collect(),
    };
    let _ = NAMES.set(py, names);
    Ok(())
}

pub(crate) fn get(py: Python<'_>) -> &Names {
    match NAMES.get(py) {
        Some(n) => n,
        // `init` runs when the module is imported, before any class exists.
        None => unreachable!("waypost._waypost used before its module was initialised"),
    }
}

impl Names {
    pub fn health<'py>(&self, py: Python<'py>, h: Health) -> Bound<'py, PyAny> {
        self.health[h as usize].bind(py).clone()
    }
    pub fn check<'py>(&self, py: Python<'py>, c: CheckStatus) -> Bound<'py, PyAny> {
        self.check[c as usize].bind(py).clone()
    }
    pub fn event<'py>(&self, py: Python<'py>, k: EventKind) -> Bound<'py, PyAny> {
        self.event[k as usize].bind(py).clone()
    }
}
