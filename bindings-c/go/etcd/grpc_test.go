package etcd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"example.invalid/waypost/internal/etcdtest"
	"example.invalid/waypost/internal/storetest"
)

const rangePath = "/etcdserverpb.KV/Range"

// pbBytes is one length-delimited protobuf field.
func pbBytes(field int, b []byte) []byte {
	out := binary.AppendUvarint([]byte{byte(field<<3 | 2)}, uint64(len(b)))
	return append(out, b...)
}

// rangeRequest is a framed etcdserverpb.RangeRequest of every key under prefix.
func rangeRequest(prefix string) []byte {
	msg := append(pbBytes(1, []byte(prefix+"/")), pbBytes(2, []byte(prefix+"0"))...)
	return append(binary.BigEndian.AppendUint32([]byte{0}, uint32(len(msg))), msg...)
}

// pbFields walks one protobuf message: every length-delimited field's bytes
// by number (varints and fixed fields are skipped).
func pbFields(t *testing.T, b []byte) map[int][][]byte {
	t.Helper()
	out := map[int][][]byte{}
	for len(b) > 0 {
		tag, n := binary.Uvarint(b)
		if n <= 0 {
			t.Fatalf("bad tag in %x", b)
		}
		b = b[n:]
		switch tag & 7 {
		case 0:
			_, n = binary.Uvarint(b)
		case 1:
			n = 8
		case 5:
			n = 4
		case 2:
			l, m := binary.Uvarint(b)
			if m <= 0 || uint64(len(b)-m) < l {
				t.Fatalf("bad length in %x", b)
			}
			out[int(tag>>3)] = append(out[int(tag>>3)], b[m:m+int(l)])
			n = m + int(l)
		default:
			t.Fatalf("wire type %d", tag&7)
		}
		if n <= 0 || n > len(b) {
			t.Fatalf("truncated field in %x", b)
		}
		b = b[n:]
	}
	return out
}

// rangeKeys checks the gRPC framing of a RangeResponse and answers its keys.
func rangeKeys(t *testing.T, answer []byte) []string {
	t.Helper()
	if len(answer) < 5 || answer[0] != 0 || int(binary.BigEndian.Uint32(answer[1:5])) != len(answer)-5 {
		t.Fatalf("not one uncompressed gRPC message: % x", answer[:min(len(answer), 16)])
	}
	keys := []string{}
	for _, kv := range pbFields(t, answer[5:])[2] { // RangeResponse.kvs
		keys = append(keys, string(pbFields(t, kv)[1][0])) // KeyValue.key
	}
	return keys
}

func min(a, b int) int {
	if a < b {
		return a
	}
	return b
}

