//! `make demo`: a simulated fleet in virtual time. Three services heartbeat
//! every 5 s; one instance crashes and expires, then is evicted; another
//! recovers; an operator drains one; a flaky instance is ejected by outlier
//! detection; and every strategy's pick distribution is printed.

use std::collections::BTreeMap;

use waypost::{
    CheckStatus, Config, DiscoverOptions, Event, EventKind, InstanceSpec, PickOptions, Registry,
    Strategy,
};

const SECOND: u64 = 1_000;

fn spec(id: &str, service: &str, n: u8, weight: u32, zone: &str) -> InstanceSpec {
    let mut s = InstanceSpec::new(id, service, format!("10.0.{n}.1"), 8080);
    s.weight = weight;
    s.zone = Some(zone.to_owned());
    s.check_interval_ms = Some(10 * SECOND);
    s
}

fn describe(e: &Event) -> String {
    let who =
        e.id.as_deref()
            .or(e.service.as_deref())
            .unwrap_or("registry");
    match e.kind {
        EventKind::HealthChanged => format!("{who}: {} -> {}", e.from.unwrap(), e.to.unwrap()),
        kind => format!("{who}: {kind}"),
    }
}

fn print_events(reg: &Registry, seen: &mut u64) {
    for e in reg.events_since(*seen).unwrap_or_default() {
        println!(
            "  t={:>6.1}s  #{:<3} {}",
            e.at as f64 / 1000.0,
            e.index,
            describe(&e)
        );
        *seen = e.index;
    }
}

fn histogram(reg: &mut Registry, service: &str, strategy: Strategy, now: u64) -> String {
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for i in 0..1_000 {
        let options = PickOptions {
            key: Some(format!("user-{i}")),
            ..PickOptions::default()
        };
        if let Ok(p) = reg.pick(service, strategy, &options, now) {
            let id = reg
                .instance(p.handle)
                .map(|x| x.id().to_owned())
                .unwrap_or_default();
            *counts.entry(id).or_default() += 1;
        }
    }
    counts
        .iter()
        .map(|(id, n)| format!("{id}:{n:>4}"))
        .collect::<Vec<_>>()
        .join("  ")
}

fn main() -> Result<(), waypost::Error> {
    let config = Config {
        ttl_ms: 15 * SECOND,
        evict_after_ms: 30 * SECOND,
        seed: 2026,
        consecutive_failures: 3,
        base_ejection_ms: 20 * SECOND,
        max_ejection_percent: 50,
        panic_threshold: 0.3,
        ..Config::default()
    };
    let mut reg = Registry::new(config)?;
    let mut seen = 0;
    println!("waypost fleet simulation (virtual time; ttl 15 s, evict after 30 s)\n");

    let fleet = [
        ("api-1", "api", 3, "eu-1a"),
        ("api-2", "api", 1, "eu-1a"),
        ("api-3", "api", 1, "eu-1b"),
        ("api-4", "api", 1, "eu-1b"),
        ("db-1", "db", 1, "eu-1a"),
        ("db-2", "db", 1, "eu-1b"),
        ("cache-1", "cache", 1, "eu-1a"),
    ];
    for (n, (id, service, weight, zone)) in fleet.iter().enumerate() {
        reg.register(spec(id, service, n as u8, *weight, zone), 0)?;
    }
    println!("t=0s: seven instances register");
    print_events(&reg, &mut seen);

    let mut crashed = vec!["api-4"]; // api-4 stops heartbeating at once
    let mut now = 0;
    while now < 90 * SECOND {
        now += 5 * SECOND;
        for (id, ..) in &fleet {
            if crashed.contains(id) {
                continue;
            }
            let _ = reg.heartbeat(id, now);
        }
        // The host runs the active checks the core says are due; tick
        // applies whatever fell due in a quiet period.
        for id in reg.due_checks(now) {
            let status = if &*id == "db-2" && (40 * SECOND..60 * SECOND).contains(&now) {
                CheckStatus::Fail
            } else {
                CheckStatus::Pass
            };
            reg.report_check(&id, status, now)?;
        }
        reg.tick(now);
        print_events(&reg, &mut seen);
        match now {
            20_000 => {
                println!("\nt=20s: cache-1 loses its network (no more heartbeats)");
                crashed.push("cache-1");
            }
            30_000 => {
                println!("\nt=30s: api-3 fails 3 calls in a row -> outlier ejection for 20 s");
                for _ in 0..3 {
                    reg.report_outcome("api-3", false, now)?;
                }
            }
            45_000 => {
                println!("\nt=45s: cache-1 is back and heartbeats again");
                crashed.retain(|c| *c != "cache-1");
                reg.heartbeat("cache-1", now)?;
            }
            60_000 => {
                println!("\nt=60s: operator drains api-2 for maintenance");
                reg.drain("api-2", true, now)?;
            }
            _ => {}
        }
        print_events(&reg, &mut seen);
    }

    println!("\nt=90s: the registry as a dashboard would show it");
    for service in reg.services(now) {
        let all = DiscoverOptions {
            all: true,
            ..DiscoverOptions::default()
        };
        let found = reg.discover(&service, &all, now)?;
        let line: Vec<String> = found
            .iter()
            .map(|v| format!("{}={}", v.instance.id(), v.status.health))
            .collect();
        println!(
            "  {service:<6} {}{}",
            line.join("  "),
            if found.panic { "  [panic]" } else { "" }
        );
    }

    println!("\n1000 picks of `api` per strategy (api-1 has weight 3):");
    for strategy in Strategy::ALL {
        println!(
            "  {:<21} {}",
            strategy.as_str(),
            histogram(&mut reg, "api", strategy, now)
        );
    }
    let next = reg
        .next_deadline()
        .map_or("none".into(), |t| format!("{:.1}s", t as f64 / 1000.0));
    println!("\nnext deadline the host should tick at: {next}");
    println!(
        "events so far: {}; snapshot size: {} bytes",
        reg.last_index(),
        reg.snapshot().len()
    );
    Ok(())
}
