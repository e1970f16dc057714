//! What a host may cache (SPEC §5.4), kept for a binding written in Rust.
//!
//! A binding hands out objects of its host's (instance objects, discover
//! answers) and may answer again with the same object while the core's
//! counter for that kind has not moved. [`InstanceObjects`] and
//! [`DiscoverAnswers`] hold such objects, of any type, under that rule, so
//! a binding states no validity rule of its own. The counters are the
//! core's: [`Registry::membership_epoch`], each instance's revision
//! ([`Registry::instance_stamp`], [`PickTable::stamp`](crate::PickTable::stamp)),
//! and [`Registry::discover_stamp`].
//!
//! A binding whose objects live in another heap (Go values, JavaScript
//! objects) cannot hand them to these types; it keeps them itself under the
//! same rule, read from the same counters.

use crate::prelude::*;

use crate::registry::{Handle, Registry, ServiceRef};

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

/// What an unfiltered discover answer is kept under: its service and the
/// service's modify index when it was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiscoverStamp {
    service: ServiceRef,
    modify_index: u64,
}

impl DiscoverStamp {
    pub(crate) fn new(service: ServiceRef, modify_index: u64) -> DiscoverStamp {
        DiscoverStamp {
            service,
            modify_index,
        }
    }

    /// The service's modify index: the stamp as one number, for a host
    /// that keeps its answers by service itself.
    pub fn modify_index(&self) -> u64 {
        self.modify_index
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

    /// The object kept for the instance `stamp` names when it was built
    /// from the same revision: for a host that holds a stamp already (a
    /// picker's table gives one per candidate).
    pub fn get_at(&self, stamp: InstanceStamp) -> Option<&T> {
        let kept = self.kept.get(stamp.handle.index() as usize)?.as_ref()?;
        (kept.generation == stamp.handle.generation() && kept.revision == stamp.revision)
            .then_some(&kept.object)
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
/// it was taken at. Kept by the stamp's service reference, so a lookup
/// reads no name: the stamp's own lookup already did.
pub struct DiscoverAnswers<T> {
    kept: Vec<[Option<(u64, T)>; 2]>,
}

impl<T> Default for DiscoverAnswers<T> {
    fn default() -> Self {
        DiscoverAnswers { kept: Vec::new() }
    }
}

impl<T> DiscoverAnswers<T> {
    /// The answer kept for `all` when it was taken at `stamp`.
    pub fn get(&self, stamp: DiscoverStamp, all: bool) -> Option<&T> {
        let slots = self.kept.get(stamp.service.index() as usize)?;
        match slots.get(usize::from(all))? {
            Some((at, answer)) if *at == stamp.modify_index => Some(answer),
            _ => None,
        }
    }

    /// Keeps `answer` for `all`, taken at `stamp`; gives back the one it
    /// replaces.
    pub fn insert(&mut self, stamp: DiscoverStamp, all: bool, answer: T) -> Option<T> {
        let index = stamp.service.index() as usize;
        if self.kept.len() <= index {
            self.kept.resize_with(index + 1, Default::default);
        }
        self.kept
            .get_mut(index)?
            .get_mut(usize::from(all))?
            .replace((stamp.modify_index, answer))
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

    #[cfg(feature = "pickers")]
    #[test]
    fn a_picker_tables_stamp_finds_the_object_built_from_the_same_revision() -> crate::Result<()> {
        let mut reg = Registry::new(Config::default())?;
        let a = reg.register(spec("a", 1), 0)?;
        let mut objects = InstanceObjects::default();
        let stamp = reg.instance_stamp(a).ok_or(crate::Error::not_found("a"))?;
        objects.insert(stamp, "a@1");
        let picker = reg.picker("api")?;
        let at = picker
            .table()
            .stamp(0)
            .ok_or(crate::Error::not_found("a"))?;
        assert_eq!(at.handle(), a);
        assert_eq!(objects.get_at(at), Some(&"a@1"));
        reg.register(spec("a", 2), 1)?;
        let picker = reg.picker("api")?;
        let at = picker
            .table()
            .stamp(0)
            .ok_or(crate::Error::not_found("a"))?;
        assert_eq!(objects.get_at(at), None, "a's fields changed");
        Ok(())
    }

    #[test]
    fn an_answer_is_kept_while_its_stamp_is() -> crate::Result<()> {
        let mut reg = Registry::new(Config::default())?;
        reg.register(spec("a", 1), 0)?;
        let mut answers = DiscoverAnswers::default();
        let stamp = reg.discover_stamp("api", 0)?;
        answers.insert(stamp, false, "[a]");
        reg.heartbeat("a", 10)?;
        let again = reg.discover_stamp("api", 10)?;
        assert_eq!(answers.get(again, false), Some(&"[a]"));
        assert_eq!(answers.get(again, true), None, "`all` is kept apart");
        // Past the lease: the health change moves the stamp.
        let later = reg.discover_stamp("api", 10 + 31_000)?;
        assert_ne!(later, again);
        assert_eq!(answers.get(later, false), None);
        assert!(reg.discover_stamp("nope", 0).is_err());
        Ok(())
    }
}
