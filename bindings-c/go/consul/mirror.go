// Package consul mirrors one Consul service into a waypost Registry over
// Consul's blocking health queries, with net/http only. The core names each
// query (/v1/health/service/<name>?index=N&wait=5m) and reads each answer
// with its X-Consul-Index; the loop keeps a minimum pace between queries,
// as Consul's documentation asks (an answer is not proof of a change).
package consul

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"example.invalid/waypost"
)

// Error is a failed call to Consul: Endpoint names the agent(s) asked.
type Error struct {
	Endpoint string
	Path     string
	Status   int
	Message  string
}

func (e *Error) Error() string { return e.Message }

// Mirror keeps Registry equal to Consul's health answer for Service, as the
// instances of source Source (default "consul"). Several agent URLs may be
// given: a failing one is left for the next.
type Mirror struct {
	Endpoints   []string
	Registry    *waypost.Registry
	Service     string
	Source      string               // default "consul"
	WaitTimeout time.Duration        // the longest a blocking query may take; default 6 min
	MinInterval time.Duration        // the least time between two queries; default 100 ms
	Now         func() time.Time     // default time.Now
	OnError     func(error)          // called from the mirror's goroutine
	OnChange    func(waypost.Report) // a report that changed something

	urls    []string
	current int
	client  *http.Client
	lock    sync.Mutex
	synced  chan struct{}
	once    sync.Once
	mu      sync.Mutex
	err     error
	status  string
	cancel  context.CancelFunc
	done    chan struct{}
	closing sync.Once
	closed  error
}

// Locker is held while the mirror touches the registry.
func (m *Mirror) Locker() sync.Locker { return &m.lock }

// Synced is closed once Consul answered.
func (m *Mirror) Synced() <-chan struct{} {
	m.once.Do(func() { m.synced = make(chan struct{}) })
	return m.synced
}

// Err is the last failure, nil once a query succeeds again.
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

func (m *Mirror) set(err error, status string) {
	m.mu.Lock()
	m.err, m.status = err, status
	m.mu.Unlock()
}

// query sends one request to the first agent that answers below 500.
func (m *Mirror) query(ctx context.Context, req waypost.Request) (status int, body []byte, index string, err error) {
	failures := []string{}
	for k := range m.urls {
		i := (m.current + k) % len(m.urls)
		u := m.urls[i]
		rctx, cancel := context.WithTimeout(ctx, m.WaitTimeout)
		hreq, err := http.NewRequestWithContext(rctx, req.Method, u+req.Path, strings.NewReader(req.Body))
		if err != nil {
			cancel()
			return 0, nil, "", err
		}
		resp, err := m.client.Do(hreq)
		if err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		cancel()
		if ctx.Err() != nil {
			return 0, nil, "", ctx.Err()
		}
		if err != nil {
			failures = append(failures, fmt.Sprintf("%s: %v", u, err))
			continue
		}
		if resp.StatusCode >= 500 {
			failures = append(failures, fmt.Sprintf("%s: HTTP %d %.200s", u, resp.StatusCode, body))
			continue
		}
		m.current = i
		return resp.StatusCode, body, resp.Header.Get("X-Consul-Index"), nil
	}
	return 0, nil, "", &Error{Endpoint: strings.Join(m.urls, ", "), Path: req.Path,
		Message: fmt.Sprintf("consul unreachable (%s %s): %s", req.Method, req.Path, strings.Join(failures, "; "))}
}

func (m *Mirror) step(ctx context.Context) error {
	m.lock.Lock()
	req, err := m.Registry.SourceRequest(m.Source)
	m.lock.Unlock()
	if err != nil {
		return err
	}
	status, body, index, err := m.query(ctx, req)
	if err != nil {
		return err
	}
	now := time.Now()
	if m.Now != nil {
		now = m.Now()
	}
	m.lock.Lock()
	report, err := m.Registry.SourceFeed(m.Source, string(body), now, status, index)
	m.lock.Unlock()
	if err != nil {
		return err
	}
	if status != 200 {
		return &Error{Endpoint: m.urls[m.current], Path: req.Path, Status: status,
			Message: fmt.Sprintf("consul %s: %s answered HTTP %d: %.300s", m.urls[m.current], req.Path, status, body)}
	}
	if report.Added+report.Updated+report.Removed > 0 || report.Resync {
		if m.OnChange != nil {
			m.OnChange(report)
		}
	}
	m.set(nil, "synced")
	m.Synced()
	select {
	case <-m.synced:
	default:
		close(m.synced)
	}
	return nil
}

func (m *Mirror) run(ctx context.Context) {
	defer close(m.done)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		started := time.Now()
		wait := m.MinInterval - time.Since(started)
		if err := m.step(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			m.set(err, "retrying")
			if m.OnError != nil {
				m.OnError(err)
			}
			wait = backoff
			if backoff *= 2; backoff > 2*time.Second {
				backoff = 2 * time.Second
			}
		} else {
			backoff = 100 * time.Millisecond
			wait = m.MinInterval - time.Since(started)
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}

// Start declares the source (unless the registry has it) and mirrors in a
// goroutine until ctx ends or Close is called.
func (m *Mirror) Start(ctx context.Context) error {
	if m.done != nil {
		return errors.New("consul: Mirror already started")
	}
	if m.Registry == nil || m.Service == "" {
		return errors.New("consul: Mirror needs Registry and Service")
	}
	if len(m.Endpoints) == 0 {
		return errors.New("consul: Endpoints: give at least one agent URL")
	}
	for _, raw := range m.Endpoints {
		s := raw
		if !strings.Contains(s, "://") {
			s = "http://" + s
		}
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("consul: endpoint %q: expected http://host:port", raw)
		}
		m.urls = append(m.urls, u.Scheme+"://"+u.Host)
	}
	if m.Source == "" {
		m.Source = "consul"
	}
	if m.WaitTimeout <= 0 {
		m.WaitTimeout = 6 * time.Minute
	}
	if m.MinInterval <= 0 {
		m.MinInterval = 100 * time.Millisecond
	}
	m.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2, IdleConnTimeout: 30 * time.Second}}
	m.lock.Lock()
	if _, err := m.Registry.SourceRequest(m.Source); err != nil {
		opts, _ := json.Marshal(map[string]string{"kind": "consul", "service": m.Service})
		if err := m.Registry.SourceAdd(m.Source, string(opts)); err != nil {
			m.lock.Unlock()
			return err
		}
	}
	m.lock.Unlock()
	m.Synced()
	m.set(nil, "starting")
	bg, cancel := context.WithCancel(context.Background())
	m.cancel, m.done = cancel, make(chan struct{})
	go m.run(bg)
	go func(done chan struct{}) {
		select {
		case <-ctx.Done():
			m.Close()
		case <-done:
		}
	}(m.done)
	return nil
}

// Close stops mirroring (a query in flight ends at once) and waits for the
// goroutine; it returns the failure still standing. Safe to call twice.
func (m *Mirror) Close() error {
	if m.done == nil {
		return nil
	}
	m.closing.Do(func() {
		m.cancel()
		<-m.done
		m.client.CloseIdleConnections()
		m.closed = m.Err()
		m.set(m.closed, "stopped")
	})
	return m.closed
}
