package waypost

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func at(ms int64) time.Time { return time.UnixMilli(ms) }

func newFleet(t *testing.T, ids ...string) *Registry {
	t.Helper()
	cfg := DefaultConfig()
	cfg.TTL = 10 * time.Second
	cfg.EvictAfter = 5 * time.Second
	cfg.RandomSeed, cfg.Seed = false, 7
	cfg.EventRetention = 64
	reg, err := NewRegistry(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	for i, id := range ids {
		spec := InstanceSpec{ID: id, Service: "api", Address: fmt.Sprintf("10.0.0.%d", i+1), Port: 80}
		if _, err := reg.Register(spec, at(0)); err != nil {
			t.Fatal(err)
		}
	}
	return reg
}

func wantCode(t *testing.T, err error, code Code) {
	t.Helper()
	var we *Error
	if !errors.As(err, &we) || we.Code != code {
		t.Fatalf("want %s error, got %v", code, err)
	}
	if we.Message == "" {
		t.Fatalf("%s error without a message", code)
	}
}

// usable checks the registry still answers after a bad call.
func usable(t *testing.T, reg *Registry) {
	t.Helper()
	if err := reg.Heartbeat("a", at(1)); err != nil {
		t.Fatal(err)
	}
	if p, err := reg.Pick("api", FirstAvailable, nil, at(1)); err != nil || p.Instance.ID != "a" {
		t.Fatalf("pick after a bad call: %v %v", p, err)
	}
}

func TestConfigErrors(t *testing.T) {
	cfg := DefaultConfig()
	if cfg.TTL != 30*time.Second || cfg.EvictAfter != time.Minute || !cfg.RandomSeed || cfg.EventRetention != 4096 {
		t.Fatalf("defaults: %+v", cfg)
	}
	cfg.TTL = 0
	_, err := NewRegistry(cfg)
	wantCode(t, err, CodeInvalidArgument)
	cfg = DefaultConfig()
	cfg.SlowStart = -time.Second
	_, err = NewRegistry(cfg)
	wantCode(t, err, CodeInvalidArgument)
	_, err = NewRegistryJSON(`{"ttl_ms": "x"}`)
	wantCode(t, err, CodeInvalidArgument)
	_, err = NewRegistryJSON(`{"ttl_ms":`)
	wantCode(t, err, CodeInvalidArgument)
	_, err = NewRegistryJSON("{\x00}")
	wantCode(t, err, CodeInvalidArgument)
	reg, err := NewRegistryJSON(`{"seed": 1}`)
	if err != nil {
		t.Fatal(err)
	}
	reg.Close()
	reg.Close() // twice is harmless
}

func TestRoundRobinAndErrors(t *testing.T) {
	reg := newFleet(t, "a", "b")
	var got []string
	for i := 0; i < 3; i++ {
		p, err := reg.Pick("api", RoundRobin, nil, at(1))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p.Instance.ID)
	}
	if strings.Join(got, ",") != "a,b,a" {
		t.Fatalf("round robin gave %v", got)
	}
	err := reg.Heartbeat("zz", at(1))
	wantCode(t, err, CodeNotFound)
	if !errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
		t.Fatalf("errors.Is mismatch for %v", err)
	}
	_, err = reg.Pick("nope", Random, nil, at(1))
	wantCode(t, err, CodeUnknownService)
	_, err = reg.Pick("api", ConsistentHash, nil, at(1))
	wantCode(t, err, CodeInvalidArgument)
	_, err = reg.Pick("api", Strategy(42), nil, at(1))
	wantCode(t, err, CodeInvalidArgument)
	_, err = reg.Pick("api", Random, &PickOptions{Filter: Filter{Tags: []string{"none"}}}, at(1))
	wantCode(t, err, CodeNoEligibleInstance)
	_, err = reg.Register(InstanceSpec{ID: "a", Service: "web", Address: "h", Port: 1}, at(1))
	wantCode(t, err, CodeConflict)
	_, err = reg.Register(InstanceSpec{ID: "x", Service: "api", Address: "h"}, at(1))
	wantCode(t, err, CodeInvalidArgument)
	_, err = reg.RegisterJSON(`{"id": 1}`, at(1))
	wantCode(t, err, CodeInvalidArgument)
	wantCode(t, reg.Heartbeat("a\x00b", at(1)), CodeInvalidArgument)
	wantCode(t, reg.Heartbeat("a\xffb", at(1)), CodeInvalidArgument)
	wantCode(t, reg.Heartbeat(strings.Repeat("x", 5000), at(1)), CodeInvalidArgument)
	wantCode(t, reg.Heartbeat("a", time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)), CodeInvalidArgument)
	_, err = reg.Pick("api\x00", Random, nil, at(1))
	wantCode(t, err, CodeInvalidArgument)
	usable(t, reg)
}

