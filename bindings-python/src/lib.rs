//! Python bindings of the waypost core (pyo3): the extension module
//! `waypost._waypost`, wrapped by the pure-Python facade in `python/waypost`.
//!
//! Every function here converts its arguments, makes one call on the core
//! and passes errors through [`errors::map`]. The enums and exception
//! classes are defined once in Python (`waypost._enums`, `waypost._errors`,
//! written by scripts/gen from the core's name tables) and looked up here
//! at import time.

mod convert;
mod errors;
mod grpc;
mod names;
mod objects;
mod picker;
mod registry;
mod sources;
mod state;

use pyo3::prelude::*;

/// The extension module.
#[pymodule(name = "_waypost")]
fn waypost_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    names::init(m.py())?;
    m.add("__version__", waypost::VERSION)?;
    m.add("SNAPSHOT_FORMAT", waypost::SNAPSHOT_FORMAT)?;
    m.add_class::<registry::PyRegistry>()?;
    m.add_class::<picker::PyPicker>()?;
    picker::install_fast_methods(&m.py().get_type::<picker::PyPicker>())?;
    m.add_class::<objects::PyInstance>()?;
    m.add_class::<objects::PyInstanceView>()?;
    m.add_class::<objects::PyDiscovery>()?;
    m.add_class::<objects::PyPickResult>()?;
    m.add_class::<objects::PyEvent>()?;
    m.add_class::<grpc::PyGrpcCall>()?;
    m.add_function(wrap_pyfunction!(sources::consul_registration, m)?)?;
    Ok(())
}
