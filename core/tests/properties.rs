//! Property tests over random operation sequences, including invalid input.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use proptest::strategy::Strategy as _;
use waypost::{
    CheckStatus, Config, DiscoverOptions, EventKind, Filter, Health, InstanceSpec, PickOptions,
    Registry, Strategy,
};

#[derive(Debug, Clone)]
enum Op {
    Register {
        id: u8,
        service: u8,
        weight: u16,
        priority: u8,
        zone: u8,
        tag: u8,
        ttl: Option<u32>,
    },
    RegisterRaw {
        id: String,
        service: String,
        address: String,
        port: u16,
        weight: u32,
    },
    Deregister(u8),
    Heartbeat(u8),
    HeartbeatRaw(String),
    Drain(u8, bool),
    Check(u8, u8),
    Outcome(u8, bool),
    Begin(u8),
    End(u8),
    Tick,
    Discover(u8, bool, Option<u8>),
    Pick {
        service: u8,
        strategy: u8,
        key: u8,
        zone: Option<u8>,
        tag: Option<u8>,
    },
    PickRaw(String),
    DueChecks,
    Events(u64),
}

fn id(i: u8) -> String {
    format!("i{:02}", i % 24)
}
fn service(s: u8) -> String {
    format!("svc{}", s % 3)
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<u8>(), any::<u8>(), 1u16..20, 0u8..3, 0u8..3, 0u8..3, proptest::option::of(500u32..50_000))
            .prop_map(|(id, service, weight, priority, zone, tag, ttl)| Op::Register { id, service, weight, priority, zone, tag, ttl }),
        1 => (".{0,5}", ".{0,4}", ".{0,3}", any::<u16>(), 0u32..20_000)
            .prop_map(|(id, service, address, port, weight)| Op::RegisterRaw { id, service, address, port, weight }),
        2 => any::<u8>().prop_map(Op::Deregister),
        8 => any::<u8>().prop_map(Op::Heartbeat),
        1 => ".{0,4}".prop_map(Op::HeartbeatRaw),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(i, on)| Op::Drain(i, on)),
        3 => (any::<u8>(), 0u8..3).prop_map(|(i, s)| Op::Check(i, s)),
        4 => (any::<u8>(), any::<bool>()).prop_map(|(i, ok)| Op::Outcome(i, ok)),
        1 => any::<u8>().prop_map(Op::Begin),
        1 => any::<u8>().prop_map(Op::End),
        2 => Just(Op::Tick),
        2 => (any::<u8>(), any::<bool>(), proptest::option::of(0u8..3)).prop_map(|(s, all, tag)| Op::Discover(s, all, tag)),
        6 => (any::<u8>(), 0u8..7, any::<u8>(), proptest::option::of(0u8..3), proptest::option::of(0u8..3))
            .prop_map(|(service, strategy, key, zone, tag)| Op::Pick { service, strategy, key, zone, tag }),
        1 => ".{0,4}".prop_map(Op::PickRaw),
        1 => Just(Op::DueChecks),
        1 => (0u64..200).prop_map(Op::Events),
    ]
}

fn config() -> impl proptest::strategy::Strategy<Value = Config> {
    (
        (
            1_000u64..60_000,
            prop_oneof![Just(0u64), 1u64..120_000],
            any::<u64>(),
        ),
        (1u32..4, 1u32..4, 0u32..5, 100u64..5_000, 0u32..=100),
        (
            prop_oneof![Just(0.0), Just(0.5), Just(0.8)],
            prop_oneof![Just(0u64), Just(5_000u64)],
        ),
        (prop_oneof![Just(0.0), Just(0.6)], 0u32..6, 1u32..64),
    )
        .prop_map(
            |(
                (ttl, evict, seed),
                (rise, fall, cf, base, pct),
                (panic, slow),
                (sp, sp_min, retention),
            )| Config {
                ttl_ms: ttl,
                evict_after_ms: evict,
                seed,
                check_rise: rise,
                check_fall: fall,
                consecutive_failures: cf,
                base_ejection_ms: base,
                max_ejection_ms: base * 4,
                max_ejection_percent: pct,
                panic_threshold: panic,
                slow_start_ms: slow,
                self_preservation_threshold: sp,
                self_preservation_min_instances: sp_min,
                event_retention: retention,
                trust_empty_sync: false,
                self_preservation_window_ms: 60_000,
            },
        )
}

