//! The JSON the core reads and writes: a value type, a strict reader and a
//! writer, all non-generic.
//!
//! Every wire form (configuration, instances, events, statuses, snapshots)
//! goes through this module, so every binding reads and writes the same
//! text. It is written by hand rather than derived because derived
//! (de)serializers are instantiated per type and would multiply the size of
//! the WebAssembly module; this one is a few kilobytes.
//!
//! Reading follows RFC 8259: no trailing commas, comments or trailing text;
//! strings are checked (control characters must be escaped, `\u` escapes
//! must pair surrogates); nesting is limited to [`MAX_DEPTH`] so hostile
//! input cannot exhaust the stack. Integers without a fraction or exponent
//! that fit `u64` (or, when negative, `i64`) stay exact; every other number
//! is an `f64`, and one that overflows it is an error. When an object
//! repeats a key, the last value counts.

use crate::prelude::*;
use alloc::borrow::Cow;
mod fields;
mod float;
mod object;

pub(crate) use fields::{Fields, Problems};
pub(crate) use object::Object;

/// Deepest nesting of arrays and objects the reader accepts.
pub const MAX_DEPTH: usize = 128;

/// A JSON value. Objects keep their members in document order.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number.
    Number(Number),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Json>),
    /// An object, members in document order.
    Object(Vec<(String, Json)>),
}

/// A JSON number: exact when it is an integer that fits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// A non-negative integer.
    UInt(u64),
    /// A negative integer.
    Int(i64),
    /// Anything else.
    Float(f64),
}

impl Json {
    /// Reads one JSON document.
    ///
    /// # Errors
    /// A message saying what is wrong and where (`line L column C`).
    pub fn parse(text: &str) -> Result<Json, String> {
        Json::parse_keeping(text, &[])
    }

    /// Like [`Json::parse`], but an object keeps only the members named in
    /// `keep` (all of them when it is empty): the others are checked as
    /// `parse` checks them, then dropped without being built.
    pub(crate) fn parse_keeping(text: &str, keep: &[&str]) -> Result<Json, String> {
        let mut reader = Reader {
            bytes: text.as_bytes(),
            text,
            pos: 0,
            depth: 0,
            keep,
        };
        let value = reader.value()?;
        reader.skip_ws();
        if reader.pos < reader.bytes.len() {
            return Err(reader.error("trailing characters"));
        }
        Ok(value)
    }

    /// The value as a `u64`, if it is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Json::Number(Number::UInt(n)) => Some(*n),
            _ => None,
        }
    }

    /// The value as an `i64`, if it is an integer in range.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Json::Number(Number::UInt(n)) => i64::try_from(*n).ok(),
            Json::Number(Number::Int(n)) => Some(*n),
            _ => None,
        }
    }

    /// The value as an `f64`, if it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Number(Number::UInt(n)) => Some(*n as f64),
            Json::Number(Number::Int(n)) => Some(*n as f64),
            Json::Number(Number::Float(f)) => Some(*f),
            _ => None,
        }
    }

    /// The value as a `bool`, if it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Json::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The value as a string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// The members of an object, if it is one.
    pub fn as_object(&self) -> Option<&[(String, Json)]> {
        match self {
            Json::Object(members) => Some(members),
            _ => None,
        }
    }

    /// The items of an array, if it is one.
    pub fn as_array(&self) -> Option<&[Json]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The member `key` of an object (the last one, if repeated).
    pub fn get(&self, key: &str) -> Option<&Json> {
        get(self.as_object()?, key)
    }

    /// The value written as compact JSON text.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    /// Appends the value as compact JSON text.
    pub fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(Number::UInt(n)) => write_u64(out, *n),
            Json::Number(Number::Int(n)) => write_i64(out, *n),
            Json::Number(Number::Float(f)) => write_f64(out, *f),
            Json::String(s) => write_str(out, s),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Object(members) => {
                let mut w = ObjectWriter::new(out);
                for (k, v) in members {
                    w.key(k);
                    v.write(w.out);
                }
                w.end();
            }
        }
    }
}

impl From<u64> for Json {
    fn from(n: u64) -> Json {
        Json::Number(Number::UInt(n))
    }
}

impl From<u32> for Json {
    fn from(n: u32) -> Json {
        Json::Number(Number::UInt(n.into()))
    }
}

