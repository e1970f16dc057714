//! What a host may cache (SPEC §5.4), kept for a binding written in Rust.
//!
//! A binding hands out objects of its host's (instance objects, discover
//! answers) and may answer again with the same object while the core's
//! counter for that kind has not moved. [`InstanceObjects`] and
//! [`DiscoverAnswers`] hold such objects, of any type, under that rule, so
//! a binding states no validity rule of its own. The counters are the
//! core's: [`Registry::membership_epoch`], each instance's revision, and
//! [`Registry::discover_stamp`].
//!
//! A binding whose objects live in another heap (Go values, JavaScript
//! objects) cannot hand them to these types; it keeps them itself under the
//! same rule, read from the same counters.

use crate::prelude::*;
use alloc::collections::BTreeMap;

use crate::registry::{Handle, Registry};

/// What an instance object was built from: the instance's handle, its
/// revision and the registry's membership epoch at that moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceStamp {
    handle: Handle,
    revision: u64,
    epoch: u64,
}

impl InstanceStamp {
    pub(crate) fn new(handle: Handle, revision: u64, epoch: u64) -> InstanceStamp {
        InstanceStamp {
            handle,
            revision,
            epoch,
        }
    }

    /// The handle the object was built for.
    pub fn handle(&self) -> Handle {
        self.handle
    }
}

struct Kept<T> {
    generation: u32,
    revision: u64,
    epoch: u64,
    object: T,
}

/// A host's instance objects by handle slot. One is valid while the
/// membership epoch it was built or last checked at is the registry's;
/// once the epoch moves, it stays valid when its handle's generation and
/// its instance's revision are unchanged (and is then checked at the new
/// epoch), and is stale otherwise.
pub struct InstanceObjects<T> {
    kept: Vec<Option<Kept<T>>>,
}

impl<T> Default for InstanceObjects<T> {
    fn default() -> Self {
        InstanceObjects { kept: Vec::new() }
    }
}

impl<T> InstanceObjects<T> {
    /// The object kept for `handle` when it is still valid in `reg`.
    #[inline]
    pub fn get(&mut self, reg: &Registry, handle: Handle) -> Option<&T> {
        let epoch = reg.membership_epoch();
        let kept = self.kept.get_mut(handle.index() as usize)?.as_mut()?;
        if kept.generation != handle.generation() {
            return None;
        }
        if kept.epoch != epoch {
            if reg.view_handle(handle)?.status.revision != kept.revision {
                return None;
            }
            kept.epoch = epoch;
        }
        Some(&kept.object)
    }

    /// Keeps `object`, built at `stamp`; gives back the one it replaces
    /// (a host may need to release it outside a lock).
    pub fn insert(&mut self, stamp: InstanceStamp, object: T) -> Option<T> {
        let index = stamp.handle.index() as usize;
        if self.kept.len() <= index {
            self.kept.resize_with(index + 1, || None);
        }
        let old = self.kept.get_mut(index)?.replace(Kept {
            generation: stamp.handle.generation(),
            revision: stamp.revision,
            epoch: stamp.epoch,
            object,
        });
        old.map(|k| k.object)
    }
}

/// A host's last unfiltered discover answer per service and `all` flag,
/// each valid while the service's [`Registry::discover_stamp`] is the one
/// it was taken at.
pub struct DiscoverAnswers<T> {
    kept: BTreeMap<String, [Option<(u64, T)>; 2]>,
}

impl<T> Default for DiscoverAnswers<T> {
    fn default() -> Self {
        DiscoverAnswers {
            kept: BTreeMap::new(),
        }
    }
}

impl<T> DiscoverAnswers<T> {
    /// The answer kept for `service` and `all` when it was taken at `stamp`.
    pub fn get(&self, service: &str, all: bool, stamp: u64) -> Option<&T> {
        match self.kept.get(service)?.get(usize::from(all))? {
            Some((at, answer)) if *at == stamp => Some(answer),
            _ => None,
        }
    }

    /// Keeps `answer`, taken at `stamp`; gives back the one it replaces.
    pub fn insert(&mut self, service: &str, all: bool, stamp: u64, answer: T) -> Option<T> {
        let slots = match self.kept.get_mut(service) {
            Some(slots) => slots,
            None => self.kept.entry(service.to_owned()).or_default(),
        };
        slots
            .get_mut(usize::from(all))?
            .replace((stamp, answer))
            .map(|(_, a)| a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, InstanceSpec};

    fn spec(id: &str, weight: u32) -> InstanceSpec {
        let mut s = InstanceSpec::new(id, "api", "10.0.0.1", 80);
        s.weight = weight;
        s
    }

    #[test]
    fn an_object_outlives_an_epoch_its_instance_did_not_change_in() -> crate::Result<()> {
        let mut reg = Registry::new(Config::default())?;
        let a = reg.register(spec("a", 1), 0)?;
        let mut objects = InstanceObjects::default();
        let stamp = reg.instance_stamp(a).ok_or(crate::Error::not_found("a"))?;
        assert_eq!(objects.insert(stamp, "a@1"), None);
        reg.register(spec("b", 1), 1)?;
        assert_eq!(
            objects.get(&reg, a),
            Some(&"a@1"),
            "kept across b's arrival"
        );
        reg.register(spec("a", 2), 2)?;
        assert_eq!(objects.get(&reg, a), None, "a's fields changed");
        let stamp = reg.instance_stamp(a).ok_or(crate::Error::not_found("a"))?;
        assert_eq!(objects.insert(stamp, "a@2"), Some("a@1"));
        reg.deregister("a", 3)?;
        let c = reg.register(spec("c", 1), 4)?;
        assert_eq!(c.index(), a.index(), "c reuses a's slot");
        assert_eq!(objects.get(&reg, c), None, "another generation");
        assert_eq!(objects.get(&reg, a), None, "a is gone");
        Ok(())
    }

    #[test]
    fn an_answer_is_kept_while_its_stamp_is() -> crate::Result<()> {
        let mut reg = Registry::new(Config::default())?;
        reg.register(spec("a", 1), 0)?;
        let mut answers = DiscoverAnswers::default();
        let stamp = reg.discover_stamp("api", 0)?;
        answers.insert("api", false, stamp, "[a]");
        reg.heartbeat("a", 10)?;
        let again = reg.discover_stamp("api", 10)?;
        assert_eq!(answers.get("api", false, again), Some(&"[a]"));
        assert_eq!(answers.get("api", true, again), None, "`all` is kept apart");
        // Past the lease: the health change moves the stamp.
        let later = reg.discover_stamp("api", 10 + 31_000)?;
        assert_ne!(later, again);
        assert_eq!(answers.get("api", false, later), None);
        assert!(reg.discover_stamp("nope", 0).is_err());
        Ok(())
    }
}