/// Applies one op; returns a printable result (used to compare runs).
fn apply(reg: &mut Registry, op: &Op, now: u64) -> String {
    fn code<T>(r: Result<T, waypost::Error>) -> String {
        match r {
            Ok(_) => "ok".into(),
            Err(e) => e.code().as_str().into(),
        }
    }
    match op {
        Op::Register {
            id: i,
            service: s,
            weight,
            priority,
            zone,
            tag,
            ttl,
        } => {
            let mut spec = InstanceSpec::new(id(*i), service(*s), "10.0.0.1", 80);
            spec.weight = u32::from(*weight);
            spec.priority = *priority;
            spec.zone = Some(format!("z{zone}"));
            spec.tags = vec![format!("t{tag}")];
            spec.ttl_ms = ttl.map(u64::from);
            spec.check_interval_ms = Some(1_000 + u64::from(*i) * 10);
            code(reg.register(spec, now))
        }
        Op::RegisterRaw {
            id,
            service,
            address,
            port,
            weight,
        } => {
            let mut spec = InstanceSpec::new(id.clone(), service.clone(), address.clone(), *port);
            spec.weight = *weight;
            code(reg.register(spec, now))
        }
        Op::Deregister(i) => code(reg.deregister(&id(*i), now)),
        Op::Heartbeat(i) => code(reg.heartbeat(&id(*i), now)),
        Op::HeartbeatRaw(s) => code(reg.heartbeat(s, now)),
        Op::Drain(i, on) => code(reg.drain(&id(*i), *on, now)),
        Op::Check(i, s) => {
            let status = [CheckStatus::Pass, CheckStatus::Warn, CheckStatus::Fail][*s as usize];
            code(reg.report_check(&id(*i), status, now))
        }
        Op::Outcome(i, ok) => code(reg.report_outcome(&id(*i), *ok, now)),
        Op::Begin(i) => code(reg.begin(&id(*i), now)),
        Op::End(i) => code(reg.end(&id(*i), now)),
        Op::Tick => format!("{:?}", reg.tick(now)),
        Op::Discover(s, all, tag) => {
            let options = DiscoverOptions {
                all: *all,
                filter: Filter {
                    tags: tag.map(|t| vec![format!("t{t}")]).unwrap_or_default(),
                    meta: vec![],
                },
            };
            match reg.discover(&service(*s), &options, now) {
                Ok(d) => format!(
                    "{:?} {:?}",
                    d.iter()
                        .map(|v| (v.instance.id().to_owned(), v.status.health))
                        .collect::<Vec<_>>(),
                    d.panic
                ),
                Err(e) => e.code().as_str().into(),
            }
        }
        Op::Pick {
            service: s,
            strategy,
            key,
            zone,
            tag,
        } => {
            let strategy = Strategy::from_u8(*strategy).unwrap();
            let options = PickOptions {
                key: Some(format!("k{key}")),
                zone: zone.map(|z| format!("z{z}")),
                filter: Filter {
                    tags: tag.map(|t| vec![format!("t{t}")]).unwrap_or_default(),
                    meta: vec![],
                },
            };
            match reg.pick(&service(*s), strategy, &options, now) {
                Ok(p) => {
                    let view = reg.view_handle(p.handle).expect("picked handle is live");
                    let h = view.status.health;
                    assert!(
                        p.panic || h == Health::Healthy || h == Health::Degraded,
                        "picked {} while {h}",
                        view.instance.id()
                    );
                    assert!(h != Health::Draining, "picked a draining instance");
                    format!("{} {}", view.instance.id(), p.panic)
                }
                Err(e) => e.code().as_str().into(),
            }
        }
        Op::PickRaw(s) => code(reg.pick(s, Strategy::Random, &PickOptions::default(), now)),
        Op::DueChecks => format!("{:?}", reg.due_checks(now)),
        Op::Events(after) => match reg.events_since(*after) {
            Ok(events) => format!("{}", events.len()),
            Err(e) => e.code().as_str().into(),
        },
    }
}

