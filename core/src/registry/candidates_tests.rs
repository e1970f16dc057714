//! The in-place candidate tables against rebuilds from scratch: random
//! sequences of operations run on a registry that updates its tables in
//! place and on one that rebuilds them after every change (as they always
//! were); every answer, every snapshot and every table must agree.

use super::*;
use crate::health::CheckStatus;
use crate::source::{SourceEntry, SourceStatus};
use crate::Strategy as Balancing;
use crate::{Config, DiscoverOptions, InstanceSpec, PickOptions};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Register {
        id: u8,
        weight: u32,
        priority: u8,
        zone: bool,
    },
    Deregister(u8),
    Drain(u8, bool),
    Check(u8, u8),
    Outcome(u8, bool),
    Heartbeat(u8),
    Source {
        id: u8,
        weight: u32,
        status: u8,
    },
    Tick,
    Pick {
        strategy: u8,
        key: u8,
        zone: u8,
    },
    Picks {
        strategy: u8,
        count: u8,
    },
    Discover(bool),
    Restore,
}

fn op() -> impl Strategy<Value = Op> {
    let id = 0u8..12;
    prop_oneof![
        4 => (id.clone(), 1u32..5, 0u8..3, any::<bool>()).prop_map(|(id, weight, priority, zone)| Op::Register { id, weight, priority, zone }),
        1 => id.clone().prop_map(Op::Deregister),
        3 => (id.clone(), any::<bool>()).prop_map(|(i, on)| Op::Drain(i, on)),
        2 => (id.clone(), 0u8..3).prop_map(|(i, s)| Op::Check(i, s)),
        2 => (id.clone(), any::<bool>()).prop_map(|(i, ok)| Op::Outcome(i, ok)),
        1 => id.clone().prop_map(Op::Heartbeat),
        2 => (id.clone(), 1u32..4, 0u8..4).prop_map(|(id, weight, status)| Op::Source { id, weight, status }),
        1 => Just(Op::Tick),
        5 => (0u8..7, 0u8..8, 0u8..3).prop_map(|(strategy, key, zone)| Op::Pick { strategy, key, zone }),
        2 => (0u8..7, 1u8..12).prop_map(|(strategy, count)| Op::Picks { strategy, count }),
        2 => any::<bool>().prop_map(Op::Discover),
        1 => Just(Op::Restore),
    ]
}

fn config(seed: u64, panic: bool, slow: bool) -> Config {
    Config {
        seed,
        ttl_ms: 60,
        evict_after_ms: 200,
        check_rise: 1,
        check_fall: 1,
        consecutive_failures: 2,
        base_ejection_ms: 30,
        max_ejection_percent: 50,
        panic_threshold: if panic { 0.5 } else { 0.0 },
        slow_start_ms: if slow { 25 } else { 0 },
        ..Config::default()
    }
}

/// Runs `op` at `now`; the answer as text.
fn run(reg: &mut Registry, op: &Op, now: u64) -> String {
    let id = |i: &u8| format!("i{i:02}");
    let pick = |reg: &mut Registry, s: u8, key: u8, zone: u8| {
        let strategy = Balancing::from_u8(s).unwrap_or(Balancing::RoundRobin);
        let options = PickOptions {
            key: Some(format!("k{key}")),
            zone: [None, Some("a".into()), Some("b".into())][zone as usize % 3].clone(),
            ..PickOptions::default()
        };
        format!("{:?}", reg.pick("svc", strategy, &options, now))
    };
    match op {
        Op::Register {
            id: i,
            weight,
            priority,
            zone,
        } => {
            let mut spec = InstanceSpec::new(id(i), "svc", "10.0.0.1", 80);
            spec.weight = *weight;
            spec.priority = *priority;
            spec.zone = Some(if *zone { "a" } else { "b" }.into());
            format!("{:?}", reg.register(spec, now))
        }
        Op::Deregister(i) => format!("{:?}", reg.deregister(&id(i), now)),
        Op::Drain(i, on) => format!("{:?}", reg.drain(&id(i), *on, now)),
        Op::Check(i, s) => {
            let status = [CheckStatus::Pass, CheckStatus::Warn, CheckStatus::Fail][*s as usize % 3];
            format!("{:?}", reg.report_check(&id(i), status, now))
        }
        Op::Outcome(i, ok) => format!("{:?}", reg.report_outcome(&id(i), *ok, now)),
        Op::Heartbeat(i) => format!("{:?}", reg.heartbeat(&id(i), now)),
        Op::Source {
            id: i,
            weight,
            status,
        } => {
            let mut spec = InstanceSpec::new(format!("s{i:02}"), "svc", "10.0.0.2", 80);
            spec.weight = *weight;
            let status = [
                SourceStatus::Passing,
                SourceStatus::Warning,
                SourceStatus::Critical,
                SourceStatus::Maintenance,
            ][*status as usize % 4];
            format!(
                "{:?}",
                reg.source_put("m", SourceEntry { spec, status }, now)
                    .map(|r| r.to_json())
            )
        }
        Op::Tick => format!("{:?}", reg.tick(now)),
        Op::Pick {
            strategy,
            key,
            zone,
        } => pick(reg, *strategy, *key, *zone),
        Op::Picks { strategy, count } => (0..*count)
            .map(|k| pick(reg, *strategy, k, 0))
            .collect::<Vec<_>>()
            .join(" "),
        Op::Discover(all) => {
            let options = DiscoverOptions {
                all: *all,
                ..DiscoverOptions::default()
            };
            match reg.discover("svc", &options, now) {
                Ok(d) => format!("{:?} {}", d.handles().collect::<Vec<_>>(), d.panic),
                Err(e) => format!("{e:?}"),
            }
        }
        Op::Restore => {
            let reference = reg.reference;
            match Registry::restore(&reg.snapshot()) {
                Ok(r) => *reg = r,
                Err(e) => return format!("{e:?}"),
            }
            reg.reference = reference;
            String::from("restored")
        }
    }
}

