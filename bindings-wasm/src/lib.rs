//! WebAssembly bindings of the waypost core (wasm-bindgen).
//!
//! This crate is the thin floor under the npm package's JavaScript facade
//! (`npm/src/facade.js`): each method converts its arguments and makes one
//! core call. A failure is kept for `takeError` (see [`error`]) and the method
//! returns a marker: -1, `undefined`, or a registry that `failed`. The
//! facade throws the `WaypostError`, so the module makes no JavaScript
//! values and imports nothing for errors. The hot paths (`pick`,
//! `heartbeat`, `reportOutcome`, `discover`, `tick`) move no strings: they
//! trade in slot indexes the facade maps to cached instance objects, valid
//! while the registry's membership epoch is unchanged.
//!
//! ```js
//! import { Registry } from "waypost";
//! const reg = new Registry({ ttlMs: 10_000, seed: 7 });
//! reg.register({ id: "api-1", service: "api", address: "10.0.0.1", port: 8080 }, 0);
//! reg.pick("api", "round_robin", {}, 1).instance.id; // "api-1"
//! ```
//!
//! On wasm32 the crate is `no_std`: a panic (which nothing a caller passes
//! can reach) traps at once instead of going through std's panic runtime,
//! which would otherwise be a sixth of the module.
#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;

mod error;
#[cfg(any(test, target_arch = "wasm32"))]
mod heap;
mod shapes;

use wasm_bindgen::prelude::*;
use waypost::json;
use waypost::{
    CheckStatus, Config, DiscoverOptions, Event, Handle, InstanceSpec, PickOptions, Registry,
    ServiceRef, Strategy, CONFIG_KEYS,
};

use error::error_text;
use shapes::{filter_of, ms};

/// The service of a pick: by reference or, the first time, by name.
enum Target<'a> {
    Ref(u32),
    Name(&'a str),
}

/// Slots below this and generations below 2^29 pack into one exact JS number.
const SLOT_SPAN: f64 = 16_777_216.0;

/// The registry as the JavaScript facade drives it. Not meant to be used
/// directly: `Registry` in the npm package wraps it.
#[wasm_bindgen(js_name = RegistryCore)]
pub struct RegistryCore {
    inner: Registry,
    /// The error of the last failed integer-returning call (`takeError`).
    error: Option<waypost::Error>,
    /// Membership epoch the facade's instance cache was built at.
    seen_epoch: u64,
    /// Events produced by the last `tick` (`takeTickEvents`).
    tick_events: Vec<Event>,
    /// Generation of each slot as last handed out, so `instanceAt(slot)`
    /// can name the full handle without the facade passing it back.
    generations: Vec<u32>,
    /// The options of a plain pick, kept so the hot path builds and drops nothing.
    no_options: PickOptions,
}

impl RegistryCore {
    fn wrap(inner: Registry) -> RegistryCore {
        let seen_epoch = inner.membership_epoch();
        RegistryCore {
            inner,
            error: None,
            seen_epoch,
            tick_events: Vec::new(),
            generations: Vec::new(),
            no_options: PickOptions::default(),
        }
    }

    /// Remembers the generation of a handle the facade is about to see.
    fn note(&mut self, handle: Handle) -> u32 {
        note(&mut self.generations, handle)
    }

    /// 1 when the facade's instance cache is stale, else 0.
    fn stale(&self) -> i32 {
        i32::from(self.inner.membership_epoch() != self.seen_epoch)
    }

    /// A failed registry in place of one that could not be made: the
    /// default registry, with the error kept for `takeError`.
    fn failed_with(error: waypost::Error) -> RegistryCore {
        let mut core = RegistryCore::wrap(Registry::default());
        core.error = Some(error);
        core
    }

    /// `slot << 2 | panic << 1 | stale`, or -1 with the error kept.
    fn pick_code(&mut self, result: waypost::Result<waypost::Pick>) -> i32 {
        match kept(&mut self.error, result) {
            Some(pick) => {
                ((self.note(pick.handle) as i32) << 2) | (i32::from(pick.panic) << 1) | self.stale()
            }
            None => -1,
        }
    }

