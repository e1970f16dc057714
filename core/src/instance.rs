//! Instances: what a host registers (SPEC §2), validated and normalised.

use crate::prelude::*;
use crate::text::CodePoint;
use alloc::sync::Arc;

use crate::config::{range, MAX_ID_BYTES, MAX_META_KEY_BYTES, MAX_META_VALUE_BYTES};
use crate::error::{Error, Result};
use crate::instance_fields::{bounds, field, key, kind_max, Slot, REQUIRED, SLOTS};
pub use crate::instance_fields::{
    InstanceDefault, InstanceField, InstanceKind, InstanceSpec, INSTANCE_FIELDS, INSTANCE_KEYS,
};
use crate::json::{describe, write_array, write_str, Json, Object, ObjectWriter};
use crate::meta::Meta;
use crate::InstanceStatus;

impl InstanceSpec {
    /// Parses a JSON object with the SPEC §2 field names.
    ///
    /// # Errors
    /// `invalid_argument` naming the field at fault (missing, unknown, wrong
    /// type or out of range); with several faults, the first in
    /// the reader's field order, then an unknown field, then a rule
    /// (SPEC §8).
    pub fn from_json(text: &str) -> Result<InstanceSpec> {
        let value = Json::parse(text)
            .map_err(|e| Error::invalid("instance", text!("not valid JSON: ", e)))?;
        match value {
            Json::Object(members) => InstanceSpec::from_object(members),
            _ => Err(Error::invalid("instance", "must be a JSON object")),
        }
    }

    /// Like [`InstanceSpec::from_json`], from the members of a parsed JSON
    /// object. A repeated key counts once, with its last value.
    ///
    /// # Errors
    /// As [`InstanceSpec::from_json`].
    pub fn from_object(members: Vec<(String, Json)>) -> Result<InstanceSpec> {
        InstanceSpec::from_members(Object::new(members))
    }

    /// The instance reader proper, on an object a caller may already have
    /// taken its own members out of (a source entry's `status`).
    pub(crate) fn from_members(mut object: Object) -> Result<InstanceSpec> {
        let mut spec = InstanceSpec::new(String::new(), String::new(), String::new(), 0);
        for slot in READ_ORDER {
            match object.take(key(slot)) {
                None | Some(Json::Null) if REQUIRED.get(slot as usize) == Some(&true) => {
                    return Err(Error::invalid(key(slot), "is required"))
                }
                None | Some(Json::Null) => {}
                Some(v) => spec.read(slot, &v)?,
            }
        }
        if let Some(unknown) = object.unknown() {
            return Err(unknown_field(unknown));
        }
        spec.validate()?;
        Ok(spec)
    }

    /// Sets the field `key` (a SPEC §2 name) from a JSON value, checking
    /// its type, not its rules (`validate`, run by `register`, does that);
    /// `null` leaves the field as it is. For a binding that reads a host's
    /// arguments one by one.
    ///
    /// # Errors
    /// `invalid_argument` naming the field when it is unknown or the value
    /// has the wrong type.
    pub fn set(&mut self, key: &str, value: &Json) -> Result<()> {
        let slot = InstanceField::position(key).ok_or_else(|| unknown_field(key))?;
        match (SLOTS.get(slot), value) {
            (_, Json::Null) => Ok(()),
            (Some(&slot), v) => self.read(slot, v),
            (None, _) => Err(unknown_field(key)),
        }
    }

