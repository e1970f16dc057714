//! Tests of worker-local pickers.
use super::*;
use crate::{Config, InstanceSpec, PickOptions};
use alloc::string::ToString;

fn registry(n: usize, weights: &[u32]) -> Registry {
    let mut reg = Registry::default();
    for i in 0..n {
        let mut spec = InstanceSpec::new(format!("api-{i:03}"), "api", "10.0.0.1", 80);
        spec.weight = weights.get(i % weights.len().max(1)).copied().unwrap_or(1);
        assert!(reg.register(spec, 0).is_ok());
    }
    reg
}

fn ids(reg: &Registry, picks: &[Pick]) -> Vec<String> {
    picks
        .iter()
        .map(|p| reg.instance(p.handle).map_or("?", |i| i.id()).into())
        .collect()
}

#[test]
fn round_robin_visits_every_candidate_from_its_own_start() -> Result<()> {
    let mut reg = registry(5, &[1]);
    let mut a = reg.picker("api")?;
    let mut b = reg.picker("api")?;
    assert_eq!((a.number(), b.number()), (1, 2));
    let seq_a: Vec<Pick> = (0..10)
        .map(|_| a.pick(Strategy::RoundRobin, None))
        .collect::<Result<_>>()?;
    let got = ids(&reg, &seq_a);
    let mut first: Vec<String> = got[..5].to_vec();
    first.sort();
    assert_eq!(
        first,
        ["api-000", "api-001", "api-002", "api-003", "api-004"]
    );
    assert_eq!(got[..5], got[5..]);
    // The same seed and number give the same sequence in another registry.
    let mut again = registry(5, &[1]);
    let mut a2 = again.picker("api")?;
    for p in &seq_a {
        assert_eq!(a2.pick(Strategy::RoundRobin, None)?.handle, p.handle);
    }
    let _ = b.pick(Strategy::Random, None)?;
    Ok(())
}

#[test]
fn smooth_wrr_picker_follows_the_walk_from_its_offset() -> Result<()> {
    let weights = [5, 1, 3, 2];
    let mut reg = registry(4, &weights);
    let mut p = reg.picker("api")?;
    // The first pick walks and asks for the period.
    let _ = p.pick(Strategy::WeightedRoundRobin, None)?;
    assert!(p.needs_refresh(0));
    reg.refresh_picker(&mut p, 0)?;
    assert!(p.table().has_period());
    assert!(!p.needs_refresh(0));
    let w: Vec<u64> = weights.iter().map(|&w| u64::from(w) * 1000).collect();
    let total: u64 = w.iter().sum();
    let mut current = vec![0i64; 4];
    let walk: Vec<usize> = (0..11)
        .filter_map(|_| smooth_wrr(&w, &mut current, total))
        .collect();
    let got: Vec<usize> = (0..22)
        .map(|_| {
            p.pick(Strategy::WeightedRoundRobin, None)
                .map(|x| x.handle.index() as usize)
        })
        .collect::<Result<_>>()?;
    let offset = (0..11).find(|&o| (0..22).all(|k| got[k] == walk[(o + k) % 11]));
    assert!(offset.is_some(), "{got:?} is no rotation of {walk:?}");
    Ok(())
}

#[test]
fn a_removed_or_ejected_instance_is_gone_after_the_refresh() -> Result<()> {
    let mut reg = Registry::new(Config {
        consecutive_failures: 2,
        ..Config::default()
    })?;
    for i in 0..4 {
        reg.register(
            InstanceSpec::new(format!("api-{i}"), "api", "10.0.0.1", 80),
            0,
        )?;
    }
    let mut p = reg.picker("api")?;
    reg.deregister("api-1", 1)?;
    assert!(p.needs_refresh(1));
    reg.refresh_picker(&mut p, 1)?;
    let victim = reg.handle_of("api-2").ok_or(Error::not_found("api-2"))?;
    assert!(!p.report_outcome(victim, false, 2));
    // The second failure is held until the delay runs out.
    assert!(!p.report_outcome(victim, false, 3));
    assert!(p.needs_refresh(2 + PICKER_OUTCOME_DELAY_MS));
    reg.refresh_picker(&mut p, 2 + PICKER_OUTCOME_DELAY_MS)?;
    assert_eq!(p.pending_outcomes(), 0);
    for _ in 0..50 {
        for s in [
            Strategy::RoundRobin,
            Strategy::Random,
            Strategy::WeightedRoundRobin,
        ] {
            let id = reg
                .instance(p.pick(s, None)?.handle)
                .map(|i| i.id().to_owned());
            assert!(
                id.as_deref() == Some("api-0") || id.as_deref() == Some("api-3"),
                "{id:?}"
            );
        }
        if p.needs_refresh(200) {
            reg.refresh_picker(&mut p, 200)?;
        }
    }
    // Picks made by pickers are counted in the registry at the refresh.
    reg.refresh_picker(&mut p, 200)?;
    assert_eq!(reg.services[0].metrics.picks[0], 50);
    Ok(())
}

