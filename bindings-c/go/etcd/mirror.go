package etcd

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"example.invalid/waypost"
	"example.invalid/waypost/internal/storehttp"
)

// Mirror keeps Registry equal to what etcd holds under Prefix, as the
// instances of source Source (SPEC §10). A goroutine asks the core what to
// send (SourceRequest), sends it and feeds the answer back (SourceFeed;
// every message of a watch stream on its own). The core keeps the
// revision: after a failure the mirror moves to the next endpoint and asks
// again, so the watch resumes from the last applied revision (or reads
// everything again when the core says resync, e.g. after a compaction).
//
// With CacheFile, the registry's snapshot is written there (a temporary
// file, then a rename) after changes, at most every CacheInterval, and on
// Close; RestoreCache gives it back, mirror state included.
type Mirror struct {
	Endpoints     []string
	Registry      *waypost.Registry
	Prefix        string               // default DefaultPrefix
	Source        string               // default "etcd"
	Timeout       time.Duration        // per request, until the headers (a gRPC range: the whole call); default 2 s
	CAFile        string               // PEM CA for https endpoints; default the system's CAs
	Now           func() time.Time     // default time.Now
	CacheFile     string               // "" for none
	CacheInterval time.Duration        // default 5 s
	OnError       func(error)          // called from the mirror's goroutine
	OnChange      func(waypost.Report) // a report the core marks Changed
	// GatewayRange reads the prefix through the JSON gateway, as the watch
	// always is; by default it is read over etcd's gRPC API (HTTP/2, one
	// connection per read), several times faster for a large prefix.
	GatewayRange bool

	etcd *endpoints
	loop storehttp.Loop
}

// Locker is held while the mirror touches the registry; take it to read
// several things at one revision.
func (m *Mirror) Locker() sync.Locker { return m.loop.Locker() }

// Synced is closed once the store was read.
func (m *Mirror) Synced() <-chan struct{} { return m.loop.Synced() }

// Err is the last failure, nil once a request succeeds again.
func (m *Mirror) Err() error { return m.loop.Err() }

// Status is "idle", "starting", "synced", "retrying" or "stopped".
func (m *Mirror) Status() string { return m.loop.Status() }

// Feeds counts the payloads handed to the core.
func (m *Mirror) Feeds() int { return m.loop.Feeds() }

// Endpoint is the client URL in use now.
func (m *Mirror) Endpoint() string { return m.etcd.cur() }

// Revision is the etcd revision applied (0 before the first read).
func (m *Mirror) Revision() int64 {
	req, err := m.loop.Request()
	if err != nil || !req.Stream {
		return 0
	}
	var body struct {
		CreateRequest struct {
			StartRevision string `json:"start_revision"`
		} `json:"create_request"`
	}
	_ = json.Unmarshal([]byte(req.Body), &body)
	rev, _ := strconv.ParseInt(body.CreateRequest.StartRevision, 10, 64)
	if rev == 0 {
		return 0
	}
	return rev - 1
}

func (m *Mirror) step(ctx context.Context) error {
	req, err := m.loop.Request()
	if err != nil {
		return err
	}
	if req.GRPC {
		return m.grpcStep(ctx, req)
	}
	a, err := m.etcd.do(ctx, req.Method, req.Path, req.Body, req.Stream)
	if err != nil {
		return err
	}
	if a.Stream != nil {
		broke := func(err error) error {
			return &Error{Endpoint: a.Endpoint, Path: "/v3/watch", Message: fmt.Sprintf("etcd %s: watch stream ended: %v", a.Endpoint, err)}
		}
		return m.loop.Watch(ctx, a.Stream, broke, false, true)
	}
	report, err := m.loop.Feed(a.Body, a.Status, "")
	if err != nil {
		return err
	}
	if a.Status != 200 {
		return &Error{Endpoint: a.Endpoint, Path: req.Path, Status: a.Status,
			Message: fmt.Sprintf("etcd %s: %s answered HTTP %d: %.300s", a.Endpoint, req.Path, a.Status, a.Body)}
	}
	if !report.Resync {
		m.loop.OK()
	}
	return nil
}

// grpcStep sends a gRPC request: every failure is the transport's (back
// off, next endpoint); the core reads the protobuf answer, framing included.
func (m *Mirror) grpcStep(ctx context.Context, req waypost.Request) error {
	msg, err := base64.StdEncoding.DecodeString(req.Body)
	if err != nil {
		return fmt.Errorf("etcd: the core's gRPC request body: %w", err)
	}
	data, err := m.etcd.grpc(ctx, req.Path, msg)
	if err != nil {
		return err
	}
	report, err := m.loop.Feed(data, 200, "")
	if err != nil {
		return err
	}
	if !report.Resync {
		m.loop.OK()
	}
	return nil
}

// Start declares the source (unless the registry has it, e.g. restored from
// the cache) and mirrors in a goroutine until ctx ends or Close is called.
// It does not wait for the first read: see Synced.
func (m *Mirror) Start(ctx context.Context) error {
	if m.loop.Started() {
		return errors.New("etcd: Mirror already started")
	}
	if m.Registry == nil {
		return errors.New("etcd: Mirror.Registry is nil")
	}
	if m.Prefix == "" {
		m.Prefix = DefaultPrefix
	}
	if m.Source == "" {
		m.Source = "etcd"
	}
	if m.CacheInterval <= 0 {
		m.CacheInterval = 5 * time.Second
	}
	e, err := newEndpoints(m.Endpoints, m.Timeout, m.CAFile)
	if err != nil {
		return err
	}
	m.etcd = e
	options := map[string]any{"kind": "etcd", "prefix": m.Prefix}
	if !m.GatewayRange {
		options["grpc"] = true
	}
	opts, _ := json.Marshal(options)
	// Field by field: a Synced channel taken before Start stays the one closed.
	l := &m.loop
	l.Registry, l.Source, l.Options, l.Now = m.Registry, m.Source, string(opts), m.Now
	l.OnError, l.OnChange, l.Step = m.OnError, m.OnChange, m.step
	l.What, l.Release, l.MaxBackoff = "etcd", e.close, 2*time.Second
	l.CacheFile, l.CacheInterval = m.CacheFile, m.CacheInterval
	return l.Start(ctx)
}

// Close stops mirroring and waits for its goroutines; the registry keeps
// what it holds. It writes the cache a last time and returns that write's
// failure, or the failure still standing (nil when the mirror was in sync).
// Safe to call twice.
func (m *Mirror) Close() error { return m.loop.Close() }

// RestoreCache is the registry a Mirror cached at path (mirror state
// included), or nil without error when there is no cache yet.
func RestoreCache(path string) (*waypost.Registry, error) { return storehttp.RestoreCache(path) }