impl From<i64> for Json {
    fn from(n: i64) -> Json {
        if n >= 0 {
            Json::Number(Number::UInt(n as u64))
        } else {
            Json::Number(Number::Int(n))
        }
    }
}

impl From<f64> for Json {
    fn from(f: f64) -> Json {
        Json::Number(Number::Float(f))
    }
}

impl From<bool> for Json {
    fn from(b: bool) -> Json {
        Json::Bool(b)
    }
}

impl From<&str> for Json {
    fn from(s: &str) -> Json {
        Json::String(s.to_owned())
    }
}

impl From<String> for Json {
    fn from(s: String) -> Json {
        Json::String(s)
    }
}

/// The member `key` of an object's members (the last one, if repeated).
pub fn get<'a>(members: &'a [(String, Json)], key: &str) -> Option<&'a Json> {
    members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// How an error message names a value: integers as they are, other values
/// by kind (so messages never need float or JSON formatting).
pub fn describe(v: &Json) -> String {
    match v {
        Json::Null => "null".into(),
        Json::Bool(b) => if *b { "true" } else { "false" }.into(),
        Json::Number(Number::UInt(n)) => text!(n),
        Json::Number(Number::Int(n)) => text!(n),
        Json::Number(Number::Float(_)) => "a number with a fraction".into(),
        Json::String(_) => "a string".into(),
        Json::Array(_) => "an array".into(),
        Json::Object(_) => "an object".into(),
    }
}

/// Appends `n` in decimal.
pub fn write_u64(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &b in &buf[i..] {
        out.push(char::from(b));
    }
}

/// Appends `n` in decimal.
pub fn write_i64(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    write_u64(out, n.unsigned_abs());
}

/// Appends `f` in its shortest round-trip form (`0.5`, `1.0`, `1e-7`);
/// a non-finite value, which JSON cannot hold, as `null`.
pub fn write_f64(out: &mut String, f: f64) {
    if f.is_finite() {
        out.push_str(zmij::Buffer::new().format_finite(f));
    } else {
        out.push_str("null");
    }
}

/// Appends `s` as a JSON string: `"` and `\` escaped, control characters
/// as `\n`, `\t`, … or `\u00XX`, everything else as it is.
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(cut(s, start, i));
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(cut(s, start, s.len()));
    out.push('"');
}

/// `text[from..to]`. Every cut here is next to an ASCII byte, so on a
/// character boundary; `get` keeps the panicking slice path (and the
/// formatting it carries) out of the WebAssembly module.
fn cut(text: &str, from: usize, to: usize) -> &str {
    text.get(from..to).unwrap_or_default()
}

/// Writes one JSON object member by member.
pub struct ObjectWriter<'a> {
    /// Where the text goes; write each member's value here after `key`.
    pub out: &'a mut String,
    first: bool,
}

impl<'a> ObjectWriter<'a> {
    /// Opens an object.
    pub fn new(out: &'a mut String) -> ObjectWriter<'a> {
        out.push('{');
        ObjectWriter { out, first: true }
    }

    /// Starts a member: writes its key; the value follows in `out`.
    pub fn key(&mut self, key: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        write_str(self.out, key);
        self.out.push(':');
        self.out
    }

    /// A member whose value is an unsigned integer.
    pub fn u64(&mut self, key: &str, v: u64) {
        write_u64(self.key(key), v);
    }

    /// A member whose value is a signed integer.
    pub fn i64(&mut self, key: &str, v: i64) {
        write_i64(self.key(key), v);
    }

    /// A member whose value is a float.
    pub fn f64(&mut self, key: &str, v: f64) {
        write_f64(self.key(key), v);
    }

    /// A member whose value is a boolean.
    pub fn bool(&mut self, key: &str, v: bool) {
        self.key(key).push_str(if v { "true" } else { "false" });
    }

    /// A member whose value is a string.
    pub fn str(&mut self, key: &str, v: &str) {
        write_str(self.key(key), v);
    }

    /// A member that is an unsigned integer or `null`.
    pub fn opt_u64(&mut self, key: &str, v: Option<u64>) {
        match v {
            Some(v) => self.u64(key, v),
            None => self.key(key).push_str("null"),
        }
    }

    /// A member that is a string or `null`.
    pub fn opt_str(&mut self, key: &str, v: Option<&str>) {
        match v {
            Some(v) => self.str(key, v),
            None => self.key(key).push_str("null"),
        }
    }

    /// Closes the object.
    pub fn end(self) {
        self.out.push('}');
    }
}

/// A list of strings (ids, service names) as a JSON array.
pub fn strings_to_json<S: AsRef<str>>(items: &[S]) -> String {
    let mut out = String::new();
    write_array(&mut out, items, |out, s| write_str(out, s.as_ref()));
    out
}

/// Appends `[a,b,…]`, each item written by `item`.
pub fn write_array<T>(
    out: &mut String,
    items: impl IntoIterator<Item = T>,
    item: impl Fn(&mut String, T),
) {
    out.push('[');
    for (i, x) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        item(out, x);
    }
    out.push(']');
}

