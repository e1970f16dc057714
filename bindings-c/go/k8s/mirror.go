// Package k8s mirrors one Kubernetes service's EndpointSlices
// (discovery.k8s.io/v1) into a waypost Registry by list + watch over the API
// server's HTTP API, with net/http only.
//
// The core decides everything (the paths, merging the slices, when to list
// again: a 410 answer or an ERROR event in the stream); the mirror sends
// what SourceRequest names, feeds the list, then each line of the watch.
// Inside a pod everything has a default: the API server from
// KUBERNETES_SERVICE_HOST/PORT, and the token, CA and namespace from
// /var/run/secrets/kubernetes.io/serviceaccount (the token file is read
// again on every request: the kubelet rotates it). The service account
// needs list and watch on endpointslices.
package k8s

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"example.invalid/waypost"
	"example.invalid/waypost/internal/storehttp"
)

// ServiceAccountDir is where a pod finds its token, CA and namespace.
const ServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// Error is a failed call to the API server: Endpoint, Path, Status.
type Error = storehttp.Error

// InClusterAPIServer is https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT.
func InClusterAPIServer() (string, error) {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return "", errors.New("kubernetes: no APIServer given and KUBERNETES_SERVICE_HOST/PORT are not set (not running in a pod?)")
	}
	return "https://" + net.JoinHostPort(host, port), nil
}

func readFile(path, what string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("kubernetes: cannot read the %s: %w", what, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Mirror keeps Registry equal to the endpoints of Service in Namespace on
// the port named Port ("" = each slice's first), as the instances of
// source Source (SPEC §10).
type Mirror struct {
	APIServer         string // default InClusterAPIServer()
	Registry          *waypost.Registry
	Namespace         string // default: the service account's namespace file
	Service           string
	Port              string
	Token             string // default: the service account's token file, read on every request
	CAFile            string // default: the service account's ca.crt for https, when present
	Source            string // default "k8s"
	ServiceAccountDir string // default ServiceAccountDir
	Timeout           time.Duration
	Now               func() time.Time
	OnError           func(error)
	OnChange          func(waypost.Report)

	loop  storehttp.Loop
	mu    sync.Mutex
	lists int
}

// Start fills in the defaults, declares the source (unless the registry
// has it) and mirrors in a goroutine until ctx ends or Close; see Synced.
func (m *Mirror) Start(ctx context.Context) error {
	if m.Service == "" {
		return errors.New("kubernetes: Mirror.Service is empty")
	}
	dir := m.ServiceAccountDir
	if dir == "" {
		dir = ServiceAccountDir
	}
	base := m.APIServer
	if base == "" {
		b, err := InClusterAPIServer()
		if err != nil {
			return err
		}
		base = b
	}
	if m.Namespace == "" {
		ns, err := readFile(filepath.Join(dir, "namespace"), "namespace")
		if err != nil {
			return err
		}
		m.Namespace = ns
	}
	if m.Source == "" {
		m.Source = "k8s"
	}
	ca := m.CAFile
	if ca == "" && strings.HasPrefix(base, "https://") {
		if _, err := os.Stat(filepath.Join(dir, "ca.crt")); err == nil {
			ca = filepath.Join(dir, "ca.crt")
		}
	}
	s, err := storehttp.NewServer("kubernetes", base, "443", ca, m.Timeout)
	if err != nil {
		return err
	}
	token := m.Token
	tokenFile := filepath.Join(dir, "token")
	if _, err := os.Stat(tokenFile); token == "" && err == nil {
		s.Header = func() (http.Header, error) {
			t, err := readFile(tokenFile, "token")
			if err != nil {
				return nil, err
			}
			return http.Header{"Authorization": []string{"Bearer " + t}}, nil
		}
	} else if token != "" {
		h := http.Header{"Authorization": []string{"Bearer " + token}}
		s.Header = func() (http.Header, error) { return h, nil }
	}
	opts, _ := json.Marshal(map[string]string{"kind": "k8s", "namespace": m.Namespace, "service": m.Service, "port": m.Port})
	m.loop = storehttp.Loop{Registry: m.Registry, Source: m.Source, Options: string(opts), Now: m.Now,
		OnError: m.OnError, OnChange: m.OnChange, Step: m.step, Server: s}
	return m.loop.Start(ctx)
}

func (m *Mirror) step(ctx context.Context) error {
	req, err := m.loop.Request()
	if err != nil {
		return err
	}
	if !req.Stream {
		m.mu.Lock()
		m.lists++
		m.mu.Unlock()
	}
	a, err := m.loop.Server.Do(ctx, req.Method, req.Path, req.Body, req.Stream, 0)
	if err != nil {
		return err
	}
	if a.Stream == nil {
		report, err := m.loop.Feed(a.Body, a.Status, "")
		if err != nil {
			if a.Status == 200 {
				return err
			}
			return m.loop.Server.Fail(req.Path, a.Status, "%s answered HTTP %d: %.300s", req.Path, a.Status, a.Body)
		}
		if req.Stream && a.Status != 200 {
			return nil // 410 Gone: the core reset, the next request lists
		}
		if !report.Resync {
			m.loop.OK()
		}
		return nil
	}
	// The server ending the watch is no error: watch again from where it
	// stood; an ERROR event (410) in it makes the core list again.
	broke := func(err error) error { return m.loop.Server.Fail(req.Path, 0, "watch stream broke: %v", err) }
	return m.loop.Watch(ctx, a.Stream, broke, true, false)
}

// ResourceVersion is where the next watch starts ("" : the next request lists).
func (m *Mirror) ResourceVersion() string {
	req, err := m.loop.Request()
	if err != nil || !req.Stream {
		return ""
	}
	u, err := url.Parse(req.Path)
	if err != nil {
		return ""
	}
	return u.Query().Get("resourceVersion")
}

// Lists counts the lists sent (1 + relists).
func (m *Mirror) Lists() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lists
}

// Synced is closed once the slices were listed.
func (m *Mirror) Synced() <-chan struct{} { return m.loop.Synced() }

// Err is the last failure, nil once a request succeeds again.
func (m *Mirror) Err() error { return m.loop.Err() }

// Status is "idle", "starting", "synced", "retrying" or "stopped".
func (m *Mirror) Status() string { return m.loop.Status() }

// Feeds counts the payloads handed to the core.
func (m *Mirror) Feeds() int { return m.loop.Feeds() }

// Locker is held while the mirror touches the registry.
func (m *Mirror) Locker() sync.Locker { return m.loop.Locker() }

// Close stops mirroring (ending the watch) and waits for the goroutines;
// the registry keeps what it holds. Safe to call twice.
func (m *Mirror) Close() error { return m.loop.Close() }
