package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"example.invalid/waypost"
	"example.invalid/waypost/internal/etcdtest"
)

func inst(i int) waypost.InstanceSpec {
	return waypost.InstanceSpec{ID: fmt.Sprintf("api-%d", i), Service: "api", Address: fmt.Sprintf("10.0.0.%d", i), Port: 8080}
}

func instJSON(i int, extra string) string {
	b, _ := json.Marshal(inst(i))
	if extra != "" {
		return strings.TrimSuffix(string(b), "}") + "," + extra + "}"
	}
	return string(b)
}

func newReg(t *testing.T) *waypost.Registry {
	t.Helper()
	cfg := waypost.DefaultConfig()
	cfg.RandomSeed, cfg.Seed = false, 7
	reg, err := waypost.NewRegistry(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	return reg
}

func ids(reg *waypost.Registry) []string {
	d, err := reg.Discover("api", &waypost.DiscoverOptions{All: true}, time.Time{})
	if err != nil {
		return []string{}
	}
	out := []string{}
	for _, i := range d.Instances {
		out = append(out, i.ID)
	}
	return out
}

func idsAre(reg *waypost.Registry, want ...string) func() bool {
	return func() bool { return reflect.DeepEqual(ids(reg), append([]string{}, want...)) }
}

func registeredCounts(t *testing.T, reg *waypost.Registry) map[string]int {
	events, err := reg.EventsSince(0)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, e := range events {
		if e.Type == "registered" {
			counts[e.ID]++
		}
	}
	return counts
}

func storeIDs(t *testing.T, s *etcdtest.Server, prefix string) []string {
	kv, err := s.Client().GetPrefix(prefix + "/api/")
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, v := range kv {
		var w struct{ ID string }
		_ = json.Unmarshal([]byte(v), &w)
		out = append(out, w.ID)
	}
	sort.Strings(out)
	return out
}

func waitSynced(t *testing.T, m *Mirror) {
	t.Helper()
	select {
	case <-m.Synced():
	case <-time.After(5 * time.Second):
		t.Fatalf("not synced: %v", m.Err())
	}
}

func TestMirrorFollowsPutsDeletesAndStatus(t *testing.T) {
	etcd := store(t)
	noLeaks(t)
	prefix := freshPrefix()
	if _, err := etcd.Client().Put(prefix+"/api/api-1", instJSON(1, ""), ""); err != nil {
		t.Fatal(err)
	}
	reg := newReg(t)
	m := &Mirror{Endpoints: []string{etcd.Endpoint()}, Registry: reg, Prefix: prefix}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitSynced(t, m)
	if got := ids(reg); !reflect.DeepEqual(got, []string{"api-1"}) {
		t.Fatal(got)
	}
	if st, _ := reg.Get("api-1", time.Time{}); st.Source != "etcd" {
		t.Fatalf("source %q", st.Source)
	}
	etcd.Client().Put(prefix+"/api/api-2", instJSON(2, `"status":"warning"`), "")
	eventually(t, 3*time.Second, "put seen", idsAre(reg, "api-1", "api-2"))
	if st, _ := reg.Get("api-2", time.Time{}); st.Health != waypost.Degraded || st.SourceStatus != "warning" {
		t.Fatalf("%+v", st)
	}
	etcd.Client().Delete(prefix + "/api/api-1")
	rev, _ := etcd.Client().Revision()
	eventually(t, 3*time.Second, "delete seen", idsAre(reg, "api-2"))
	if m.Revision() != rev {
		t.Fatalf("revision %d, want %d", m.Revision(), rev)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if m.Status() != "stopped" || !reflect.DeepEqual(ids(reg), []string{"api-2"}) {
		t.Fatal(m.Status(), ids(reg))
	}
}

// TestMain runs the registrant child when asked to (the SIGKILL test).
func TestMain(m *testing.M) {
	if ep := os.Getenv("WAYPOST_TEST_REGISTRANT"); ep != "" {
		r := &Registrar{Endpoints: []string{ep}, Instance: inst(9), Prefix: os.Getenv("WAYPOST_TEST_PREFIX"), TTL: 2 * time.Second}
		if err := r.Start(context.Background()); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println(int(r.GrantedTTL() / time.Second))
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestSigkilledRegistrantLeavesWithinTTLPlus1sCleanStopAtOnce(t *testing.T) {
	etcd := store(t)
	prefix := freshPrefix()
	reg := newReg(t)
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), "WAYPOST_TEST_REGISTRANT="+etcd.Endpoint(), "WAYPOST_TEST_PREFIX="+prefix)
	out, _ := child.StdoutPipe()
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	var granted int
	if _, err := fmt.Fscan(out, &granted); err != nil {
		t.Fatal(err)
	}
	m := &Mirror{Endpoints: []string{etcd.Endpoint()}, Registry: reg, Prefix: prefix}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	mine := &Registrar{Endpoints: []string{etcd.Endpoint()}, Instance: inst(1), Prefix: prefix, TTL: 2 * time.Second}
	if err := mine.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer mine.Close()
	eventually(t, 3*time.Second, "both registered", idsAre(reg, "api-1", "api-9"))
	time.Sleep(2500 * time.Millisecond)
	if !idsAre(reg, "api-1", "api-9")() {
		t.Fatal(ids(reg))
	}
	child.Process.Kill()
	start := time.Now()
	eventually(t, time.Duration(granted+1)*time.Second, "the killed registrant gone", idsAre(reg, "api-1"))
	t.Logf("SIGKILLed registrant gone after %v (granted TTL %ds)", time.Since(start), granted)
	for i := 0; i < 10; i++ {
		if p, err := reg.Pick("api", waypost.RoundRobin, nil, time.Time{}); err != nil || p.Instance.ID != "api-1" {
			t.Fatal(p, err)
		}
	}
	mine.Close()
	start = time.Now()
	eventually(t, time.Second, "a clean stop removes at once", idsAre(reg))
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("clean stop took %v", d)
	}
}

func TestEtcdKilledAndRestartedNothingLostOrRepeated(t *testing.T) {
	etcd := store(t)
	noLeaks(t)
	prefix := freshPrefix()
	reg := newReg(t)
	etcd.Client().Put(prefix+"/api/api-1", instJSON(1, ""), "")
	m := &Mirror{Endpoints: []string{etcd.Endpoint()}, Registry: reg, Prefix: prefix}
	r := &Registrar{Endpoints: []string{etcd.Endpoint()}, Instance: inst(2), Prefix: prefix, TTL: 3 * time.Second}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "synced", idsAre(reg, "api-1", "api-2"))
	lease := r.LeaseID()
	etcd.Kill()
	eventually(t, 5*time.Second, "the mirror notices", func() bool { return m.Err() != nil })
	etcd.Start()
	etcd.Client().Put(prefix+"/api/api-3", instJSON(3, ""), "")
	etcd.Client().Delete(prefix + "/api/api-1")
	eventually(t, 10*time.Second, "resumed", idsAre(reg, "api-2", "api-3"))
	eventually(t, 10*time.Second, "both healthy", func() bool { return m.Err() == nil && r.Err() == nil })
	if r.LeaseID() != lease {
		t.Fatal("the registrar should re-attach to its lease")
	}
	if got := storeIDs(t, etcd, prefix); !reflect.DeepEqual(ids(reg), got) {
		t.Fatal(ids(reg), got)
	}
	if c := registeredCounts(t, reg); !reflect.DeepEqual(c, map[string]int{"api-1": 1, "api-2": 1, "api-3": 1}) {
		t.Fatal(c)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCompactionWhileDisconnectedResyncs(t *testing.T) {
	etcd := store(t)
	noLeaks(t)
	prefix := freshPrefix()
	reg := newReg(t)
	for i := 1; i <= 3; i++ {
		etcd.Client().Put(fmt.Sprintf("%s/api/api-%d", prefix, i), instJSON(i, ""), "")
	}
	first := &Mirror{Endpoints: []string{etcd.Endpoint()}, Registry: reg, Prefix: prefix}
	first.Start(context.Background())
	waitSynced(t, first)
	seen := first.Revision()
	first.Close()
	etcd.Client().Delete(prefix + "/api/api-2")
	etcd.Client().Put(prefix+"/api/api-4", instJSON(4, ""), "")
	etcd.Client().Put(prefix+"/api/api-3", instJSON(3, `"weight":5`), "")
	rev, _ := etcd.Client().Revision()
	if err := etcd.Client().Compact(rev); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	resynced := false
	again := &Mirror{Endpoints: []string{etcd.Endpoint()}, Registry: reg, Prefix: prefix,
		OnChange: func(r waypost.Report) { mu.Lock(); resynced = resynced || r.Resync; mu.Unlock() }}
	again.Start(context.Background())
	eventually(t, 5*time.Second, "resynced", idsAre(reg, "api-1", "api-3", "api-4"))
	if again.Revision() <= seen {
		t.Fatal("revision did not move")
	}
	again.Close()
	mu.Lock()
	defer mu.Unlock()
	if !resynced {
		t.Fatal("no report said resync")
	}
	if st, _ := reg.Get("api-3", time.Time{}); st.Weight != 5 {
		t.Fatal(st.Weight)
	}
}

func TestClusterLeaderKilledCarryOn(t *testing.T) {
	c := etcdtest.StartCluster(t, 3)
	noLeaks(t)
	prefix := freshPrefix()
	reg := newReg(t)
	eps := c.Endpoints()
	m := &Mirror{Endpoints: eps, Registry: reg, Prefix: prefix}
	r := &Registrar{Endpoints: []string{eps[2], eps[1], eps[0]}, Instance: inst(1), Prefix: prefix, TTL: 3 * time.Second}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "registered", idsAre(reg, "api-1"))
	c.WaitLeader(15 * time.Second).Kill()
	alive := c.WaitLeader(15 * time.Second)
	alive.Client().Put(prefix+"/api/api-2", instJSON(2, ""), "")
	eventually(t, 10*time.Second, "the mirror carries on", idsAre(reg, "api-1", "api-2"))
	time.Sleep(3500 * time.Millisecond)
	if got := storeIDs(t, alive, prefix); !reflect.DeepEqual(got, []string{"api-1", "api-2"}) {
		t.Fatal(got)
	}
	if r.Err() != nil || !idsAre(reg, "api-1", "api-2")() {
		t.Fatal(r.Err(), ids(reg))
	}
	r.Close()
	m.Close()
}

func TestFailoverCache(t *testing.T) {
	etcd := store(t)
	noLeaks(t)
	prefix := freshPrefix()
	dir := t.TempDir()
	cache := filepath.Join(dir, "fleet.json")
	for i := 1; i <= 2; i++ {
		etcd.Client().Put(fmt.Sprintf("%s/api/api-%d", prefix, i), instJSON(i, ""), "")
	}
	reg := newReg(t)
	m := &Mirror{Endpoints: []string{etcd.Endpoint()}, Registry: reg, Prefix: prefix, CacheFile: cache, CacheInterval: 200 * time.Millisecond}
	m.Start(context.Background())
	waitSynced(t, m)
	etcd.Client().Put(prefix+"/api/api-3", instJSON(3, ""), "")
	eventually(t, 3*time.Second, "followed", idsAre(reg, "api-1", "api-2", "api-3"))
	eventually(t, 3*time.Second, "cached", func() bool { b, _ := os.ReadFile(cache); return strings.Contains(string(b), "api-3") })
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("a temporary file was left: %v", entries)
	}
	etcd.Stop()
	restored, err := RestoreCache(cache)
	if err != nil || restored == nil {
		t.Fatal(err)
	}
	defer restored.Close()
	if !idsAre(restored, "api-1", "api-2", "api-3")() {
		t.Fatal(ids(restored))
	}
	again := &Mirror{Endpoints: []string{etcd.Endpoint()}, Registry: restored, Prefix: prefix, CacheFile: cache}
	again.Start(context.Background())
	time.Sleep(500 * time.Millisecond)
	var ee *Error
	if !errors.As(again.Err(), &ee) {
		t.Fatalf("want the unreachable store as the error, got %v", again.Err())
	}
	if p, err := restored.Pick("api", waypost.RoundRobin, nil, time.Time{}); err != nil || p.Instance.Service != "api" {
		t.Fatal(p, err)
	}
	etcd.Start()
	etcd.Client().Delete(prefix + "/api/api-1")
	eventually(t, 10*time.Second, "reconciled", idsAre(restored, "api-2", "api-3"))
	if c := registeredCounts(t, restored); !reflect.DeepEqual(c, map[string]int{"api-1": 1, "api-2": 1, "api-3": 1}) {
		t.Fatal(c)
	}
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}
	if r, err := RestoreCache(filepath.Join(dir, "none.json")); r != nil || err != nil {
		t.Fatal(r, err)
	}
}

func TestMirrorStopsWithItsContext(t *testing.T) {
	noLeaks(t)
	reg := newReg(t)
	ctx, cancel := context.WithCancel(context.Background())
	m := &Mirror{Endpoints: []string{"http://127.0.0.1:1"}, Registry: reg}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "the unreachable store is visible", func() bool { return m.Err() != nil })
	cancel()
	eventually(t, 2*time.Second, "stopped", func() bool { return m.Status() == "stopped" })
	if err := m.Close(); err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("Close should return the standing error, got %v", err)
	}
	if (&Mirror{Endpoints: []string{"http://127.0.0.1:1"}}).Start(ctx) == nil {
		t.Fatal("a mirror without a registry started")
	}
}
