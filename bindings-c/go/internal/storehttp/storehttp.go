// Package storehttp is what the etcd, Consul and Kubernetes helpers share:
// one HTTP(S) server over net/http, a streamed answer, and the loop every
// mirror runs (ask the core, send, feed the answer, obey the report, back
// off on failures) with its status, error, Synced channel, failover cache
// and Close.
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
	"path/filepath"
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
	tlsConfig, err := TLSConfig(what, caFile)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 2, IdleConnTimeout: 30 * time.Second, TLSClientConfig: tlsConfig}
	return &Server{URL: u.Scheme + "://" + u.Host, What: what, Timeout: timeout, client: &http.Client{Transport: tr}}, nil
}

// TLSConfig trusts the CA certificates in caFile (PEM); nil (the
// system's CAs) when caFile is "".
func TLSConfig(what, caFile string) (*tls.Config, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot read CA file: %w", what, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: CA file %s holds no PEM certificate", what, caFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
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

// NewStream reads the messages of body; cancel ends its request.
func NewStream(body io.ReadCloser, cancel context.CancelFunc) *Stream {
	return &Stream{body: body, reader: bufio.NewReaderSize(body, 64<<10), cancel: cancel}
}

// Cancel ends the stream's request (a reader waiting in Next gets an error).
func (s *Stream) Cancel() { s.cancel() }

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
		return &Answer{Status: 200, Header: resp.Header, Stream: NewStream(resp.Body, cancel)}, nil
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

// Loop is the mirror loop every helper runs. Step is one round (send what
// the core asks, feed the answer); it calls Feed and OK, or Watch for a
// streamed answer.
//
// With CacheFile, the registry's snapshot is written there (a temporary
// file, then a rename) after changes, at most every CacheInterval, and on
// Close.
type Loop struct {
	Registry      *waypost.Registry
	Source        string // the source's name
	Options       string // source_add options, JSON
	Now           func() time.Time
	OnError       func(error)
	OnChange      func(waypost.Report)
	Step          func(ctx context.Context) error
	Server        *Server       // the server of a one-server mirror; nil when What and Release are given
	What          string        // the word errors start with; default Server.What
	Release       func()        // drops idle connections on Close; default Server.Close
	MaxBackoff    time.Duration // the longest pause after failures; default 5 s
	CacheFile     string        // "" for none
	CacheInterval time.Duration // default 5 s

	lock   sync.Mutex
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

// Started says whether Start ran.
func (l *Loop) Started() bool { return l.done != nil }

func (l *Loop) set(err error, status string) {
	l.mu.Lock()
	l.err, l.status = err, status
	l.mu.Unlock()
}

func (l *Loop) what() string {
	if l.What == "" && l.Server != nil {
		return l.Server.What
	}
	return l.What
}

// Request is what the core asks to send next.
func (l *Loop) Request() (waypost.Request, error) {
	l.lock.Lock()
	defer l.lock.Unlock()
	return l.Registry.SourceRequest(l.Source)
}

// Feed hands one answer to the core, as it came (no copy into a string).
func (l *Loop) Feed(body []byte, status int, index string) (waypost.Report, error) {
	now := time.Now()
	if l.Now != nil {
		now = l.Now()
	}
	l.lock.Lock()
	report, err := l.Registry.SourceFeedBytes(l.Source, body, now, status, index)
	l.lock.Unlock()
	changed := err == nil && report.Changed
	l.mu.Lock()
	l.feeds++
	if changed {
		l.dirty = true
	}
	l.mu.Unlock()
	if changed && l.OnChange != nil {
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

// Watch feeds each message of s to the core until the core says resync,
// the stream ends or ctx ends, then closes s. broke makes the error of a
// failed stream; with endOK the server ending the stream (io.EOF) is no
// error. With okOnResync a message that asks for a resync still marks the
// mirror in sync.
func (l *Loop) Watch(ctx context.Context, s *Stream, broke func(error) error, endOK, okOnResync bool) error {
	defer s.Close()
	for {
		line, err := s.Next()
		if ctx.Err() != nil || (endOK && errors.Is(err, io.EOF)) {
			return nil
		}
		if err != nil {
			return broke(err)
		}
		report, err := l.Feed(line, 200, "")
		if err != nil {
			return err
		}
		if okOnResync || !report.Resync {
			l.OK()
		}
		if report.Resync {
			return nil
		}
	}
}

func (l *Loop) run(ctx context.Context) {
	defer close(l.done)
	if l.CacheFile != "" {
		// Its own goroutine, so cache writes keep their pace while a watch
		// waits for the next change.
		cached := make(chan struct{})
		go l.cacheLoop(ctx, cached)
		defer func() { <-cached }()
	}
	maxBackoff := l.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = 5 * time.Second
	}
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
		if backoff *= 2; backoff > maxBackoff {
			backoff = maxBackoff
		}
	}
}

func (l *Loop) cacheLoop(ctx context.Context, done chan struct{}) {
	defer close(done)
	interval := l.CacheInterval
	if interval <= 0 {
		interval = 5 * time.Second
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		l.mu.Lock()
		dirty := l.dirty
		l.dirty = false
		l.mu.Unlock()
		if !dirty {
			continue
		}
		if err := l.writeCache(); err != nil {
			l.set(err, l.Status())
			if l.OnError != nil {
				l.OnError(err)
			}
		}
	}
}

func (l *Loop) writeCache() error {
	l.lock.Lock()
	text, err := l.Registry.Snapshot()
	l.lock.Unlock()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(l.CacheFile), ".waypost-cache-*")
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
		werr = os.Rename(tmp.Name(), l.CacheFile)
	}
	if werr != nil {
		os.Remove(tmp.Name())
	}
	return werr
}

// RestoreCache is the registry a Loop cached at path (mirror state
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

// Start declares the source (unless the registry has it, e.g. restored
// from the cache) and runs the loop in a goroutine until ctx ends or Close
// is called.
func (l *Loop) Start(ctx context.Context) error {
	if l.done != nil {
		return errors.New(l.what() + ": Mirror already started")
	}
	if l.Registry == nil {
		return errors.New(l.what() + ": Mirror.Registry is nil")
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

// Close stops the loop (aborting the call in flight) and waits for it.
// With a CacheFile it writes the cache a last time and returns that
// write's failure; otherwise the failure still standing (nil when the
// mirror was in sync). Safe to call twice.
func (l *Loop) Close() error {
	if l.done == nil {
		return nil
	}
	l.closeOnce.Do(func() {
		l.cancel()
		<-l.done
		if l.Release != nil {
			l.Release()
		} else if l.Server != nil {
			l.Server.Close()
		}
		err := l.Err()
		if l.CacheFile != "" {
			if werr := l.writeCache(); werr != nil {
				err = werr
			}
		}
		l.set(err, "stopped")
		l.closeErr = err
	})
	return l.closeErr
}