    /// Reads one present field's value, of the type its kind says.
    fn read(&mut self, slot: Slot, v: &Json) -> Result<()> {
        let key = key(slot);
        let uint = |max: u64| json_uint(key, v, max);
        // Each narrowing below is within the kind's range, checked by `uint`.
        match slot {
            Slot::id => self.id = json_string(key, v)?,
            Slot::service => self.service = json_string(key, v)?,
            Slot::address => self.address = json_string(key, v)?,
            Slot::port => self.port = uint(const { kind_max(Slot::port) })? as u16,
            Slot::weight => self.weight = uint(const { kind_max(Slot::weight) })? as u32,
            Slot::tags => {
                let Json::Array(items) = v else {
                    return Err(Error::invalid(key, "must be an array of strings"));
                };
                self.tags.clear();
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Json::String(s) => self.tags.push(s.clone()),
                        _ => {
                            return Err(Error::invalid(text!("tags[", i, "]"), "must be a string"))
                        }
                    }
                }
            }
            Slot::meta => {
                let Json::Object(entries) = v else {
                    return Err(Error::invalid(key, "must be an object of strings"));
                };
                // Counted before inserting: each insert keeps the order.
                Meta::check_count(entries.len())?;
                self.meta = Meta::new();
                for (k, v) in entries {
                    match v {
                        Json::String(s) => {
                            self.meta.insert(k.clone(), s.clone());
                        }
                        _ => return Err(Error::invalid(text!("meta.", k), "must be a string")),
                    }
                }
            }
            Slot::zone => self.zone = Some(json_string(key, v)?),
            Slot::priority => self.priority = uint(const { kind_max(Slot::priority) })? as u8,
            Slot::ttl_ms => self.ttl_ms = Some(uint(const { kind_max(Slot::ttl_ms) })?),
            Slot::check_interval_ms => {
                self.check_interval_ms = Some(uint(const { kind_max(Slot::check_interval_ms) })?)
            }
        }
        Ok(())
    }

    /// The spec as a JSON object with the SPEC §2 field names (absent
    /// optional fields left out): the wire form every binding shares.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.open_members(&mut out).end();
        out
    }

    /// The wire form of an instance view ([`InstanceView::to_json`]) from
    /// its parts: this spec, the source that owns the instance (if any) and
    /// its status. For a binding that keeps the spec and the status apart.
    ///
    /// [`InstanceView::to_json`]: crate::InstanceView::to_json
    pub fn view_json(&self, source: Option<&str>, status: &InstanceStatus) -> String {
        let mut out = String::new();
        let mut w = self.open_members(&mut out);
        if let Some(source) = source {
            w.str("source", source);
        }
        status.write_members(&mut w);
        w.end();
        out
    }

    /// Opens an object and writes the wire form's members into it.
    // Inlined so `to_json` compiles as it did when it wrote them itself
    // (the WebAssembly module, which writes specs, stays the same size).
    #[inline(always)]
    fn open_members<'a>(&self, out: &'a mut String) -> ObjectWriter<'a> {
        let fields = Fields {
            id: &self.id,
            service: &self.service,
            address: &self.address,
            port: self.port,
            weight: self.weight,
            zone: self.zone.as_deref(),
            priority: self.priority,
            ttl_ms: self.ttl_ms,
            check_interval_ms: self.check_interval_ms,
        };
        let mut tags = self.tags.iter().map(String::as_str);
        let mut meta = self.meta.iter();
        let mut w = ObjectWriter::new(out);
        write_members(&mut w, &fields, &mut tags, &mut meta);
        w
    }

    /// Checks every SPEC §2 rule.
    ///
    /// # Errors
    /// `invalid_argument` naming the first field at fault.
    pub fn validate(&self) -> Result<()> {
        // The bounds are the table's (`INSTANCE_FIELDS`), fixed at compile time.
        const ID: (usize, usize) = bounds(Slot::id);
        check_text("id", &self.id, ID.0, ID.1)?;
        const SERVICE: (usize, usize) = bounds(Slot::service);
        check_text("service", &self.service, SERVICE.0, SERVICE.1)?;
        const ADDRESS: (usize, usize) = bounds(Slot::address);
        check_text("address", &self.address, ADDRESS.0, ADDRESS.1)?;
        const PORT: (u64, u64) = field(Slot::port).range;
        // The message spells the lowest port out.
        const _: () = assert!(PORT.0 == 1);
        if !(PORT.0..=PORT.1).contains(&u64::from(self.port)) {
            return Err(Error::invalid("port", text!("must be in 1..=", PORT.1)));
        }
        const WEIGHT: (u64, u64) = field(Slot::weight).range;
        range("weight", self.weight.into(), WEIGHT.0, WEIGHT.1)?;
        const TAGS: (usize, usize) = bounds(Slot::tags);
        if self.tags.len() > TAGS.1 {
            return Err(Error::invalid("tags", text!("more than ", TAGS.1, " tags")));
        }
        for (i, tag) in self.tags.iter().enumerate() {
            // The field name is only spelled out for an error.
            if check_name("", tag, MAX_ID_BYTES).is_err() {
                check_name(&text!("tags[", i, "]"), tag, MAX_ID_BYTES)?;
            }
        }
        Meta::check_count(self.meta.len())?;
        for (k, v) in &self.meta {
            check_name("meta key", k, MAX_META_KEY_BYTES)?;
            if check_text("", v, 0, MAX_META_VALUE_BYTES).is_err() {
                check_text(&text!("meta.", k), v, 0, MAX_META_VALUE_BYTES)?;
            }
        }
        if let Some(zone) = &self.zone {
            const ZONE: (usize, usize) = bounds(Slot::zone);
            check_text("zone", zone, ZONE.0, ZONE.1)?;
        }
        const TTL: (u64, u64) = field(Slot::ttl_ms).range;
        const CHECK: (u64, u64) = field(Slot::check_interval_ms).range;
        for (key, value, (lo, hi)) in [
            ("ttl_ms", self.ttl_ms, TTL),
            ("check_interval_ms", self.check_interval_ms, CHECK),
        ] {
            if let Some(ms) = value {
                range(key, ms, lo, hi)?;
            }
        }
        Ok(())
    }
}