fn ops() -> impl proptest::strategy::Strategy<Value = Vec<(u32, Op)>> {
    proptest::collection::vec((0u32..8_000, op()), 1..120)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    /// Nothing panics, every pick is eligible, and the indexes stay consistent.
    #[test]
    fn random_sequences_keep_the_registry_consistent(config in config(), steps in ops()) {
        let mut reg = Registry::new(config).unwrap();
        let mut now = 0u64;
        for (dt, op) in &steps {
            now += u64::from(*dt);
            apply(&mut reg, op, now);
            if let Err(e) = reg.check_invariants() {
                panic!("after {op:?} at {now}: {e}");
            }
        }
    }

    /// Snapshot → restore → continue gives the same results as not restoring.
    #[test]
    fn restore_continues_identically(config in config(), a in ops(), b in ops()) {
        let mut original = Registry::new(config).unwrap();
        let mut now = 0u64;
        for (dt, op) in &a {
            now += u64::from(*dt);
            apply(&mut original, op, now);
        }
        let mut restored = Registry::restore(&original.snapshot()).unwrap();
        prop_assert_eq!(restored.snapshot(), original.snapshot());
        restored.check_invariants().unwrap();
        for (dt, op) in &b {
            now += u64::from(*dt);
            let x = apply(&mut original, op, now);
            let y = apply(&mut restored, op, now);
            prop_assert_eq!(x, y, "diverged at {:?}", op);
        }
        prop_assert_eq!(restored.render_metrics(), original.render_metrics());
    }

    /// The host caches of SPEC §5.4 never answer with a stale object: a
    /// kept discover answer or instance object is the one a fresh call
    /// would build.
    #[test]
    fn host_caches_never_answer_stale(config in config(), steps in ops()) {
        let mut reg = Registry::new(config).unwrap();
        let mut answers = waypost::DiscoverAnswers::<String>::default();
        let mut objects = waypost::InstanceObjects::<String>::default();
        let mut now = 0u64;
        for (dt, op) in &steps {
            now += u64::from(*dt);
            apply(&mut reg, op, now);
            for s in 0..3u8 {
                let Ok(stamp) = reg.discover_stamp(&service(s), now) else { continue };
                for all in [false, true] {
                    let options = DiscoverOptions { all, ..DiscoverOptions::default() };
                    let d = reg.discover(&service(s), &options, now).unwrap();
                    let fresh = format!(
                        "{:?} {}",
                        d.iter().map(|v| (v.instance.to_json(), v.status.health)).collect::<Vec<_>>(),
                        d.panic
                    );
                    if let Some(kept) = answers.get(stamp, all) {
                        prop_assert_eq!(kept, &fresh, "stale answer after {:?} at {}", op, now);
                    }
                    answers.insert(stamp, all, fresh);
                }
            }
            for i in 0..24u8 {
                let Some(handle) = reg.handle_of(&id(i)) else { continue };
                let fresh = reg.view_handle(handle).unwrap().instance.to_json();
                match objects.get(&reg, handle) {
                    Some(kept) => prop_assert_eq!(kept, &fresh, "stale object after {:?}", op),
                    None => {
                        let stamp = reg.instance_stamp(handle).unwrap();
                        objects.insert(stamp, fresh);
                    }
                }
            }
        }
    }

    /// Panic reports beside health and never rewrites it.
    #[test]
    fn panic_never_changes_reported_health(config in config(), steps in ops()) {
        let mut plain = Registry::new(Config { panic_threshold: 0.0, ..config.clone() }).unwrap();
        let mut panicky = Registry::new(Config { panic_threshold: 0.9, ..config }).unwrap();
        let mut now = 0u64;
        for (dt, op) in &steps {
            now += u64::from(*dt);
            if matches!(op, Op::Pick { .. } | Op::PickRaw(_) | Op::Tick | Op::Events(_) | Op::Discover(..)) {
                continue; // picks and event counts differ by design; health must not
            }
            apply(&mut plain, op, now);
            apply(&mut panicky, op, now);
            for s in 0..3u8 {
                let all = DiscoverOptions { all: true, ..DiscoverOptions::default() };
                let x: Option<Vec<(String, Health)>> = plain.discover(&service(s), &all, now).ok()
                    .map(|d| d.iter().map(|v| (v.instance.id().to_owned(), v.status.health)).collect());
                let y: Option<Vec<(String, Health)>> = panicky.discover(&service(s), &all, now).ok()
                    .map(|d| d.iter().map(|v| (v.instance.id().to_owned(), v.status.health)).collect());
                prop_assert_eq!(x, y);
            }
        }
    }

    /// Counters equal the operations that produced them.
    #[test]
    fn metrics_count_the_operations(config in config(), steps in ops()) {
        let mut reg = Registry::new(Config { event_retention: 1_000_000, ..config }).unwrap();
        let mut now = 0u64;
        let mut want: BTreeMap<String, [u64; 4]> = BTreeMap::new(); // registrations, deregistrations, heartbeats, picks
        let mut owner: HashMap<String, String> = HashMap::new();
        let mut seen = 0;
        for (dt, op) in &steps {
            now += u64::from(*dt);
            // Advance first so the owner map reflects evictions before the op.
            reg.tick(now);
            for e in reg.events_since(seen).unwrap() {
                seen = e.index;
                if e.kind == EventKind::Evicted {
                    owner.remove(&*e.id.unwrap());
                }
            }
            let result = apply(&mut reg, op, now);
            if let Ok(events) = reg.events_since(seen) {
                for e in events {
                    seen = e.index;
                    if e.kind == EventKind::Evicted {
                        owner.remove(&*e.id.unwrap());
                    }
                }
            }
            let ok = result == "ok";
            match op {
                Op::Register { id: i, service: s, .. } if ok => {
                    want.entry(service(*s)).or_default()[0] += 1;
                    owner.insert(id(*i), service(*s));
                }
                Op::RegisterRaw { id, service, .. } if ok => {
                    want.entry(service.clone()).or_default()[0] += 1;
                    owner.insert(id.clone(), service.clone());
                }
                Op::Deregister(i) if ok => {
                    want.entry(owner[&id(*i)].clone()).or_default()[1] += 1;
                    owner.remove(&id(*i));
                }
                Op::Heartbeat(i) if ok => want.entry(owner[&id(*i)].clone()).or_default()[2] += 1,
                Op::HeartbeatRaw(raw) if ok => want.entry(owner[raw].clone()).or_default()[2] += 1,
                Op::Pick { service: s, .. } if !result.contains('_') => want.entry(service(*s)).or_default()[3] += 1,
                Op::PickRaw(s) if ok => want.entry(s.clone()).or_default()[3] += 1,
                _ => {}
            }
        }
        for m in reg.service_metrics() {
            let w = want.get(&m.service).copied().unwrap_or_default();
            let c = &m.counters;
            prop_assert_eq!([c.registrations, c.deregistrations, c.heartbeats, c.picks.iter().sum::<u64>()], w, "{}", m.service);
        }
        let evicted = reg.events_since(0).unwrap().iter().filter(|e| e.kind == EventKind::Evicted).count() as u64;
        prop_assert_eq!(reg.service_metrics().iter().map(|m| m.counters.evictions).sum::<u64>(), evicted);
    }

    /// k·n round-robin picks give each of n instances k picks; Σw smooth-WRR
    /// picks give each exactly its weight.
    #[test]
    fn round_robin_and_smooth_wrr_are_exact(weights in proptest::collection::vec(1u32..12, 1..12), k in 1u64..5, offset in 0u64..7) {
        let mut reg = Registry::new(Config::default()).unwrap();
        for (i, w) in weights.iter().enumerate() {
            let mut spec = InstanceSpec::new(format!("i{i:02}"), "api", "h", 1);
            spec.weight = *w;
            reg.register(spec, 0).unwrap();
        }
        let o = PickOptions::default();
        for _ in 0..offset {
            reg.pick("api", Strategy::RoundRobin, &o, 0).unwrap();
        }
        let n = weights.len() as u64;
        let mut rr = vec![0u64; weights.len()];
        for _ in 0..k * n {
            rr[reg.pick("api", Strategy::RoundRobin, &o, 0).unwrap().handle.index() as usize] += 1;
        }
        prop_assert!(rr.iter().all(|&c| c == k), "{:?}", rr);
        let total: u32 = weights.iter().sum();
        let mut wrr = vec![0u32; weights.len()];
        for _ in 0..total * k as u32 {
            wrr[reg.pick("api", Strategy::WeightedRoundRobin, &o, 0).unwrap().handle.index() as usize] += 1;
        }
        let want: Vec<u32> = weights.iter().map(|w| w * k as u32).collect();
        prop_assert_eq!(wrr, want);
    }

    /// P2C never picks the strictly most loaded candidate (per unit weight).
    #[test]
    fn least_request_never_picks_the_most_loaded(loads in proptest::collection::vec(0u8..6, 2..8), seed in any::<u64>()) {
        let mut reg = Registry::new(Config { seed, ..Config::default() }).unwrap();
        for (i, l) in loads.iter().enumerate() {
            let id = format!("i{i}");
            reg.register(InstanceSpec::new(id.clone(), "api", "h", 1), 0).unwrap();
            for _ in 0..*l {
                reg.begin(&id, 0).unwrap();
            }
        }
        let max = *loads.iter().max().unwrap();
        let most: Vec<usize> = (0..loads.len()).filter(|&i| loads[i] == max).collect();
        for _ in 0..200 {
            let p = reg.pick("api", Strategy::LeastRequest, &PickOptions::default(), 0).unwrap();
            let i = p.handle.index() as usize;
            prop_assert!(!(most.len() == 1 && most[0] == i), "picked the most loaded {i} of {loads:?}");
        }
    }

    /// Consistent hashing moves only the keys of a removed instance, and an
    /// added instance only takes keys.
    #[test]
    fn consistent_hash_disrupts_minimally(n in 2usize..12, remove in any::<prop::sample::Index>(), seed in any::<u64>()) {
        let mut reg = Registry::new(Config { seed, ..Config::default() }).unwrap();
        for i in 0..n {
            let mut spec = InstanceSpec::new(format!("i{i:02}"), "api", "h", 1);
            spec.weight = 1 + (i as u32 % 3);
            reg.register(spec, 0).unwrap();
        }
        let map = |reg: &mut Registry| -> Vec<String> {
            (0..400).map(|k| {
                let o = PickOptions { key: Some(format!("key-{k}")), ..PickOptions::default() };
                let p = reg.pick("api", Strategy::ConsistentHash, &o, 0).unwrap();
                reg.instance(p.handle).unwrap().id().to_owned()
            }).collect()
        };
        let before = map(&mut reg);
        let gone = format!("i{:02}", remove.index(n));
        reg.deregister(&gone, 0).unwrap();
        let after = map(&mut reg);
        for (b, a) in before.iter().zip(&after) {
            if *b != gone {
                prop_assert_eq!(a, b);
            }
        }
        reg.register(InstanceSpec::new("zz-new", "api", "h", 1), 0).unwrap();
        let added = map(&mut reg);
        for (a, x) in after.iter().zip(&added) {
            prop_assert!(x == a || x == "zz-new");
        }
    }

    /// Weighted random follows the weights.
    #[test]
    fn weighted_random_follows_weights(weights in proptest::collection::vec(1u32..10, 1..6), seed in any::<u64>()) {
        let mut reg = Registry::new(Config { seed, ..Config::default() }).unwrap();
        for (i, w) in weights.iter().enumerate() {
            let mut spec = InstanceSpec::new(format!("i{i}"), "api", "h", 1);
            spec.weight = *w;
            reg.register(spec, 0).unwrap();
        }
        let picks = 20_000;
        let mut counts = vec![0u32; weights.len()];
        for _ in 0..picks {
            counts[reg.pick("api", Strategy::WeightedRandom, &PickOptions::default(), 0).unwrap().handle.index() as usize] += 1;
        }
        let total: u32 = weights.iter().sum();
        for (c, w) in counts.iter().zip(&weights) {
            let share = f64::from(*c) / f64::from(picks);
            let want = f64::from(*w) / f64::from(total);
            prop_assert!((share - want).abs() < 0.025, "{counts:?} for {weights:?}");
        }
    }

    /// Outlier ejection never ejects more than the cap (at least one always may).
    #[test]
    fn ejections_respect_the_cap(n in 1usize..15, pct in 0u32..=100, outcomes in proptest::collection::vec((0usize..15, any::<bool>(), 0u64..3_000), 1..200)) {
        let config = Config { consecutive_failures: 2, max_ejection_percent: pct, base_ejection_ms: 5_000, ..Config::default() };
        let mut reg = Registry::new(config).unwrap();
        for i in 0..n {
            reg.register(InstanceSpec::new(format!("i{i:02}"), "api", "h", 1), 0).unwrap();
        }
        let cap = ((n as u64 * u64::from(pct)) / 100).max(1);
        let mut now = 0;
        for (i, ok, dt) in outcomes {
            now += dt;
            for k in 0..n {
                reg.heartbeat(&format!("i{k:02}"), now).unwrap();
            }
            let _ = reg.report_outcome(&format!("i{:02}", i % n), ok, now);
            let all = DiscoverOptions { all: true, ..DiscoverOptions::default() };
            let ejected = reg.discover("api", &all, now).unwrap().iter().filter(|v| v.status.ejected_until.is_some()).count() as u64;
            prop_assert!(ejected <= cap, "{ejected} ejected, cap {cap}");
        }
    }

    /// An instance registered or heartbeated within its TTL is discoverable.
    #[test]
    fn live_leases_are_discoverable(ttl in 1_000u64..20_000, steps in proptest::collection::vec((0u64..15_000, 0u8..3, 0u8..6), 1..80)) {
        let mut reg = Registry::new(Config { ttl_ms: ttl, evict_after_ms: 1, ..Config::default() }).unwrap();
        let mut renewed: HashMap<String, u64> = HashMap::new();
        let mut now = 0;
        for (dt, kind, i) in steps {
            now += dt;
            let id = format!("i{i}");
            match kind {
                0 => {
                    reg.register(InstanceSpec::new(id.clone(), "api", "h", 1), now).unwrap();
                    renewed.insert(id, now);
                }
                1 => {
                    if reg.heartbeat(&id, now).is_ok() {
                        renewed.insert(id, now);
                    }
                }
                _ => {
                    if reg.deregister(&id, now).is_ok() {
                        renewed.remove(&id);
                    }
                }
            }
            let listed: Vec<String> = match reg.discover("api", &DiscoverOptions::default(), now) {
                Ok(d) => d.iter().map(|v| v.instance.id().to_owned()).collect(),
                Err(_) => vec![],
            };
            for (id, at) in &renewed {
                if now <= at + ttl {
                    prop_assert!(listed.contains(id), "{id} renewed at {at}, ttl {ttl}, missing at {now}");
                }
            }
        }
    }
}