    /// The one body of `pickWith` and `pickNamed` (a copy each would be
    /// 2 KB of the module).
    #[inline(never)]
    fn pick_options(
        &mut self,
        service: Target,
        strategy: u8,
        key: Option<String>,
        zone: Option<String>,
        filter: Option<String>,
        now: f64,
    ) -> i32 {
        let Some(filter) = kept(&mut self.error, filter_of(filter)) else {
            return -1;
        };
        let options = PickOptions { key, zone, filter };
        let result = match (Strategy::from_u8(strategy), service) {
            (None, _) => Err(unknown_strategy()),
            (Some(s), Target::Ref(index)) => {
                self.inner
                    .pick_ref(ServiceRef::from_index(index), s, &options, ms(now))
            }
            (Some(s), Target::Name(name)) => self.inner.pick(name, s, &options, ms(now)),
        };
        self.pick_code(result)
    }

    fn handle(slot: u32, generation: u32) -> Handle {
        Handle::from_bits((u64::from(generation) << 32) | u64::from(slot))
    }
}

#[wasm_bindgen(js_class = RegistryCore)]
impl RegistryCore {
    /// A new registry from a JSON object of SPEC §4 keys (snake_case).
    /// Never fails here: a bad configuration gives a registry that says so
    /// (`failed`, then `takeError`).
    #[wasm_bindgen(constructor)]
    pub fn new(config_json: &str) -> RegistryCore {
        match Config::from_json(config_json).and_then(Registry::new) {
            Ok(registry) => RegistryCore::wrap(registry),
            Err(e) => RegistryCore::failed_with(e),
        }
    }

    /// A registry restored from a snapshot document (see `new` for errors).
    pub fn restore(json: &str) -> RegistryCore {
        match Registry::restore(json) {
            Ok(registry) => RegistryCore::wrap(registry),
            Err(e) => RegistryCore::failed_with(e),
        }
    }

    /// Whether an error waits for `takeError` (after `new` or `restore`:
    /// the registry could not be made).
    pub fn failed(&self) -> bool {
        self.error.is_some()
    }

    /// The whole registry as a JSON document.
    pub fn snapshot(&self) -> String {
        self.inner.snapshot()
    }

    /// The configuration in force: JSON, snake_case keys.
    pub fn config(&self) -> String {
        self.inner.config().to_json()
    }

    /// Registers (or updates) an instance from a JSON object of SPEC §2
    /// fields; returns its slot, or -1 (`takeError`).
    pub fn register(&mut self, spec_json: &str, now: f64) -> f64 {
        let result =
            InstanceSpec::from_json(spec_json).and_then(|spec| self.inner.register(spec, ms(now)));
        match kept(&mut self.error, result) {
            Some(handle) => self.note(handle).into(),
            None => -1.0,
        }
    }

    /// Removes an instance.
    pub fn deregister(&mut self, id: &str, now: f64) -> i32 {
        status_code(&mut self.error, self.inner.deregister(id, ms(now)))
    }

    /// Renews an instance's lease by id.
    pub fn heartbeat(&mut self, id: &str, now: f64) -> i32 {
        status_code(&mut self.error, self.inner.heartbeat(id, ms(now)))
    }

    /// Heartbeat by handle: 0, or -1 with the error for `takeError`.
    #[wasm_bindgen(js_name = heartbeatAt)]
    pub fn heartbeat_at(&mut self, slot: u32, generation: u32, now: f64) -> i32 {
        status_code(
            &mut self.error,
            self.inner
                .heartbeat_handle(Self::handle(slot, generation), ms(now)),
        )
    }

    /// Puts an instance into maintenance or takes it out.
    pub fn drain(&mut self, id: &str, on: bool, now: f64) -> i32 {
        status_code(&mut self.error, self.inner.drain(id, on, ms(now)))
    }

    /// Reports an active check result (`pass`, `warn`, `fail`).
    #[wasm_bindgen(js_name = reportCheck)]
    pub fn report_check(&mut self, id: &str, status: &str, now: f64) -> i32 {
        status_code(
            &mut self.error,
            status
                .parse::<CheckStatus>()
                .and_then(|status| self.inner.report_check(id, status, ms(now))),
        )
    }

