package consul

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"example.invalid/waypost"
	"example.invalid/waypost/internal/storetest"
)

// registry applies removals at once: these tests are about the helpers,
// not about self-preservation (the core's own tests cover it).
func registry(t *testing.T) *waypost.Registry {
	t.Helper()
	cfg := waypost.DefaultConfig()
	cfg.Seed, cfg.RandomSeed, cfg.TrustEmptySync, cfg.SelfPreservationThreshold = 7, false, true, 0
	reg, err := waypost.NewRegistry(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	return reg
}

type entry struct {
	Health  string
	Address string
	Port    uint16
	Zone    string
}

func view(reg *waypost.Registry, lock interface {
	Lock()
	Unlock()
}, service string) map[string]entry {
	lock.Lock()
	defer lock.Unlock()
	d, err := reg.Discover(service, &waypost.DiscoverOptions{All: true}, time.Now())
	out := map[string]entry{}
	if err != nil {
		return out
	}
	for i, in := range d.Instances {
		out[in.ID] = entry{d.Health[i].String(), in.Address, in.Port, in.Zone}
	}
	return out
}

func ids(m map[string]entry) string {
	var out []string
	for id := range m {
		out = append(out, id)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func register(t *testing.T, s *storetest.Server, id string) {
	s.Call(t, "PUT", "/v1/agent/service/register", map[string]any{
		"ID": id, "Name": "web", "Address": "10.0.0.1", "Port": 8080,
		"Check": map[string]string{"TTL": "30s", "Status": "passing", "DeregisterCriticalServiceAfter": "1m"}}, nil)
}

func TestMirrorFollowsRegistrationsHealthAndDeregistrations(t *testing.T) {
	s := storetest.Start(t, "")
	storetest.NoLeaks(t)
	reg := registry(t)
	m := &Mirror{Address: s.URL, Registry: reg, Service: "web", MinInterval: 20 * time.Millisecond}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	<-m.Synced()
	v := func() map[string]entry { return view(reg, m.Locker(), "web") }
	register(t, s, "web-1")
	register(t, s, "web-2")
	storetest.Eventually(t, 5*time.Second, "both registered", func() bool { return ids(v()) == "web-1,web-2" })
	s.Call(t, "PUT", "/v1/agent/check/warn/service:web-1", nil, nil)
	storetest.Eventually(t, 5*time.Second, "warning → degraded", func() bool { return v()["web-1"].Health == "degraded" })
	s.Call(t, "PUT", "/v1/agent/check/fail/service:web-1", nil, nil)
	storetest.Eventually(t, 5*time.Second, "critical → unhealthy", func() bool { return v()["web-1"].Health == "unhealthy" })
	s.Call(t, "PUT", "/v1/agent/service/maintenance/web-2?enable=true&reason=deploy", nil, nil)
	storetest.Eventually(t, 5*time.Second, "maintenance → draining", func() bool { return v()["web-2"].Health == "draining" })
	s.Call(t, "PUT", "/v1/agent/service/deregister/web-1", nil, nil)
	storetest.Eventually(t, 5*time.Second, "web-1 gone", func() bool { return ids(v()) == "web-2" })
	if n := s.Stats(t).Requests["consul_health"]; n >= 30 {
		t.Fatalf("%d queries: a poll loop, not blocking queries", n)
	}
	if err := m.Close(); err != nil || m.Status() != "stopped" {
		t.Fatalf("Close: %v, %s", err, m.Status())
	}
	storetest.Eventually(t, 3*time.Second, "connections closed", func() bool { return s.Stats(t).Open == 0 })
}

func TestMirrorMapsAFixtureAndSurvivesAnIndexGoingBackwards(t *testing.T) {
	s := storetest.Start(t, "")
	payload, err := os.ReadFile(filepath.Join(storetest.Root(), "tests", "fixtures", "consul", "health-service-fleet.json"))
	if err != nil {
		t.Fatal(err)
	}
	s.Call(t, "POST", "/_test/consul/load", map[string]any{"service": "web", "entries": rawJSON(payload)}, nil)
	direct := registry(t)
	if err := direct.SourceAdd("consul", `{"kind":"consul","service":"web"}`); err != nil {
		t.Fatal(err)
	}
	if _, err := direct.SourceFeed("consul", string(payload), time.Now(), 200, "7"); err != nil {
		t.Fatal(err)
	}
	reg := registry(t)
	m := &Mirror{Address: s.URL, Registry: reg, Service: "web", MinInterval: 20 * time.Millisecond}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	<-m.Synced()
	v := func() map[string]entry { return view(reg, m.Locker(), "web") }
	var nolock fakeLock
	if got, want := v(), view(direct, &nolock, "web"); fmt.Sprint(got) != fmt.Sprint(want) || len(got) < 5 {
		t.Fatalf("mirror %v, fed by hand %v", got, want)
	}
	for _, id := range []string{"web-a", "web-b", "web-c"} {
		register(t, s, id)
	}
	storetest.Eventually(t, 5*time.Second, "followed", func() bool { _, ok := v()["web-c"]; return ok })
	high := uint64(s.Stats(t).ConsulIndex)
	storetest.Eventually(t, 5*time.Second, "holding the server's index", func() bool { return m.Index() == high })
	before := s.Stats(t).Requests["consul_health"]
	s.Call(t, "POST", "/_test/consul/index", map[string]int{"index": 2}, nil)
	storetest.Eventually(t, 5*time.Second, "reset, then read again", func() bool { return m.Index() == 2 })
	storetest.Eventually(t, 5*time.Second, "queried again without an index", func() bool { return s.Stats(t).Requests["consul_health"] >= before+2 })
	register(t, s, "web-new")
	storetest.Eventually(t, 5*time.Second, "followed after the reset", func() bool { _, ok := v()["web-new"]; return ok })
	if m.Err() != nil {
		t.Fatal(m.Err())
	}
}

type fakeLock struct{}

func (fakeLock) Lock()   {}
func (fakeLock) Unlock() {}

type rawJSON []byte

func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }

func TestMirrorIsRateLimited(t *testing.T) {
	s := storetest.Start(t, "")
	s.Call(t, "POST", "/_test/consul/blocking", map[string]bool{"on": false}, nil)
	m := &Mirror{Address: s.URL, Registry: registry(t), Service: "web", MinInterval: 200 * time.Millisecond}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-m.Synced()
	start := s.Stats(t).Requests["consul_health"]
	time.Sleep(time.Second)
	made := s.Stats(t).Requests["consul_health"] - start
	m.Close()
	if made < 2 || made > 7 {
		t.Fatalf("%d queries in 1 s with MinInterval 200 ms", made)
	}
}

func TestOnChangeFiresOnlyForReportsTheCoreMarksChanged(t *testing.T) {
	s := storetest.Start(t, "")
	s.Call(t, "POST", "/_test/consul/blocking", map[string]bool{"on": false}, nil)
	register(t, s, "web-1")
	var mu sync.Mutex
	var changes []waypost.Report
	m := &Mirror{Address: s.URL, Registry: registry(t), Service: "web", MinInterval: 20 * time.Millisecond,
		OnChange: func(r waypost.Report) { mu.Lock(); changes = append(changes, r); mu.Unlock() }}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	<-m.Synced()
	seen := func() []waypost.Report {
		mu.Lock()
		defer mu.Unlock()
		return append([]waypost.Report(nil), changes...)
	}
	// The same answer again and again: the core reports it unchanged.
	storetest.Eventually(t, 5*time.Second, "the same answer read several times", func() bool { return m.Feeds() >= 5 })
	if got := seen(); len(got) != 1 || got[0].Added != 1 || !got[0].Changed {
		t.Fatalf("want one change (the add), got %+v", got)
	}
	s.Call(t, "PUT", "/v1/agent/service/deregister/web-1", nil, nil)
	storetest.Eventually(t, 5*time.Second, "the removal reported", func() bool { return len(seen()) == 2 })
	if got := seen(); got[1].Removed != 1 || !got[1].Changed {
		t.Fatalf("want the removal, got %+v", got[1])
	}
}

func TestRegistrarRegistersHeartbeatsAndDeregisters(t *testing.T) {
	s := storetest.Start(t, "")
	storetest.NoLeaks(t)
	reg := registry(t)
	m := &Mirror{Address: s.URL, Registry: reg, Service: "pay", MinInterval: 20 * time.Millisecond}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	<-m.Synced()
	v := func() map[string]entry { return view(reg, m.Locker(), "pay") }
	inst := waypost.InstanceSpec{ID: "pay-1", Service: "pay", Address: "10.0.0.9", Port: 9000, Weight: 5, Zone: "eu-1a", Tags: []string{"v2"}}
	r := &Registrar{Address: s.URL, Instance: inst, TTL: time.Second, DeregisterAfter: time.Second}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	storetest.Eventually(t, 5*time.Second, "registered", func() bool { return v()["pay-1"].Health == "healthy" })
	if got := v()["pay-1"]; got != (entry{"healthy", "10.0.0.9", 9000, "eu-1a"}) {
		t.Fatalf("mapped as %+v", got)
	}
	time.Sleep(2200 * time.Millisecond) // two TTLs: only heartbeats keep it passing
	if v()["pay-1"].Health != "healthy" || r.Heartbeats() < 4 || r.Err() != nil {
		t.Fatalf("after two TTLs: %+v, %d heartbeats, %v", v()["pay-1"], r.Heartbeats(), r.Err())
	}
	s.Call(t, "PUT", "/v1/agent/service/deregister/pay-1", nil, nil) // the agent forgot it
	storetest.Eventually(t, 3*time.Second, "registered again", func() bool { return r.Registrations() == 2 })
	storetest.Eventually(t, 5*time.Second, "back", func() bool { return v()["pay-1"].Health == "healthy" })
	t0 := time.Now()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	storetest.Eventually(t, time.Second, "gone at once", func() bool { _, ok := v()["pay-1"]; return !ok })
	if time.Since(t0) > time.Second || r.Status() != "stopped" {
		t.Fatalf("took %v, status %s", time.Since(t0), r.Status())
	}
	m.Close()
}

func TestErrorsAreVisibleAndContextCloses(t *testing.T) {
	s := storetest.Start(t, "")
	dead := s.URL
	s.Stop()
	storetest.NoLeaks(t)
	seen := make(chan error, 100)
	ctx, cancel := context.WithCancel(context.Background())
	m := &Mirror{Address: dead, Registry: registry(t), Service: "web", OnError: func(e error) { seen <- e }}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	<-seen
	<-seen
	var ce *Error
	if !errors.As(m.Err(), &ce) || !strings.Contains(ce.Error(), dead) || m.Status() != "retrying" {
		t.Fatalf("Err %v, status %s", m.Err(), m.Status())
	}
	cancel()
	storetest.Eventually(t, 2*time.Second, "stopped by the context", func() bool { return m.Status() == "stopped" })
	if err := m.Close(); err == nil {
		t.Fatal("Close returns the standing failure")
	}
	r := NewRegistrar(dead, waypost.InstanceSpec{ID: "a", Service: "b", Address: "x", Port: 1})
	if err := r.Start(context.Background()); !errors.As(err, &ce) {
		t.Fatalf("Start against nobody: %v", err)
	}
	if err := NewRegistrar(dead, waypost.InstanceSpec{ID: "a"}).Start(context.Background()); err == nil {
		t.Fatal("an instance without a service must be refused")
	}
}

// A close whose first query is being connected (a TLS handshake that never
// ends), or waits for an answer, returns at once and leaves nothing behind.
func TestCloseWhileTheFirstQueryStalls(t *testing.T) {
	stall := storetest.StartStall(t)
	storetest.NoLeaks(t)
	stall.CloseWhileStalled(t, func(url string) func() {
		reg, err := waypost.NewRegistry(waypost.DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		m := &Mirror{Address: url, Registry: reg, Service: "web", Timeout: storetest.LongTimeout}
		if err := m.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		return func() { m.Close(); reg.Close() }
	}, "http", "https")
}
