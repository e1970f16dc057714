package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"example.invalid/waypost"
	"example.invalid/waypost/internal/etcdtest"
)

var api1 = waypost.InstanceSpec{ID: "api-1", Service: "api", Address: "10.0.0.1", Port: 8080}

var prefixes atomic.Int64

// store is a fresh etcd for one test, killed by its cleanup.
func store(t *testing.T) *etcdtest.Server {
	t.Helper()
	return etcdtest.Start(t)
}

func freshPrefix() string { return fmt.Sprintf("/go-%d", prefixes.Add(1)) }

func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// noLeaks fails the test when goroutines started during it outlive it.
func noLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			t.Errorf("%d goroutines leaked:\n%s", n-before, buf[:runtime.Stack(buf, true)])
		}
	})
}

func TestRegistrarLeaseKeepAliveAndRevoke(t *testing.T) {
	etcd := store(t)
	noLeaks(t)
	prefix := freshPrefix()
	r := &Registrar{Endpoints: []string{etcd.Endpoint()}, Instance: api1, Prefix: prefix, TTL: time.Second}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r.GrantedTTL() != 2*time.Second {
		t.Fatalf("granted %v, want 2s (etcd's minimum)", r.GrantedTTL())
	}
	if r.Key() != prefix+"/api/api-1" {
		t.Fatal(r.Key())
	}
	kv, _ := etcd.Client().GetPrefix(prefix)
	var got waypost.InstanceSpec
	if err := json.Unmarshal([]byte(kv[r.Key()]), &got); err != nil || !reflect.DeepEqual(got, api1) {
		t.Fatalf("value %q: %v", kv[r.Key()], err)
	}
	time.Sleep(3 * time.Second) // past the TTL: only the keep-alives hold the key
	if kv, _ := etcd.Client().GetPrefix(prefix); kv[r.Key()] == "" {
		t.Fatal("key expired although kept alive")
	}
	if r.Err() != nil || r.Status() != "registered" || r.Registrations() != 1 {
		t.Fatal(r.Err(), r.Status(), r.Registrations())
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if kv, _ := etcd.Client().GetPrefix(prefix); len(kv) != 0 {
		t.Fatalf("still there after close: %v", kv)
	}
	if r.Status() != "stopped" || r.Close() != nil {
		t.Fatal("close twice")
	}
}

func TestRegistrarNoticesALostLeaseAndADeletedKey(t *testing.T) {
	etcd := store(t)
	noLeaks(t)
	prefix := freshPrefix()
	r := NewRegistrar([]string{etcd.Endpoint()}, api1)
	r.Prefix, r.TTL = prefix, 3*time.Second
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	first := r.LeaseID()
	if err := etcd.Client().Delete(r.Key()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "key put back", func() bool { kv, _ := etcd.Client().GetPrefix(prefix); return kv[r.Key()] != "" })
	if r.LeaseID() != first || r.Registrations() != 1 {
		t.Fatal("a deleted key should go back on the same lease")
	}
	var out struct{}
	if err := etcd.Client().Call("/v3/lease/revoke", map[string]string{"ID": first}, &out); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "registered again", func() bool { return r.Registrations() == 2 })
	if r.LeaseID() == first {
		t.Fatal("same lease")
	}
	eventually(t, time.Second, "key back", func() bool { kv, _ := etcd.Client().GetPrefix(prefix); return kv[r.Key()] != "" })
}

