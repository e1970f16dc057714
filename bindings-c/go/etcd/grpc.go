package etcd

// One gRPC unary call (SPEC §10.4): net/http speaks HTTP/2 only over TLS,
// and an etcd range read over gRPC costs a fraction of the JSON gateway's.
// The core's GRPCCall says what to send and reads the answer; this file
// owns the connection (TCP, TLS with ALPN "h2", the context's deadline and
// cancellation) and moves bytes. Each call opens its own connection and
// closes it afterwards. What comes back is the answer's DATA: the
// length-prefixed gRPC message, its 5-byte prefix included (the core checks
// and strips it when it is fed to the registry).

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"time"

	"example.invalid/waypost"
)

// grpcUnary makes one gRPC unary call to path on endpoint (http:// or
// https://host:port; https verified with tlsConfig, which may be nil, and
// ALPN "h2") on a new connection, closed afterwards. msg is the
// length-prefixed gRPC message, and so is the answer. ctx bounds the whole
// call: its deadline or cancellation closes the connection.
func grpcUnary(ctx context.Context, endpoint string, tlsConfig *tls.Config, path string, msg []byte) ([]byte, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return nil, fmt.Errorf("gRPC %s: expected http://host:port or https://host:port", endpoint)
	}
	addr := u.Host
	if u.Port() == "" { // as net/http does for the gateway's calls
		addr = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
	}
	target := u.Scheme + "://" + u.Host + path
	fail := func(err error) error {
		// The connection's deadline is ctx's: reaching it is ctx's error,
		// whichever of the two noticed first.
		if ctx.Err() != nil {
			err = ctx.Err()
		} else if errors.Is(err, os.ErrDeadlineExceeded) {
			err = context.DeadlineExceeded
		}
		return fmt.Errorf("gRPC %s: %w", target, err)
	}
	call, err := waypost.NewGRPCCall(u.Scheme, u.Host, path, msg, 0)
	if err != nil {
		return nil, fail(err)
	}
	defer call.Close()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fail(err)
	}
	// The connection closes when ctx ends, which ends any read or write.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-ctx.Done():
			conn.Close()
		case <-stop:
		}
	}()
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	if u.Scheme == "https" {
		cfg := &tls.Config{}
		if tlsConfig != nil {
			cfg = tlsConfig.Clone()
		}
		cfg.NextProtos = []string{"h2"}
		if cfg.ServerName == "" {
			cfg.ServerName = u.Hostname()
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fail(err)
		}
		if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
			return nil, fail(fmt.Errorf("the server did not agree to HTTP/2 by ALPN (%q)", p))
		}
		conn = tc
	}
	buf := make([]byte, 64<<10)
	for state := waypost.GRPCWaiting; ; {
		if out := call.Output(); len(out) > 0 {
			if state != waypost.GRPCWaiting {
				// A polite goodbye; the answer is already whole.
				_ = conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
				_, _ = conn.Write(out)
			} else if _, err := conn.Write(out); err != nil {
				return nil, fail(err)
			}
		}
		switch state {
		case waypost.GRPCAnswered:
			return call.Answer(), nil
		case waypost.GRPCFailed:
			return nil, fail(errors.New(call.Failure()))
		}
		n, err := conn.Read(buf)
		if n > 0 {
			state = call.Receive(buf[:n])
		} else if err != nil {
			if !errors.Is(err, io.EOF) {
				return nil, fail(err)
			}
			state = call.Receive(nil)
		}
	}
}