#[test]
fn old_tables_are_freed_once_no_picker_reads_them() -> Result<()> {
    let mut reg = registry(3, &[1]);
    let mut p = reg.picker("api")?;
    let first = Arc::downgrade(&p.table);
    reg.register(InstanceSpec::new("api-new", "api", "10.0.0.9", 80), 1)?;
    reg.refresh_picker(&mut p, 1)?;
    assert_eq!(first.upgrade().map(|_| ()), None);
    let second = Arc::downgrade(&p.table);
    drop(p);
    drop(reg);
    assert_eq!(second.upgrade().map(|_| ()), None);
    Ok(())
}

#[test]
fn in_flight_counts_are_shared_by_pickers_and_the_registry() -> Result<()> {
    let mut reg = registry(2, &[1]);
    let mut a = reg.picker("api")?;
    let b = reg.picker("api")?;
    let busy = reg.handle_of("api-000").ok_or(Error::not_found("x"))?;
    for _ in 0..5 {
        assert!(b.begin(busy));
    }
    for _ in 0..20 {
        assert_ne!(a.pick(Strategy::LeastRequest, None)?.handle, busy);
        let p = reg.pick("api", Strategy::LeastRequest, &PickOptions::default(), 0)?;
        assert_ne!(p.handle, busy);
    }
    for _ in 0..9 {
        assert!(a.end(busy));
    }
    assert_eq!(reg.entry(busy.index()).load.total(), 0);
    Ok(())
}

/// A least-request pick reads the counters of the table it picks from:
/// after a change moves members to other positions, the counts follow the
/// members, not the positions.
#[test]
fn in_flight_counts_follow_members_to_new_positions() -> Result<()> {
    let mut reg = registry(2, &[1]);
    let mut a = reg.picker("api")?;
    let b = reg.picker("api")?;
    let busy = reg.handle_of("api-001").ok_or(Error::not_found("x"))?;
    for _ in 0..5 {
        assert!(b.begin(busy));
    }
    for _ in 0..10 {
        assert_ne!(a.pick(Strategy::LeastRequest, None)?.handle, busy);
    }
    // api-000 leaves and api-002 joins: the busy member moves from
    // position 1 to position 0 of a table of the same length.
    reg.deregister("api-000", 1)?;
    reg.register(InstanceSpec::new("api-002", "api", "10.0.0.1", 80), 1)?;
    reg.refresh_picker(&mut a, 1)?;
    for _ in 0..10 {
        assert_ne!(a.pick(Strategy::LeastRequest, None)?.handle, busy);
    }
    Ok(())
}

#[test]
fn another_registrys_picker_is_refused() -> Result<()> {
    let mut one = registry(2, &[1]);
    let mut two = registry(2, &[1]);
    let mut p = one.picker("api")?;
    assert!(two.refresh_picker(&mut p, 0).is_err());
    let mut empty = Registry::default();
    let mut q = empty.picker("none")?;
    assert_eq!(
        q.pick(Strategy::RoundRobin, None).map_err(|e| e.code()),
        Err(crate::ErrorCode::UnknownService)
    );
    Ok(())
}

/// One instance of the generated fleets: zone, tags, priority, weight and
/// what happens to it before the picks.
#[derive(Debug, Clone)]
struct Member {
    zone: Option<&'static str>,
    tags: Vec<&'static str>,
    meta: bool,
    priority: u8,
    weight: u32,
    fate: u8,
}

fn member() -> impl proptest::strategy::Strategy<Value = Member> {
    use proptest::prelude::*;
    (
        proptest::option::of(prop_oneof![Just("a"), Just("b")]),
        proptest::sample::subsequence(vec!["x", "y"], 0..=2),
        any::<bool>(),
        0u8..2,
        1u32..5,
        0u8..6,
    )
        .prop_map(|(zone, tags, meta, priority, weight, fate)| Member {
            zone,
            tags,
            meta,
            priority,
            weight,
            fate,
        })
}