// putMany writes n keys key(i) = value(i) in transactions of 128 puts
// (etcd's default --max-txn-ops); it answers the keys in order.
func putMany(t *testing.T, c *etcdtest.Client, n int, key, value func(i int) string) []string {
	t.Helper()
	keys := []string{}
	for i := 0; i < n; i += 128 {
		var ops []map[string]any
		for j := i; j < n && j < i+128; j++ {
			keys = append(keys, key(j))
			ops = append(ops, map[string]any{"request_put": map[string]string{"key": etcdtest.B64(key(j)), "value": etcdtest.B64(value(j))}})
		}
		var out map[string]any
		if err := c.Call("/v3/kv/txn", map[string]any{"success": ops}, &out); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// putPlain writes n keys <prefix>/k<i>, each value size bytes.
func putPlain(t *testing.T, c *etcdtest.Client, prefix string, n, size int) []string {
	return putMany(t, c, n, func(i int) string { return fmt.Sprintf("%s/k%05d", prefix, i) },
		func(int) string { return strings.Repeat("v", size) })
}

func within(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestGRPCUnaryAgainstEtcd(t *testing.T) {
	etcd := store(t)
	noLeaks(t)
	t.Run("three keys", func(t *testing.T) {
		want := putPlain(t, etcd.Client(), "/g3", 3, 10)
		answer, err := grpcUnary(within(t, 5*time.Second), etcd.Endpoint(), nil, rangePath, rangeRequest("/g3"))
		if err != nil {
			t.Fatal(err)
		}
		if got := rangeKeys(t, answer); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("keys %v, want %v", got, want)
		}
	})
	t.Run("3000 keys span many DATA frames", func(t *testing.T) {
		want := putPlain(t, etcd.Client(), "/g3000", 3000, 100)
		answer, err := grpcUnary(within(t, 10*time.Second), etcd.Endpoint(), nil, rangePath, rangeRequest("/g3000"))
		if err != nil {
			t.Fatal(err)
		}
		if len(answer) < 20*h2MaxFrame {
			t.Fatalf("only %d bytes", len(answer))
		}
		if got := rangeKeys(t, answer); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("%d keys, want %d", len(got), len(want))
		}
	})
	t.Run("a method etcd does not serve fails with its gRPC status", func(t *testing.T) {
		_, err := grpcUnary(within(t, 5*time.Second), etcd.Endpoint(), nil, "/etcdserverpb.KV/Nope", rangeRequest("/g3"))
		if err == nil || !strings.Contains(err.Error(), "gRPC status 12 (UNIMPLEMENTED): unknown method Nope") || !strings.Contains(err.Error(), etcd.Endpoint()) {
			t.Fatalf("want the gRPC status naming the endpoint: %v", err)
		}
	})
	t.Run("a closed port", func(t *testing.T) {
		url := fmt.Sprintf("http://127.0.0.1:%d", etcdtest.FreePort(t))
		if _, err := grpcUnary(within(t, 5*time.Second), url, nil, rangePath, rangeRequest("/g3")); err == nil || !strings.Contains(err.Error(), "refused") {
			t.Fatalf("want connection refused: %v", err)
		}
	})
	t.Run("not an http URL", func(t *testing.T) {
		if _, err := grpcUnary(context.Background(), "127.0.0.1:2379", nil, rangePath, nil); err == nil {
			t.Fatal("want an error")
		}
	})
}

func TestGRPCUnaryEndsWithinItsContext(t *testing.T) {
	noLeaks(t)
	stall := storetest.StartStall(t)
	for _, scheme := range []string{"http", "https"} {
		t0 := time.Now()
		_, err := grpcUnary(within(t, 300*time.Millisecond), stall.URL(scheme), nil, rangePath, rangeRequest("/s"))
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(t0) > 5*time.Second {
			t.Fatalf("%s: want the deadline within 5 s, got %v after %v", scheme, err, time.Since(t0))
		}
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		t0 = time.Now()
		_, err = grpcUnary(ctx, stall.URL(scheme), nil, rangePath, rangeRequest("/s"))
		if !errors.Is(err, context.Canceled) || time.Since(t0) > 5*time.Second {
			t.Fatalf("%s: want the cancel within 5 s, got %v after %v", scheme, err, time.Since(t0))
		}
	}
	storetest.Eventually(t, 5*time.Second, "every connection closed", func() bool { return stall.Open() == 0 })
}

// A frozen etcd accepts (its kernel does) and says nothing; killed, its
// connections break: the call fails then, long before its deadline.
func TestGRPCUnaryEtcdKilledMidCall(t *testing.T) {
	etcd := store(t)
	if err := etcd.Freeze(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	t0 := time.Now()
	go func() {
		_, err := grpcUnary(within(t, time.Minute), etcd.Endpoint(), nil, rangePath, rangeRequest("/k"))
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	etcd.Kill()
	select {
	case err := <-done:
		if err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("want a broken connection: %v", err)
		}
		t.Logf("after %v: %v", time.Since(t0).Round(time.Millisecond), err)
	case <-time.After(15 * time.Second):
		t.Fatal("the call outlived the etcd it called")
	}
}

// scripted is a one-connection HTTP/2 server: it reads the client's whole
// request, writes script, then gathers what else the client sends.
func scripted(t *testing.T, script []byte) (url string, sent <-chan []byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan []byte, 1)
	go func() {
		defer ln.Close()
		c, err := ln.Accept()
		if err != nil {
			out <- nil
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		if _, err := io.ReadFull(r, make([]byte, len(h2Preface))); err != nil {
			out <- nil
			return
		}
		for { // until the request's DATA ends its stream
			var head [9]byte
			if _, err := io.ReadFull(r, head[:]); err != nil {
				out <- nil
				return
			}
			if _, err := io.ReadFull(r, make([]byte, int(head[0])<<16|int(head[1])<<8|int(head[2]))); err != nil {
				out <- nil
				return
			}
			if head[3] == frameData && head[4]&flagEndStream != 0 {
				break
			}
		}
		_, _ = c.Write(script)
		_ = c.(*net.TCPConn).CloseWrite() // an answer cut short reads as a closed connection
		rest, _ := io.ReadAll(r)
		out <- rest
	}()
	t.Cleanup(func() { ln.Close() })
	return "http://" + ln.Addr().String(), out
}

func TestGRPCUnaryFrameHandling(t *testing.T) {
	noLeaks(t)
	msg := []byte{0, 0, 0, 0, 3, 'a', 'b', 'c'}
	headers := appendFrame(nil, frameHeaders, flagEndHeaders, 1, []byte{0x88})
	trailers := appendFrame(nil, frameHeaders, flagEndStream, 1, []byte{0x40})
	continuation := appendFrame(nil, frameContinuation, flagEndHeaders, 1, []byte{0x40})
	ping := []byte("12345678")
	// Each script begins with the server's preface, an empty SETTINGS frame.
	cat := func(parts ...[]byte) []byte {
		return bytes.Join(append([][]byte{appendFrame(nil, frameSettings, 0, 0, nil)}, parts...), nil)
	}
	padded := append(append([]byte{4}, msg[3:]...), 0, 0, 0, 0)
	cases := []struct {
		name, err string
		script    []byte
		want      []byte
	}{
		{"settings, ping, window update, padding, trailers in two frames",
			"",
			cat(appendFrame(nil, frameSettings, 0, 0, []byte{0, 3, 0, 0, 0, 100}),
				appendFrame(nil, framePing, 0, 0, ping),
				appendFrame(nil, frameWindowUpdate, 0, 0, []byte{0, 0, 1, 0}),
				appendFrame(nil, 0x2, 0, 1, make([]byte, 5)), // PRIORITY
				appendFrame(nil, 0xfa, 0, 0, []byte("unknown")),
				headers,
				appendFrame(nil, frameData, 0, 1, msg[:3]),
				appendFrame(nil, frameData, flagPadded, 1, padded),
				trailers, continuation),
			msg},
		{"data ending the stream", "", cat(headers, appendFrame(nil, frameData, flagEndStream, 1, msg)), msg},
		{"trailers only", "no message", cat(appendFrame(nil, frameHeaders, flagEndHeaders|flagEndStream, 1, []byte{0x88})), nil},
		{"reset", "reset the call (CANCEL)", cat(headers, appendFrame(nil, frameRSTStream, 0, 1, []byte{0, 0, 0, 8})), nil},
		{"go away", "went away (ENHANCE_YOUR_CALM): slow down", cat(appendFrame(nil, frameGoAway, 0, 0, append([]byte{0, 0, 0, 0, 0, 0, 0, 11}, "slow down"...))), nil},
		{"a graceful go away that covers the stream", "", cat(appendFrame(nil, frameGoAway, 0, 0, []byte{0, 0, 0, 1, 0, 0, 0, 0}), headers, appendFrame(nil, frameData, flagEndStream, 1, msg)), msg},
		{"push", "PUSH_PROMISE", cat(appendFrame(nil, framePushPromise, flagEndHeaders, 1, []byte{0, 0, 0, 2, 0x88})), nil},
		{"another stream", "stream 3", cat(appendFrame(nil, frameData, 0, 3, msg)), nil},
		{"bad padding", "padding", cat(headers, appendFrame(nil, frameData, flagPadded, 1, []byte{9, 1, 2})), nil},
		{"too big a frame", "FRAME_SIZE_ERROR", cat([]byte{0, 0x40, 1, 0, 0, 0, 0, 0, 1}), nil},
		{"HTTP/1.1", "does not speak HTTP/2", []byte("HTTP/1.1 400 Bad Request\r\n\r\n"), nil},
		{"no SETTINGS first", "does not speak HTTP/2", cat(headers)[9:], nil},
		{"interrupted header block", "interrupted", cat(appendFrame(nil, frameHeaders, 0, 1, []byte{0x88}), appendFrame(nil, frameData, 0, 1, msg)), nil},
		{"closed early", "closed the connection", cat(headers, appendFrame(nil, frameData, 0, 1, msg)), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			url, sent := scripted(t, c.script)
			got, err := grpcUnary(within(t, 5*time.Second), url, nil, rangePath, msg)
			if c.err == "" && (err != nil || !bytes.Equal(got, c.want)) {
				t.Fatalf("got %q, %v; want %q", got, err, c.want)
			}
			if c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
				t.Fatalf("want an error with %q: %q, %v", c.err, got, err)
			}
			rest := <-sent
			if c.err == "" {
				// One SETTINGS ACK per SETTINGS, the PING answered with its payload.
				if bytes.Contains(c.script, ping) && !bytes.Contains(rest, appendFrame(nil, framePing, flagAck, 0, ping)) {
					t.Fatalf("no PING ACK in % x", rest)
				}
				if bytes.Contains(c.script, []byte{0, 0, 6, frameSettings}) && !bytes.HasPrefix(rest, appendFrame(nil, frameSettings, flagAck, 0, nil)) {
					t.Fatalf("no SETTINGS ACK first in % x", rest)
				}
			}
		})
	}
}
