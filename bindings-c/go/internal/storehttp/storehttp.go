// Package storehttp is what the Consul and Kubernetes helpers share: one
// HTTP(S) server over net/http, and the loop a mirror runs (ask the core,
// send, feed the answer, obey the report, back off on failures) with its
// status, error, Synced channel and Close.
package storehttp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"example.invalid/waypost"
)

// Error is a failed call: Endpoint names the server, Path the call, Status
// the HTTP status when it answered.
type Error struct {
	Endpoint string
	Path     string
	Status   int
	Message  string
}

func (e *Error) Error() string { return e.Message }

// Server is one server: base URL, headers added to every call (a function,
// so a rotated token is read again), its own transport.
type Server struct {
	URL     string
	What    string // "consul", "kubernetes": the word errors start with
	Header  func() (http.Header, error)
	Timeout time.Duration
	client  *http.Client
}

// NewServer parses base (http://host:port, https://…, or a bare host:port
// taken as http) and reads caFile (PEM) for https when given.
func NewServer(what, base string, defaultPort string, caFile string, timeout time.Duration) (*Server, error) {
	s := base
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%s: address %q: expected http://host:port or https://host:port", what, base)
	}
	if u.Port() == "" {
		u.Host += ":" + defaultPort
	}
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 2, IdleConnTimeout: 30 * time.Second, ResponseHeaderTimeout: 0}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("%s: cannot read CA file: %w", what, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: CA file %s holds no PEM certificate", what, caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &Server{URL: u.Scheme + "://" + u.Host, What: what, Timeout: timeout, client: &http.Client{Transport: tr}}, nil
}

// Close drops idle connections (no goroutine is left behind).
func (s *Server) Close() { s.client.CloseIdleConnections() }

// Answer is a reply: Body for a unary call, Stream for a 200 streamed one.
type Answer struct {
	Status int
	Header http.Header
	Body   []byte
	Stream *Stream
}

// Stream is an open streamed answer; Next gives one message per line.
type Stream struct {
	body   io.ReadCloser
	reader *bufio.Reader
	cancel context.CancelFunc
}