    /// Reports a call outcome by id.
    #[wasm_bindgen(js_name = reportOutcome)]
    pub fn report_outcome(&mut self, id: &str, success: bool, now: f64) -> i32 {
        status_code(
            &mut self.error,
            self.inner.report_outcome(id, success, ms(now)),
        )
    }

    /// Outcome by handle: 0, or -1 with the error for `takeError`.
    #[wasm_bindgen(js_name = reportOutcomeAt)]
    pub fn report_outcome_at(
        &mut self,
        slot: u32,
        generation: u32,
        success: bool,
        now: f64,
    ) -> i32 {
        status_code(
            &mut self.error,
            self.inner
                .report_outcome_handle(Self::handle(slot, generation), success, ms(now)),
        )
    }

    /// Marks a call as started (in-flight count).
    pub fn begin(&mut self, id: &str, now: f64) -> i32 {
        status_code(&mut self.error, self.inner.begin(id, ms(now)))
    }

    /// Marks a call as finished.
    pub fn end(&mut self, id: &str, now: f64) -> i32 {
        status_code(&mut self.error, self.inner.end(id, ms(now)))
    }

    /// The instance's status: JSON `[slot, stale, status]` (status in its
    /// wire form, snake_case; the facade has the instance by slot).
    pub fn get(&mut self, id: &str, now: f64) -> Option<String> {
        let view = kept(&mut self.error, self.inner.get(id, ms(now)))?;
        let (handle, status) = (view.handle, view.status);
        let slot = self.note(handle);
        let mut out = String::from("[");
        json::write_u64(&mut out, slot.into());
        out.push_str(if self.stale() != 0 { ",1," } else { ",0," });
        out.push_str(&status.to_json());
        out.push(']');
        Some(out)
    }

    /// `generation * 2^24 + slot` of a registered id, or -1 (also when the
    /// pair does not fit a JS number exactly: the facade then uses the id).
    #[wasm_bindgen(js_name = handleOf)]
    pub fn handle_of(&self, id: &str) -> f64 {
        match self.inner.handle_of(id) {
            Some(h) if f64::from(h.index()) < SLOT_SPAN && h.generation() < (1 << 29) => {
                f64::from(h.generation()) * SLOT_SPAN + f64::from(h.index())
            }
            _ => -1.0,
        }
    }

    /// The instance in a slot in its JSON wire form, undefined for an empty
    /// slot. Text, not a JS value: V8 in Node 20 can crash deoptimizing a
    /// caller of an export that returns a reference.
    #[wasm_bindgen(js_name = instanceAt)]
    pub fn instance_at(&self, slot: u32) -> Option<String> {
        let &generation = self.generations.get(slot as usize)?;
        self.inner
            .instance(Self::handle(slot, generation))
            .map(|instance| instance.to_json())
    }

    /// Marks the facade's instance cache as rebuilt at the current epoch.
    #[wasm_bindgen(js_name = ackEpoch)]
    pub fn ack_epoch(&mut self) {
        self.seen_epoch = self.inner.membership_epoch();
    }

    /// Changes whenever an instance is added, removed or replaced.
    #[wasm_bindgen(js_name = membershipEpoch)]
    pub fn membership_epoch(&self) -> f64 {
        self.inner.membership_epoch() as f64
    }

    /// A service reference for `pickIndex` (valid for the registry's life).
    #[wasm_bindgen(js_name = serviceRef)]
    pub fn service_ref(&mut self, name: &str) -> f64 {
        kept(&mut self.error, self.inner.service_ref(name)).map_or(-1.0, |r| r.index().into())
    }

    /// The hot path: `slot << 2 | panic << 1 | stale`, or -1 (`takeError`).
    #[wasm_bindgen(js_name = pickIndex)]
    pub fn pick_index(&mut self, service: u32, strategy: u8, now: f64) -> i32 {
        let result = match Strategy::from_u8(strategy) {
            Some(s) => self.inner.pick_ref(
                ServiceRef::from_index(service),
                s,
                &self.no_options,
                ms(now),
            ),
            None => Err(unknown_strategy()),
        };
        self.pick_code(result)
    }

