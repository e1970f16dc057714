//! Argument conversions: Python values in, core values out. A value of the
//! wrong Python type is a `TypeError`; a value of the right type but outside
//! what the core's type can hold is `InvalidArgumentError` naming the field.

use std::time::{SystemTime, UNIX_EPOCH};

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyMapping, PyString, PyTuple};
use waypost::json::{Json, Number, MAX_DEPTH};
use waypost::{
    CheckStatus, Filter, InstanceKind, InstanceSpec, Strategy, INSTANCE_FIELDS, INSTANCE_KEYS,
};

use crate::errors;
use crate::names;

/// The host's wall clock in ms: what `now` means when the caller omits it.
/// (Only the binding reads a clock; the core never does.)
pub(crate) fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |n| n.to_string())
}

pub(crate) fn type_error(field: &str, want: &str, obj: &Bound<'_, PyAny>) -> PyErr {
    PyTypeError::new_err(format!("{field} must be {want}, not {}", type_name(obj)))
}

/// `now`, defaulting to the wall clock.
#[inline]
pub(crate) fn now(py: Python<'_>, obj: Option<&Bound<'_, PyAny>>) -> PyResult<u64> {
    match obj {
        None => Ok(wall_clock_ms()),
        Some(o) if o.is_none() => Ok(wall_clock_ms()),
        Some(o) => uint(py, o, "now"),
    }
}

/// A non-negative integer that fits in u64.
#[inline]
pub(crate) fn uint(py: Python<'_>, obj: &Bound<'_, PyAny>, field: &str) -> PyResult<u64> {
    if obj.is_exact_instance_of::<PyInt>() {
        if let Ok(n) = obj.extract::<i64>() {
            if n >= 0 {
                return Ok(n as u64);
            }
        }
    }
    if obj.is_instance_of::<PyBool>() || !obj.is_instance_of::<PyInt>() {
        return Err(type_error(field, "int", obj));
    }
    // i64 first: on 64-bit CPython that is `PyLong_AsLong`, much cheaper
    // than the byte-array path behind `PyLong_AsUnsignedLongLong`.
    match obj.extract::<i64>() {
        Ok(n) if n >= 0 => return Ok(n as u64),
        Ok(_) => {}
        Err(_) => {
            if let Ok(n) = obj.extract::<u64>() {
                return Ok(n);
            }
        }
    }
    Err(errors::invalid(
        py,
        field,
        format!("{obj} is outside 0..=18446744073709551615"),
    ))
}

/// An integer the binding itself stored (a cached handle or reference).
#[inline]
pub(crate) fn stored_u64(obj: &Bound<'_, PyAny>) -> PyResult<u64> {
    match obj.extract::<i64>() {
        Ok(n) => Ok(n as u64),
        Err(_) => obj.extract::<u64>(),
    }
}

/// A non-negative integer that fits in `T`.
pub(crate) fn uint_as<T: TryFrom<u64>>(
    py: Python<'_>,
    obj: &Bound<'_, PyAny>,
    field: &str,
) -> PyResult<T> {
    let n = uint(py, obj, field)?;
    T::try_from(n).map_err(|_| errors::invalid(py, field, format!("{n} is too large")))
}

pub(crate) fn opt_uint(
    py: Python<'_>,
    obj: Option<&Bound<'_, PyAny>>,
    field: &str,
) -> PyResult<Option<u64>> {
    match obj {
        Some(o) if !o.is_none() => uint(py, o, field).map(Some),
        _ => Ok(None),
    }
}