/// Reads a document a step at a time, for an adapter that knows the shape
/// it expects and builds no tree of it (the etcd reader). Each step checks
/// exactly what [`Json::parse`] checks, with the same nesting limit, so a
/// document walked to its end is one `parse` accepts; a step answers `None`
/// at the first problem (ask `parse` for the message then). A value that
/// does not read leaves the walk inside it, so every later step answers
/// `None` too, and [`Walker::end`] never passes: a caller that reads past
/// a `None` cannot take the broken value's insides for the document's.
#[cfg(feature = "record-reader")]
pub(crate) struct Walker<'a> {
    r: Reader<'a>,
    /// A value did not read: the walk stands at the end of the text, so
    /// every step finds nothing, and `end` does not pass.
    broken: bool,
}

#[cfg(feature = "record-reader")]
impl<'a> Walker<'a> {
    /// A walker at the start of `text`.
    pub(crate) fn new(text: &'a str) -> Walker<'a> {
        Walker {
            r: Reader {
                bytes: text.as_bytes(),
                text,
                pos: 0,
                depth: 0,
                keep: &[],
            },
            broken: false,
        }
    }

    /// The first byte of the next value, past any whitespace.
    pub(crate) fn peek(&mut self) -> Option<u8> {
        self.r.skip_ws();
        self.r.peek()
    }

    /// Enters the array (`[`) or object (`{`) that comes next.
    pub(crate) fn open(&mut self, bracket: u8) -> Option<()> {
        if self.peek() != Some(bracket) || self.r.depth >= MAX_DEPTH {
            return None;
        }
        self.r.depth += 1;
        self.r.pos += 1;
        Some(())
    }

    /// Past the separator or the closing `close`: whether another element
    /// follows (`first` starts true for each container).
    fn next(&mut self, first: &mut bool, close: u8) -> Option<bool> {
        let b = self.peek()?;
        if b == close {
            self.r.pos += 1;
            self.r.depth = self.r.depth.saturating_sub(1);
            return Some(false);
        }
        if !core::mem::take(first) {
            if b != b',' {
                return None;
            }
            self.r.pos += 1;
        }
        Some(true)
    }

    /// In an opened array: whether an item follows (then read it).
    pub(crate) fn item(&mut self, first: &mut bool) -> Option<bool> {
        self.next(first, b']')
    }

    /// In an opened object: the next member's name, its `:` read (then
    /// read its value); `Some(None)` past the closing `}`.
    pub(crate) fn member(&mut self, first: &mut bool) -> Option<Option<Cow<'a, str>>> {
        if !self.next(first, b'}')? {
            return Some(None);
        }
        let name = self.str()?;
        if self.peek() != Some(b':') {
            return None;
        }
        self.r.pos += 1;
        Some(Some(name))
    }

    /// A string, borrowed from the text when it holds no escape.
    pub(crate) fn str(&mut self) -> Option<Cow<'a, str>> {
        if self.peek() != Some(b'"') {
            return None;
        }
        match self.r.string() {
            Ok(s) => Some(s),
            Err(_) => self.broke(),
        }
    }

    /// Any value, as a tree.
    pub(crate) fn value(&mut self) -> Option<Json> {
        match self.r.value() {
            Ok(v) => Some(v),
            Err(_) => self.broke(),
        }
    }

    /// Passes over a value (a string without copying it).
    pub(crate) fn skip(&mut self) -> Option<()> {
        match self.r.skip() {
            Ok(()) => Some(()),
            Err(_) => self.broke(),
        }
    }

    /// A non-negative integer (`None` for any other value, too).
    pub(crate) fn uint(&mut self) -> Option<u64> {
        self.value()?.as_u64()
    }

    /// Whether only whitespace is left (never after a value that did not
    /// read).
    pub(crate) fn end(&mut self) -> Option<()> {
        (self.peek().is_none() && !self.broken).then_some(())
    }

    /// Breaks the walk for good: a value did not read.
    #[cold]
    #[inline(never)]
    fn broke<T>(&mut self) -> Option<T> {
        self.r.pos = self.r.bytes.len();
        self.broken = true;
        None
    }
}

