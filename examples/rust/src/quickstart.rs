//! The README's Rust example, as a program.
use waypost::{Config, InstanceSpec, PickOptions, Registry, Strategy};

fn main() -> Result<(), waypost::Error> {
    let mut reg = Registry::new(Config {
        ttl_ms: 10_000,
        seed: 7,
        ..Config::default()
    })?;
    reg.register(InstanceSpec::new("api-1", "api", "10.0.0.1", 8080), 0)?;
    reg.register(InstanceSpec::new("api-2", "api", "10.0.0.2", 8080), 0)?;
    reg.heartbeat("api-1", 9_000)?; // api-2 never heartbeats
    let pick = reg.pick("api", Strategy::RoundRobin, &PickOptions::default(), 10_001)?;
    let chosen = reg.instance(pick.handle).map(|i| i.id().to_owned());
    assert_eq!(chosen.as_deref(), Some("api-1"));
    for event in reg.events_since(0)? {
        println!(
            "{:>6} ms  {:<15} {}",
            event.at,
            event.kind,
            event.id.as_deref().unwrap_or("")
        );
    }
    Ok(())
}
