package consul

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"example.invalid/waypost"
)

// fake answers /v1/health/service/<name> as Consul documents it, blocking
// while the index asked for is current.
type fake struct {
	mu      sync.Mutex
	cond    *sync.Cond
	index   int
	checks  map[string]string // id → check status
	queries int
	maxWait time.Duration
}

func newFake() *fake {
	f := &fake{index: 10, checks: map[string]string{}, maxWait: 300 * time.Millisecond}
	f.cond = sync.NewCond(&f.mu)
	return f
}

func (f *fake) change(fn func(map[string]string)) {
	f.mu.Lock()
	fn(f.checks)
	f.index++
	f.mu.Unlock()
	f.cond.Broadcast()
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	want, _ := strconv.Atoi(r.URL.Query().Get("index"))
	deadline := time.Now().Add(f.maxWait)
	f.mu.Lock()
	f.queries++
	for want != 0 && f.index <= want && time.Now().Before(deadline) && r.Context().Err() == nil {
		f.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
		f.mu.Lock()
	}
	out := []any{}
	for id, status := range f.checks {
		out = append(out, map[string]any{
			"Node":    map[string]any{"Node": "node-1", "Address": "10.9.0.1"},
			"Service": map[string]any{"ID": id, "Service": "redis", "Address": "10.0.0.1", "Port": 6379, "Tags": []string{}, "Meta": map[string]string{}, "Weights": map[string]int{"Passing": 1, "Warning": 1}},
			"Checks":  []any{map[string]any{"CheckID": "service:" + id, "Status": status, "ServiceID": id}},
		})
	}
	index := f.index
	f.mu.Unlock()
	w.Header().Set("X-Consul-Index", strconv.Itoa(index))
	json.NewEncoder(w).Encode(out)
}

func view(reg *waypost.Registry) map[string]string {
	out := map[string]string{}
	d, err := reg.Discover("redis", &waypost.DiscoverOptions{All: true}, time.Time{})
	if err != nil {
		return out
	}
	for i, inst := range d.Instances {
		out[inst.ID] = d.Health[i].String()
	}
	return out
}

func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConsulMirrorFollowsKeepsItsPaceAndCloses(t *testing.T) {
	goroutines := runtime.NumGoroutine()
	f := newFake()
	srv := httptest.NewServer(f)
	cfg := waypost.DefaultConfig()
	cfg.RandomSeed, cfg.Seed, cfg.SelfPreservationThreshold = false, 1, 0
	reg, err := waypost.NewRegistry(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	f.change(func(c map[string]string) { c["redis-1"] = "passing" })
	m := &Mirror{Endpoints: []string{"http://127.0.0.1:1", srv.URL}, Registry: reg, Service: "redis"}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-m.Synced()
	if got := view(reg); !reflect.DeepEqual(got, map[string]string{"redis-1": "healthy"}) {
		t.Fatal(got)
	}
	f.change(func(c map[string]string) { c["redis-2"] = "critical" })
	eventually(t, 3*time.Second, "a new critical instance", func() bool { return view(reg)["redis-2"] == "unhealthy" })
	f.mu.Lock()
	before := f.queries
	f.mu.Unlock()
	time.Sleep(time.Second)
	f.mu.Lock()
	n := f.queries - before
	f.mu.Unlock()
	if n > 6 {
		t.Fatalf("%d queries in 1 s without a change", n)
	}
	f.mu.Lock()
	f.index, f.maxWait = 2, 30*time.Second // the index goes backwards; then long waits
	f.mu.Unlock()
	f.change(func(c map[string]string) { delete(c, "redis-2") })
	eventually(t, 3*time.Second, "after the index went backwards", func() bool { return reflect.DeepEqual(view(reg), map[string]string{"redis-1": "healthy"}) })
	time.Sleep(200 * time.Millisecond) // now inside a 30 s blocking query
	start := time.Now()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("close took %v", d)
	}
	srv.Close()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > goroutines && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if runtime.NumGoroutine() > goroutines {
		t.Fatalf("%d goroutines leaked", runtime.NumGoroutine()-goroutines)
	}
}

func TestConsulMirrorUnreachableIsANamedError(t *testing.T) {
	reg, _ := waypost.NewRegistry(waypost.DefaultConfig())
	defer reg.Close()
	m := &Mirror{Endpoints: []string{"http://127.0.0.1:1"}, Registry: reg, Service: "redis"}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "error visible", func() bool { return m.Err() != nil })
	var ce *Error
	if err := m.Close(); !errors.As(err, &ce) || ce.Endpoint != "http://127.0.0.1:1" {
		t.Fatalf("want a consul error naming the agent, got %v", err)
	}
	if (&Mirror{Endpoints: []string{"x"}}).Start(context.Background()) == nil {
		t.Fatal("started without a registry")
	}
}