/// A fleet where some instances are drained, ejected or removed, and some
/// ramp (slow start) at the time of the picks.
fn fleet(members: &[Member], slow_start_ms: u64, panic_threshold: f64) -> Result<Registry> {
    let mut reg = Registry::new(Config {
        consecutive_failures: 1,
        slow_start_ms,
        panic_threshold,
        seed: 99,
        ..Config::default()
    })?;
    for (i, m) in members.iter().enumerate() {
        let id = format!("i{i:02}");
        let mut spec = InstanceSpec::new(&id, "api", "10.0.0.1", 80);
        spec.zone = m.zone.map(String::from);
        spec.tags = m.tags.iter().map(|t| String::from(*t)).collect();
        if m.meta {
            spec.meta.insert("env".into(), "prod".into());
        }
        spec.priority = m.priority;
        spec.weight = m.weight;
        reg.register(spec, i as u64 * 40)?;
    }
    let now = members.len() as u64 * 40;
    for (i, m) in members.iter().enumerate() {
        let id = format!("i{i:02}");
        match m.fate {
            0 => reg.drain(&id, true, now)?,
            1 => reg.report_outcome(&id, false, now)?,
            2 => reg.deregister(&id, now)?,
            _ => {}
        }
    }
    Ok(reg)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, .. Default::default() })]

    /// A picker made with a zone and filter picks what `pick` picks with
    /// the same options: the same candidates and weights, and, given the
    /// registry's round-robin counter and RNG state, pick for pick the same
    /// instance for every strategy (smooth WRR: from all-zero `current`,
    /// before the picker asks for a period).
    #[test]
    fn a_picker_with_options_picks_as_pick_does(
        members in proptest::collection::vec(member(), 1..12),
        zone in proptest::option::of(proptest::prelude::prop_oneof![
            proptest::strategy::Just("a"), proptest::strategy::Just("b"), proptest::strategy::Just("c")]),
        tags in proptest::sample::subsequence(vec!["x", "y"], 0..=2),
        meta: bool,
        slow_start in proptest::prelude::prop_oneof![proptest::strategy::Just(0u64), proptest::strategy::Just(1_000u64)],
        panic in proptest::prelude::prop_oneof![proptest::strategy::Just(0.0f64), proptest::strategy::Just(0.9f64)],
    ) {
        let mut reg = fleet(&members, slow_start, panic).map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
        let now = members.len() as u64 * 40;
        let mut options = PickOptions {
            zone: zone.map(String::from),
            ..PickOptions::default()
        };
        options.filter.tags = tags.iter().map(|t| String::from(*t)).collect();
        if meta {
            options.filter.meta.push(("env".into(), "prod".into()));
        }
        let strategies = [
            Strategy::RoundRobin,
            Strategy::Random,
            Strategy::WeightedRandom,
            Strategy::LeastRequest,
            Strategy::FirstAvailable,
            Strategy::ConsistentHash,
            Strategy::WeightedRoundRobin,
        ];
        for strategy in strategies {
            let mut picker = reg.picker_with("api", &options).map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            if picker.needs_refresh(now) {
                reg.refresh_picker(&mut picker, now).map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            }
            let idx = picker.table.service as usize;
            picker.rng = reg.rng.clone();
            picker.rr = reg.services[idx].rr;
            for k in 0..24 {
                let key = format!("user-{k}");
                let mut o = options.clone();
                o.key = Some(key.clone());
                let want = reg.pick("api", strategy, &o, now).map(|p| p.handle).map_err(|e| e.code());
                let got = picker.pick(strategy, Some(&key)).map(|p| p.handle).map_err(|e| e.code());
                proptest::prop_assert_eq!(got, want, "{:?} pick {}", strategy, k);
            }
        }
    }
}

#[test]
fn a_picker_with_options_refuses_a_key_and_bad_filters() -> Result<()> {
    let mut reg = registry(2, &[1]);
    let keyed = PickOptions {
        key: Some("k".into()),
        ..PickOptions::default()
    };
    assert!(reg.picker_with("api", &keyed).is_err());
    let mut bad = PickOptions::default();
    bad.filter.tags.push(String::new());
    assert!(reg.picker_with("api", &bad).is_err());
    // An empty zone is none: the picker reads the unfiltered table.
    let none = PickOptions {
        zone: Some(String::new()),
        ..PickOptions::default()
    };
    let p = reg.picker_with("api", &none)?;
    assert!(p.table().options().is_none());
    Ok(())
}

