package etcd

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"example.invalid/waypost/internal/storehttp"
)

// Error is a failed call to etcd: Endpoint names the member (or members)
// asked, Path the gateway call, Status the HTTP status when one answered.
type Error struct {
	Endpoint string
	Path     string
	Status   int
	Message  string
}

func (e *Error) Error() string { return e.Message }

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// prefixEnd is the range_end of a prefix read: the prefix with its last byte + 1.
func prefixEnd(prefix string) (string, error) {
	b := []byte(prefix)
	if len(b) == 0 || b[len(b)-1] == 0xff {
		return "", fmt.Errorf("prefix %q cannot end a range", prefix)
	}
	b[len(b)-1]++
	return base64.StdEncoding.EncodeToString(b), nil
}

// endpoints are client URLs tried in turn: a call goes to the current one
// and moves to the next when it cannot connect, times out or answers 5xx.
type endpoints struct {
	urls    []string
	timeout time.Duration
	client  *http.Client
	tls     *tls.Config // nil: the system's CAs

	mu      sync.Mutex
	current int
}

func newEndpoints(list []string, timeout time.Duration, caFile string) (*endpoints, error) {
	if len(list) == 0 {
		return nil, errors.New("etcd: Endpoints: give at least one etcd client URL")
	}
	e := &endpoints{timeout: timeout}
	if e.timeout <= 0 {
		e.timeout = 2 * time.Second
	}
	for _, raw := range list {
		s := raw
		if !strings.Contains(s, "://") {
			s = "http://" + s
		}
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("etcd: endpoint %q: expected http://host:port or https://host:port", raw)
		}
		e.urls = append(e.urls, u.Scheme+"://"+u.Host)
	}
	// An own transport, so closing it leaves no idle connection (nor goroutine) behind.
	tlsConfig, err := storehttp.TLSConfig("etcd", caFile)
	if err != nil {
		return nil, err
	}
	e.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2, IdleConnTimeout: 30 * time.Second, TLSClientConfig: tlsConfig}}
	e.tls = tlsConfig
	return e, nil
}

func (e *endpoints) cur() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.urls[e.current]
}

func (e *endpoints) close() { e.client.CloseIdleConnections() }

// order is the members to try, the current one first.
func (e *endpoints) order() []int {
	e.mu.Lock()
	start := e.current
	e.mu.Unlock()
	out := make([]int, len(e.urls))
	for k := range out {
		out[k] = (start + k) % len(e.urls)
	}
	return out
}

// settle makes member i the current one: it answered.
func (e *endpoints) settle(i int) {
	e.mu.Lock()
	e.current = i
	e.mu.Unlock()
}

// answer is a reply: Body for a unary call, Stream for a 200 streamed one.
type answer struct {
	Status   int
	Body     []byte
	Stream   *storehttp.Stream
	Endpoint string
}

