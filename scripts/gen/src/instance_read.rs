//! The instance's fields as a host reads them back, in the bindings: the Go
//! `Instance` and its reading from the wire form, the Python `Instance`
//! (and `InstanceView`'s read-only fields) with their stubs, and the
//! facade's frozen instance object. A field a host registers and may leave
//! unset reads as `None`/`null` (Go: its zero value); a read-only field the
//! registry sets lives on Python's `InstanceView`, and a JavaScript object
//! has it only when it is set.

use std::fmt::Write;

use waypost::{InstanceDefault, InstanceField, InstanceKind, INSTANCE_FIELDS};

use crate::instance::{go_type, is_duration, registered, GO_HEADER};
use crate::{comment, go_field, lower_camel, stub_property, Target, GOFMT};

const OBJECTS: &str = "bindings-python/src/objects.rs";
const STUB: &str = "bindings-python/python/waypost/_waypost.pyi";

/// The fields only the registry sets, in order.
fn read_only() -> impl Iterator<Item = &'static InstanceField> {
    INSTANCE_FIELDS.iter().filter(|f| f.read_only)
}

/// Whether reading the field may find it unset.
fn optional(f: &InstanceField) -> bool {
    f.default == InstanceDefault::Unset
}

fn is_integer(f: &InstanceField) -> bool {
    f.kind.max() > 0
}

pub fn outputs() -> Vec<(Target, String)> {
    vec![
        (
            Target::File("bindings-c/go/instance_fields.go", Some(GOFMT)),
            go(),
        ),
        (
            Target::Region(OBJECTS, "Instance members"),
            python_members(),
        ),
        (Target::Region(OBJECTS, "Instance values"), python_values()),
        (
            Target::Region(OBJECTS, "Instance getters"),
            python_getters(),
        ),
        (
            Target::Region(OBJECTS, "InstanceView members"),
            python_view_members(),
        ),
        (Target::Region(STUB, "Instance properties"), stub(false)),
        (Target::Region(STUB, "InstanceView properties"), stub(true)),
        (
            Target::Region("bindings-wasm/npm/src/facade.js", "instance object"),
            facade(),
        ),
    ]
}

/// Go's `Instance`, the wire form it is read from and the reading.
fn go() -> String {
    let mut s = format!("{GO_HEADER}\n\npackage waypost\n\nimport \"time\"\n\n");
    s += "// Instance is the registered fields of an instance. Values returned by\n// Pick and Discover are shared and cached: treat them as read-only. A field\n// that is not set is its zero value (an empty string, list or map, a zero\n// duration).\ntype Instance struct {\n";
    s += "\t// The registry's handle of this registration; zero when read with Get (by id).\n\tHandle Handle\n";
    let (mut members, mut values) = (String::new(), String::new());
    for f in &INSTANCE_FIELDS {
        let name = go_field(f.key, is_duration(f));
        s += &comment(f.doc, "\t// ");
        let _ = writeln!(s, "\t{name} {}", go_type(f));
        if f.read_only {
            let _ = writeln!(members, "\t{name} {} `json:\"{}\"`", go_type(f), f.key);
        }
        if is_duration(f) {
            let _ = writeln!(
                values,
                "\t\t{name}: time.Duration(w.{name}Ms) * time.Millisecond,"
            );
        } else {
            let _ = writeln!(values, "\t\t{name}: w.{name},");
        }
    }
    s += "}\n\n// instanceRead is a registered instance in the wire form: the fields a\n// host registers, then those the registry sets.\ntype instanceRead struct {\n\tinstanceWire\n";
    s += &members;
    s += "}\n\n// instance is the Instance the wire form describes (its Handle zero).\nfunc (w *instanceRead) instance() Instance {\n\treturn Instance{\n";
    s += &values;
    s += "\t}\n}\n";
    s
}

/// The Rust type of a field the registry sets, as `InstanceView` keeps it.
fn owned_type(f: &InstanceField) -> String {
    let ty = match f.kind {
        InstanceKind::Str => "String",
        InstanceKind::StrList => "Vec<String>",
        InstanceKind::StrMap => "std::collections::BTreeMap<String, String>",
        InstanceKind::U8 => "u8",
        InstanceKind::U16 => "u16",
        InstanceKind::U32 => "u32",
        InstanceKind::U64 => "u64",
    };
    if optional(f) {
        format!("Option<{ty}>")
    } else {
        ty.to_string()
    }
}

/// Whether `PyInstance` keeps the field as a Python object (read as a plain
/// member, no call into Rust). A map is a new dict on each access, and an
/// integer that may be unset is rarely read: both are read from the spec.
fn stored(f: &InstanceField) -> bool {
    !(f.kind == InstanceKind::StrMap || (is_integer(f) && optional(f)))
}