/// The order the reader takes the fields in, which decides the error a
/// spec with several faults gets (the port first, as it always was).
pub(crate) const READ_ORDER: [Slot; SLOTS.len()] = [
    Slot::port,
    Slot::id,
    Slot::service,
    Slot::address,
    Slot::weight,
    Slot::priority,
    Slot::ttl_ms,
    Slot::check_interval_ms,
    Slot::zone,
    Slot::tags,
    Slot::meta,
];

/// A string member's value.
fn json_string(key: &str, v: &Json) -> Result<String> {
    match v {
        Json::String(s) => Ok(s.clone()),
        _ => Err(Error::invalid(
            key,
            text!("must be a string, got ", describe(v)),
        )),
    }
}

/// An integer member's value, up to `max` (its type's largest).
fn json_uint(key: &str, v: &Json, max: u64) -> Result<u64> {
    match v.as_u64() {
        Some(n) if n <= max => Ok(n),
        _ => Err(Error::invalid(
            key,
            text!("must be an integer in 0..=", max, ", got ", describe(v)),
        )),
    }
}

/// The error for a member that is no instance field.
#[cold]
fn unknown_field(key: &str) -> Error {
    Error::invalid(key, "unknown instance field")
}

/// Checks a name-like string: 1..=max bytes, no control characters.
/// The error for a value longer than `max` bytes (one copy of the message).
#[cold]
#[inline(never)]
pub(crate) fn too_long(field: &str, max: usize) -> Error {
    Error::invalid(field, text!("longer than ", max, " bytes"))
}

pub(crate) fn check_name(field: &str, value: &str, max: usize) -> Result<()> {
    check_text(field, value, 1, max)
}

fn check_text(field: &str, value: &str, min: usize, max: usize) -> Result<()> {
    if value.len() < min || value.len() > max {
        return Err(Error::invalid(
            field,
            text!(
                "length ",
                value.len(),
                " is outside ",
                min,
                "..=",
                max,
                " bytes"
            ),
        ));
    }
    // Printable ASCII (the usual case) needs no character decoding.
    if value
        .bytes()
        .fold(true, |ok, b| ok & (0x20..0x7f).contains(&b))
    {
        return Ok(());
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(Error::invalid(
            field,
            text!("contains control character ", CodePoint(c)),
        ));
    }
    Ok(())
}

/// A registered instance: the validated, normalised fields of its spec.
///
/// Read it through [`Registry::get`](crate::Registry::get) or a pick; its
/// dynamic state (health, lease, in-flight calls) is in [`InstanceStatus`](crate::InstanceStatus).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub(crate) id: Arc<str>,
    pub(crate) service: Arc<str>,
    pub(crate) address: Box<str>,
    pub(crate) port: u16,
    pub(crate) weight: u32,
    pub(crate) tags: Box<[Box<str>]>,
    pub(crate) meta: Box<[(Box<str>, Box<str>)]>,
    pub(crate) zone: Option<Box<str>>,
    pub(crate) priority: u8,
    pub(crate) ttl_ms: Option<u64>,
    pub(crate) check_interval_ms: Option<u64>,
    /// The source that owns it (SPEC §10.1); `None` for a local instance.
    pub(crate) source: Option<Arc<str>>,
}

impl Instance {
    /// An instance with every field empty (see `Entry::detached`).
    pub(crate) fn empty(id: Arc<str>, service: Arc<str>) -> Instance {
        Instance {
            id,
            service,
            address: Box::from(""),
            port: 0,
            weight: 0,
            tags: Box::new([]),
            meta: Box::new([]),
            zone: None,
            priority: 0,
            ttl_ms: None,
            check_interval_ms: None,
            source: None,
        }
    }