// do sends one request to the first member that answers below 500. The
// timeout covers a whole unary call, or a stream until its headers.
func (e *endpoints) do(ctx context.Context, method, path, body string, streamed bool) (*answer, error) {
	var failures []string
	for _, i := range e.order() {
		u := e.urls[i]
		var rctx context.Context
		var cancel context.CancelFunc
		var timer *time.Timer
		if streamed {
			rctx, cancel = context.WithCancel(ctx)
			timer = time.AfterFunc(e.timeout, cancel)
		} else {
			rctx, cancel = context.WithTimeout(ctx, e.timeout)
		}
		req, err := http.NewRequestWithContext(rctx, method, u+path, strings.NewReader(body))
		if err != nil {
			cancel()
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := e.client.Do(req)
		if timer != nil && !timer.Stop() && err == nil {
			err = context.DeadlineExceeded
			resp.Body.Close()
		}
		if err != nil {
			cancel()
			if ctx.Err() != nil {
				return nil, &Error{Endpoint: u, Path: path, Message: fmt.Sprintf("etcd %s: %s: %v", u, path, ctx.Err())}
			}
			failures = append(failures, fmt.Sprintf("%s: %v", u, unwrapURLError(err)))
			continue
		}
		if resp.StatusCode >= 500 {
			detail, _ := io.ReadAll(io.LimitReader(resp.Body, 500))
			resp.Body.Close()
			cancel()
			failures = append(failures, fmt.Sprintf("%s: HTTP %d %s", u, resp.StatusCode, strings.TrimSpace(string(detail))))
			continue
		}
		e.settle(i)
		if streamed && resp.StatusCode == 200 {
			return &answer{Status: 200, Endpoint: u, Stream: storehttp.NewStream(resp.Body, cancel)}, nil
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		if err != nil {
			failures = append(failures, fmt.Sprintf("%s: %v", u, err))
			continue
		}
		return &answer{Status: resp.StatusCode, Body: data, Endpoint: u}, nil
	}
	return nil, &Error{Endpoint: strings.Join(e.urls, ", "), Path: path,
		Message: fmt.Sprintf("etcd unreachable (%s %s): %s", method, path, strings.Join(failures, "; "))}
}

// grpc makes one gRPC unary call (grpcUnary), each on a new connection,
// to the first member that answers it: the answer's message, framed. The
// timeout bounds each member's whole call.
func (e *endpoints) grpc(ctx context.Context, path string, msg []byte) ([]byte, error) {
	var failures []string
	for _, i := range e.order() {
		u := e.urls[i]
		cctx, cancel := context.WithTimeout(ctx, e.timeout)
		data, err := grpcUnary(cctx, u, e.tls, path, msg)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil, &Error{Endpoint: u, Path: path, Message: fmt.Sprintf("etcd %s: %s: %v", u, path, ctx.Err())}
			}
			failures = append(failures, err.Error())
			continue
		}
		e.settle(i)
		return data, nil
	}
	return nil, &Error{Endpoint: strings.Join(e.urls, ", "), Path: path,
		Message: fmt.Sprintf("etcd unreachable (gRPC %s): %s", path, strings.Join(failures, "; "))}
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// call is a unary gateway call that must succeed, decoded into out.
func (e *endpoints) call(ctx context.Context, path string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	a, err := e.do(ctx, "POST", path, string(b), false)
	if err != nil {
		return err
	}
	if a.Status != 200 {
		return &Error{Endpoint: a.Endpoint, Path: path, Status: a.Status,
			Message: fmt.Sprintf("etcd %s: %s answered HTTP %d: %.500s", a.Endpoint, path, a.Status, a.Body)}
	}
	if err := json.Unmarshal(a.Body, out); err != nil {
		return &Error{Endpoint: a.Endpoint, Path: path, Status: a.Status,
			Message: fmt.Sprintf("etcd %s: %s answered invalid JSON: %v", a.Endpoint, path, err)}
	}
	return nil
}

// firstMessage is the first message of a streamed call (a lease keep-alive); the stream is then closed.
func (e *endpoints) firstMessage(ctx context.Context, path string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	a, err := e.do(ctx, "POST", path, string(b), true)
	if err != nil {
		return err
	}
	if a.Stream == nil {
		return &Error{Endpoint: a.Endpoint, Path: path, Status: a.Status,
			Message: fmt.Sprintf("etcd %s: %s answered HTTP %d: %.500s", a.Endpoint, path, a.Status, a.Body)}
	}
	defer a.Stream.Close()
	timer := time.AfterFunc(e.timeout, a.Stream.Cancel)
	defer timer.Stop()
	line, err := a.Stream.Next()
	if err != nil {
		return &Error{Endpoint: a.Endpoint, Path: path, Message: fmt.Sprintf("etcd %s: %s: %v", a.Endpoint, path, err)}
	}
	if err := json.Unmarshal(line, out); err != nil {
		return &Error{Endpoint: a.Endpoint, Path: path, Message: fmt.Sprintf("etcd %s: %s answered %.200q", a.Endpoint, path, line)}
	}
	return nil
}