/// A service's caches as a comparable value (the smooth-WRR state written
/// out; the period table and running sums are caches of the weights).
/// `weights_at` only when `when` (a rebuild made later reads a later clock).
/// A service whose tables wait for its next pick shows none (a service
/// without members is never picked from).
fn tables(reg: &Registry, when: bool) -> Vec<Option<String>> {
    reg.services
        .iter()
        .map(|s| {
            let c = &s.candidates;
            (!s.dirty).then(|| {
                format!(
                    "{} {:?} {:?} {} {:?} {:?} {:?} ramp {} at {} {:?}",
                    s.name,
                    c.slots,
                    c.weights,
                    c.total,
                    c.classes,
                    c.wrr_current(),
                    s.healthy,
                    c.ramp_until,
                    if when { c.weights_at } else { 0 },
                    c.rule,
                )
            })
        })
        .collect()
}

/// The same registry with every table rebuilt from scratch.
fn rebuilt(reg: &Registry) -> Registry {
    let mut copy = reg.clone();
    for i in 0..copy.services.len() as u32 {
        copy.services[i as usize].mark_dirty();
        copy.ensure_candidates(i);
    }
    copy
}

/// Runs `ops` with the smooth-WRR index given to tables from `from`
/// candidates up (as `INDEX_FROM`), then puts the default back.
fn with_index_from<T>(from: usize, body: impl FnOnce() -> T) -> T {
    use super::super::service::tests::INDEX_FROM;
    INDEX_FROM.with(|n| n.set(from));
    let out = body();
    INDEX_FROM.with(|n| n.set(super::super::smooth_index::INDEX_MIN));
    out
}