    /// Builds the stored form from a validated spec; `service` is the
    /// registry's shared copy of the service name.
    pub(crate) fn from_spec(spec: InstanceSpec, id: Arc<str>, service: Arc<str>) -> Instance {
        let mut tags: Vec<Box<str>> = Vec::with_capacity(spec.tags.len());
        for tag in spec.tags {
            if !tags.iter().any(|t| **t == *tag) {
                tags.push(tag.into_boxed_str());
            }
        }
        Instance {
            id,
            service,
            address: spec.address.into_boxed_str(),
            port: spec.port,
            weight: spec.weight,
            tags: tags.into_boxed_slice(),
            meta: spec
                .meta
                .into_iter()
                .map(|(k, v)| (k.into_boxed_str(), v.into_boxed_str()))
                .collect(),
            // An empty zone is no zone (SPEC §2), as in a pick's options.
            zone: spec
                .zone
                .filter(|z| !z.is_empty())
                .map(String::into_boxed_str),
            priority: spec.priority,
            ttl_ms: spec.ttl_ms,
            check_interval_ms: spec.check_interval_ms,
            source: None,
        }
    }

    /// Whether the stored fields are what `spec` would give (tags after
    /// removing duplicates; the lease length is ignored for a source-owned
    /// instance, which has none).
    pub(crate) fn same_fields(&self, spec: &InstanceSpec) -> bool {
        let mut tags = self.tags.iter();
        let mut seen = 0usize;
        for (i, tag) in spec.tags.iter().enumerate() {
            if spec.tags.iter().take(i).any(|t| t == tag) {
                continue;
            }
            seen += 1;
            if tags.next().map(|t| &**t) != Some(tag.as_str()) {
                return false;
            }
        }
        *self.address == *spec.address
            && self.port == spec.port
            && self.weight == spec.weight
            && seen == self.tags.len()
            && self.meta.len() == spec.meta.len()
            && self
                .meta
                .iter()
                .zip(spec.meta.iter())
                .all(|((k, v), (sk, sv))| **k == *sk && **v == *sv)
            && self.zone.as_deref() == spec.zone.as_deref()
            && self.priority == spec.priority
            && (self.source.is_some() || self.ttl_ms == spec.ttl_ms)
            && self.check_interval_ms == spec.check_interval_ms
    }

    /// The source that owns this instance, if any (SPEC §10.1).
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }

    /// The instance id.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// The service it belongs to.
    pub fn service(&self) -> &str {
        &self.service
    }
    /// Host name or IP.
    pub fn address(&self) -> &str {
        &self.address
    }
    /// Port.
    pub fn port(&self) -> u16 {
        self.port
    }
    /// Configured weight (before slow start).
    pub fn weight(&self) -> u32 {
        self.weight
    }
    /// Tags, duplicates removed, registration order kept.
    pub fn tags(&self) -> impl ExactSizeIterator<Item = &str> {
        self.tags.iter().map(|t| &**t)
    }
    /// Metadata entries in key order.
    pub fn meta(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.meta.iter().map(|(k, v)| (&**k, &**v))
    }
    /// Metadata value for `key`.
    pub fn meta_get(&self, key: &str) -> Option<&str> {
        self.meta
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &*self.meta[i].1)
    }
    /// Locality, if set.
    pub fn zone(&self) -> Option<&str> {
        self.zone.as_deref()
    }
    /// Failover tier.
    pub fn priority(&self) -> u8 {
        self.priority
    }
    /// Per-instance lease length, if it overrides the registry's.
    pub fn ttl_ms(&self) -> Option<u64> {
        self.ttl_ms
    }
    /// Active-check interval, if the host runs checks for it.
    pub fn check_interval_ms(&self) -> Option<u64> {
        self.check_interval_ms
    }
    /// Whether the instance carries every tag and every metadata pair of `filter`.
    pub fn matches(&self, filter: &Filter) -> bool {
        filter
            .tags
            .iter()
            .all(|want| self.tags.iter().any(|t| **t == **want))
            && filter
                .meta
                .iter()
                .all(|(k, v)| self.meta_get(k) == Some(v.as_str()))
    }

    /// The instance in the wire form of [`InstanceSpec::to_json`].
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    /// Appends the wire form.
    pub(crate) fn write_json(&self, out: &mut String) {
        let mut w = ObjectWriter::new(out);
        self.write_members(&mut w);
        w.end();
    }

    /// Appends the wire form's members to an open object (a status may follow).
    pub(crate) fn write_members(&self, w: &mut ObjectWriter) {
        let fields = Fields {
            id: &self.id,
            service: &self.service,
            address: &self.address,
            port: self.port,
            weight: self.weight,
            zone: self.zone.as_deref(),
            priority: self.priority,
            ttl_ms: self.ttl_ms,
            check_interval_ms: self.check_interval_ms,
        };
        write_members(w, &fields, &mut self.tags(), &mut self.meta());
        if let Some(source) = &self.source {
            w.str("source", source);
        }
    }

    /// The spec this instance was registered with (normalised).
    pub fn to_spec(&self) -> InstanceSpec {
        InstanceSpec {
            id: String::from(&*self.id),
            service: String::from(&*self.service),
            address: String::from(&*self.address),
            port: self.port,
            weight: self.weight,
            tags: self.tags.iter().map(|t| String::from(&**t)).collect(),
            meta: self
                .meta
                .iter()
                .map(|(k, v)| (String::from(&**k), String::from(&**v)))
                .collect(),
            zone: self.zone.as_deref().map(String::from),
            priority: self.priority,
            ttl_ms: self.ttl_ms,
            check_interval_ms: self.check_interval_ms,
        }
    }
}