/// How many bytes at the start of `bytes` a string holds as they are: up
/// to the first `"`, `\\` or control character. Eight bytes at a time (a
/// string's body is most of a payload's text): a byte of a word is one of
/// those when it is zero after an XOR with `"` or `\\`, or below 0x20.
fn plain_len(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let special = |b: u8| b == b'"' || b == b'\\' || b < 0x20;
    let found = |word: &[u8]| {
        let x = u64::from_le_bytes(<[u8; 8]>::try_from(word).unwrap_or([b'"'; 8]));
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (x.wrapping_sub(ONES * 0x20) & !x)
    };
    let mut len = 0;
    for pair in bytes.chunks_exact(16) {
        let (a, b) = pair.split_at(8);
        if (found(a) | found(b)) & HIGH != 0 {
            break;
        }
        len += 16;
    }
    let tail = bytes.get(len..).unwrap_or_default();
    len + tail.iter().position(|&b| special(b)).unwrap_or(tail.len())
}

struct Reader<'a> {
    bytes: &'a [u8],
    text: &'a str,
    pos: usize,
    depth: usize,
    /// The object members to build; all when empty.
    keep: &'a [&'a str],
}

// The reader's steps stay out of line: inlined into each other at the
// core's opt-level they would multiply the WebAssembly module's size, and
// nothing here is on a hot path.
impl<'a> Reader<'a> {
    #[cold]
    #[inline(never)]
    fn error(&self, what: &str) -> String {
        let upto = &self.bytes[..self.pos.min(self.bytes.len())];
        let line = upto.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = upto.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
        text!(what, " at line ", line, " column ", column)
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Reads a value and drops it (a string without copying it).
    fn skip(&mut self) -> Result<(), String> {
        self.skip_ws();
        match self.peek() {
            Some(b'"') => self.string().map(drop),
            _ => self.value().map(drop),
        }
    }

    #[inline(never)]
    fn value(&mut self) -> Result<Json, String> {
        self.skip_ws();
        match self.peek() {
            None => Err(self.error("EOF while parsing a value")),
            Some(b'n') => self.literal("null", Json::Null),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'"') => Ok(Json::String(self.string()?.into_owned())),
            Some(b'[') => self.nested(Reader::array),
            Some(b'{') => self.nested(Reader::object),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("expected value")),
        }
    }

    fn nested(&mut self, f: fn(&mut Self) -> Result<Json, String>) -> Result<Json, String> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error("recursion limit exceeded"));
        }
        self.depth += 1;
        self.pos += 1;
        let value = f(self);
        self.depth -= 1;
        value
    }

    #[inline(never)]
    fn literal(&mut self, word: &str, value: Json) -> Result<Json, String> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error("expected value"))
        }
    }

    #[inline(never)]
    fn array(&mut self) -> Result<Json, String> {
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Json::Array(items));
        }
        loop {
            items.push(self.value()?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Json::Array(items));
                }
                None => return Err(self.error("EOF while parsing a list")),
                Some(_) => return Err(self.error("expected `,` or `]`")),
            }
        }
    }

    #[inline(never)]
    fn object(&mut self) -> Result<Json, String> {
        let mut members = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Json::Object(members));
        }
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b'"') => {}
                None => return Err(self.error("EOF while parsing an object")),
                Some(_) => return Err(self.error("key must be a string")),
            }
            let key = self.string()?;
            self.skip_ws();
            match self.peek() {
                Some(b':') => self.pos += 1,
                None => return Err(self.error("EOF while parsing an object")),
                Some(_) => return Err(self.error("expected `:`")),
            }
            if self.keep.is_empty() || self.keep.contains(&&*key) {
                let value = self.value()?;
                members.push((key.into_owned(), value));
            } else {
                self.skip()?;
            }
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Json::Object(members));
                }
                None => return Err(self.error("EOF while parsing an object")),
                Some(_) => return Err(self.error("expected `,` or `}`")),
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    #[inline(never)]
    fn number(&mut self) -> Result<Json, String> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let int_start = self.pos;
        match self.digits() {
            0 => return Err(self.error("invalid number")),
            n if n > 1 && self.bytes[int_start] == b'0' => {
                self.pos = int_start + 1;
                return Err(self.error("invalid number"));
            }
            _ => {}
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            integer = false;
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            integer = false;
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        let text = cut(self.text, start, self.pos);
        if integer {
            // `text` is `-?[0-9]+` here: the digits read as a u64 (`None`
            // past u64::MAX), then the sign.
            let digits = text.strip_prefix('-').unwrap_or(text);
            let magnitude = digits.bytes().try_fold(0u64, |n, d| {
                n.checked_mul(10)?
                    .checked_add(u64::from(d.wrapping_sub(b'0')))
            });
            match (magnitude, negative) {
                (Some(0), true) => return Ok(Json::Number(Number::Float(-0.0))),
                (Some(n), true) => {
                    if let Some(n) = 0i64.checked_sub_unsigned(n) {
                        return Ok(Json::Number(Number::Int(n)));
                    }
                }
                (Some(n), false) => return Ok(Json::Number(Number::UInt(n))),
                (None, _) => {}
            }
        }
        match float::parse(text) {
            Some(f) => Ok(Json::Number(Number::Float(f))),
            None => Err(self.error("number out of range")),
        }
    }

    #[inline(never)]
    fn hex4(&mut self) -> Result<u32, String> {
        let mut n = 0;
        for _ in 0..4 {
            let d = match self.peek() {
                Some(c @ b'0'..=b'9') => c - b'0',
                Some(c @ b'a'..=b'f') => c - b'a' + 10,
                Some(c @ b'A'..=b'F') => c - b'A' + 10,
                None => return Err(self.error("EOF while parsing a string")),
                Some(_) => return Err(self.error("invalid escape")),
            };
            n = n * 16 + u32::from(d);
            self.pos += 1;
        }
        Ok(n)
    }

    /// A string, borrowed from the text when it holds no escape; `pos` is
    /// at its opening quote.
    #[inline(never)]
    fn string(&mut self) -> Result<Cow<'a, str>, String> {
        self.pos += 1;
        let mut start = self.pos;
        let plain = plain_len(self.bytes.get(start..).unwrap_or_default());
        self.pos += plain;
        if self.peek() == Some(b'"') {
            self.pos += 1;
            return Ok(Cow::Borrowed(cut(self.text, start, start + plain)));
        }
        let mut out = String::new();
        loop {
            let Some(b) = self.peek() else {
                return Err(self.error("EOF while parsing a string"));
            };
            match b {
                b'"' => {
                    out.push_str(cut(self.text, start, self.pos));
                    self.pos += 1;
                    return Ok(Cow::Owned(out));
                }
                b'\\' => {
                    out.push_str(cut(self.text, start, self.pos));
                    self.pos += 1;
                    let Some(e) = self.peek() else {
                        return Err(self.error("EOF while parsing a string"));
                    };
                    self.pos += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let mut code = self.hex4()?;
                            if (0xDC00..0xE000).contains(&code) {
                                return Err(self.error("lone trailing surrogate in hex escape"));
                            }
                            if (0xD800..0xDC00).contains(&code) {
                                if !self.bytes[self.pos..].starts_with(b"\\u") {
                                    return Err(self.error("lone leading surrogate in hex escape"));
                                }
                                self.pos += 2;
                                let low = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&low) {
                                    return Err(self.error("lone leading surrogate in hex escape"));
                                }
                                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                            }
                            match char::from_u32(code) {
                                Some(c) => out.push(c),
                                None => return Err(self.error("invalid unicode code point")),
                            }
                        }
                        _ => {
                            self.pos -= 1;
                            return Err(self.error("invalid escape"));
                        }
                    }
                    start = self.pos;
                }
                0..=0x1f => {
                    return Err(self
                        .error("control character (\\u0000-\\u001F) found while parsing a string"))
                }
                _ => self.pos += 1,
            }
        }
    }
}
