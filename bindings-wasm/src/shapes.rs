//! How core values cross the boundary. Cold-path values travel as JSON text
//! in the core's own wire forms (the facade parses it and reshapes keys),
//! instances and errors included; filters arrive in their JSON form (the
//! core's `Filter::from_json`).

use alloc::string::String;

use waypost::Filter;

/// A filter from the JSON form the facade writes (none: the empty filter).
pub fn filter_of(json: Option<String>) -> waypost::Result<Filter> {
    match json {
        Some(text) => Filter::from_json(&text),
        None => Ok(Filter::default()),
    }
}

/// Milliseconds from a JS number: the facade has already rejected anything
/// but a finite, non-negative number; `as` saturates, so nothing here traps.
pub fn ms(now: f64) -> u64 {
    now as u64
}
