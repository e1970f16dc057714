//! Pickers on many threads while membership and health change: no pick
//! returns an instance removed, drained or ejected before the pick began,
//! and every table is freed at the end.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use waypost::{pick_tables_alive, Config, Handle, InstanceSpec, Pick, Picker, Registry, Strategy};

/// The README's loop: refresh under the lock when asked, then pick.
fn pick(shared: &Mutex<Registry>, picker: &mut Picker, now: u64) -> waypost::Result<Pick> {
    if picker.needs_refresh(now) {
        let mut reg = shared.lock().unwrap_or_else(|e| e.into_inner());
        reg.refresh_picker(picker, now)?;
    }
    picker.pick(Strategy::RoundRobin, None)
}

#[test]
fn threads_pick_while_instances_come_go_and_are_ejected() -> waypost::Result<()> {
    const N: usize = 8;
    let mut reg = Registry::new(Config {
        consecutive_failures: 3,
        seed: 11,
        ..Config::default()
    })?;
    for i in 0..N {
        reg.register(InstanceSpec::new(format!("i{i}"), "api", "10.0.0.1", 80), 0)?;
    }
    let shared = Arc::new(Mutex::new(reg));
    // Handles that must not be picked by a pick that starts after they
    // were published here.
    let gone: Arc<Mutex<Vec<Handle>>> = Arc::default();
    let published = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let tables_before = pick_tables_alive();
    let workers: Vec<_> = (0..3)
        .map(|w| {
            let (shared, gone, published, stop) = (
                shared.clone(),
                gone.clone(),
                published.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || -> Result<u64, String> {
                let mut picker = {
                    let mut reg = shared.lock().unwrap_or_else(|e| e.into_inner());
                    reg.picker("api").map_err(|e| e.to_string())?
                };
                let strategies = [
                    Strategy::RoundRobin,
                    Strategy::Random,
                    Strategy::WeightedRoundRobin,
                    Strategy::LeastRequest,
                    Strategy::WeightedRandom,
                ];
                let mut picks = 0u64;
                let mut i = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let seen = published.load(Ordering::Acquire);
                    let now = (i / 64) as u64;
                    if picker.needs_refresh(now) {
                        let mut reg = shared.lock().unwrap_or_else(|e| e.into_inner());
                        reg.refresh_picker(&mut picker, now)
                            .map_err(|e| e.to_string())?;
                    }
                    let strategy = strategies[(i + w) % strategies.len()];
                    let p = match picker.pick(strategy, None) {
                        Ok(p) => p,
                        // Every instance drained at once: nothing to pick.
                        Err(e) if e.code() == waypost::ErrorCode::NoEligibleInstance => {
                            i += 1;
                            continue;
                        }
                        Err(e) => return Err(e.to_string()),
                    };
                    let bad =
                        gone.lock().unwrap_or_else(|e| e.into_inner())[..seen].contains(&p.handle);
                    if bad && !p.panic {
                        return Err(format!("picked {:?} after it was gone", p.handle));
                    }
                    picker.begin(p.handle);
                    picker.end(p.handle);
                    picker.report_outcome(p.handle, i % 5 != 0, now);
                    picks += 1;
                    i += 1;
                }
                Ok(picks)
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut k = 0usize;
    while Instant::now() < deadline {
        let id = format!("i{}", k % N);
        let mut reg = shared.lock().unwrap_or_else(|e| e.into_inner());
        let handle = reg.handle_of(&id);
        match k % 3 {
            0 => {
                reg.deregister(&id, 0)?;
            }
            1 => {
                reg.drain(&id, true, 0)?;
            }
            _ => {
                // Failures until the registry ejects it (or its cap stops it).
                for _ in 0..3 {
                    reg.report_outcome(&id, false, 0)?;
                }
            }
        }
        let out = reg
            .get(&id, 0)
            .map(|v| {
                !matches!(
                    v.status.health,
                    waypost::Health::Healthy | waypost::Health::Degraded
                )
            })
            .unwrap_or(true);
        drop(reg);
        if let (Some(h), true) = (handle, out) {
            let mut g = gone.lock().unwrap_or_else(|e| e.into_inner());
            g.push(h);
            published.store(g.len(), Ordering::Release);
        }
        std::thread::sleep(Duration::from_millis(1));
        let mut reg = shared.lock().unwrap_or_else(|e| e.into_inner());
        // Put it back as a new registration (a new handle).
        let _ = reg.deregister(&id, 0);
        reg.register(InstanceSpec::new(id, "api", "10.0.0.1", 80), 0)?;
        k += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        match w.join() {
            Ok(Ok(picks)) => assert!(picks > 0),
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => panic!("a worker panicked"),
        }
    }
    assert!(k > 10, "only {k} changes ran");
    // The README's loop compiles and picks.
    let mut p = shared
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .picker("api")?;
    assert!(pick(&shared, &mut p, 10_000).is_ok());
    drop(p);
    drop(shared);
    // Tests in this binary run on their own threads, but only this one
    // makes pickers: every table it published is gone.
    assert_eq!(pick_tables_alive(), tables_before);
    Ok(())
}