func TestRegistrarFailover(t *testing.T) {
	etcd := store(t)
	noLeaks(t)
	dead := fmt.Sprintf("http://127.0.0.1:%d", etcdtest.FreePort(t))
	r := &Registrar{Endpoints: []string{dead, etcd.Endpoint()}, Instance: api1, Prefix: freshPrefix(), TTL: 2 * time.Second}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r.Endpoint() != etcd.Endpoint() {
		t.Fatal(r.Endpoint())
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	lonely := &Registrar{Endpoints: []string{dead}, Instance: api1}
	err := lonely.Start(context.Background())
	var ee *Error
	if !errors.As(err, &ee) || !strings.Contains(err.Error(), dead) || ee.Path != "/v3/lease/grant" {
		t.Fatalf("want an error naming %s: %v", dead, err)
	}
	for _, bad := range []*Registrar{
		{Endpoints: []string{etcd.Endpoint()}, Instance: waypost.InstanceSpec{Service: "api"}},
		{Endpoints: nil, Instance: api1},
		{Endpoints: []string{"ftp://x:1"}, Instance: api1},
		{Endpoints: []string{etcd.Endpoint()}, Instance: api1, TTL: -time.Second},
	} {
		if bad.Start(context.Background()) == nil {
			t.Fatalf("%+v started", bad)
		}
	}
}

func TestRegistrarSurvivesAnEtcdCrashAndStopsWithItsContext(t *testing.T) {
	etcd := store(t)
	noLeaks(t)
	prefix := freshPrefix()
	var seen atomic.Int32
	r := &Registrar{Endpoints: []string{etcd.Endpoint()}, Instance: api1, Prefix: prefix, TTL: 2 * time.Second,
		OnError: func(error) { seen.Add(1) }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- r.Run(ctx) }()
	eventually(t, 5*time.Second, "registered", func() bool { return r.Status() == "registered" })
	lease := r.LeaseID()
	etcd.Kill()
	eventually(t, 3*time.Second, "error visible", func() bool { return r.Err() != nil })
	if r.Status() != "retrying" || seen.Load() == 0 || !strings.Contains(r.Err().Error(), etcd.Endpoint()) {
		t.Fatal(r.Status(), r.Err())
	}
	etcd.Start()
	eventually(t, 5*time.Second, "healthy again", func() bool { return r.Err() == nil })
	if r.LeaseID() != lease {
		t.Fatal("etcd extends live leases across a restart: the same lease should be kept")
	}
	cancel()
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
	if kv, _ := etcd.Client().GetPrefix(prefix); len(kv) != 0 {
		t.Fatalf("still there: %v", kv)
	}
}

func TestRegistrarUpdateIsWrittenUnderTheLeaseAndOutlivesALostLease(t *testing.T) {
	etcd := store(t)
	noLeaks(t)
	prefix := freshPrefix()
	r := &Registrar{Endpoints: []string{etcd.Endpoint()}, Instance: api1, Prefix: prefix, TTL: 3 * time.Second}
	if err := r.Update(context.Background(), api1, "maintenance"); err == nil {
		t.Fatal("Update before Start should fail")
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	status := func() string {
		kv, _ := etcd.Client().GetPrefix(prefix)
		var v struct {
			ID     string
			Status string
		}
		if json.Unmarshal([]byte(kv[r.Key()]), &v) != nil || v.ID != api1.ID {
			return "absent"
		}
		return v.Status
	}
	lease := r.LeaseID()
	drained := api1
	drained.Weight = 3
	if err := r.Update(context.Background(), drained, "maintenance"); err != nil {
		t.Fatal(err)
	}
	if status() != "maintenance" || r.LeaseID() != lease || r.Registrations() != 1 {
		t.Fatal(status(), r.LeaseID(), lease, r.Registrations())
	}
	// The lease is revoked from outside: the registration that follows
	// writes the updated value, not the instance given at Start.
	var out struct{}
	if err := etcd.Client().Call("/v3/lease/revoke", map[string]string{"ID": lease}, &out); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "registered again", func() bool { return r.Registrations() == 2 && status() != "absent" })
	if status() != "maintenance" || r.LeaseID() == lease || !strings.Contains(r.Value(), `"weight":3`) {
		t.Fatal(status(), r.Value())
	}
	// An update while the lease is gone registers again at once.
	if err := etcd.Client().Call("/v3/lease/revoke", map[string]string{"ID": r.LeaseID()}, &out); err != nil {
		t.Fatal(err)
	}
	if err := r.Update(context.Background(), api1, ""); err != nil {
		t.Fatal(err)
	}
	if status() != "" || r.Registrations() != 3 {
		t.Fatal(status(), r.Registrations())
	}
	other := api1
	other.ID = "api-2"
	for _, bad := range []error{r.Update(context.Background(), other, ""), r.Update(context.Background(), api1, "sleepy")} {
		if bad == nil {
			t.Fatal("Update should refuse another key and an unknown status")
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Update(context.Background(), api1, "maintenance"); err != nil || status() != "absent" {
		t.Fatal("after Close an update is only kept", err, status())
	}
}
