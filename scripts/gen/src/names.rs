//! The core's name tables in the bindings: the C enums and status codes,
//! the Go constants, the JavaScript arrays, the TypeScript unions and the
//! Python enums and exception classes.

use std::fmt::Write;

use waypost::{CheckStatus, ErrorCode, EventKind, Health, SourceStatus, Strategy};

use crate::{camel, comment, Target, GOFMT, RUSTFMT};

/// One name table: values in code order.
struct Table {
    /// The C enum's name, also its prefix in the header.
    c_name: &'static str,
    /// The C enum's documentation.
    c_doc: &'static str,
    /// The Go type, for a table Go declares constants of.
    go_type: Option<&'static str>,
    /// The Go constant block's comment.
    go_doc: &'static str,
    /// Whether Go lists every value (`allHealth`, for parsing names).
    go_all: bool,
    /// The static list of C names the binding hands out, if it has one.
    c_names: Option<&'static str>,
    entries: Vec<(u8, &'static str, &'static str)>,
}

fn tables() -> [Table; 3] {
    [
        Table {
            c_name: "waypost_strategy",
            c_doc: "Load-balancing strategy (SPEC §5); pass its integer value.",
            go_type: Some("Strategy"),
            go_doc: "Strategies.",
            go_all: false,
            c_names: Some("STRATEGY_NAMES"),
            entries: Strategy::ALL
                .iter()
                .map(|&v| (v as u8, v.as_str(), Strategy::DOCS[v as usize]))
                .collect(),
        },
        Table {
            c_name: "waypost_health",
            c_doc: "Health of an instance (SPEC §3).",
            go_type: Some("Health"),
            go_doc: "Health values.",
            go_all: true,
            c_names: Some("HEALTH_NAMES"),
            entries: Health::ALL
                .iter()
                .map(|&v| (v as u8, v.as_str(), Health::DOCS[v as usize]))
                .collect(),
        },
        Table {
            c_name: "waypost_check_status",
            c_doc: "Result of an active check the host ran (pass an integer of this type).",
            go_type: None,
            go_doc: "",
            go_all: false,
            c_names: None,
            entries: CheckStatus::ALL
                .iter()
                .map(|&v| (v as u8, v.as_str(), CheckStatus::DOCS[v as usize]))
                .collect(),
        },
    ]
}

/// The statuses the C boundary adds after the core's error codes.
const C_STATUSES: [(&str, &str); 2] = [
    ("null_argument", "`null_argument`: a required pointer argument was NULL."),
    (
        "panic",
        "`panic`: the library caught an internal panic. A registry that was\nin use at that moment answers every later call with this status.",
    ),
];

fn error_codes() -> Vec<(u8, &'static str, &'static str)> {
    ErrorCode::ALL
        .iter()
        .enumerate()
        .map(|(i, &v)| (v as u8, v.as_str(), ErrorCode::DOCS[i]))
        .collect()
}