    /// `pickIndex` with a key, zone and a filter in its JSON form.
    // Flat arguments keep the JS boundary free of object conversions.
    #[allow(clippy::too_many_arguments)]
    #[wasm_bindgen(js_name = pickWith)]
    pub fn pick_with(
        &mut self,
        service: u32,
        strategy: u8,
        key: Option<String>,
        zone: Option<String>,
        filter: Option<String>,
        now: f64,
    ) -> i32 {
        self.pick_options(Target::Ref(service), strategy, key, zone, filter, now)
    }

    /// `pickWith` by service name (the first pick of a service: the facade
    /// takes a reference only once the service is known to exist).
    // Flat arguments keep the JS boundary free of object conversions.
    #[allow(clippy::too_many_arguments)]
    #[wasm_bindgen(js_name = pickNamed)]
    pub fn pick_named(
        &mut self,
        service: &str,
        strategy: u8,
        key: Option<String>,
        zone: Option<String>,
        filter: Option<String>,
        now: f64,
    ) -> i32 {
        self.pick_options(Target::Name(service), strategy, key, zone, filter, now)
    }

    /// The sources API (SPEC §10) behind one export, which keeps the
    /// module small: `op` 0 `sync(a = source, b = service, c = entries)`,
    /// 1 `source_put(a = source, c = entry)`, 2 `source_delete(a = source,
    /// b = id)`, 3 `source_add(a = name, c = options)`, 4
    /// `source_request(a = name)`, 5 `source_feed(a = name, c = body,
    /// status, b = index or "")`; in Node's module (feature
    /// `consul-registration`) also 6 `ConsulRegistration::new(c = entry,
    /// a = ttl_s, b = deregister_after_s)`, the seconds as decimal text, its
    /// answer the registration (the browser's module leaves it out for size
    /// and reads 6 as 5). Each is one core call; the answer is the
    /// report or request as JSON ("" for `source_add`), or `undefined` with
    /// the error kept for `takeError`. `c` comes as bytes: copied in whole,
    /// where a string is copied a character at a time while it is ASCII
    /// (most of a 3 MB etcd answer); a payload may be binary (etcd's gRPC
    /// range answer), every other argument is UTF-8 text.
    pub fn source(
        &mut self,
        op: u8,
        a: &str,
        b: &str,
        c: &[u8],
        now: f64,
        status: u16,
    ) -> Option<String> {
        let (r, now) = (&mut self.inner, ms(now));
        // A payload goes in as bytes where it may be binary (etcd's gRPC
        // range answer, read only by Node's module).
        #[cfg(feature = "etcd-grpc")]
        if op > 4 && !(cfg!(feature = "consul-registration") && op == 6) {
            let index = (!b.is_empty()).then_some(b);
            let answer = r.source_feed_bytes(a, c, now, status, index);
            return kept(&mut self.error, answer.map(|x| x.to_json()));
        }
        let Ok(c) = core::str::from_utf8(c) else {
            let invalid = waypost::Error::InvalidArgument {
                field: "body".to_owned(),
                reason: "not valid UTF-8".to_owned(),
            };
            return kept(&mut self.error, Err(invalid));
        };
        let answer = match op {
            0 => r.sync_json(a, b, c, now).map(|x| x.to_json()),
            1 => r.source_put_json(a, c, now).map(|x| x.to_json()),
            2 => r.source_delete(a, b, now).map(|x| x.to_json()),
            3 => r.source_add(a, c).map(|()| String::new()),
            4 => r.source_request(a).map(|x| x.to_json()),
            #[cfg(feature = "consul-registration")]
            6 => consul_registration(a, b, c),
            _ => {
                let index = (!b.is_empty()).then_some(b);
                r.source_feed(a, c, now, status, index).map(|x| x.to_json())
            }
        };
        kept(&mut self.error, answer)
    }

    /// The error of the last call that returned -1, as `code message`
    /// (text for the reason given at `instanceAt`).
    #[wasm_bindgen(js_name = takeError)]
    pub fn take_error(&mut self) -> String {
        error_text(self.error.take().as_ref())
    }

