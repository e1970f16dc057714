//! Discovery and picking: the hot path fills caller-owned structs.

use std::ffi::c_char;

use waypost_core::json::strings_to_json;
use waypost_core::{
    DiscoverOptions, Filter, Handle, Pick, PickOptions, Registry, ServiceRef, Strategy,
};

use crate::convert::{filter_from_json, opt_text, owned, Cleared, FromC};
use crate::error::{ffi, waypost_error, waypost_status, Failure};
use crate::instances::waypost_handle;
pub use crate::names::waypost_strategy;
use crate::names::STRATEGY_NAMES;
use crate::registry::{waypost_registry, Locked};

/// Optional pick arguments; every pointer may be NULL. Passing NULL for the
/// whole struct is the same as all NULL.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct waypost_pick_options {
    /// Key for `consistent_hash` (required there, ignored elsewhere).
    pub key: *const c_char,
    /// The caller's zone: candidates there are preferred when there are any.
    pub zone: *const c_char,
    /// `{"tags": [...], "meta": {"k": "v"}}`: required tags and metadata
    /// (parsed per call: keep it NULL on the hot path).
    pub filter_json: *const c_char,
}

/// Optional discover arguments; NULL for the whole struct = defaults.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct waypost_discover_options {
    /// List every instance with its health, not only the healthy ones.
    pub all: bool,
    /// As in `waypost_pick_options`.
    pub filter_json: *const c_char,
}

/// What a pick returns, in a caller-owned struct.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct waypost_pick_result {
    /// The chosen instance.
    pub handle: waypost_handle,
    /// Its slot index (the low 32 bits of `handle`): small and dense, a
    /// good index into a host-side cache of instance fields.
    pub index: u32,
    /// Its slot generation (the high 32 bits of `handle`).
    pub generation: u32,
    /// The service was in panic: the pick ignored health.
    pub panic: bool,
    /// Membership epoch after the pick: a cache keyed by `index` is valid
    /// while this is unchanged.
    pub membership_epoch: u64,
}

/// What a host already holds in its own cache of instance fields, for
/// `waypost_pick_fields`: the membership epoch the cache belongs to and a
/// bitset of the slot indexes it holds (bit `i % 64` of word `i / 64`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct waypost_pick_known {
    /// The membership epoch the cache was filled at.
    pub membership_epoch: u64,
    /// `words` readable words of bits; NULL when `words` is 0.
    pub slots: *const u64,
    /// How many words `slots` holds.
    pub words: usize,
}

/// What `waypost_discover_handles` returns beside the handles.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct waypost_discovery {
    /// Instances listed; when larger than the capacity passed, only the
    /// first `capacity` were written: call again with a larger buffer.
    pub count: usize,
    /// The service is in panic.
    pub panic: bool,
    /// Membership epoch at the time of the call.
    pub membership_epoch: u64,
    /// The service's discover stamp (its modify index): an unfiltered
    /// listing taken at the same stamp is the same (SPEC §5.4).
    pub modify_index: u64,
}

impl waypost_pick_result {
    /// The result of `picked`, at membership epoch `membership_epoch`.
    #[inline(always)]
    pub(crate) fn of(picked: Pick, membership_epoch: u64) -> waypost_pick_result {
        waypost_pick_result {
            handle: picked.handle.to_bits(),
            index: picked.handle.index(),
            generation: picked.handle.generation(),
            panic: picked.panic,
            membership_epoch,
        }
    }
}

#[inline]
pub(crate) fn strategy_of(code: u32) -> Result<Strategy, Failure> {
    u8::try_from(code)
        .ok()
        .and_then(Strategy::from_u8)
        .ok_or_else(|| Failure::invalid("strategy", format!("{code} is not a waypost_strategy")))
}

/// A `waypost_strategy` argument.
impl FromC<'_> for Strategy {
    type C = u32;
    #[inline(always)]
    unsafe fn from_c(raw: u32, _name: &str) -> Result<Self, Failure> {
        strategy_of(raw)
    }
}