/// Every answer and snapshot of `ops` on one registry.
fn transcript(seed: u64, panic: bool, slow: bool, ops: &[(Op, u8)]) -> Vec<String> {
    let Ok(mut reg) = Registry::new(config(seed, panic, slow)) else {
        return Vec::new();
    };
    let _ = reg.source_add("m", r#"{"kind":"etcd"}"#);
    let mut now = 0u64;
    let mut out = Vec::new();
    for (op, dt) in ops {
        now += u64::from(*dt);
        out.push(run(&mut reg, op, now));
        out.push(reg.snapshot());
    }
    out
}

fn check(seed: u64, panic: bool, slow: bool, ops: &[(Op, u8)]) -> Result<(), TestCaseError> {
    let mut fast = Registry::new(config(seed, panic, slow))
        .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
    let mut slow_reg = fast.clone();
    slow_reg.reference = true;
    let _ = fast.source_add("m", r#"{"kind":"etcd"}"#);
    let _ = slow_reg.source_add("m", r#"{"kind":"etcd"}"#);
    let mut now = 0u64;
    for (step, (op, dt)) in ops.iter().enumerate() {
        now += u64::from(*dt);
        let a = run(&mut fast, op, now);
        let b = run(&mut slow_reg, op, now);
        prop_assert_eq!(&a, &b, "step {} {:?}", step, op);
        prop_assert_eq!(
            fast.snapshot(),
            slow_reg.snapshot(),
            "snapshot after step {} {:?}",
            step,
            op
        );
        if let Err(e) = fast.check_invariants() {
            return Err(TestCaseError::fail(format!("step {step}: {e}")));
        }
        if matches!(op, Op::Pick { .. } | Op::Picks { .. } | Op::Discover(_)) {
            // Both are up to date after a pick or discover.
            prop_assert_eq!(
                tables(&fast, true),
                tables(&slow_reg, true),
                "tables after step {} {:?}",
                step,
                op
            );
            let shown = tables(&fast, false);
            let again = tables(&rebuilt(&fast), false);
            for (a, b) in shown.iter().zip(&again) {
                if a.is_some() {
                    prop_assert_eq!(a, b, "rebuild after step {} {:?}", step, op);
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn tables_updated_in_place_equal_rebuilt_ones(
        seed in any::<u64>(),
        panic in any::<bool>(),
        slow in prop::bool::weighted(0.25),
        ops in prop::collection::vec((op(), 0u8..8), 1..120),
        index in any::<bool>(),
    ) {
        // With the index on every table, or (as in use) on none this small.
        let from = if index { 2 } else { super::super::smooth_index::INDEX_MIN };
        with_index_from(from, || check(seed, panic, slow, &ops))?;
    }

    /// The smooth-WRR index gives the walk's answers and state through
    /// every kind of change, filtered picks and restores.
    #[test]
    fn the_smooth_index_answers_as_the_walk_does(
        seed in any::<u64>(),
        panic in any::<bool>(),
        slow in prop::bool::weighted(0.25),
        ops in prop::collection::vec((op(), 0u8..8), 1..120),
    ) {
        let walked = with_index_from(usize::MAX, || transcript(seed, panic, slow, &ops));
        let indexed = with_index_from(2, || transcript(seed, panic, slow, &ops));
        prop_assert_eq!(walked, indexed);
    }
}

/// Consistent hashing remembers winners per bucket across joins: a memo
/// checked against the newcomers gives what a scan of every candidate gives.
#[test]
fn hash_memos_follow_joins_and_leaves() -> crate::testing::TestResult {
    let mut reg = Registry::new(config(3, false, false))?;
    let mut reference = reg.clone();
    reference.reference = true;
    let mut now = 0;
    for round in 0..60u32 {
        now += 1;
        let id = round % 23;
        let op = if round % 3 == 2 {
            Op::Drain(id as u8, round % 2 == 0)
        } else {
            Op::Register {
                id: id as u8,
                weight: 1 + round % 4,
                priority: 0,
                zone: false,
            }
        };
        assert_eq!(run(&mut reg, &op, now), run(&mut reference, &op, now));
        for key in 0..64u8 {
            let pick = Op::Pick {
                strategy: Balancing::ConsistentHash as u8,
                key,
                zone: 0,
            };
            assert_eq!(
                run(&mut reg, &pick, now),
                run(&mut reference, &pick, now),
                "round {round} key {key}"
            );
        }
    }
    Ok(())
}

/// A service read only through picks keeps no healthy list; its first
/// discover of healthy members builds it, and every change after keeps it.
#[test]
fn the_healthy_list_is_kept_from_the_first_discover_on() -> crate::testing::TestResult {
    let mut reg = Registry::new(config(5, false, false))?;
    for i in 0..6u8 {
        let op = Op::Register {
            id: i,
            weight: 1,
            priority: 0,
            zone: false,
        };
        run(&mut reg, &op, 1);
    }
    run(&mut reg, &Op::Drain(2, true), 2);
    reg.pick("svc", Balancing::RoundRobin, &PickOptions::default(), 2)?;
    let kept = |reg: &Registry| {
        let svc = reg.services.iter().find(|s| &*s.name == "svc");
        svc.map(|s| (s.healthy_kept, s.healthy.len()))
    };
    assert_eq!(kept(&reg), Some((false, 0)));
    let ids = |reg: &mut Registry, now| -> crate::error::Result<Vec<String>> {
        let d = reg.discover("svc", &DiscoverOptions::default(), now)?;
        Ok(d.iter().map(|v| String::from(&*v.instance.id)).collect())
    };
    assert_eq!(ids(&mut reg, 3)?, ["i00", "i01", "i03", "i04", "i05"]);
    assert_eq!(kept(&reg), Some((true, 5)));
    run(&mut reg, &Op::Deregister(4), 4);
    run(&mut reg, &Op::Drain(2, false), 4);
    run(
        &mut reg,
        &Op::Register {
            id: 9,
            weight: 2,
            priority: 0,
            zone: false,
        },
        4,
    );
    assert_eq!(
        ids(&mut reg, 5)?,
        ["i00", "i01", "i02", "i03", "i05", "i09"]
    );
    reg.check_invariants()?;
    Ok(())
}
