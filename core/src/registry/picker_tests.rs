//! Tests of worker-local pickers.
use super::*;
use crate::{Config, InstanceSpec, PickOptions};

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
    assert_eq!(reg.entry(busy.index()).load(), 0);
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