    /// `[flags, slot << 3 | health, ...]` with flags `panic | stale << 1`.
    pub fn discover(
        &mut self,
        service: &str,
        all: bool,
        filter: Option<String>,
        now: f64,
    ) -> Option<Vec<u32>> {
        let filter = kept(&mut self.error, filter_of(filter))?;
        let options = DiscoverOptions { all, filter };
        let found = kept(
            &mut self.error,
            self.inner.discover(service, &options, ms(now)),
        )?;
        let generations = &mut self.generations;
        let mut out = Vec::with_capacity(found.len() + 1);
        out.push(u32::from(found.panic));
        for (handle, health) in found.health() {
            out.push((note(generations, handle) << 3) | health as u32);
        }
        drop(found);
        if let (Some(flags), 1) = (out.first_mut(), self.stale()) {
            *flags |= 2;
        }
        Some(out)
    }

    /// Advances the clock to `now` and returns the service's discover
    /// stamp (`Registry::discover_stamp`; -1 when the service has no
    /// instances or its name is malformed): the facade reuses its last
    /// unfiltered `discover` answer while this is unchanged (SPEC §5.4).
    #[wasm_bindgen(js_name = discoverToken)]
    pub fn discover_token(&mut self, service: &str, now: f64) -> f64 {
        self.inner
            .discover_stamp(service, ms(now))
            .map_or(-1.0, |stamp| stamp.modify_index() as f64)
    }

    /// Advances the clock; returns how many events that produced (fetch
    /// them with `takeTickEvents`).
    pub fn tick(&mut self, now: f64) -> u32 {
        self.tick_events = self.inner.tick(ms(now));
        self.tick_events.len() as u32
    }

    /// The events of the last `tick`: a JSON array of wire-form events.
    #[wasm_bindgen(js_name = takeTickEvents)]
    pub fn take_tick_events(&mut self) -> String {
        let events = core::mem::take(&mut self.tick_events);
        Event::list_to_json(&events)
    }

    /// Retained events after an index: a JSON array of wire-form events.
    #[wasm_bindgen(js_name = eventsSince)]
    pub fn events_since(&mut self, after: f64) -> Option<String> {
        let events = kept(&mut self.error, self.inner.events_since(ms(after)))?;
        Some(Event::list_to_json(&events))
    }

    /// When advancing the clock would next change state.
    #[wasm_bindgen(js_name = nextDeadline)]
    pub fn next_deadline(&mut self) -> Option<f64> {
        self.inner.next_deadline().map(|t| t as f64)
    }

    /// Ids of the instances whose active check is due: a JSON array.
    #[wasm_bindgen(js_name = dueChecks)]
    pub fn due_checks(&mut self, now: f64) -> String {
        json::strings_to_json(&self.inner.due_checks(ms(now)))
    }

    /// Names of the services with instances: a JSON array.
    pub fn services(&mut self, now: f64) -> String {
        json::strings_to_json(&self.inner.services(ms(now)))
    }

    /// Index of the last change to a service.
    #[wasm_bindgen(js_name = serviceModifyIndex)]
    pub fn service_modify_index(&mut self, service: &str) -> f64 {
        kept(&mut self.error, self.inner.service_modify_index(service))
            .map_or(-1.0, |index| index as f64)
    }

    /// The registry clock in ms.
    pub fn clock(&self) -> f64 {
        self.inner.clock() as f64
    }

    /// Index of the latest event.
    #[wasm_bindgen(js_name = lastIndex)]
    pub fn last_index(&self) -> f64 {
        self.inner.last_index() as f64
    }

    /// Number of registered instances.
    pub fn size(&self) -> u32 {
        self.inner.len() as u32
    }

    /// Whether lease expiries are held back.
    #[wasm_bindgen(js_name = inSelfPreservation)]
    pub fn in_self_preservation(&self) -> bool {
        self.inner.in_self_preservation()
    }

    /// Every metric in the Prometheus text format.
    #[wasm_bindgen(js_name = renderMetrics)]
    pub fn render_metrics(&self) -> String {
        self.inner.render_metrics()
    }

    /// Per-service metrics: a JSON array of `[service, instances by health
    /// code, panic, counters]` (counters in their wire form, picks by
    /// strategy code).
    #[wasm_bindgen(js_name = serviceMetrics)]
    pub fn service_metrics(&self) -> String {
        let mut out = String::new();
        json::write_array(&mut out, &self.inner.service_metrics(), |out, v| {
            out.push('[');
            json::write_str(out, &v.service);
            out.push(',');
            json::write_array(out, v.instances, |out, n| json::write_u64(out, n.into()));
            out.push_str(if v.panic { ",true," } else { ",false," });
            v.counters.write_json(out);
            out.push(']');
        });
        out
    }
}

