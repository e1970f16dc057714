//! Registry events (SPEC §6) and the retained log behind `events_since`.

use crate::prelude::*;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::fmt;
use core::str::FromStr;

use crate::error::{Error, Result};
use crate::health::Health;
use crate::json::{write_array, ObjectWriter};

name_table! {
    /// What happened.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
    #[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
    pub enum EventKind {
        /// A new instance was registered.
        Registered = 0 => "registered",
        /// An existing instance was registered again with new fields.
        Updated = 1 => "updated",
        /// An instance was deregistered by the host.
        Deregistered = 2 => "deregistered",
        /// An instance's public health changed (`from` → `to`).
        HealthChanged = 3 => "health_changed",
        /// An instance whose lease stayed expired was removed.
        Evicted = 4 => "evicted",
        /// A service fell below its panic threshold.
        PanicEntered = 5 => "panic_entered",
        /// A service rose back to its panic threshold.
        PanicExited = 6 => "panic_exited",
        /// The registry began holding back lease expiries.
        SelfPreservationEntered = 7 => "self_preservation_entered",
        /// The registry stopped holding back lease expiries.
        SelfPreservationExited = 8 => "self_preservation_exited",
        /// A removal a source asked for is held back (SPEC §10.3).
        RemovalHeld = 9 => "removal_held",
        /// A held removal stopped being held: applied, or the source listed
        /// the instance again.
        RemovalReleased = 10 => "removal_released",
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| Error::invalid("type", text!("unknown event type `", s, "`")))
    }
}

/// One state change, with its registry-wide index.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Event {
    /// Strictly increasing across the registry, starting at 1.
    pub index: u64,
    /// What happened.
    #[cfg_attr(feature = "serde", serde(rename = "type"))]
    pub kind: EventKind,
    /// Registry time of the change, in ms.
    pub at: u64,
    /// The instance concerned, if any.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub id: Option<Arc<str>>,
    /// The service concerned, if any.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub service: Option<Arc<str>>,
    /// The source whose reconcile caused it, if any (SPEC §10.2).
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub source: Option<Arc<str>>,
    /// Health before a `health_changed`.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub from: Option<Health>,
    /// Health after a `health_changed`.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub to: Option<Health>,
}

impl Event {
    /// The event as a JSON object (the wire form every binding shares).
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    /// Appends the wire form.
    pub fn write_json(&self, out: &mut String) {
        let mut w = ObjectWriter::new(out);
        w.u64("index", self.index);
        w.str("type", self.kind.as_str());
        w.u64("at", self.at);
        if let Some(id) = &self.id {
            w.str("id", id);
        }
        if let Some(service) = &self.service {
            w.str("service", service);
        }
        if let Some(source) = &self.source {
            w.str("source", source);
        }
        if let Some(from) = self.from {
            w.str("from", from.as_str());
        }
        if let Some(to) = self.to {
            w.str("to", to.as_str());
        }
        w.end();
    }

    /// A list of events as a JSON array of wire forms.
    pub fn list_to_json(events: &[Event]) -> String {
        let mut out = String::new();
        write_array(&mut out, events, |out, e| e.write_json(out));
        out
    }
}

/// The retained tail of the event stream.
#[derive(Debug, Clone)]
pub(crate) struct EventLog {
    events: VecDeque<Event>,
    last_index: u64,
    retention: usize,
    /// While set, every pushed event is also copied here (so `tick` returns
    /// all it produced even when that is more than the retention).
    capture: Option<Vec<Event>>,
    /// While set, every pushed event names this source: a reconcile sets
    /// it around what it applies, so the events it causes (health and
    /// panic changes included) carry it without threading it through.
    pub source: Option<Arc<str>>,
}

/// The largest event index a registry accepts from a snapshot: 2^53 − 1,
/// so every index is exact as a JavaScript number too.
pub const MAX_EVENT_INDEX: u64 = (1 << 53) - 1;

impl EventLog {
    pub fn new(retention: u32) -> EventLog {
        EventLog {
            events: VecDeque::new(),
            last_index: 0,
            retention: retention.max(1) as usize,
            capture: None,
            source: None,
        }
    }

    /// A log from a snapshot's retained events (already checked to be the
    /// contiguous tail ending at `last_index`).
    pub fn restore(events: Vec<Event>, last_index: u64, retention: u32) -> EventLog {
        EventLog {
            events: events.into(),
            last_index,
            retention: retention.max(1) as usize,
            capture: None,
            source: None,
        }
    }

    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    pub fn push(
        &mut self,
        kind: EventKind,
        at: u64,
        id: Option<Arc<str>>,
        service: Option<Arc<str>>,
        change: Option<(Health, Health)>,
    ) -> u64 {
        // Indexes never wrap: a restored `last_index` is at most
        // `MAX_EVENT_INDEX` (snapshot checks), and reaching it by pushing
        // takes 2^53 events; at the limit the index stays put rather than
        // restarting from 0.
        debug_assert!(self.last_index < u64::MAX, "event index at its limit");
        self.last_index = self.last_index.saturating_add(1);
        if self.events.len() == self.retention {
            self.events.pop_front();
        }
        let event = Event {
            index: self.last_index,
            kind,
            at,
            id,
            service,
            source: self.source.clone(),
            from: change.map(|c| c.0),
            to: change.map(|c| c.1),
        };
        if let Some(captured) = &mut self.capture {
            captured.push(event.clone());
        }
        self.events.push_back(event);
        self.last_index
    }

    /// Starts copying pushed events aside.
    pub fn start_capture(&mut self) {
        self.capture = Some(Vec::new());
    }

    /// Stops copying and returns what was pushed since `start_capture`.
    pub fn take_capture(&mut self) -> Vec<Event> {
        self.capture.take().unwrap_or_default()
    }

    /// Retained events with index > `after`.
    pub fn since(&self, after: u64) -> Result<Vec<Event>> {
        Ok(self.slice_since(after)?.cloned().collect())
    }

    pub fn slice_since(&self, after: u64) -> Result<impl Iterator<Item = &Event>> {
        // Nothing after the newest index (any `after` up to u64::MAX): an
        // empty list, never `compacted` (`after + 1` would wrap).
        if after >= self.last_index {
            return Ok(self.events.iter().skip(self.events.len()));
        }
        // Here `after < last_index`, so `after + 1` cannot overflow.
        let next = after + 1;
        let oldest = self.events.front().map_or(next, |e| e.index);
        if next < oldest {
            return Err(Error::Compacted {
                requested: after,
                oldest,
            });
        }
        let skip = usize::try_from(next - oldest).unwrap_or(usize::MAX);
        Ok(self.events.iter().skip(skip))
    }

    pub fn retained(&self) -> impl Iterator<Item = &Event> {
        self.events.iter()
    }
}