/// A tag and metadata filter for discover and pick: an instance matches when
/// it carries every listed tag and every listed metadata pair.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Required tags.
    pub tags: Vec<String>,
    /// Required metadata pairs.
    pub meta: Vec<(String, String)>,
}

impl Filter {
    /// True when the filter requires nothing.
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.meta.is_empty()
    }

    /// A filter from its JSON form, `{"tags": ["a", …], "meta": {"k": "v",
    /// …}}` (both keys optional): what the bindings that pass filters as
    /// text hand over. The contents are checked where the filter is used.
    /// A repeated key (`tags` or `meta` given twice, a metadata key twice)
    /// keeps its last value, as everywhere the core reads JSON; the
    /// metadata pairs come back in key order.
    ///
    /// # Errors
    /// `invalid_argument` (field `filter`) for malformed JSON, an unknown
    /// key, or a tag or value that is not a string (with several faults:
    /// `tags`, then `meta`, then an unknown key).
    pub fn from_json(text: &str) -> Result<Filter> {
        const FIELD: &str = "filter";
        let value =
            Json::parse(text).map_err(|e| Error::invalid(FIELD, text!("not valid JSON: ", e)))?;
        let Json::Object(members) = value else {
            return Err(Error::invalid(FIELD, "must be a JSON object"));
        };
        let mut object = Object::new(members);
        let mut filter = Filter::default();
        match object.take("tags") {
            None => {}
            Some(Json::Array(items)) => {
                for item in items {
                    match item {
                        Json::String(tag) => filter.tags.push(tag),
                        other => {
                            return Err(Error::invalid(
                                FIELD,
                                text!("tags: ", describe(&other), " is not a string"),
                            ))
                        }
                    }
                }
            }
            Some(_) => return Err(Error::invalid(FIELD, "tags must be an array of strings")),
        }
        match object.take("meta") {
            None => {}
            Some(Json::Object(entries)) => {
                // A repeated metadata key keeps its last value.
                Meta::check_count(entries.len())?;
                let mut meta = Meta::new();
                for (k, v) in entries {
                    match v {
                        Json::String(v) => {
                            meta.insert(k, v);
                        }
                        other => {
                            return Err(Error::invalid(
                                FIELD,
                                text!("meta.", k, ": ", describe(&other), " is not a string"),
                            ))
                        }
                    }
                }
                filter.meta = meta.into_iter().collect();
            }
            Some(_) => return Err(Error::invalid(FIELD, "meta must be an object of strings")),
        }
        if let Some(unknown) = object.unknown() {
            return Err(Error::invalid(FIELD, text!("unknown key `", unknown, "`")));
        }
        Ok(filter)
    }
}

/// The scalar fields of the instance wire form.
struct Fields<'a> {
    id: &'a str,
    service: &'a str,
    address: &'a str,
    port: u16,
    weight: u32,
    zone: Option<&'a str>,
    priority: u8,
    ttl_ms: Option<u64>,
    check_interval_ms: Option<u64>,
}

/// Writes the instance members, in the order every binding sees them, into
/// an open object. Both [`InstanceSpec`] and [`Instance`] are written
/// through here, each describing its own fields in a [`Fields`].
fn write_members(
    w: &mut ObjectWriter,
    f: &Fields,
    tags: &mut dyn Iterator<Item = &str>,
    meta: &mut dyn Iterator<Item = (&str, &str)>,
) {
    w.str("id", f.id);
    w.str("service", f.service);
    w.str("address", f.address);
    w.u64("port", f.port.into());
    w.u64("weight", f.weight.into());
    write_array(w.key("tags"), tags, write_str);
    let mut m = ObjectWriter::new(w.key("meta"));
    for (k, v) in meta {
        m.str(k, v);
    }
    m.end();
    if let Some(zone) = f.zone {
        w.str("zone", zone);
    }
    w.u64("priority", f.priority.into());
    if let Some(ms) = f.ttl_ms {
        w.u64("ttl_ms", ms);
    }
    if let Some(ms) = f.check_interval_ms {
        w.u64("check_interval_ms", ms);
    }
}
