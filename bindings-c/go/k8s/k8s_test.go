package k8s

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"example.invalid/waypost"
	"example.invalid/waypost/internal/storetest"
)

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

func view(reg *waypost.Registry, lock interface {
	Lock()
	Unlock()
}) map[string]string {
	lock.Lock()
	defer lock.Unlock()
	out := map[string]string{}
	d, err := reg.Discover("api", &waypost.DiscoverOptions{All: true}, time.Now())
	if err != nil {
		return out
	}
	for i, in := range d.Instances {
		out[in.ID] = fmt.Sprintf("%s %s:%d %s", d.Health[i], in.Address, in.Port, in.Zone)
	}
	return out
}

type noLock struct{}

func (noLock) Lock()   {}
func (noLock) Unlock() {}

func sliceOf(name, ip, pod string, ready bool) map[string]any {
	return map[string]any{
		"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1", "addressType": "IPv4",
		"metadata": map[string]any{"name": name, "namespace": "shop", "labels": map[string]string{"kubernetes.io/service-name": "api"}},
		"endpoints": []any{map[string]any{"addresses": []string{ip}, "conditions": map[string]bool{"ready": ready}, "zone": "z1",
			"targetRef": map[string]string{"kind": "Pod", "namespace": "shop", "name": pod}}},
		"ports": []any{map[string]any{"name": "http", "port": 8080, "protocol": "TCP"}},
	}
}

