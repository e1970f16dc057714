package etcd

// One gRPC unary call over a minimal HTTP/2 client (RFC 9113), standard
// library only: net/http speaks HTTP/2 only over TLS, and an etcd range
// read over gRPC costs a fraction of the JSON gateway's.
//
// Each call opens its own connection and closes it afterwards, which keeps
// the client small: the request's headers are sent as HPACK literals
// without indexing (no tables to keep), the answer's headers are never
// decoded (a fresh connection has no dynamic-table state that later frames
// would need), and the windows are opened wide at once so an answer of up
// to 2 GiB needs no flow control. What comes back is the answer's DATA,
// concatenated: the length-prefixed gRPC message, its 5-byte prefix
// included (the core checks and strips it). A call whose answer carries no
// DATA failed: gRPC reports an error in trailers alone.

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

const (
	h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

	// Frame types (RFC 9113 §6).
	frameData         = 0x0
	frameHeaders      = 0x1
	frameRSTStream    = 0x3
	frameSettings     = 0x4
	framePushPromise  = 0x5
	framePing         = 0x6
	frameGoAway       = 0x7
	frameWindowUpdate = 0x8
	frameContinuation = 0x9

	flagEndStream  = 0x1
	flagAck        = 0x1
	flagEndHeaders = 0x4
	flagPadded     = 0x8

	settingEnablePush        = 0x2
	settingInitialWindowSize = 0x4

	h2MaxWindow     = 1<<31 - 1
	h2DefaultWindow = 65535
	// The largest frame payload either side may send before
	// SETTINGS_MAX_FRAME_SIZE raises it; the client never raises it, so no
	// frame it reads is larger.
	h2MaxFrame = 16384
	// The stream's own send window before the server's SETTINGS: a request
	// no larger needs no flow control (an etcd range request is ~40 bytes).
	grpcMaxRequest = h2DefaultWindow
	// grpcMaxAnswer bounds what one call reads.
	grpcMaxAnswer = 256 << 20

	h2Stream = 1 // the one stream a call opens
)

var h2ErrorCodes = []string{"NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR",
	"SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL",
	"COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"}

func h2ErrorName(code uint32) string {
	if int(code) < len(h2ErrorCodes) {
		return h2ErrorCodes[code]
	}
	return fmt.Sprintf("0x%x", code)
}

// errNoMessage is a gRPC answer without DATA: a status in trailers alone.
var errNoMessage = errors.New("the answer has no message (gRPC sent only a status: the call failed)")

func appendFrame(out []byte, kind, flags byte, stream uint32, payload []byte) []byte {
	n := len(payload)
	out = append(out, byte(n>>16), byte(n>>8), byte(n), kind, flags)
	out = binary.BigEndian.AppendUint32(out, stream)
	return append(out, payload...)
}

// appendHPACKString is a string literal without Huffman coding: its length
// as an HPACK integer with a 7-bit prefix (RFC 7541 §5.1, §5.2), then the bytes.
func appendHPACKString(out []byte, s string) []byte {
	n := len(s)
	if n < 0x7f {
		out = append(out, byte(n))
	} else {
		out = append(out, 0x7f)
		for n -= 0x7f; n >= 0x80; n >>= 7 {
			out = append(out, byte(0x80|n&0x7f))
		}
		out = append(out, byte(n))
	}
	return append(out, s...)
}

// grpcRequestFrames is everything the client sends, in one write: the
// preface, SETTINGS (no push; the widest stream window), the connection
// window raised to the widest too, the request's HEADERS — each field a
// "literal header field without indexing, new name" (RFC 7541 §6.2.2),
// which needs neither HPACK table — and its DATA, the last frame ending
// the stream.
func grpcRequestFrames(scheme, authority, path string, msg []byte) ([]byte, error) {
	var block []byte
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", scheme}, {":path", path},
		{":authority", authority}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
		block = append(block, 0)
		block = appendHPACKString(appendHPACKString(block, f[0]), f[1])
	}
	if len(block) > h2MaxFrame {
		return nil, fmt.Errorf("the request's headers exceed one frame")
	}
	out := append(make([]byte, 0, len(h2Preface)+len(block)+len(msg)+128), h2Preface...)
	settings := []byte{0, settingEnablePush, 0, 0, 0, 0, 0, settingInitialWindowSize}
	settings = binary.BigEndian.AppendUint32(settings, h2MaxWindow)
	out = appendFrame(out, frameSettings, 0, 0, settings)
	out = appendFrame(out, frameWindowUpdate, 0, 0, binary.BigEndian.AppendUint32(nil, h2MaxWindow-h2DefaultWindow))
	out = appendFrame(out, frameHeaders, flagEndHeaders, h2Stream, block)
	for first := true; first || len(msg) > 0; first = false {
		chunk := msg
		if len(chunk) > h2MaxFrame {
			chunk = chunk[:h2MaxFrame]
		}
		msg = msg[len(chunk):]
		var flags byte
		if len(msg) == 0 {
			flags = flagEndStream
		}
		out = appendFrame(out, frameData, flags, h2Stream, chunk)
	}
	return out, nil
}

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
	if len(msg) > grpcMaxRequest {
		return nil, fail(fmt.Errorf("a request of %d bytes exceeds %d", len(msg), grpcMaxRequest))
	}
	request, err := grpcRequestFrames(u.Scheme, u.Host, path, msg)
	if err != nil {
		return nil, fail(err)
	}
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
	if _, err := conn.Write(request); err != nil {
		return nil, fail(err)
	}
	data, err := h2Exchange(conn, bufio.NewReaderSize(conn, 64<<10))
	if err != nil {
		return nil, fail(err)
	}
	// A polite goodbye; the answer is already whole.
	_ = conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_, _ = conn.Write(appendFrame(nil, frameGoAway, 0, 0, make([]byte, 8)))
	return data, nil
}