/// Records the generation of a slot handed to the facade; returns the slot.
fn note(generations: &mut Vec<u32>, handle: Handle) -> u32 {
    let slot = handle.index();
    let i = slot as usize;
    if i >= generations.len() {
        generations.resize(i + 1, 0);
    }
    if let Some(generation) = generations.get_mut(i) {
        *generation = handle.generation();
    }
    slot
}

/// The value, or `None` with the error kept in `error` for `takeError`.
/// A function of the one field rather than a method, so that the result
/// may borrow the registry (`get`, `discover`) and the call fits one line.
fn kept<T>(error: &mut Option<waypost::Error>, result: waypost::Result<T>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(e) => {
            *error = Some(e);
            None
        }
    }
}

/// 0 on success; -1 with the error kept for `takeError`.
fn status_code(error: &mut Option<waypost::Error>, result: waypost::Result<()>) -> i32 {
    kept(error, result).map_or(-1, |()| 0)
}

fn unknown_strategy() -> waypost::Error {
    waypost::Error::InvalidArgument {
        field: "strategy".to_owned(),
        reason: "unknown strategy code".to_owned(),
    }
}

/// Names joined by commas, at compile time: the module carries the list as
/// text instead of code that builds it. (The name tables reach JavaScript
/// as generated arrays, scripts/gen.)
macro_rules! joined {
    ($names:expr) => {{
        const NAMES: &[&str] = &$names;
        const BYTES: [u8; joined_len(NAMES)] = join(NAMES);
        match core::str::from_utf8(&BYTES) {
            Ok(text) => text,
            Err(_) => "",
        }
    }};
}

const fn joined_len(names: &[&str]) -> usize {
    let mut len = 0;
    let mut i = 0;
    while i < names.len() {
        len += names[i].len() + (i > 0) as usize;
        i += 1;
    }
    len
}

const fn join<const N: usize>(names: &[&str]) -> [u8; N] {
    let mut out = [0u8; N];
    let (mut i, mut at) = (0, 0);
    while i < names.len() {
        if i > 0 {
            out[at] = b',';
            at += 1;
        }
        let name = names[i].as_bytes();
        let mut j = 0;
        while j < name.len() {
            out[at] = name[j];
            at += 1;
            j += 1;
        }
        i += 1;
    }
    out
}

const CONFIG_KEY_NAMES: &str = joined!(CONFIG_KEYS);

/// The configuration keys (snake_case, SPEC §4), comma-separated.
#[wasm_bindgen(js_name = configKeys)]
pub fn config_keys() -> String {
    CONFIG_KEY_NAMES.to_owned()
}

/// The core version.
#[wasm_bindgen]
pub fn version() -> String {
    waypost::VERSION.to_owned()
}

/// The Consul registration of `entry` with the durations as the facade
/// passes them: whole seconds in decimal text.
#[cfg(feature = "consul-registration")]
fn consul_registration(
    ttl_s: &str,
    deregister_after_s: &str,
    entry: &str,
) -> waypost::Result<String> {
    let seconds = |field: &str, text: &str| {
        text.parse::<u64>()
            .map_err(|_| waypost::Error::InvalidArgument {
                field: field.to_owned(),
                reason: ["`", text, "` is not a whole number of seconds"].concat(),
            })
    };
    let (ttl_s, deregister_after_s) = (
        seconds("ttl_s", ttl_s)?,
        seconds("deregister_after_s", deregister_after_s)?,
    );
    waypost::ConsulRegistration::new(entry, ttl_s, deregister_after_s).map(|r| r.to_json())
}

/// Without std, a panic is a trap: the module is dead either way (the
/// profile aborts on panic), and no message or location is kept for it.
#[cfg(all(target_arch = "wasm32", not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keys_follow_the_core() {
        assert_eq!(config_keys(), CONFIG_KEYS.join(","));
        assert!(config_keys().starts_with("ttl_ms,evict_after_ms,"));
    }
}