/// A `waypost_service_ref` argument: any value is one (an unknown one is
/// the core's to find).
impl FromC<'_> for ServiceRef {
    type C = u32;
    #[inline(always)]
    unsafe fn from_c(raw: u32, _name: &str) -> Result<Self, Failure> {
        Ok(ServiceRef::from_index(raw))
    }
}

/// Pick options converted from C, before the lock is taken.
pub(crate) struct Options<'a> {
    pub key: Option<&'a str>,
    pub zone: Option<&'a str>,
    pub filter: Option<Filter>,
}

/// Options converted from C before the lock is taken; `None` when the
/// caller passed NULL (the hot path: nothing to convert).
///
/// # Safety
/// `ptr` NULL or a readable struct whose strings are NUL-terminated.
#[inline]
pub(crate) unsafe fn pick_options<'a>(
    ptr: *const waypost_pick_options,
) -> Result<Option<Options<'a>>, Failure> {
    // SAFETY: as the caller's contract.
    let Some(o) = (unsafe { ptr.as_ref() }) else {
        return Ok(None);
    };
    // SAFETY: as the caller's contract.
    unsafe {
        Ok(Some(Options {
            key: opt_text(o.key, "key")?,
            zone: opt_text(o.zone, "zone")?,
            filter: opt_text(o.filter_json, "filter_json")?
                .map(filter_from_json)
                .transpose()?,
        }))
    }
}

/// A `waypost_pick_options` argument ([`pick_options`]).
impl<'a> FromC<'a> for Option<Options<'a>> {
    type C = *const waypost_pick_options;
    #[inline(always)]
    unsafe fn from_c(raw: Self::C, _name: &str) -> Result<Self, Failure> {
        // SAFETY: as the caller's contract.
        unsafe { pick_options(raw) }
    }
}

/// Sets an optional string option, reusing its buffer across calls.
#[inline]
fn reuse(slot: &mut Option<String>, spare: &mut String, value: Option<&str>) {
    match value {
        Some(v) => {
            let mut buffer = slot.take().unwrap_or_else(|| std::mem::take(spare));
            buffer.clear();
            buffer.push_str(v);
            *slot = Some(buffer);
        }
        None => {
            if let Some(buffer) = slot.take() {
                *spare = buffer;
            }
        }
    }
}

#[inline]
fn pick_locked(
    locked: &mut Locked,
    options: Option<Options<'_>>,
    pick: impl FnOnce(&mut Registry, &PickOptions) -> waypost_core::Result<Pick>,
    out: &mut waypost_pick_result,
) -> Result<(), Failure> {
    let Locked {
        reg,
        scratch,
        spare,
    } = locked;
    let [spare_key, spare_zone] = spare;
    let (key, zone, filter) = match options {
        Some(o) => (o.key, o.zone, o.filter),
        None => (None, None, None),
    };
    if key.is_some() || scratch.key.is_some() {
        reuse(&mut scratch.key, spare_key, key);
    }
    if zone.is_some() || scratch.zone.is_some() {
        reuse(&mut scratch.zone, spare_zone, zone);
    }
    if filter.is_some() || !scratch.filter.is_empty() {
        scratch.filter = filter.unwrap_or_default();
    }
    let picked = pick(reg, scratch)?;
    *out = waypost_pick_result::of(picked, reg.membership_epoch());
    Ok(())
}