// Next is the next non-empty line (io.EOF when the server ended the stream).
func (s *Stream) Next() ([]byte, error) {
	for {
		line, err := s.reader.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			return line, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// Close ends the stream and its connection.
func (s *Stream) Close() {
	s.cancel()
	s.body.Close()
}

// Fail is an *Error naming the server.
func (s *Server) Fail(path string, status int, format string, args ...any) *Error {
	return &Error{Endpoint: s.URL, Path: path, Status: status, Message: fmt.Sprintf("%s %s: ", s.What, s.URL) + fmt.Sprintf(format, args...)}
}

// Do sends one call. timeout covers a whole unary call (0: the server's),
// or a streamed one until its headers.
func (s *Server) Do(ctx context.Context, method, path, body string, streamed bool, timeout time.Duration) (*Answer, error) {
	if timeout <= 0 {
		timeout = s.Timeout
	}
	rctx, cancel := context.WithCancel(ctx)
	timer := time.AfterFunc(timeout, cancel)
	req, err := http.NewRequestWithContext(rctx, method, s.URL+path, strings.NewReader(body))
	if err != nil {
		timer.Stop()
		cancel()
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if s.Header != nil {
		h, err := s.Header()
		if err != nil {
			timer.Stop()
			cancel()
			return nil, err
		}
		for k, v := range h {
			req.Header[k] = v
		}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		timer.Stop()
		cancel()
		if ctx.Err() != nil {
			return nil, s.Fail(path, 0, "%s %s: closed", method, path)
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, s.Fail(path, 0, "%s %s: %v", method, path, err)
	}
	if streamed && resp.StatusCode == 200 {
		if !timer.Stop() {
			resp.Body.Close()
			cancel()
			return nil, s.Fail(path, 0, "%s %s: timed out", method, path)
		}
		return &Answer{Status: 200, Header: resp.Header, Stream: &Stream{body: resp.Body, reader: bufio.NewReaderSize(resp.Body, 64<<10), cancel: cancel}}, nil
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	timer.Stop()
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil, s.Fail(path, 0, "%s %s: closed", method, path)
		}
		return nil, s.Fail(path, resp.StatusCode, "%s %s: %v", method, path, err)
	}
	return &Answer{Status: resp.StatusCode, Header: resp.Header, Body: data}, nil
}

// Loop is the mirror loop both helpers run. Step is one round (send what
// the core asks, feed the answer); it calls Feed and OK.
type Loop struct {
	Registry *waypost.Registry
	Source   string
	Options  string // source_add options, JSON
	Now      func() time.Time
	OnError  func(error)
	OnChange func(waypost.Report)
	Step     func(ctx context.Context) error
	Server   *Server

	lock   sync.Mutex
	synced chan struct{}
	once   sync.Once

	mu     sync.Mutex
	err    error
	status string
	feeds  int

	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Locker is held while the mirror touches the registry.
func (l *Loop) Locker() sync.Locker { return &l.lock }

// Synced is closed once the store was read.
func (l *Loop) Synced() <-chan struct{} {
	l.once.Do(func() { l.synced = make(chan struct{}) })
	return l.synced
}

// Err is the last failure, nil once a request succeeds again.
func (l *Loop) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Status is "idle", "starting", "synced", "retrying" or "stopped".
func (l *Loop) Status() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.status == "" {
		return "idle"
	}
	return l.status
}

// Feeds counts the payloads handed to the core.
func (l *Loop) Feeds() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.feeds
}

func (l *Loop) set(err error, status string) {
	l.mu.Lock()
	l.err, l.status = err, status
	l.mu.Unlock()
}

// Request is what the core asks to send next.
func (l *Loop) Request() (waypost.Request, error) {
	l.lock.Lock()
	defer l.lock.Unlock()
	return l.Registry.SourceRequest(l.Source)
}

// Feed hands one answer to the core.
func (l *Loop) Feed(body string, status int, index string) (waypost.Report, error) {
	now := time.Now()
	if l.Now != nil {
		now = l.Now()
	}
	l.lock.Lock()
	report, err := l.Registry.SourceFeed(l.Source, body, now, status, index)
	l.lock.Unlock()
	l.mu.Lock()
	l.feeds++
	l.mu.Unlock()
	if err == nil && (report.Added+report.Updated+report.Removed > 0 || report.Resync) && l.OnChange != nil {
		l.OnChange(report)
	}
	return report, err
}

// OK marks the mirror in sync.
func (l *Loop) OK() {
	l.set(nil, "synced")
	l.Synced()
	select {
	case <-l.synced:
	default:
		close(l.synced)
	}
}

func (l *Loop) run(ctx context.Context) {
	defer close(l.done)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := l.Step(ctx)
		if err == nil {
			backoff = 100 * time.Millisecond
			continue
		}
		if ctx.Err() != nil {
			return
		}
		l.set(err, "retrying")
		if l.OnError != nil {
			l.OnError(err)
		}
		if !Sleep(ctx, backoff) {
			return
		}
		if backoff *= 2; backoff > 5*time.Second {
			backoff = 5 * time.Second
		}
	}
}

// Sleep waits d or until ctx ends (false).
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Start declares the source (unless the registry has it) and runs the loop
// in a goroutine until ctx ends or Close is called.
func (l *Loop) Start(ctx context.Context) error {
	if l.done != nil {
		return errors.New(l.Server.What + ": mirror already started")
	}
	if l.Registry == nil {
		return errors.New(l.Server.What + ": Mirror.Registry is nil")
	}
	l.lock.Lock()
	if _, err := l.Registry.SourceRequest(l.Source); err != nil {
		if err := l.Registry.SourceAdd(l.Source, l.Options); err != nil {
			l.lock.Unlock()
			return err
		}
	}
	l.lock.Unlock()
	l.Synced()
	l.set(nil, "starting")
	bg, cancel := context.WithCancel(context.Background())
	l.cancel, l.done = cancel, make(chan struct{})
	go l.run(bg)
	go func(done chan struct{}) {
		select {
		case <-ctx.Done():
			l.Close()
		case <-done:
		}
	}(l.done)
	return nil
}

// Close stops the loop (aborting the call in flight) and waits for it. It
// returns the failure still standing (nil when the mirror was in sync).
// Safe to call twice.
func (l *Loop) Close() error {
	if l.done == nil {
		return nil
	}
	l.closeOnce.Do(func() {
		l.cancel()
		<-l.done
		l.Server.Close()
		err := l.Err()
		l.set(err, "stopped")
		l.closeErr = err
	})
	return l.closeErr
}
