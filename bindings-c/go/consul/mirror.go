// Package consul mirrors one Consul service into a waypost Registry through
// blocking queries on the health endpoint (Mirror), and keeps an instance
// registered with the local agent (Registrar), over Consul's HTTP API with
// net/http only.
//
// The core decides everything a mirror does (the path, the index rules, the
// mapping); the mirror sends what SourceRequest names and hands each answer
// back with its X-Consul-Index. Consul asks clients to rate-limit this loop
// (an answer is not proof of change; an index going backwards makes the
// next query return at once): two queries start at least MinInterval
// apart. Background failures are visible (Err, Status, OnError, the error
// Close returns).
package consul

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"example.invalid/waypost"
	"example.invalid/waypost/internal/storehttp"
)

// DefaultAddress is the agent used when neither Address nor CONSUL_HTTP_ADDR is set.
const DefaultAddress = "http://127.0.0.1:8500"

// blockingRead is how long a blocking query may take: the core asks for
// wait=5m and Consul adds up to wait/16 of jitter.
const blockingRead = 5*time.Minute + 5*time.Minute/16 + 30*time.Second

// Error is a failed call to Consul: Endpoint, Path, Status.
type Error = storehttp.Error

func newServer(address, token, caFile string, timeout time.Duration) (*storehttp.Server, error) {
	if address == "" {
		address = os.Getenv("CONSUL_HTTP_ADDR")
	}
	if address == "" {
		address = DefaultAddress
	}
	if token == "" {
		token = os.Getenv("CONSUL_HTTP_TOKEN")
	}
	s, err := storehttp.NewServer("consul", address, "8500", caFile, timeout)
	if err != nil {
		return nil, err
	}
	if token != "" {
		h := http.Header{"X-Consul-Token": []string{token}}
		s.Header = func() (http.Header, error) { return h, nil }
	}
	return s, nil
}

// Mirror keeps Registry equal to what Consul's health endpoint says about
// Service, as the instances of source Source (SPEC §10).
type Mirror struct {
	Address     string // agent HTTP address; default CONSUL_HTTP_ADDR, else DefaultAddress
	Registry    *waypost.Registry
	Service     string
	Source      string        // default "consul"; several mirrors in one registry need different names
	Token       string        // ACL token (X-Consul-Token); default CONSUL_HTTP_TOKEN
	CAFile      string        // PEM CA for an https address
	Timeout     time.Duration // a non-blocking request; default 5 s
	MinInterval time.Duration // between two query starts; default 1 s, negative for none
	Now         func() time.Time
	OnError     func(error)
	OnChange    func(waypost.Report)

	loop      storehttp.Loop
	lastStart time.Time
}

// Start declares the source (unless the registry has it) and mirrors in a
// goroutine until ctx ends or Close is called; see Synced.
func (m *Mirror) Start(ctx context.Context) error {
	if m.Service == "" {
		return &Error{Message: "consul: Mirror.Service is empty"}
	}
	if m.Source == "" {
		m.Source = "consul"
	}
	if m.MinInterval == 0 {
		m.MinInterval = time.Second
	}
	s, err := newServer(m.Address, m.Token, m.CAFile, m.Timeout)
	if err != nil {
		return err
	}
	opts, _ := json.Marshal(map[string]string{"kind": "consul", "service": m.Service})
	m.loop = storehttp.Loop{Registry: m.Registry, Source: m.Source, Options: string(opts), Now: m.Now,
		OnError: m.OnError, OnChange: m.OnChange, Step: m.step, Server: s}
	return m.loop.Start(ctx)
}

func (m *Mirror) step(ctx context.Context) error {
	if !m.lastStart.IsZero() && !storehttp.Sleep(ctx, time.Until(m.lastStart.Add(m.MinInterval))) {
		return nil
	}
	m.lastStart = time.Now()
	req, err := m.loop.Request()
	if err != nil {
		return err
	}
	timeout := time.Duration(0)
	if u, perr := url.Parse(req.Path); perr == nil && u.Query().Get("index") != "" {
		timeout = blockingRead
	}
	a, err := m.loop.Server.Do(ctx, req.Method, req.Path, req.Body, false, timeout)
	if err != nil {
		return err
	}
	if _, err := m.loop.Feed(a.Body, a.Status, a.Header.Get("X-Consul-Index")); err != nil {
		if a.Status == 200 {
			return err
		}
		return m.loop.Server.Fail(req.Path, a.Status, "%s answered HTTP %d: %.300s", req.Path, a.Status, a.Body)
	}
	m.loop.OK()
	return nil
}

// Index is the X-Consul-Index the next query waits on (0: none).
func (m *Mirror) Index() uint64 {
	req, err := m.loop.Request()
	if err != nil {
		return 0
	}
	u, err := url.Parse(req.Path)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(u.Query().Get("index"), 10, 64)
	return n
}

// Synced is closed once the service was read.
func (m *Mirror) Synced() <-chan struct{} { return m.loop.Synced() }

// Err is the last failure, nil once a query succeeds again.
func (m *Mirror) Err() error { return m.loop.Err() }

// Status is "idle", "starting", "synced", "retrying" or "stopped".
func (m *Mirror) Status() string { return m.loop.Status() }

// Feeds counts the answers handed to the core.
func (m *Mirror) Feeds() int { return m.loop.Feeds() }

// Locker is held while the mirror touches the registry.
func (m *Mirror) Locker() sync.Locker { return m.loop.Locker() }

// Close stops mirroring (aborting the query in flight) and waits for the
// goroutines; the registry keeps what it holds. Safe to call twice.
func (m *Mirror) Close() error { return m.loop.Close() }