func TestPickOptionsAndCache(t *testing.T) {
	reg := newFleet(t, "a", "b")
	if _, err := reg.Register(InstanceSpec{ID: "c", Service: "api", Address: "10.0.0.3", Port: 80, Zone: "z1",
		Tags: []string{"gpu"}, Meta: map[string]string{"v": "2"}, Weight: 3, TTL: time.Minute}, at(0)); err != nil {
		t.Fatal(err)
	}
	p, err := reg.Pick("api", Random, &PickOptions{Zone: "z1"}, at(1))
	if err != nil || p.Instance.ID != "c" || p.Instance.Weight != 3 || p.Instance.TTL != time.Minute {
		t.Fatalf("zone pick: %+v %v", p.Instance, err)
	}
	p, err = reg.Pick("api", FirstAvailable, &PickOptions{Filter: Filter{Meta: map[string]string{"v": "2"}}}, at(1))
	if err != nil || p.Instance.ID != "c" {
		t.Fatalf("filtered pick: %v %v", p, err)
	}
	k1, _ := reg.Pick("api", ConsistentHash, &PickOptions{Key: "user-1"}, at(1))
	k2, _ := reg.Pick("api", ConsistentHash, &PickOptions{Key: "user-1"}, at(1))
	if k1.Instance != k2.Instance {
		t.Fatal("consistent hash moved a key")
	}
	svc, err := reg.Service("api")
	if err != nil || svc.Name() != "api" {
		t.Fatal(err)
	}
	if p, err := svc.Pick(FirstAvailable, nil, at(1)); err != nil || p.Instance.ID != "a" {
		t.Fatalf("service pick: %v %v", p, err)
	}
	ghost, err := reg.Service("ghost")
	if err != nil {
		t.Fatal(err)
	}
	_, err = ghost.Pick(Random, nil, at(1))
	wantCode(t, err, CodeUnknownService)
	_, err = reg.Pick("ghost", Random, nil, at(1))
	wantCode(t, err, CodeUnknownService)
	// Both kinds of pick count the failure once, as a pick by name in any
	// other binding does.
	if m, _ := reg.Metrics(); !strings.Contains(m, `waypost_pick_failures_total{service="",code="unknown_service"} 2`) {
		t.Fatalf("unknown-service picks miscounted:\n%s", m)
	}
	_, err = reg.Service("")
	wantCode(t, err, CodeInvalidArgument)
	// Cached instances follow updates and slot reuse.
	if _, err := reg.Register(InstanceSpec{ID: "a", Service: "api", Address: "10.9.9.9", Port: 81}, at(2)); err != nil {
		t.Fatal(err)
	}
	p, _ = reg.Pick("api", FirstAvailable, nil, at(2))
	if p.Instance.ID != "a" || p.Instance.Address != "10.9.9.9" || p.Instance.Port != 81 {
		t.Fatalf("stale cached instance after update: %+v", p.Instance)
	}
	if err := reg.Deregister("a", at(3)); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Register(InstanceSpec{ID: "0", Service: "api", Address: "10.0.0.0", Port: 80}, at(3)); err != nil {
		t.Fatal(err)
	}
	p, _ = reg.Pick("api", FirstAvailable, nil, at(3))
	if p.Instance.ID != "0" || p.Instance.Address != "10.0.0.0" {
		t.Fatalf("reused slot returned the old instance: %+v", p.Instance)
	}
}