func TestMirrorListsWatchesBookmarksAndRelistsOn410(t *testing.T) {
	s := storetest.Start(t, "s3cret")
	storetest.NoLeaks(t)
	list, err := os.ReadFile(filepath.Join(storetest.Root(), "tests", "fixtures", "k8s", "endpointslice-list.json"))
	if err != nil {
		t.Fatal(err)
	}
	var parsed any
	if err := json.Unmarshal(list, &parsed); err != nil {
		t.Fatal(err)
	}
	s.Call(t, "POST", "/_test/k8s/load", map[string]any{"namespace": "shop", "list": parsed}, nil)
	direct := registry(t)
	if err := direct.SourceAdd("k8s", `{"kind":"k8s","namespace":"shop","service":"api","port":"http"}`); err != nil {
		t.Fatal(err)
	}
	if _, err := direct.SourceFeed("k8s", string(list), time.Now(), 200, ""); err != nil {
		t.Fatal(err)
	}
	reg := registry(t)
	resyncs := make(chan struct{}, 10)
	m := &Mirror{APIServer: s.URL, Registry: reg, Namespace: "shop", Service: "api", Port: "http", Token: "s3cret",
		OnChange: func(r waypost.Report) {
			if r.Resync {
				resyncs <- struct{}{}
			}
		}}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	<-m.Synced()
	v := func() map[string]string { return view(reg, m.Locker()) }
	if got, want := fmt.Sprint(v()), fmt.Sprint(view(direct, noLock{})); got != want || len(v()) == 0 {
		t.Fatalf("mirror %s, fed by hand %s", got, want)
	}
	watching := func() {
		storetest.Eventually(t, 3*time.Second, "watching", func() bool { return s.Stats(t).Watches == 1 })
	}
	watching()
	s.Call(t, "POST", "/_test/k8s/put", map[string]any{"slice": sliceOf("api-new", "10.9.0.1", "api-new-pod", true)}, nil)
	storetest.Eventually(t, 5*time.Second, "ADDED", func() bool { return v()["api-new-pod"] == "healthy 10.9.0.1:8080 z1" })
	s.Call(t, "POST", "/_test/k8s/put", map[string]any{"slice": sliceOf("api-new", "10.9.0.1", "api-new-pod", false)}, nil)
	storetest.Eventually(t, 5*time.Second, "MODIFIED", func() bool { return strings.HasPrefix(v()["api-new-pod"], "unhealthy") })
	s.Call(t, "POST", "/_test/k8s/delete", map[string]string{"namespace": "shop", "name": "api-new"}, nil)
	storetest.Eventually(t, 5*time.Second, "DELETED", func() bool { _, ok := v()["api-new-pod"]; return !ok })

	// A bookmark moves the resume point: compacted history behind it costs no relist.
	var rv struct {
		RV int `json:"k8s_resource_version"`
	}
	s.Call(t, "POST", "/_test/k8s/bookmark", nil, &rv)
	storetest.Eventually(t, 5*time.Second, "bookmark taken", func() bool { return m.ResourceVersion() == fmt.Sprint(rv.RV) })
	s.Call(t, "POST", "/_test/k8s/compact", nil, nil)
	s.Call(t, "POST", "/_test/k8s/drop", nil, nil)
	storetest.Eventually(t, 5*time.Second, "watching again", func() bool { return s.Stats(t).Requests["k8s_watch"] >= 2 })
	if m.Lists() != 1 || s.Stats(t).Requests["k8s_watch_410"] != 0 {
		t.Fatalf("lists %d, 410s %d", m.Lists(), s.Stats(t).Requests["k8s_watch_410"])
	}

	// In-stream ERROR 410: list again.
	watching()
	s.Call(t, "POST", "/_test/k8s/expire", nil, nil)
	storetest.Eventually(t, 5*time.Second, "relisted after ERROR", func() bool { return m.Lists() == 2 })
	<-resyncs

	// HTTP 410 on the re-watch: list again.
	watching()
	s.Call(t, "POST", "/_test/k8s/compact", map[string]int{"bump": 3}, nil)
	s.Call(t, "POST", "/_test/k8s/drop", nil, nil)
	storetest.Eventually(t, 5*time.Second, "relisted after HTTP 410", func() bool { return m.Lists() == 3 })
	s.Call(t, "POST", "/_test/k8s/put", map[string]any{"slice": sliceOf("api-z", "10.9.0.9", "pod-z", true)}, nil)
	storetest.Eventually(t, 5*time.Second, "followed after the relists", func() bool { _, ok := v()["pod-z"]; return ok })
	if m.Err() != nil {
		t.Fatal(m.Err())
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	storetest.Eventually(t, 3*time.Second, "connections closed", func() bool { return s.Stats(t).Open == 0 })
}

func TestServiceAccountDefaultsAndErrors(t *testing.T) {
	s := storetest.Start(t, "s3cret")
	storetest.NoLeaks(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "token"), []byte("s3cret\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "namespace"), []byte("shop"), 0o600)
	s.Call(t, "POST", "/_test/k8s/put", map[string]any{"slice": sliceOf("api-a", "10.0.0.1", "pod-a", true)}, nil)
	reg := registry(t)
	ctx, cancel := context.WithCancel(context.Background())
	m := &Mirror{APIServer: s.URL, Registry: reg, Service: "api", Port: "http", ServiceAccountDir: dir}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	<-m.Synced()
	if m.Namespace != "shop" || fmt.Sprint(view(reg, m.Locker())) != "map[pod-a:healthy 10.0.0.1:8080 z1]" {
		t.Fatalf("namespace %q, %v", m.Namespace, view(reg, m.Locker()))
	}
	cancel()
	storetest.Eventually(t, 2*time.Second, "stopped by the context", func() bool { return m.Status() == "stopped" })

	seen := make(chan error, 10)
	bad := &Mirror{APIServer: s.URL, Registry: registry(t), Namespace: "shop", Service: "api", Token: "nope", OnError: func(e error) { seen <- e }}
	if err := bad.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-seen
	var ke *Error
	if !errors.As(bad.Err(), &ke) || ke.Status != 401 {
		t.Fatalf("a refused token: %v", bad.Err())
	}
	if err := bad.Close(); err == nil {
		t.Fatal("Close returns the standing failure")
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if err := (&Mirror{Registry: registry(t), Namespace: "shop", Service: "api"}).Start(context.Background()); err == nil || !strings.Contains(err.Error(), "KUBERNETES_SERVICE_HOST") {
		t.Fatalf("no cluster: %v", err)
	}
	if err := (&Mirror{APIServer: s.URL, Registry: registry(t), Service: "api", ServiceAccountDir: filepath.Join(dir, "missing")}).Start(context.Background()); err == nil || !strings.Contains(err.Error(), "namespace") {
		t.Fatalf("no namespace: %v", err)
	}
	if err := (&Mirror{APIServer: "https://127.0.0.1:1", Registry: registry(t), Namespace: "shop", Service: "api", CAFile: filepath.Join(dir, "nope.crt")}).Start(context.Background()); err == nil || !strings.Contains(err.Error(), "CA file") {
		t.Fatalf("a bad CA path: %v", err)
	}
}