pub(crate) fn string(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<String> {
    match obj.cast::<PyString>() {
        Ok(s) => utf8(s, field),
        Err(_) => Err(type_error(field, "str", obj)),
    }
}

/// A `str` as UTF-8. A `str` holding a lone surrogate (`"\ud800"`) has no
/// UTF-8 form: that is bad input (`InvalidArgumentError` naming the
/// field), not Python's `UnicodeEncodeError`.
pub(crate) fn utf8(s: &Bound<'_, PyString>, field: &str) -> PyResult<String> {
    match s.to_cow() {
        Ok(text) => Ok(text.into_owned()),
        Err(_) => Err(errors::invalid(
            s.py(),
            field,
            "contains a lone surrogate (not valid UTF-8)",
        )),
    }
}

pub(crate) fn opt_string(obj: Option<&Bound<'_, PyAny>>, field: &str) -> PyResult<Option<String>> {
    match obj {
        Some(o) if !o.is_none() => string(o, field).map(Some),
        _ => Ok(None),
    }
}

pub(crate) fn boolean(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<bool> {
    match obj.cast::<PyBool>() {
        Ok(b) => Ok(b.is_true()),
        Err(_) => Err(type_error(field, "bool", obj)),
    }
}

/// A strategy: a `Strategy` member or its name; omitted means round robin.
#[inline]
pub(crate) fn strategy(py: Python<'_>, obj: Option<&Bound<'_, PyAny>>) -> PyResult<Strategy> {
    let Some(obj) = obj else {
        return Ok(Strategy::RoundRobin);
    };
    let names = names::get(py);
    let ptr = obj.as_ptr();
    for (i, (member, text)) in names.strategy.iter().zip(&names.strategy_str).enumerate() {
        if member.as_ptr() == ptr || text.as_ptr() == ptr {
            return Ok(Strategy::ALL[i]);
        }
    }
    let text = string(obj, "strategy")?;
    errors::check(py, text.parse())
}

/// A check result: a `CheckStatus` member or its name.
pub(crate) fn check_status(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<CheckStatus> {
    let text = string(obj, "status")?;
    errors::check(py, text.parse())
}

/// A sequence of strings (a lone `str` is refused: it would be read as
/// its characters).
pub(crate) fn string_list(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Vec<String>> {
    if obj.is_instance_of::<PyString>() {
        return Err(type_error(field, "a sequence of str", obj));
    }
    let iter = obj
        .try_iter()
        .map_err(|_| type_error(field, "a sequence of str", obj))?;
    iter.map(|item| string(&item?, field)).collect()
}

/// A mapping of strings to strings, in the mapping's order.
pub(crate) fn string_map(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Vec<(String, String)>> {
    let mapping = obj
        .cast::<PyMapping>()
        .map_err(|_| type_error(field, "a mapping of str to str", obj))?;
    let mut out = Vec::new();
    for item in mapping.items()?.iter() {
        let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
        out.push((string(&k, field)?, string(&v, field)?));
    }
    Ok(out)
}

/// An instance spec from `register`'s arguments, one per field of the
/// core's table that a host registers, in its order (`None`: not given). Each is converted by the
/// field's kind (a wrong Python type is a `TypeError`) and set through the
/// core, which checks the rest. `None` given for an optional field is as if
/// not given; for a required one it is the wrong type.
pub(crate) fn instance_spec(
    py: Python<'_>,
    args: [Option<&Bound<'_, PyAny>>; INSTANCE_KEYS.len()],
) -> PyResult<InstanceSpec> {
    let mut spec = InstanceSpec::new(String::new(), String::new(), String::new(), 0);
    // The fields a host registers come first in the table; the read-only
    // ones after them have no argument.
    for (field, arg) in INSTANCE_FIELDS.iter().zip(args) {
        let Some(obj) = arg.filter(|o| field.is_required() || !o.is_none()) else {
            continue;
        };
        let key = field.key;
        let value = match field.kind {
            InstanceKind::Str => Json::String(string(obj, key)?),
            InstanceKind::StrList => Json::Array(
                string_list(obj, key)?
                    .into_iter()
                    .map(Json::String)
                    .collect(),
            ),
            InstanceKind::StrMap => Json::Object(
                string_map(obj, key)?
                    .into_iter()
                    .map(|(k, v)| (k, Json::String(v)))
                    .collect(),
            ),
            _ => Json::from(uint(py, obj, key)?),
        };
        errors::check(py, spec.set(key, &value))?;
    }
    Ok(spec)
}

pub(crate) fn filter(
    tags: Option<&Bound<'_, PyAny>>,
    meta: Option<&Bound<'_, PyAny>>,
) -> PyResult<Filter> {
    let mut f = Filter::default();
    if let Some(t) = tags.filter(|t| !t.is_none()) {
        f.tags = string_list(t, "tags")?;
    }
    if let Some(m) = meta.filter(|m| !m.is_none()) {
        f.meta = string_map(m, "meta")?;
    }
    Ok(f)
}

/// A wire form the core wrote, as the matching Python object: the core's
/// writer, its reader, then [`json_to_py`], so every binding hands out the
/// same members, in the same order, with the same value types.
pub(crate) fn wire_to_py<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    match Json::parse(text) {
        Ok(value) => json_to_py(py, &value),
        Err(e) => Err(PyRuntimeError::new_err(format!(
            "waypost: internal error (the core wrote unreadable JSON: {e}); please report it"
        ))),
    }
}

/// A JSON value as the matching Python object: integers as `int`, other
/// numbers as `float`, objects as dicts in member order.
fn json_to_py<'py>(py: Python<'py>, value: &Json) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Json::Null => py.None().into_bound(py),
        Json::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Json::Number(Number::UInt(u)) => u.into_pyobject(py)?.into_any(),
        Json::Number(Number::Int(i)) => i.into_pyobject(py)?.into_any(),
        Json::Number(Number::Float(f)) => PyFloat::new(py, *f).into_any(),
        Json::String(s) => PyString::new(py, s).into_any(),
        Json::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_to_py(py, item)?)?;
            }
            list.into_any()
        }
        Json::Object(members) => {
            let dict = PyDict::new(py);
            for (k, v) in members {
                dict.set_item(k, json_to_py(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

/// A Python value made of dicts, lists, tuples, str, int, float, bool and
/// None, as JSON (for specs given as mappings).
///
/// Nesting stops at the core's JSON limit, so a cyclic list or dict (or a
/// very deep one) is `InvalidArgumentError`, not a stack overflow.
pub(crate) fn py_to_json(py: Python<'_>, obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Json> {
    json_at(py, obj, field, 0)
}

/// [`py_to_json`] at nesting `depth`.
fn json_at(py: Python<'_>, obj: &Bound<'_, PyAny>, field: &str, depth: usize) -> PyResult<Json> {
    if depth > MAX_DEPTH {
        return Err(errors::invalid(
            py,
            field,
            format!("nested deeper than {MAX_DEPTH} levels (or cyclic)"),
        ));
    }
    if obj.is_none() {
        return Ok(Json::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Json::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Json::from(u));
        }
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Json::from(i));
        }
        return Err(errors::invalid(
            py,
            field,
            format!("{obj} does not fit in 64 bits"),
        ));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        let f = f.value();
        if !f.is_finite() {
            return Err(errors::invalid(py, field, "must be a finite number"));
        }
        return Ok(Json::from(f));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Json::String(utf8(s, field)?));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut items = Vec::new();
        for item in obj.try_iter()? {
            items.push(json_at(py, &item?, field, depth + 1)?);
        }
        return Ok(Json::Array(items));
    }
    if let Ok(mapping) = obj.cast::<PyMapping>() {
        return Ok(Json::Object(object_at(py, mapping, field, depth + 1)?));
    }
    Err(type_error(
        field,
        "JSON-like data (dict, list, str, int, float, bool, None)",
        obj,
    ))
}

pub(crate) fn json_object(
    py: Python<'_>,
    mapping: &Bound<'_, PyMapping>,
    field: &str,
) -> PyResult<Vec<(String, Json)>> {
    object_at(py, mapping, field, 0)
}

fn object_at(
    py: Python<'_>,
    mapping: &Bound<'_, PyMapping>,
    field: &str,
    depth: usize,
) -> PyResult<Vec<(String, Json)>> {
    let mut map = Vec::new();
    for item in mapping.items()?.iter() {
        let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
        let key = string(&k, &format!("{field} key"))?;
        let value = json_at(py, &v, &key, depth)?;
        map.push((key, value));
    }
    Ok(map)
}