func TestDiscoverAndReports(t *testing.T) {
	reg := newFleet(t, "a", "b", "c")
	if err := reg.Drain("b", true, at(1)); err != nil {
		t.Fatal(err)
	}
	if err := reg.ReportCheck("c", CheckWarn, at(1)); err != nil {
		t.Fatal(err)
	}
	d, err := reg.Discover("api", &DiscoverOptions{All: true}, at(1))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Instances) != 3 || d.Health[0] != Healthy || d.Health[1] != Draining || d.Health[2] != Degraded {
		t.Fatalf("discover all: %v", d.Health)
	}
	d, err = reg.Discover("api", nil, at(1))
	if err != nil || len(d.Instances) != 1 || d.Instances[0].ID != "a" {
		t.Fatalf("discover healthy: %+v %v", d, err)
	}
	// A kept listing follows health changes and new members.
	if err := reg.Drain("b", false, at(1)); err != nil {
		t.Fatal(err)
	}
	d, _ = reg.Discover("api", nil, at(1))
	if len(d.Instances) != 2 || d.Instances[1].ID != "b" {
		t.Fatalf("listing after undrain: %+v", d.Instances)
	}
	d.Instances[0] = nil // callers own the slices they get
	if _, err := reg.Register(InstanceSpec{ID: "0", Service: "api", Address: "h", Port: 1}, at(1)); err != nil {
		t.Fatal(err)
	}
	d, _ = reg.Discover("api", nil, at(1))
	if len(d.Instances) != 3 || d.Instances[0].ID != "0" || d.Instances[1].ID != "a" {
		t.Fatalf("listing after register: %+v", d.Instances)
	}
	if err := reg.Drain("b", true, at(1)); err != nil {
		t.Fatal(err)
	}
	if err := reg.Deregister("0", at(1)); err != nil {
		t.Fatal(err)
	}
	_, err = reg.Discover("nope", nil, at(1))
	wantCode(t, err, CodeUnknownService)
	for _, f := range []func() error{
		func() error { return reg.Begin("a", at(1)) },
		func() error { return reg.Begin("a", at(1)) },
		func() error { return reg.End("a", at(1)) },
		func() error { return reg.ReportOutcome("a", true, at(1)) },
	} {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	st, err := reg.Get("a", at(1))
	if err != nil || st.Inflight != 1 || st.Health != Healthy || st.Service != "api" || st.LeaseDeadline != at(10000) {
		t.Fatalf("get: %+v %v", st, err)
	}
	_, err = reg.Get("zz", at(1))
	wantCode(t, err, CodeNotFound)
	_, err = ParseCheckStatus("maybe")
	wantCode(t, err, CodeInvalidArgument)
	wantCode(t, reg.ReportCheck("a", CheckStatus(9), at(1)), CodeInvalidArgument)
	wantCode(t, reg.ReportOutcome("zz", false, at(1)), CodeNotFound)
	wantCode(t, reg.Drain("zz", true, at(1)), CodeNotFound)
	wantCode(t, reg.Deregister("zz", at(1)), CodeNotFound)
	names, err := reg.Services(at(1))
	if err != nil || strings.Join(names, ",") != "api" {
		t.Fatalf("services: %v %v", names, err)
	}
	if s, err := ParseStrategy("least_request"); err != nil || s != LeastRequest || s.String() != "least_request" {
		t.Fatalf("strategy names: %v %v", s, err)
	}
	_, err = ParseStrategy("fastest")
	wantCode(t, err, CodeInvalidArgument)
	usable(t, reg)
}

func TestTimeEventsSnapshots(t *testing.T) {
	reg := newFleet(t, "a", "b")
	h, err := reg.RegisterJSON(`{"id":"k","service":"db","address":"h","port":5,"check_interval_ms":1000}`, at(0))
	if err != nil {
		t.Fatal(err)
	}
	if d, ok, err := reg.NextDeadline(); err != nil || !ok || d != at(10001) {
		t.Fatalf("next deadline: %v %v %v", d, ok, err)
	}
	if events, err := reg.Tick(at(5000)); err != nil || events != nil {
		t.Fatalf("quiet tick: %v %v", events, err)
	}
	if err := reg.Heartbeat("a", at(5000)); err != nil {
		t.Fatal(err)
	}
	if err := reg.HeartbeatHandle(h, at(5000)); err != nil {
		t.Fatal(err)
	}
	wantCode(t, reg.HeartbeatHandle(h+1<<32, at(5000)), CodeNotFound)
	if err := reg.ReportOutcomeHandle(h, true, at(5000)); err != nil {
		t.Fatal(err)
	}
	events, err := reg.Tick(at(10001))
	if err != nil || len(events) != 1 || events[0].Type != "health_changed" || events[0].ID != "b" ||
		events[0].From != "healthy" || events[0].To != "unhealthy" || events[0].AtMs() != 10001 {
		t.Fatalf("tick: %+v %v", events, err)
	}
	if ids, err := reg.DueChecks(at(10001)); err != nil || strings.Join(ids, ",") != "k" {
		t.Fatalf("due checks: %v %v", ids, err)
	}
	all, err := reg.EventsSince(0)
	if err != nil || len(all) != 4 || all[0].Index != 1 || all[0].Type != "registered" {
		t.Fatalf("events: %+v %v", all, err)
	}
	if idx, err := reg.ServiceModifyIndex("api"); err != nil || idx != 4 {
		t.Fatalf("modify index: %v %v", idx, err)
	}
	_, err = reg.ServiceModifyIndex("nope")
	wantCode(t, err, CodeUnknownService)
	info, err := reg.Info()
	if err != nil || info.Instances != 3 || info.Clock != at(10001) || info.LastIndex != 4 {
		t.Fatalf("info: %+v %v", info, err)
	}
	if m, err := reg.Metrics(); err != nil || !strings.Contains(m, "waypost_instances") {
		t.Fatalf("metrics: %v", err)
	}
	snap, err := reg.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	copy, err := Restore(snap)
	if err != nil {
		t.Fatal(err)
	}
	defer copy.Close()
	for i := 0; i < 5; i++ {
		p1, _ := reg.Pick("api", Random, nil, at(10002))
		p2, _ := copy.Pick("api", Random, nil, at(10002))
		if p1.Instance.ID != p2.Instance.ID {
			t.Fatal("restored registry picks differently")
		}
	}
	for _, bad := range []string{snap[:len(snap)/2], "[]", "{}", ""} {
		_, err := Restore(bad)
		wantCode(t, err, CodeInvalidSnapshot)
	}
	for i := 0; i < 80; i++ {
		if err := reg.Drain("a", i%2 == 0, at(10003)); err != nil {
			t.Fatal(err)
		}
	}
	_, err = reg.EventsSince(0)
	wantCode(t, err, CodeCompacted)
	if !errors.Is(err, ErrCompacted) {
		t.Fatal("errors.Is(compacted)")
	}
	if Version() != "0.1.0" {
		t.Fatalf("version %q", Version())
	}
}

