package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"example.invalid/waypost"
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
	Timeout       time.Duration        // per request, until the headers; default 2 s
	Now           func() time.Time     // default time.Now
	CacheFile     string               // "" for none
	CacheInterval time.Duration        // default 5 s
	OnError       func(error)          // called from the mirror's goroutine
	OnChange      func(waypost.Report) // a report that changed something

	lock   sync.Mutex
	etcd   *endpoints
	synced chan struct{}
	once   sync.Once

	mu     sync.Mutex
	err    error
	status string
	feeds  int
	dirty  bool

	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Locker is held while the mirror touches the registry; take it to read
// several things at one revision.
func (m *Mirror) Locker() sync.Locker { return &m.lock }

// Synced is closed once the store was read.
func (m *Mirror) Synced() <-chan struct{} {
	m.once.Do(func() { m.synced = make(chan struct{}) })
	return m.synced
}

// Err is the last failure, nil once a request succeeds again.
func (m *Mirror) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// Status is "idle", "starting", "synced", "retrying" or "stopped".
func (m *Mirror) Status() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.status == "" {
		return "idle"
	}
	return m.status
}

// Feeds counts the payloads handed to the core.
func (m *Mirror) Feeds() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.feeds
}

// Endpoint is the client URL in use now.
func (m *Mirror) Endpoint() string { return m.etcd.cur() }

// Revision is the etcd revision applied (0 before the first read).
func (m *Mirror) Revision() int64 {
	m.lock.Lock()
	req, err := m.Registry.SourceRequest(m.Source)
	m.lock.Unlock()
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

func (m *Mirror) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *Mirror) set(err error, status string) {
	m.mu.Lock()
	m.err, m.status = err, status
	m.mu.Unlock()
}

func (m *Mirror) feed(body string, status int) (waypost.Report, error) {
	m.lock.Lock()
	report, err := m.Registry.SourceFeed(m.Source, body, m.now(), status, "")
	m.lock.Unlock()
	m.mu.Lock()
	m.feeds++
	changed := err == nil && (report.Added+report.Updated+report.Removed > 0 || report.Resync)
	if changed {
		m.dirty = true
	}
	m.mu.Unlock()
	if changed && m.OnChange != nil {
		m.OnChange(report)
	}
	return report, err
}

func (m *Mirror) ok() {
	m.set(nil, "synced")
	m.Synced()
	select {
	case <-m.synced:
	default:
		close(m.synced)
	}
}

func (m *Mirror) watch(ctx context.Context, s *stream, endpoint string) error {
	defer s.Close()
	for {
		line, err := s.Next()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return &Error{Endpoint: endpoint, Path: "/v3/watch", Message: fmt.Sprintf("etcd %s: watch stream ended: %v", endpoint, err)}
		}
		report, err := m.feed(string(line), 200)
		if err != nil {
			return err
		}
		m.ok()
		if report.Resync {
			return nil
		}
	}
}

func (m *Mirror) step(ctx context.Context) error {
	m.lock.Lock()
	req, err := m.Registry.SourceRequest(m.Source)
	m.lock.Unlock()
	if err != nil {
		return err
	}
	a, err := m.etcd.do(ctx, req.Method, req.Path, req.Body, req.Stream)
	if err != nil {
		return err
	}
	if a.Stream != nil {
		return m.watch(ctx, a.Stream, a.Endpoint)
	}
	report, err := m.feed(string(a.Body), a.Status)
	if err != nil {
		return err
	}
	if a.Status != 200 {
		return &Error{Endpoint: a.Endpoint, Path: req.Path, Status: a.Status,
			Message: fmt.Sprintf("etcd %s: %s answered HTTP %d: %.300s", a.Endpoint, req.Path, a.Status, a.Body)}
	}
	if !report.Resync {
		m.ok()
	}
	return nil
}

func (m *Mirror) run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	cache := time.NewTicker(m.CacheInterval)
	defer cache.Stop()
	if m.CacheFile == "" {
		cache.Stop()
	}
	errs := make(chan error, 1)
	steps := make(chan struct{}, 1)
	// The loop runs in its own goroutine so cache writes keep their pace
	// while a watch waits for the next change.
	go func() {
		defer close(steps)
		for ctx.Err() == nil {
			if err := m.step(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				m.set(err, "retrying")
				if m.OnError != nil {
					m.OnError(err)
				}
				select {
				case errs <- err:
				default:
				}
				t := time.NewTimer(backoff)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
				if backoff *= 2; backoff > 2*time.Second {
					backoff = 2 * time.Second
				}
			} else {
				backoff = 100 * time.Millisecond
			}
		}
	}()
	for {
		select {
		case <-steps:
			return
		case <-cache.C:
			m.mu.Lock()
			dirty := m.dirty
			m.dirty = false
			m.mu.Unlock()
			if dirty {
				if err := m.writeCache(); err != nil {
					m.set(err, m.Status())
					if m.OnError != nil {
						m.OnError(err)
					}
				}
			}
		case <-errs:
		}
	}
}

func (m *Mirror) writeCache() error {
	m.lock.Lock()
	text, err := m.Registry.Snapshot()
	m.lock.Unlock()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(m.CacheFile), ".waypost-cache-*")
	if err != nil {
		return err
	}
	_, werr := tmp.WriteString(text)
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), m.CacheFile)
	}
	if werr != nil {
		os.Remove(tmp.Name())
	}
	return werr
}

// Start declares the source (unless the registry has it, e.g. restored from
// the cache) and mirrors in a goroutine until ctx ends or Close is called.
// It does not wait for the first read: see Synced.
func (m *Mirror) Start(ctx context.Context) error {
	if m.done != nil {
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
	e, err := newEndpoints(m.Endpoints, m.Timeout)
	if err != nil {
		return err
	}
	m.etcd = e
	m.lock.Lock()
	if _, err := m.Registry.SourceRequest(m.Source); err != nil {
		opts, _ := json.Marshal(map[string]string{"kind": "etcd", "prefix": m.Prefix})
		err = m.Registry.SourceAdd(m.Source, string(opts))
		if err != nil {
			m.lock.Unlock()
			return err
		}
	}
	m.lock.Unlock()
	m.Synced()
	m.set(nil, "starting")
	bg, cancel := context.WithCancel(context.Background())
	m.cancel, m.done = cancel, make(chan struct{})
	go func() {
		defer close(m.done)
		m.run(bg)
	}()
	go func(done chan struct{}) {
		select {
		case <-ctx.Done():
			m.Close()
		case <-done:
		}
	}(m.done)
	return nil
}

// Close stops mirroring and waits for its goroutines; the registry keeps
// what it holds. It writes the cache a last time and returns that write's
// failure, or the failure still standing (nil when the mirror was in sync).
// Safe to call twice.
func (m *Mirror) Close() error {
	if m.done == nil {
		return nil
	}
	m.closeOnce.Do(func() {
		m.cancel()
		<-m.done
		m.etcd.close()
		err := m.Err()
		if m.CacheFile != "" {
			if werr := m.writeCache(); werr != nil {
				err = werr
			}
		}
		m.set(err, "stopped")
		m.closeErr = err
	})
	return m.closeErr
}

// RestoreCache is the registry a Mirror cached at path (mirror state
// included), or nil without error when there is no cache yet.
func RestoreCache(path string) (*waypost.Registry, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return waypost.Restore(string(b))
}
