//! One gRPC unary call's HTTP/2 without I/O (`waypost._waypost.GrpcCall`,
//! SPEC §10.4): the core says what to send and reads the answer; the etcd
//! helpers (`waypost._grpc`) own the socket.

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use waypost::GrpcCall;

use crate::{convert, errors};

/// One gRPC unary call: send ``take_output()``, hand every read to
/// ``receive`` (``b""``: the server closed the connection) and send
/// ``take_output()`` after each, until the state is not ``"waiting"``.
#[pyclass(name = "GrpcCall", module = "waypost._waypost")]
pub(crate) struct PyGrpcCall {
    call: GrpcCall,
}

#[pymethods]
impl PyGrpcCall {
    /// A call of ``path`` at ``authority`` (``host:port``) over ``scheme``
    /// (``"http"`` or ``"https"``) with ``message``, the length-prefixed
    /// request; it fails once the answer exceeds ``max_answer`` bytes (0:
    /// 256 MiB, also the most). ``InvalidArgumentError`` for a bad value.
    #[new]
    #[pyo3(signature = (scheme, authority, path, message, max_answer = None))]
    fn new(
        py: Python<'_>,
        scheme: &Bound<'_, PyAny>,
        authority: &Bound<'_, PyAny>,
        path: &Bound<'_, PyAny>,
        message: &[u8],
        max_answer: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let scheme = convert::string(scheme, "scheme")?;
        let authority = convert::string(authority, "authority")?;
        let path = convert::string(path, "path")?;
        let max_answer = match max_answer {
            Some(n) => convert::uint_as::<usize>(py, n, "max_answer")?,
            None => 0,
        };
        let call = GrpcCall::new(&scheme, &authority, &path, message, max_answer);
        Ok(PyGrpcCall {
            call: errors::check(py, call)?,
        })
    }

    /// What to send now (``b""`` when nothing): the request, then the
    /// acknowledgements HTTP/2 asks for, after the answer a goodbye that
    /// may be dropped.
    fn take_output<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.call.take_output())
    }

    /// Reads what the server sent; answers the state.
    fn receive(&mut self, data: &[u8]) -> &'static str {
        self.call.receive(data).as_str()
    }

    /// ``"waiting"``, ``"answered"`` or ``"failed"``.
    #[getter]
    fn state(&self) -> &'static str {
        self.call.state().as_str()
    }

    /// The answer's DATA (the length-prefixed gRPC message); ``b""``
    /// unless answered.
    #[getter]
    fn answer<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.call.answer())
    }

    /// How the call failed (``""`` unless it failed).
    #[getter]
    fn failure(&self) -> &str {
        self.call.failure()
    }
}