/// The field's documentation in Python.
fn python_text(f: &InstanceField) -> String {
    let mut s = f.doc.to_string();
    if f.kind == InstanceKind::StrMap {
        s += "A new dict on each access.\n";
    }
    s
}

/// The field's documentation as Rust doc lines (Python's `__doc__`).
fn python_doc(f: &InstanceField) -> String {
    comment(&python_text(f), "    /// ")
}

/// `PyInstance`'s members: the fields it keeps as Python objects.
fn python_members() -> String {
    let mut s = String::new();
    for f in registered().filter(|f| stored(f)) {
        let ty = match f.kind {
            InstanceKind::Str if optional(f) => "Py<PyAny>",
            InstanceKind::Str => "Py<PyString>",
            InstanceKind::StrList => "Py<PyTuple>",
            _ => "Py<PyInt>",
        };
        s += &python_doc(f);
        let _ = writeln!(s, "    #[pyo3(get)]\n    {}: {ty},", f.key);
    }
    s
}

/// `PyInstance::new`'s values of those members, from `spec` (`int` makes a
/// Python integer).
fn python_values() -> String {
    let mut s = String::new();
    for f in registered().filter(|f| stored(f)) {
        let key = f.key;
        let _ = match f.kind {
            InstanceKind::Str if optional(f) => writeln!(
                s,
                "            {key}: match &spec.{key} {{\n                Some(v) => PyString::new(py, v).into_any().unbind(),\n                None => py.None(),\n            }},"
            ),
            InstanceKind::Str => writeln!(s, "            {key}: PyString::new(py, &spec.{key}).unbind(),"),
            InstanceKind::StrList => writeln!(s, "            {key}: PyTuple::new(py, &spec.{key})?.unbind(),"),
            _ => writeln!(s, "            {key}: int(spec.{key}.into())?,"),
        };
    }
    s
}

/// `PyInstance`'s getters of the fields it does not keep.
fn python_getters() -> String {
    let mut getters = Vec::new();
    for f in registered().filter(|f| !stored(f)) {
        let key = f.key;
        let mut s = python_doc(f);
        s += "    #[getter]\n";
        if f.kind == InstanceKind::StrMap {
            let _ = writeln!(
                s,
                "    fn {key}<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {{\n        let dict = PyDict::new(py);\n        for (k, v) in &self.spec.{key} {{\n            dict.set_item(k, v)?;\n        }}\n        Ok(dict)\n    }}"
            );
        } else {
            let _ = writeln!(
                s,
                "    fn {key}(&self) -> {} {{\n        self.spec.{key}\n    }}",
                owned_type(f)
            );
        }
        getters.push(s);
    }
    getters.join("\n")
}

/// `PyInstanceView`'s members: the fields the registry sets.
fn python_view_members() -> String {
    let mut s = String::new();
    for f in read_only() {
        s += &python_doc(f);
        let _ = writeln!(s, "    #[pyo3(get)]\n    {}: {},", f.key, owned_type(f));
    }
    s
}

/// The stub's properties of `Instance` (the fields a host registers), or
/// with `view` those of `InstanceView` (the fields the registry sets).
fn stub(view: bool) -> String {
    let mut s = String::new();
    for f in INSTANCE_FIELDS.iter().filter(|f| f.read_only == view) {
        let ty = match f.kind {
            InstanceKind::Str => "str",
            InstanceKind::StrList if view => "list[str]",
            InstanceKind::StrList => "tuple[str, ...]",
            InstanceKind::StrMap => "dict[str, str]",
            _ => "int",
        };
        s += &stub_property(f.key, ty, optional(f), &python_text(f));
    }
    s
}

/// The members of the facade's frozen instance object, from the wire form
/// `f`: camelCase keys, lists and maps frozen, an unset field `null`; a
/// field the registry sets only when it is set.
fn facade() -> String {
    let mut s = String::new();
    for f in &INSTANCE_FIELDS {
        let (key, wire) = (lower_camel(f.key), f.key);
        let _ = if f.read_only {
            writeln!(
                s,
                "    ...(f.{wire} === undefined ? {{}} : {{ {key}: f.{wire} }}),"
            )
        } else if matches!(f.kind, InstanceKind::StrList | InstanceKind::StrMap) {
            writeln!(s, "    {key}: Object.freeze(f.{wire}),")
        } else if optional(f) {
            writeln!(s, "    {key}: f.{wire} ?? null,")
        } else {
            writeln!(s, "    {key}: f.{wire},")
        };
    }
    s
}