/// Picks one instance of `service`. `strategy` is a `waypost_strategy`;
/// `options` may be NULL. Fills `*out_result`; allocates nothing unless it
/// fails (or a filter is given). Read the instance's fields with
/// `waypost_instance_endpoint` or `waypost_instance`.
///
/// Errors: `UNKNOWN_SERVICE`; `NO_ELIGIBLE_INSTANCE`; `INVALID_ARGUMENT`
/// (bad strategy, `consistent_hash` without key, malformed filter);
/// `NULL_ARGUMENT`.
///
/// # Safety
/// `registry` live; `service` NUL-terminated; `options` NULL or readable;
/// `out_result` writable; `out_err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn waypost_pick(
    registry: *const waypost_registry,
    service: *const c_char,
    strategy: u32,
    options: *const waypost_pick_options,
    now_ms: u64,
    out_result: *mut waypost_pick_result,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(out_err, |registry: &waypost_registry,
                   service: &str,
                   out_result: &mut waypost_pick_result,
                   strategy: Strategy,
                   options: Option<Options>| {
        let mut locked = registry.lock()?;
        pick_locked(
            &mut locked,
            options,
            |r, o| r.pick(service, strategy, o, now_ms),
            out_result,
        )
    })
}

/// Whether `known` says the caller holds slot `index` at `epoch`.
///
/// # Safety
/// `known` NULL, or its `slots` readable for `words` words.
unsafe fn held(known: *const waypost_pick_known, epoch: u64, index: u32) -> bool {
    // SAFETY: as the caller's contract.
    let Some(k) = (unsafe { known.as_ref() }) else {
        return false;
    };
    let word = (index / 64) as usize;
    if k.membership_epoch != epoch || k.slots.is_null() || word >= k.words {
        return false;
    }
    // SAFETY: `word < words`, and `slots` is readable for `words` words.
    let bits = unsafe { k.slots.add(word).read() };
    bits >> (index % 64) & 1 == 1
}

/// Hands the picked instance's fields (`json`, called only then) to
/// `fields` unless `known` says the caller holds slot `result.index` at
/// `result.membership_epoch`; NULL then.
///
/// # Safety
/// As `held`.
#[inline]
pub(crate) unsafe fn hand_fields(
    known: *const waypost_pick_known,
    result: &waypost_pick_result,
    fields: Cleared<'_, c_char>,
    json: impl FnOnce() -> Option<String>,
) -> Result<(), Failure> {
    // SAFETY: as the caller's contract.
    if !unsafe { held(known, result.membership_epoch, result.index) } {
        let text = json()
            .ok_or_else(|| Failure::new(waypost_status::Panic, "picked a missing instance"))?;
        fields.set(owned(text)?);
    }
    Ok(())
}

/// A pick (by name, or by `service_ref` when `service` is NULL) that also
/// hands back the picked instance's fields in the same locked call, so no
/// other thread can remove it in between: `*out_instance_json` receives its
/// JSON (as `waypost_instance`; free it with `waypost_string_free`) unless
/// `known` (may be NULL) says the caller already holds that slot at the
/// current membership epoch, and is NULL then. A host that caches fields
/// by slot uses this instead of a pick followed by a fetch that could find
/// the instance gone.
///
/// Errors: as `waypost_pick` and `waypost_pick_ref`.
///
/// # Safety
/// As `waypost_pick`, except that `service` may be NULL; `known` NULL or
/// readable, with `slots` readable for `words` words; `out_instance_json`
/// writable.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn waypost_pick_fields(
    registry: *const waypost_registry,
    service: *const c_char,
    service_ref: u32,
    strategy: u32,
    options: *const waypost_pick_options,
    now_ms: u64,
    known: *const waypost_pick_known,
    out_result: *mut waypost_pick_result,
    out_instance_json: *mut *mut c_char,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(out_err, |registry: &waypost_registry,
                   service: Option<&str>,
                   service_ref: ServiceRef,
                   out_result: &mut waypost_pick_result,
                   out_instance_json: Cleared<c_char>,
                   strategy: Strategy,
                   options: Option<Options>| {
        let mut locked = registry.lock()?;
        match service {
            Some(name) => pick_locked(
                &mut locked,
                options,
                |r, o| r.pick(name, strategy, o, now_ms),
                out_result,
            )?,
            None => pick_locked(
                &mut locked,
                options,
                |r, o| r.pick_ref(service_ref, strategy, o, now_ms),
                out_result,
            )?,
        }
        // SAFETY: as the caller's contract.
        unsafe {
            hand_fields(known, out_result, out_instance_json, || {
                locked
                    .reg
                    .view_handle(Handle::from_bits(out_result.handle))
                    .map(|view| view.to_json())
            })
        }
    })
}