/// A file with name lists: how one name is written there, and each
/// region with the names it lists.
type NameLists = (
    &'static str,
    fn(&str) -> String,
    Vec<(&'static str, &'static [&'static str])>,
);

pub fn outputs() -> Vec<(Target, String)> {
    let mut out = vec![
        (
            Target::File("bindings-c/src/names.rs", Some(RUSTFMT)),
            c_names(),
        ),
        (
            Target::File("bindings-c/go/names.go", Some(GOFMT)),
            go_names(),
        ),
        (
            Target::File("bindings-python/python/waypost/_errors.py", None),
            python_errors(),
        ),
    ];
    let error_classes: Vec<String> = std::iter::once(String::from("Error"))
        .chain(error_codes().iter().map(|c| python_error_class(c.1)))
        .collect();
    for region in ["error imports", "error names"] {
        let body = error_classes
            .iter()
            .map(|class| format!("    {},\n", python_quoted(region, class)))
            .collect();
        out.push((
            Target::Region("bindings-python/python/waypost/__init__.py", region),
            body,
        ));
    }
    let strategy = Strategy::NAMES.as_slice();
    let health = Health::NAMES.as_slice();
    let check = CheckStatus::NAMES.as_slice();
    let error = ErrorCode::NAMES.as_slice();
    let event = EventKind::NAMES.as_slice();
    let source = SourceStatus::NAMES.as_slice();
    let lists: [NameLists; 4] = [
        (
            "bindings-wasm/npm/src/facade.js",
            |n| format!("  \"{n}\",\n"),
            vec![
                ("strategies", strategy),
                ("health", health),
                ("error codes", error),
            ],
        ),
        (
            "bindings-wasm/npm/src/index.d.ts",
            |n| format!("  | \"{n}\"\n"),
            vec![
                ("Strategy", strategy),
                ("Health", health),
                ("CheckStatus", check),
                ("ErrorCode", error),
                ("EventType", event),
                ("SourceStatus", source),
            ],
        ),
        (
            "bindings-wasm/npm/src/etcd.d.ts",
            |n| format!("  | \"{n}\"\n"),
            vec![("SourceStatus", source)],
        ),
        (
            "bindings-python/python/waypost/_enums.py",
            |n| format!("    {} = \"{n}\"\n", n.to_uppercase()),
            vec![
                ("Strategy", strategy),
                ("Health", health),
                ("CheckStatus", check),
                ("EventType", event),
            ],
        ),
    ];
    // The C++ enum classes name each C enumerator.
    for (region, prefix, names) in [
        ("strategy", "WAYPOST_STRATEGY", strategy),
        ("check_status", "WAYPOST_CHECK_STATUS", check),
    ] {
        let body = names
            .iter()
            .map(|n| format!("  {n} = {prefix}_{},\n", n.to_uppercase()))
            .collect();
        out.push((
            Target::Region("bindings-c/include/waypost.hpp", region),
            body,
        ));
    }
    for (file, line, regions) in lists {
        for (region, names) in regions {
            let body = names.iter().map(|n| line(n)).collect();
            out.push((Target::Region(file, region), body));
        }
    }
    out
}

fn c_enum(s: &mut String, name: &str, doc: &str, entries: &[(u8, &str, &str)]) {
    *s += &comment(doc, "/// ");
    let _ = writeln!(
        s,
        "#[repr(C)]\n#[derive(Debug, Clone, Copy, PartialEq, Eq)]\npub enum {name} {{"
    );
    for (code, value, doc) in entries {
        *s += &comment(doc, "    /// ");
        let _ = writeln!(s, "    {} = {code},", camel(value, false));
    }
    *s += "}\n\n";
}

fn c_names() -> String {
    let mut s = String::from("//! Generated by scripts/gen (`make gen`) from the core's name tables; do not edit.\n\nuse std::ffi::CStr;\n\nuse waypost_core::ErrorCode;\n\n");
    for t in tables() {
        c_enum(&mut s, t.c_name, t.c_doc, &t.entries);
        if let Some(list) = t.c_names {
            let _ = writeln!(
                s,
                "/// The stable names by `{}` value, as static C strings.",
                t.c_name
            );
            let _ = writeln!(
                s,
                "pub(crate) static {list}: [&CStr; {}] = [",
                t.entries.len()
            );
            for (_, value, _) in &t.entries {
                let _ = writeln!(s, "    c\"{value}\",");
            }
            s += "];\n\n";
        }
    }
    let codes = error_codes();
    let mut statuses = vec![(0, "ok", "Success.")];
    statuses.extend(codes.iter().copied());
    let next = codes.iter().map(|c| c.0).max().unwrap_or(0) + 1;
    statuses.extend(
        C_STATUSES
            .iter()
            .zip(next..)
            .map(|((n, d), code)| (code, *n, *d)),
    );
    c_enum(
        &mut s,
        "waypost_status",
        "The result of every fallible call: 0 is success. The core's error\ncodes follow in their order (SPEC §8), then the two the C boundary adds.",
        &statuses,
    );
    s += "impl waypost_status {\n    /// The stable code string, e.g. `\"not_found\"`.\n    pub(crate) fn code(self) -> &'static CStr {\n        match self {\n";
    for (_, name, _) in &statuses {
        let _ = writeln!(s, "waypost_status::{} => c\"{name}\",", camel(name, false));
    }
    s += "}\n    }\n\n    /// The status of a core error code.\n    pub(crate) fn of(code: ErrorCode) -> waypost_status {\n        match code {\n";
    for (_, name, _) in &codes {
        let v = camel(name, false);
        let _ = writeln!(s, "ErrorCode::{v} => waypost_status::{v},");
    }
    s += "}\n    }\n}\n";
    s
}

fn go_names() -> String {
    let mut s = String::from("// Code generated by scripts/gen (`make gen`) from the core's name tables; DO NOT EDIT.\n\npackage waypost\n\n// #include \"bridge.h\"\nimport \"C\"\n\n");
    for t in tables() {
        let Some(ty) = t.go_type else { continue };
        let prefix = t.c_name.to_uppercase();
        let _ = writeln!(s, "// {}\nconst (", t.go_doc);
        for (_, value, _) in &t.entries {
            let _ = writeln!(
                s,
                "\t{} {ty} = C.{prefix}_{}",
                camel(value, false),
                value.to_uppercase()
            );
        }
        s += ")\n\n";
        if !t.go_all {
            continue;
        }
        let all: Vec<String> = t.entries.iter().map(|e| camel(e.1, false)).collect();
        let _ = writeln!(
            s,
            "// all{ty} is every {ty} value, in code order.\nvar all{ty} = [...]{ty}{{{}}}\n",
            all.join(", ")
        );
    }
    s += "// The error codes.\nconst (\n";
    let codes = error_codes();
    let all = codes
        .iter()
        .map(|c| c.1)
        .chain(C_STATUSES.iter().map(|c| c.0));
    for name in all {
        let _ = writeln!(s, "\tCode{} Code = \"{name}\"", camel(name, false));
    }
    s += ")\n\n// Sentinels for errors.Is.\nvar (\n";
    for (_, name, _) in &codes {
        let v = camel(name, false);
        let _ = writeln!(
            s,
            "\tErr{v} = newError(Code{v}, \"{}\")",
            name.replace('_', " ")
        );
    }
    s += "\tErrPanic = newError(CodePanic, \"internal panic\")\n)\n";
    let quoted: Vec<String> = SourceStatus::NAMES
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect();
    let _ = write!(
        s,
        "\n// SourceStatuses returns the statuses a source gives its instances\n// (SPEC §10.1), in code order.\nfunc SourceStatuses() []string {{\n\treturn []string{{{}}}\n}}\n",
        quoted.join(", ")
    );
    s
}

/// The built-in exception each Python error class also derives from, so
/// `except KeyError` and `except ValueError` catch them as Python users expect.
const PYTHON_BUILTIN_BASES: [(ErrorCode, &str); 2] = [
    (ErrorCode::InvalidArgument, "ValueError"),
    (ErrorCode::NotFound, "KeyError"),
];

/// The Python class of an error code: `not_found` → `NotFoundError`.
fn python_error_class(code: &str) -> String {
    format!("{}Error", camel(code, false))
}

/// A class name as the `__init__.py` region lists it: bare in the import,
/// quoted in `__all__`.
fn python_quoted(region: &str, class: &str) -> String {
    if region == "error names" {
        format!("\"{class}\"")
    } else {
        class.to_owned()
    }
}

/// An error code's documentation as a docstring: the text after its
/// "`code`: " lead, capitalised, continuation lines indented.
fn python_docstring(code: &str, doc: &str) -> String {
    let lead = format!("`{code}`: ");
    let lines: Vec<&str> = doc
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut text = lines.join("\n    ");
    if let Some(rest) = text.strip_prefix(&lead) {
        let mut chars = rest.chars();
        text = chars
            .next()
            .map_or(String::new(), |f| f.to_uppercase().chain(chars).collect());
    }
    // PEP 257: the closing quotes of a multi-line docstring on a line of their own.
    let end = if text.contains('\n') { "\n    " } else { "" };
    format!("\"\"\"{text}{end}\"\"\"")
}

fn python_errors() -> String {
    let mut s = String::from(
        r#"# Generated by scripts/gen (`make gen`) from the core's error codes (core/src/error.rs); do not edit.
"""The exceptions of SPEC.md §8: one class per stable code under ``Error``."""
from __future__ import annotations


class Error(Exception):
    """Base of every waypost error; ``code`` is the stable code string."""

    code: str = ""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        # KeyError would quote the message; every waypost error reads the same.
        return self.message
"#,
    );
    let codes = error_codes();
    for &(_, name, doc) in &codes {
        let builtin = PYTHON_BUILTIN_BASES
            .iter()
            .find(|(code, _)| code.as_str() == name)
            .map_or(String::new(), |(_, base)| format!(", {base}"));
        let _ = write!(
            s,
            "\n\nclass {}(Error{builtin}):\n    {}\n\n    code = \"{name}\"\n",
            python_error_class(name),
            python_docstring(name, doc),
        );
    }
    let first = codes.first().map_or(0, |c| c.0);
    let last = codes.last().map_or(0, |c| c.0);
    let _ = writeln!(
        s,
        "\n\n# In the order of the core's numeric error codes ({first}..={last}).\nBY_CODE: tuple[type[Error], ...] = ("
    );
    for &(_, name, _) in &codes {
        let _ = writeln!(s, "    {},", python_error_class(name));
    }
    s += ")\n";
    s
}