func TestZeroTimeMeansNow(t *testing.T) {
	reg := newFleet(t)
	if _, err := reg.Register(InstanceSpec{ID: "a", Service: "api", Address: "h", Port: 1}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := reg.Heartbeat("a", time.Time{}); err != nil {
		t.Fatal(err)
	}
	info, _ := reg.Info()
	if d := time.Since(info.Clock); d < 0 || d > time.Minute {
		t.Fatalf("registry clock %v is not the wall clock", info.Clock)
	}
}

// Many goroutines share one registry: each owns an instance it registers,
// heartbeats and finally deregisters, while all of them pick and discover.
func TestGoroutinesShareOneRegistry(t *testing.T) {
	reg := newFleet(t, "a", "b")
	const workers, rounds = 32, 300
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			id := fmt.Sprintf("w%02d", w)
			if _, err := reg.Register(InstanceSpec{ID: id, Service: "pool", Address: "10.1.0.1", Port: 80}, at(0)); err != nil {
				errs <- err
				return
			}
			for i := 0; i < rounds; i++ {
				now := at(int64(i))
				if err := reg.Heartbeat(id, now); err != nil {
					errs <- err
					return
				}
				p, err := reg.Pick("pool", Strategy(i%7), &PickOptions{Key: id}, now)
				if err != nil {
					errs <- err
					return
				}
				if !strings.HasPrefix(p.Instance.ID, "w") || p.Instance.Service != "pool" {
					errs <- fmt.Errorf("picked %+v from pool", p.Instance)
					return
				}
				if i%50 == 0 {
					if _, err := reg.Discover("pool", &DiscoverOptions{All: true}, now); err != nil {
						errs <- err
						return
					}
				}
			}
			if err := reg.Deregister(id, at(rounds)); err != nil {
				errs <- err
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	info, err := reg.Info()
	if err != nil || info.Instances != 2 {
		t.Fatalf("after the workers left: %+v %v", info, err)
	}
	_, err = reg.Pick("pool", Random, nil, at(rounds))
	wantCode(t, err, CodeUnknownService)
}

// A registrar writes the wire form: durations in ms, the status beside them.
func TestEntryJSONIsTheWireForm(t *testing.T) {
	spec := InstanceSpec{ID: "a", Service: "api", Address: "10.0.0.1", Port: 80, TTL: 5 * time.Second, CheckInterval: 250 * time.Millisecond}
	got, err := spec.EntryJSON("warning")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"a","service":"api","address":"10.0.0.1","port":80,"ttl_ms":5000,"check_interval_ms":250,"status":"warning"}`
	if string(got) != want {
		t.Fatalf("EntryJSON = %s, want %s", got, want)
	}
	plain, err := InstanceSpec{ID: "a", Service: "api", Address: "h", Port: 1}.EntryJSON("")
	if err != nil || string(plain) != `{"id":"a","service":"api","address":"h","port":1}` {
		t.Fatalf("EntryJSON = %s, %v", plain, err)
	}
	if _, err := (InstanceSpec{ID: "a", Service: "api", Address: "h", Port: 1, TTL: -time.Second}).EntryJSON(""); err == nil {
		t.Fatal("a negative TTL was accepted")
	}
}