/// A reference to a service by position, for `waypost_pick_ref` (no name
/// per pick). Valid for the registry's lifetime; the service need not have
/// instances yet. Errors: `INVALID_ARGUMENT`, `NULL_ARGUMENT`.
///
/// # Safety
/// `registry` live; `service` NUL-terminated; `out_ref` writable.
#[no_mangle]
pub unsafe extern "C" fn waypost_service_ref(
    registry: *const waypost_registry,
    service: *const c_char,
    out_ref: *mut u32,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(out_err, |registry: &waypost_registry,
                   service: &str,
                   out_ref: &mut u32| {
        *out_ref = registry.lock()?.reg.service_ref(service)?.index();
    })
}

/// `waypost_pick` by service reference: the fastest pick.
/// Errors: as `waypost_pick`; `INVALID_ARGUMENT` for an unknown reference.
///
/// # Safety
/// As `waypost_pick`.
#[no_mangle]
pub unsafe extern "C" fn waypost_pick_ref(
    registry: *const waypost_registry,
    service_ref: u32,
    strategy: u32,
    options: *const waypost_pick_options,
    now_ms: u64,
    out_result: *mut waypost_pick_result,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(out_err, |registry: &waypost_registry,
                   service_ref: ServiceRef,
                   out_result: &mut waypost_pick_result,
                   strategy: Strategy,
                   options: Option<Options>| {
        let mut locked = registry.lock()?;
        pick_locked(
            &mut locked,
            options,
            |r, o| r.pick_ref(service_ref, strategy, o, now_ms),
            out_result,
        )
    })
}

/// The `waypost_strategy` value of a strategy name (`"round_robin"`, …).
/// Errors: `INVALID_ARGUMENT` for an unknown name; `NULL_ARGUMENT`.
///
/// # Safety
/// `name` NUL-terminated; `out_strategy` writable; `out_err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn waypost_strategy_from_name(
    name: *const c_char,
    out_strategy: *mut u32,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(out_err, |name: &str, out_strategy: &mut u32| {
        *out_strategy = name.parse::<Strategy>()? as u32;
    })
}

/// # Safety
/// `ptr` NULL or a readable struct whose string is NUL-terminated.
unsafe fn discover_options(
    ptr: *const waypost_discover_options,
) -> Result<DiscoverOptions, Failure> {
    // SAFETY: as the caller's contract.
    let Some(o) = (unsafe { ptr.as_ref() }) else {
        return Ok(DiscoverOptions::default());
    };
    // SAFETY: as the caller's contract.
    let filter = unsafe { opt_text(o.filter_json, "filter_json") }?;
    Ok(DiscoverOptions {
        all: o.all,
        filter: filter
            .map(filter_from_json)
            .transpose()?
            .unwrap_or_default(),
    })
}

/// A `waypost_discover_options` argument ([`discover_options`]).
impl FromC<'_> for DiscoverOptions {
    type C = *const waypost_discover_options;
    unsafe fn from_c(raw: Self::C, _name: &str) -> Result<Self, Failure> {
        // SAFETY: as the caller's contract.
        unsafe { discover_options(raw) }
    }
}

/// Lists a service's instances in id order as JSON:
/// `{"panic": bool, "instances": [<instance>, …]}` where each instance is the
/// wire form of `waypost_get`. By default the healthy ones; with `all` every
/// one. `options` may be NULL. Free `*out_json` with `waypost_string_free`.
///
/// Errors: `UNKNOWN_SERVICE`; `INVALID_ARGUMENT`; `NULL_ARGUMENT`.
///
/// # Safety
/// `registry` live; `service` NUL-terminated; `options` NULL or readable;
/// `out_json` writable; `out_err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn waypost_discover(
    registry: *const waypost_registry,
    service: *const c_char,
    options: *const waypost_discover_options,
    now_ms: u64,
    out_json: *mut *mut c_char,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(out_err, |registry: &waypost_registry,
                   service: &str,
                   out_json: Cleared<c_char>,
                   options: DiscoverOptions| {
        let json = registry
            .lock()?
            .reg
            .discover(service, &options, now_ms)?
            .to_json();
        out_json.set(owned(json)?);
    })
}