#[test]
fn pickers_with_the_same_options_share_a_table_and_its_fields() -> Result<()> {
    let mut reg = Registry::default();
    for (i, zone) in ["a", "b", "a"].iter().enumerate() {
        let mut spec = InstanceSpec::new(format!("api-{i}"), "api", "10.0.0.1", 80 + i as u16);
        spec.zone = Some((*zone).into());
        reg.register(spec, 0)?;
    }
    let options = PickOptions {
        zone: Some("a".into()),
        ..PickOptions::default()
    };
    let mut a = reg.picker_with("api", &options)?;
    let b = reg.picker_with("api", &options)?;
    let plain = reg.picker("api")?;
    assert_eq!(a.table().id(), b.table().id());
    assert_ne!(a.table().id(), plain.table().id());
    assert_eq!(a.table().len(), 2);
    let picked = a.pick_entry(Strategy::RoundRobin, None)?;
    let json = reg.instance(picked.pick.handle).map(|i| i.to_json());
    assert_eq!(json, picked.instance().map(|i| i.to_json()));
    // Fields outlive the instance in the table they were picked from.
    let handle = picked.pick.handle;
    let position = picked.position;
    let id = picked
        .instance()
        .map(|i| String::from(i.id()))
        .unwrap_or_default();
    reg.deregister(&id, 1)?;
    assert!(reg.instance(handle).is_none());
    assert_eq!(
        a.table().instance(position).map(|i| i.id()),
        Some(id.as_str())
    );
    // An unchanged instance's fields are shared with the next table.
    let kept = a.table().instance(1 - position).cloned();
    reg.refresh_picker(&mut a, 1)?;
    assert_eq!(a.table().len(), 1);
    let again = a.table().instance(0).cloned();
    assert!(matches!((kept, again), (Some(x), Some(y)) if Arc::ptr_eq(&x, &y)));
    Ok(())
}

/// What a table says about its candidates, position by position: handle,
/// weight, revision, fields, hash input, the registry's in-flight count
/// (read at publication: left out for a table published before the
/// counts moved) and the in-flight counter (by address).
fn contents(t: &PickTable, with_base: bool) -> Vec<String> {
    let mut out = vec![format!(
        "known {} panic {} total {} ramping {} epoch {} options {:?}",
        t.known, t.panic, t.total, t.ramping, t.membership_epoch, t.options
    )];
    for (i, (h, w)) in t.parts.iter().enumerate() {
        let m = t.members.get(h);
        out.push(format!(
            "{h:?} w {w} rev {:?} fields {:?} hash {:?} base {:?} counter {:?}",
            t.revision(i),
            t.instance(i).map(|f| f.to_json()),
            m.map(|m| m.id_hash),
            m.filter(|_| with_base).map(|_| t.base_load.get(h)),
            m.map(|m| Arc::as_ptr(&m.counter)),
        ));
    }
    out.push(format!("bound {}", t.bound));
    out.push(format!("prefix {:?}", t.prefix));
    out
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 128, .. Default::default() })]

    /// Tables published after any sequence of changes, each refresh
    /// sharing what did not change with the table before, hold what a
    /// table built from scratch holds (a cloned registry has none to
    /// share); a debug build also checks every part shared against the
    /// registry as it is built. Picks of every strategy in between keep
    /// the running-sum and period wishes moving.
    #[test]
    fn a_published_table_is_the_table_built_from_scratch(
        ops in proptest::collection::vec((0u8..10, 0u8..6, 1u32..5), 1..60),
        slow_start in proptest::prelude::prop_oneof![proptest::strategy::Just(0u64), proptest::strategy::Just(50u64)],
    ) {
        let fail = |e: Error| proptest::test_runner::TestCaseError::fail(e.to_string());
        let mut reg = Registry::new(Config {
            consecutive_failures: 1,
            base_ejection_ms: 30,
            slow_start_ms: slow_start,
            panic_threshold: 0.3,
            seed: 7,
            ..Config::default()
        }).map_err(fail)?;
        let zoned = PickOptions { zone: Some("a".into()), ..PickOptions::default() };
        let mut plain = reg.picker("api").map_err(fail)?;
        let mut local = reg.picker_with("api", &zoned).map_err(fail)?;
        let mut now = 0;
        for (step, &(op, which, weight)) in ops.iter().enumerate() {
            now += 7;
            let id = format!("i{which}");
            let mut spec = InstanceSpec::new(&id, "api", "10.0.0.1", 80);
            // Now and then a weight too uneven for the rejection draw.
            let weight = if weight == 4 { 1000 } else { weight };
            spec.weight = weight;
            spec.zone = Some(if which % 2 == 0 { "a" } else { "b" }.into());
            let _ = match op {
                0 | 1 => reg.register(spec, now).map(|_| ()),
                2 => reg.deregister(&id, now),
                3 => reg.drain(&id, true, now),
                4 => reg.drain(&id, false, now),
                5 => reg.begin(&id, now),
                6 => reg.end(&id, now),
                7 => reg.report_outcome(&id, false, now),
                8 => {
                    spec.port = 81 + weight as u16;
                    reg.register(spec, now).map(|_| ())
                }
                _ => {
                    now += 40;
                    let _ = reg.tick(now);
                    Ok(())
                }
            };
            let strategy = Strategy::ALL[step % Strategy::ALL.len()];
            for p in [&mut plain, &mut local] {
                let _ = p.pick(strategy, Some("k"));
                let before = p.table().id();
                if p.needs_refresh(now) {
                    reg.refresh_picker(p, now).map_err(fail)?;
                }
                let new = p.table().id() != before;
                let got = contents(p.table(), new);
                let options = p.table().options().cloned().unwrap_or_default();
                let mut scratch = reg.clone();
                let fresh = scratch.picker_with("api", &options).map_err(fail)?;
                let mut want = contents(fresh.table(), new);
                // The clone has no picker that asked for running sums.
                if !p.table().prefix.is_empty() && fresh.table().prefix.is_empty() {
                    if let (Some(w), Some(g)) = (want.last_mut(), got.last()) {
                        w.clone_from(g);
                    }
                }
                proptest::prop_assert_eq!(&got, &want, "step {}", step);
            }
        }
    }
}

