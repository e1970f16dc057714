package consul

import (
	"context"
	"encoding/json"
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

// startMirror mirrors service from s into reg until the test ends.
func startMirror(t *testing.T, s *storetest.Server, reg *waypost.Registry, service string) *Mirror {
	t.Helper()
	m := &Mirror{Address: s.URL, Registry: reg, Service: service, MinInterval: 20 * time.Millisecond}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	<-m.Synced()
	return m
}

func TestMirrorFollowsRegistrationsHealthAndDeregistrations(t *testing.T) {
	s := storetest.Start(t, "")
	storetest.NoLeaks(t)
	reg := registry(t)
	m := startMirror(t, s, reg, "web")
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
	m := startMirror(t, s, reg, "web")
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
	m := startMirror(t, s, reg, "pay")
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

type agentCall struct {
	Method string         `json:"method"`
	Path   string         `json:"path"`
	Body   map[string]any `json:"body"`
	Raw    string         `json:"raw"`
}

func agentCalls(t *testing.T, s *storetest.Server) []agentCall {
	var calls []agentCall
	s.Call(t, "GET", "/_test/consul/agent", nil, &calls)
	return calls
}

func sent(calls []agentCall) []string {
	out := []string{}
	for _, c := range calls {
		out = append(out, c.Method+" "+c.Path)
	}
	return out
}

// fromUpdate is the agent calls from the update's registration on (a
// heartbeat may have gone out between mark and the update).
func fromUpdate(t *testing.T, s *storetest.Server, mark int) []agentCall {
	calls := agentCalls(t, s)[mark:]
	for i, c := range calls {
		if c.Path == "/v1/agent/service/register" {
			return calls[i:]
		}
	}
	t.Fatalf("no registration in %v", sent(calls))
	return nil
}

// first is at most the first n of calls: an update's own calls, which
// the registrar's lock keeps heartbeats out of, though one may follow at
// once, before the test reads the log.
func first(calls []string, n int) []string {
	if len(calls) > n {
		return calls[:n]
	}
	return calls
}

// beats is the heartbeats among calls.
func beats(calls []agentCall) map[string]int {
	out := map[string]int{}
	for _, c := range sent(calls) {
		if strings.Contains(c, "/check/") {
			out[c]++
		}
	}
	return out
}

func TestRegistrarUpdateMapsTheStatusAndHeartbeatsKeepIt(t *testing.T) {
	s := storetest.Start(t, "")
	storetest.NoLeaks(t)
	reg := registry(t)
	m := startMirror(t, s, reg, "pay")
	at := func() entry { return view(reg, m.Locker(), "pay")["pay-3"] }
	status := func() string {
		m.Locker().Lock()
		defer m.Locker().Unlock()
		got, err := reg.Get("pay-3", time.Now())
		if err != nil {
			return err.Error()
		}
		return got.SourceStatus
	}
	const beatWarn, beatPass = "PUT /v1/agent/check/warn/service:pay-3", "PUT /v1/agent/check/pass/service:pay-3"
	inst := waypost.InstanceSpec{ID: "pay-3", Service: "pay", Address: "10.0.0.9", Port: 9000}
	r := &Registrar{Address: s.URL, Instance: inst, TTL: time.Second, DeregisterAfter: 5 * time.Second}
	if err := r.Update(context.Background(), inst, "warning"); err == nil {
		t.Fatal("Update before Start must fail")
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	storetest.Eventually(t, 5*time.Second, "registered", func() bool { return at() == entry{"healthy", "10.0.0.9", 9000, ""} })

	// warning: the new fields re-registered with the same ID and TTL check, the check warned.
	mark := len(agentCalls(t, s))
	moved := inst
	moved.Port = 9002
	if err := r.Update(context.Background(), moved, "warning"); err != nil {
		t.Fatal(err)
	}
	calls := fromUpdate(t, s, mark)
	if got := fmt.Sprint(first(sent(calls), 2)); got != fmt.Sprint([]string{"PUT /v1/agent/service/register", beatWarn}) {
		t.Fatalf("sent %s", got)
	}
	body := calls[0].Body
	check := fmt.Sprint(body["Check"])
	if body["ID"] != "pay-3" || body["Name"] != "pay" || body["Port"] != float64(9002) ||
		check != "map[CheckID:service:pay-3 DeregisterCriticalServiceAfter:5s Name:waypost TTL for pay-3 Status:warning TTL:1s]" {
		t.Fatalf("registered %v", body)
	}
	storetest.Eventually(t, 5*time.Second, "warning → degraded", func() bool { return at() == entry{"degraded", "10.0.0.9", 9002, ""} })
	if got := status(); got != "warning" {
		t.Fatalf("source status %s", got)
	}
	time.Sleep(1500 * time.Millisecond) // past the TTL: only heartbeats keep the check alive, and they keep it warning
	if got := beats(fromUpdate(t, s, mark)[2:]); len(got) != 1 || got[beatWarn] < 3 {
		t.Fatalf("heartbeats after the update: %v", got)
	}
	if at().Health != "degraded" {
		t.Fatalf("after the TTL: %+v", at())
	}

	// maintenance: the agent's maintenance mode on a passing check.
	mark = len(agentCalls(t, s))
	if err := r.Update(context.Background(), inst, "maintenance"); err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(first(sent(fromUpdate(t, s, mark)), 3)), fmt.Sprint([]string{"PUT /v1/agent/service/register", beatPass,
		"PUT /v1/agent/service/maintenance/pay-3?enable=true&reason=waypost%3A%20maintenance"}); got != want {
		t.Fatalf("sent %s, want %s", got, want)
	}
	storetest.Eventually(t, 5*time.Second, "maintenance → draining", func() bool { return at().Health == "draining" })
	if got := status(); got != "maintenance" {
		t.Fatalf("source status %s", got)
	}
	time.Sleep(1200 * time.Millisecond)
	if got := beats(fromUpdate(t, s, mark)[3:]); at().Health != "draining" || len(got) != 1 || got[beatPass] < 2 {
		t.Fatalf("after the TTL: %+v, heartbeats %v", at(), got)
	}
	// The agent forgets it: registered again, and maintenance turned on again.
	registrations := r.Registrations()
	s.Call(t, "PUT", "/v1/agent/service/deregister/pay-3", nil, nil)
	storetest.Eventually(t, 3*time.Second, "registered again", func() bool { return r.Registrations() == registrations+1 })
	storetest.Eventually(t, 5*time.Second, "still draining", func() bool { return at().Health == "draining" })
	all := sent(agentCalls(t, s))
	last := 0 // the re-registration; heartbeats may follow what it sends
	for i, c := range all {
		if c == "PUT /v1/agent/service/register" {
			last = i
		}
	}
	reenabled := false
	for _, c := range all[last:] {
		reenabled = reenabled || strings.HasPrefix(c, "PUT /v1/agent/service/maintenance/pay-3?enable=true")
	}
	if !reenabled {
		t.Fatalf("after the re-registration: %v", all[last:])
	}

	// Back to passing: maintenance off.
	mark = len(agentCalls(t, s))
	if err := r.Update(context.Background(), inst, ""); err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(first(sent(fromUpdate(t, s, mark)), 3)), fmt.Sprint([]string{"PUT /v1/agent/service/register", beatPass,
		"PUT /v1/agent/service/maintenance/pay-3?enable=false"}); got != want {
		t.Fatalf("sent %s, want %s", got, want)
	}
	storetest.Eventually(t, 5*time.Second, "passing again", func() bool { return at() == entry{"healthy", "10.0.0.9", 9000, ""} })
	if got := status(); got != "passing" {
		t.Fatalf("source status %s", got)
	}

	mark = len(agentCalls(t, s))
	other, web := inst, inst
	other.ID, web.Service = "pay-4", "web"
	for _, bad := range []struct {
		in     waypost.InstanceSpec
		status string
	}{{other, ""}, {web, ""}, {inst, "draining"}} {
		if err := r.Update(context.Background(), bad.in, bad.status); err == nil {
			t.Fatalf("Update(%s/%s, %q) must fail", bad.in.Service, bad.in.ID, bad.status)
		}
	}
	for _, c := range agentCalls(t, s)[mark:] {
		if c.Path == "/v1/agent/service/register" {
			t.Fatal("a refused update registered")
		}
	}
	if err := r.Close(); err != nil || r.Err() != nil {
		t.Fatalf("Close: %v, %v", err, r.Err())
	}
	storetest.Eventually(t, time.Second, "gone", func() bool { _, ok := view(reg, m.Locker(), "pay")["pay-3"]; return !ok })
	mark = len(agentCalls(t, s))
	if err := r.Update(context.Background(), inst, "critical"); err != nil || len(agentCalls(t, s)) != mark {
		t.Fatalf("after Close an update is only kept: %v, %v", err, sent(agentCalls(t, s)[mark:]))
	}
	m.Close()
}

// TestRegistrationIsTheCoresByteForByte runs the shared cases
// (tests/fixtures/consul/registration.json): the same instance gives the
// same registration, body bytes included, in every language; and the
// registrar sends exactly that body.
func TestRegistrationIsTheCoresByteForByte(t *testing.T) {
	text, err := os.ReadFile(filepath.Join(storetest.Root(), "tests", "fixtures", "consul", "registration.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Cases []struct {
			Name             string
			Instance         json.RawMessage
			TTLS             uint64 `json:"ttl_s"`
			DeregisterAfterS uint64 `json:"deregister_after_s"`
			Expect           *waypost.ConsulRegistration
			Error            waypost.Code
		}
	}
	if err := json.Unmarshal(text, &doc); err != nil {
		t.Fatal(err)
	}
	for _, c := range doc.Cases {
		got, err := waypost.NewConsulRegistration(string(c.Instance), c.TTLS, c.DeregisterAfterS)
		var we *waypost.Error
		switch {
		case c.Expect == nil && (!errors.As(err, &we) || we.Code != c.Error):
			t.Errorf("%s: want %s, got %v", c.Name, c.Error, err)
		case c.Expect != nil && (err != nil || got != *c.Expect):
			t.Errorf("%s: got %+v, %v\nwant %+v", c.Name, got, err, *c.Expect)
		}
	}
	if t.Failed() {
		return
	}
	first := doc.Cases[0]
	var in waypost.InstanceSpec
	if err := json.Unmarshal(first.Instance, &in); err != nil {
		t.Fatal(err)
	}
	s := storetest.Start(t, "")
	r := &Registrar{Address: s.URL, Instance: in, TTL: time.Duration(first.TTLS) * time.Second,
		DeregisterAfter: time.Duration(first.DeregisterAfterS) * time.Second}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	calls := agentCalls(t, s)
	r.Close()
	if calls[0].Path != "/v1/agent/service/register" || calls[0].Raw != first.Expect.Body {
		t.Fatalf("sent %s %q\nwant %q", calls[0].Path, calls[0].Raw, first.Expect.Body)
	}

	// The paths, escaping included: registered, drained, back to passing, closed.
	for _, c := range doc.Cases {
		if c.Expect == nil {
			continue
		}
		if err := json.Unmarshal(c.Instance, &in); err != nil {
			t.Fatal(err)
		}
		mark := len(agentCalls(t, s))
		r := &Registrar{Address: s.URL, Instance: in, TTL: 10 * time.Second,
			DeregisterAfter: time.Duration(c.DeregisterAfterS) * time.Second}
		if err := r.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		for _, status := range []string{"maintenance", ""} {
			if err := r.Update(context.Background(), in, status); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		e := c.Expect
		beat := "/v1/agent/check/pass/" + e.HeartbeatPath[strings.LastIndex(e.HeartbeatPath, "/")+1:]
		var got []string
		for _, call := range agentCalls(t, s)[mark:] {
			got = append(got, call.Path)
		}
		want := []string{"/v1/agent/service/register", beat,
			"/v1/agent/service/register", beat, e.MaintenanceOnPath,
			"/v1/agent/service/register", beat, e.MaintenanceOffPath,
			e.DeregisterPath}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: sent %q\nwant %q", c.Name, got, want)
		}
	}
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