/// `waypost_discover` into caller buffers, without JSON: up to `capacity`
/// handles into `out_handles` and, when `out_health` is not NULL, each one's
/// `waypost_health` into `out_health`. `*out_info` gets the total count, the
/// panic flag and the membership epoch. Both buffers may be NULL when
/// `capacity` is 0 (to learn the count).
///
/// Errors: as `waypost_discover`.
///
/// # Safety
/// `registry` live; `service` NUL-terminated; `options` NULL or readable;
/// `out_handles` (and `out_health` when not NULL) writable for `capacity`
/// elements; `out_info` writable; `out_err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn waypost_discover_handles(
    registry: *const waypost_registry,
    service: *const c_char,
    options: *const waypost_discover_options,
    now_ms: u64,
    out_handles: *mut waypost_handle,
    out_health: *mut u8,
    capacity: usize,
    out_info: *mut waypost_discovery,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(
        out_err,
        |registry: &waypost_registry, service: &str, out_info: &mut waypost_discovery| {
            if capacity > 0 && out_handles.is_null() {
                return Err(Failure::null("out_handles"));
            }
            // SAFETY: as the caller's contract; checked after `out_handles`.
            let options = unsafe { discover_options(options) }?;
            let mut locked = registry.lock()?;
            let found = locked.reg.discover(service, &options, now_ms)?;
            let n = found.len().min(capacity);
            if n > 0 {
                // SAFETY: non-NULL and writable for `capacity >= n` elements.
                let handles = unsafe { std::slice::from_raw_parts_mut(out_handles, n) };
                for (dst, h) in handles.iter_mut().zip(found.handles()) {
                    *dst = h.to_bits();
                }
                if !out_health.is_null() {
                    // SAFETY: as above.
                    let health = unsafe { std::slice::from_raw_parts_mut(out_health, n) };
                    for (dst, v) in health.iter_mut().zip(found.iter()) {
                        *dst = v.status.health as u8;
                    }
                }
            }
            let (count, panic) = (found.len(), found.panic);
            *out_info = waypost_discovery {
                count,
                panic,
                membership_epoch: locked.reg.membership_epoch(),
                modify_index: locked.reg.service_modify_index(service)?,
            };
        }
    )
}

/// Names of the services with at least one instance, in byte order, as a
/// JSON array of strings. Errors: `NULL_ARGUMENT`.
///
/// # Safety
/// `registry` live; `out_json` writable; `out_err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn waypost_services(
    registry: *const waypost_registry,
    now_ms: u64,
    out_json: *mut *mut c_char,
    out_err: *mut *mut waypost_error,
) -> waypost_status {
    ffi!(out_err, |registry: &waypost_registry,
                   out_json: Cleared<c_char>| {
        let names = registry.lock()?.reg.services(now_ms);
        out_json.set(owned(strings_to_json(&names))?);
    })
}

/// The name of a `waypost_strategy` value (`"round_robin"`, …), a static
/// string; NULL for a value out of range.
#[no_mangle]
pub extern "C" fn waypost_strategy_name(strategy: u32) -> *const c_char {
    crate::error::guard_value(std::ptr::null(), || match strategy_of(strategy) {
        Ok(s) => STRATEGY_NAMES[s as usize].as_ptr(),
        Err(_) => std::ptr::null(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategy_names_match_the_core() {
        for s in Strategy::ALL {
            assert_eq!(STRATEGY_NAMES[s as usize].to_str().unwrap(), s.as_str());
        }
    }
}
