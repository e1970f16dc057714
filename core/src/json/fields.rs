//! The path-tracking object reader: a JSON document taken apart field by
//! field, each problem named by its path (`instances[3].state.health`).
//!
//! Built on [`Object`]: a repeated key counts once with its last value and
//! a member nobody asked for is an unknown field, as in every other reader
//! of the core. The snapshot reads through it; its error messages are the
//! snapshot's (`invalid_snapshot`), so the typed accessors here speak of
//! what was expected at a path.

use crate::prelude::*;
use core::cell::Cell;
use core::str::FromStr;

use super::{describe, Json, Object};

/// The first problem found while reading a document.
///
/// Reading does not stop at a problem: it is noted (the first one wins)
/// and every later read yields a default, so the whole document is read in
/// straight-line code and judged once at the end. The message is the same
/// as if reading had stopped there, and the WebAssembly module carries no
/// early-return path (with its drop glue) per field.
#[derive(Default)]
pub(crate) struct Problems {
    first: Cell<Option<String>>,
}

impl Problems {
    #[cold]
    #[inline(never)]
    pub(crate) fn note(&self, message: String) {
        let first = self.first.take();
        self.first.set(first.or(Some(message)));
    }

    pub(crate) fn first_is_none(&self) -> bool {
        let first = self.first.take();
        let none = first.is_none();
        self.first.set(first);
        none
    }

    /// The first problem noted, if any, taken out.
    pub(crate) fn take_first(&self) -> Option<String> {
        self.first.take()
    }
}

/// A JSON object being taken apart field by field.
pub(crate) struct Fields<'p> {
    members: Object,
    path: String,
    pub(crate) problems: &'p Problems,
}

// Accessors stay out of line (`#[inline(never)]`): they are called from
// dozens of places on a cold path, and inlining them multiplies the size
// of the WebAssembly module.
impl<'p> Fields<'p> {
    #[inline(never)]
    pub(crate) fn of(problems: &'p Problems, value: Json, path: String) -> Fields<'p> {
        let members = match value {
            Json::Object(members) => Object::new(members),
            other => {
                problems.note(text!(
                    if path.is_empty() { "document" } else { &path },
                    ": expected an object, got ",
                    describe(&other)
                ));
                Object::default()
            }
        };
        Fields {
            members,
            path,
            problems,
        }
    }

    #[inline(never)]
    pub(crate) fn at(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            text!(self.path, ".", key)
        }
    }

    #[inline(never)]
    pub(crate) fn expected(&self, key: &str, what: &str, got: &Json) {
        self.problems.note(text!(
            self.at(key),
            ": expected ",
            what,
            ", got ",
            describe(got)
        ));
    }

    /// Takes a member out (the last, if repeated); `None` when absent.
    #[inline(never)]
    pub(crate) fn optional(&mut self, key: &str) -> Option<Json> {
        self.members.take(key)
    }

    /// Takes a member out; `null` (and a problem) when absent.
    #[inline(never)]
    pub(crate) fn raw(&mut self, key: &str) -> Json {
        match self.optional(key) {
            Some(v) => v,
            None => {
                self.problems
                    .note(text!(self.at(key), ": missing field `", key, "`"));
                Json::Null
            }
        }
    }

    #[inline(never)]
    pub(crate) fn object(&mut self, key: &str) -> Fields<'p> {
        let path = self.at(key);
        let value = self.raw(key);
        Fields::of(self.problems, value, path)
    }

    /// The members of an object-valued member, for a parser of its own.
    #[inline(never)]
    pub(crate) fn members(&mut self, key: &str) -> Object {
        match self.raw(key) {
            Json::Object(members) => Object::new(members),
            other => {
                self.expected(key, "an object", &other);
                Object::default()
            }
        }
    }

    /// A name (health, check status, event type) parsed by its type's
    /// `FromStr`; `fallback` when it is unknown.
    pub(crate) fn named<T: FromStr>(&self, key: &str, what: &str, name: &str, fallback: T) -> T {
        name.parse().unwrap_or_else(|_| {
            self.problems
                .note(text!(self.at(key), ": unknown ", what, " `", name, "`"));
            fallback
        })
    }

    #[inline(never)]
    pub(crate) fn u64(&mut self, key: &str) -> u64 {
        let v = self.raw(key);
        v.as_u64().unwrap_or_else(|| {
            self.expected(key, "a non-negative integer", &v);
            0
        })
    }

    #[inline(never)]
    pub(crate) fn u32(&mut self, key: &str) -> u32 {
        let n = self.u64(key);
        u32::try_from(n).unwrap_or_else(|_| {
            self.problems
                .note(text!(self.at(key), ": ", n, " is too large"));
            0
        })
    }

    #[inline(never)]
    pub(crate) fn i64(&mut self, key: &str) -> i64 {
        let v = self.raw(key);
        v.as_i64().unwrap_or_else(|| {
            self.expected(key, "an integer", &v);
            0
        })
    }

    #[inline(never)]
    pub(crate) fn bool(&mut self, key: &str) -> bool {
        let v = self.raw(key);
        v.as_bool().unwrap_or_else(|| {
            self.expected(key, "a boolean", &v);
            false
        })
    }

    #[inline(never)]
    pub(crate) fn string(&mut self, key: &str) -> String {
        match self.raw(key) {
            Json::String(s) => s,
            other => {
                self.expected(key, "a string", &other);
                String::new()
            }
        }
    }

    #[inline(never)]
    pub(crate) fn opt_u64(&mut self, key: &str) -> Option<u64> {
        match self.optional(key) {
            None | Some(Json::Null) => None,
            Some(v) => {
                let n = v.as_u64();
                if n.is_none() {
                    self.expected(key, "a non-negative integer or null", &v);
                }
                n
            }
        }
    }

    #[inline(never)]
    pub(crate) fn opt_str(&mut self, key: &str) -> Option<String> {
        match self.optional(key) {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) => Some(s),
            Some(other) => {
                self.expected(key, "a string or null", &other);
                None
            }
        }
    }

    /// An array's items, each with its path (`key[i]`).
    #[inline(never)]
    pub(crate) fn list(&mut self, key: &str) -> Vec<(String, Json)> {
        let path = self.at(key);
        match self.raw(key) {
            Json::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| (text!(path, "[", i, "]"), v))
                .collect(),
            other => {
                self.problems
                    .note(text!(path, ": expected an array, got ", describe(&other)));
                Vec::new()
            }
        }
    }

    /// An array of objects, each taken apart by `item`.
    pub(crate) fn each<T>(&mut self, key: &str, mut item: impl FnMut(Fields<'p>) -> T) -> Vec<T> {
        let problems = self.problems;
        self.list(key)
            .into_iter()
            .map(|(path, value)| item(Fields::of(problems, value, path)))
            .collect()
    }

    /// Notes a member nobody asked for.
    #[inline(never)]
    pub(crate) fn done(self) {
        if let Some(key) = self.members.unknown() {
            self.problems.note(text!(
                if self.path.is_empty() {
                    "document"
                } else {
                    &self.path
                },
                ": unknown field `",
                key,
                "`"
            ));
        }
    }
}