// h2Exchange reads frames until stream 1 ends, answering what HTTP/2 asks
// of a client on the way (RFC 9113 §6), and returns stream 1's DATA.
func h2Exchange(w io.Writer, r *bufio.Reader) ([]byte, error) {
	var data []byte
	var head [9]byte
	first := true
	openBlock := false // a header block waits for its CONTINUATION
	ending := false    // that block's HEADERS carried END_STREAM
	for {
		if _, err := io.ReadFull(r, head[:]); err != nil {
			return nil, closedEarly(err)
		}
		if first && (head[3] != frameSettings || head[4]&flagAck != 0) {
			// The server's preface is a SETTINGS frame (RFC 9113 §3.4):
			// anything else is a server or proxy without HTTP/2.
			return nil, fmt.Errorf("the server does not speak HTTP/2 (its answer began %q)", head[:])
		}
		first = false
		length := int(head[0])<<16 | int(head[1])<<8 | int(head[2])
		kind, flags := head[3], head[4]
		stream := binary.BigEndian.Uint32(head[5:]) & 0x7fffffff
		if length > h2MaxFrame {
			return nil, fmt.Errorf("a frame of %d bytes exceeds %d (FRAME_SIZE_ERROR)", length, h2MaxFrame)
		}
		payload := make([]byte, length)
		if _, err := io.ReadFull(r, payload); err != nil {
			return nil, closedEarly(err)
		}
		if openBlock && (kind != frameContinuation || stream != h2Stream) {
			return nil, errors.New("a header block was interrupted (PROTOCOL_ERROR)")
		}
		switch kind {
		case frameSettings:
			if stream != 0 || (flags&flagAck != 0 && length != 0) || length%6 != 0 {
				return nil, errors.New("a malformed SETTINGS frame (PROTOCOL_ERROR)")
			}
			if flags&flagAck == 0 {
				if _, err := w.Write(appendFrame(nil, frameSettings, flagAck, 0, nil)); err != nil {
					return nil, err
				}
			}
		case framePing:
			if stream != 0 || length != 8 {
				return nil, errors.New("a malformed PING frame (PROTOCOL_ERROR)")
			}
			if flags&flagAck == 0 {
				if _, err := w.Write(appendFrame(nil, framePing, flagAck, 0, payload)); err != nil {
					return nil, err
				}
			}
		case frameGoAway:
			if stream != 0 || length < 8 {
				return nil, errors.New("a malformed GOAWAY frame (PROTOCOL_ERROR)")
			}
			last, code := binary.BigEndian.Uint32(payload)&0x7fffffff, binary.BigEndian.Uint32(payload[4:])
			// A graceful GOAWAY that still covers stream 1 lets it finish.
			if code != 0 || last < h2Stream {
				detail := payload[8:]
				if len(detail) > 200 {
					detail = detail[:200]
				}
				msg := fmt.Sprintf("the server went away (%s)", h2ErrorName(code))
				if len(detail) > 0 {
					msg += ": " + strings.ToValidUTF8(string(detail), "?")
				}
				return nil, errors.New(msg)
			}
		case frameRSTStream:
			if stream == 0 || length != 4 {
				return nil, errors.New("a malformed RST_STREAM frame (PROTOCOL_ERROR)")
			}
			if stream == h2Stream {
				return nil, fmt.Errorf("the server reset the call (%s)", h2ErrorName(binary.BigEndian.Uint32(payload)))
			}
		case frameWindowUpdate:
			if length != 4 {
				return nil, errors.New("a malformed WINDOW_UPDATE frame (FRAME_SIZE_ERROR)")
			}
		case frameHeaders, frameContinuation:
			if stream != h2Stream || (kind == frameContinuation && !openBlock) {
				return nil, fmt.Errorf("an unexpected header frame on stream %d (PROTOCOL_ERROR)", stream)
			}
			if kind == frameHeaders {
				ending = flags&flagEndStream != 0
			}
			openBlock = flags&flagEndHeaders == 0
			if ending && !openBlock {
				if len(data) == 0 {
					return nil, errNoMessage
				}
				return data, nil
			}
		case frameData:
			if stream != h2Stream {
				return nil, fmt.Errorf("DATA on stream %d (PROTOCOL_ERROR)", stream)
			}
			if flags&flagPadded != 0 {
				if length == 0 || int(payload[0]) >= length {
					return nil, errors.New("a DATA frame's padding exceeds it (PROTOCOL_ERROR)")
				}
				payload = payload[1 : length-int(payload[0])]
			}
			if len(data)+len(payload) > grpcMaxAnswer {
				return nil, fmt.Errorf("the answer exceeds %d bytes", grpcMaxAnswer)
			}
			data = append(data, payload...)
			if flags&flagEndStream != 0 {
				if len(data) == 0 {
					return nil, errNoMessage
				}
				return data, nil
			}
		case framePushPromise:
			return nil, errors.New("PUSH_PROMISE although push is off (PROTOCOL_ERROR)")
		}
		// PRIORITY and unknown frame types are ignored (RFC 9113 §4.1, §5.5).
	}
}

func closedEarly(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("the server closed the connection before the answer ended")
	}
	return err
}