/// A picker that draws weighted random from a table of uneven weights
/// without their running sums sums the weights itself, and asks that later
/// tables carry them: its picks are those of a picker handed the sums.
#[test]
fn weighted_random_draws_the_same_with_or_without_carried_running_sums() -> Result<()> {
    // Too uneven for the rejection draw (n · B > 4 · Σw).
    let weights = [1, 1, 1, 1, 1000];
    let mut with = registry(5, &weights);
    let mut without = registry(5, &weights);
    // In `with`, picker 1 asks for the sums; in `without` it never draws.
    let mut first = with.picker("api")?;
    assert_eq!(first.table().bound, 0);
    let _ = first.pick(Strategy::WeightedRandom, None)?;
    assert!(first.needs_refresh(0));
    with.refresh_picker(&mut first, 0)?;
    assert!(!first.table().prefix.is_empty());
    let _ = without.picker("api")?;
    let mut a = with.picker("api")?;
    let mut b = without.picker("api")?;
    assert!(!a.table().prefix.is_empty() && b.table().prefix.is_empty());
    for _ in 0..200 {
        let x = a.pick(Strategy::WeightedRandom, None)?.handle;
        let y = b.pick(Strategy::WeightedRandom, None)?.handle;
        assert_eq!(x, y);
    }
    assert!(b.needs_refresh(0));
    without.refresh_picker(&mut b, 0)?;
    assert!(!b.table().prefix.is_empty());
    assert!(!b.needs_refresh(0));
    Ok(())
}

#[test]
fn a_key_is_checked_for_every_strategy_as_the_registry_checks_it() -> Result<()> {
    let mut reg = registry(3, &[1, 2, 3]);
    let mut picker = reg.picker("api")?;
    let long = "k".repeat(MAX_KEY_BYTES + 1);
    for strategy in Strategy::ALL {
        let by_picker = picker.pick(strategy, Some(&long)).map(|_| ());
        let options = PickOptions {
            key: Some(long.clone()),
            ..PickOptions::default()
        };
        let by_registry = reg.pick("api", strategy, &options, 0).map(|_| ());
        assert_eq!(by_picker, by_registry, "{strategy:?}");
        assert!(by_picker.is_err(), "{strategy:?}");
        // Without a key (or an empty one) every strategy but consistent
        // hashing picks.
        for key in [None, Some("")] {
            let plain = picker.pick(strategy, key);
            assert_eq!(
                plain.is_ok(),
                strategy != Strategy::ConsistentHash,
                "{strategy:?}"
            );
        }
    }
    Ok(())
}
