package waypost

/*
#include "bridge.h"
*/
import "C"

import (
	"runtime"
	"unsafe"
)

// GRPCState says where a gRPC call stands.
type GRPCState int

const (
	// GRPCWaiting: the answer has not ended; read on.
	GRPCWaiting GRPCState = C.WAYPOST_GRPC_STATE_WAITING
	// GRPCAnswered: the answer is whole (Answer).
	GRPCAnswered GRPCState = C.WAYPOST_GRPC_STATE_ANSWERED
	// GRPCFailed: the call failed (Failure says how).
	GRPCFailed GRPCState = C.WAYPOST_GRPC_STATE_FAILED
)

// GRPCCall is one gRPC unary call's HTTP/2 without I/O (SPEC §10.4): the
// core says what to send and reads the answer; the caller owns the
// connection. Send Output, hand every read to Receive (an empty read: the
// server closed the connection) and send Output after each, until the
// state is not GRPCWaiting. Used by one goroutine at a time; Close it.
type GRPCCall struct {
	ptr *C.waypost_grpc_call
}

// NewGRPCCall starts a call of path at authority (host:port) over scheme
// ("http" or "https": TLS, offering ALPN "h2", is the caller's) with msg,
// the length-prefixed gRPC request (at most 65 535 bytes). The call fails
// once its answer exceeds maxAnswer bytes (0: 256 MiB, also the most).
func NewGRPCCall(scheme, authority, path string, msg []byte, maxAnswer int) (*GRPCCall, error) {
	if maxAnswer < 0 {
		return nil, newError(CodeInvalidArgument, "invalid argument `maxAnswer`: negative")
	}
	call := &GRPCCall{}
	err := strings3([3]string{"scheme", "authority", "path"}, [3]string{scheme, authority, path}, 3, func(s, a, p *C.char) error {
		var e *C.waypost_error
		return status(C.waypost_grpc_call_new(s, a, p, bytePtr(msg), C.size_t(len(msg)), C.size_t(maxAnswer), &call.ptr, &e), e)
	})
	if err != nil {
		return nil, err
	}
	runtime.SetFinalizer(call, (*GRPCCall).Close)
	return call, nil
}

// Output is what to send now (empty when nothing): first the request, then
// the acknowledgements HTTP/2 asks for, and after the answer a goodbye
// that may be sent or dropped.
func (c *GRPCCall) Output() []byte {
	return c.copyOut(func(out **C.uint8_t, n *C.size_t, e **C.waypost_error) C.waypost_status {
		return C.waypost_grpc_call_output(c.ptr, out, n, e)
	})
}

// copyOut copies the bytes one C call lends (nil for none or an error).
func (c *GRPCCall) copyOut(f func(**C.uint8_t, *C.size_t, **C.waypost_error) C.waypost_status) []byte {
	var out *C.uint8_t
	var n C.size_t
	var e *C.waypost_error
	if err := status(f(&out, &n, &e), e); err != nil || n == 0 {
		return nil
	}
	b := C.GoBytes(unsafe.Pointer(out), C.int(n))
	runtime.KeepAlive(c)
	return b
}

// Receive reads what the server sent (any piece; empty: the connection
// closed) and says where the call stands.
func (c *GRPCCall) Receive(data []byte) GRPCState {
	state := C.waypost_grpc_state(C.WAYPOST_GRPC_STATE_FAILED)
	var e *C.waypost_error
	_ = status(C.waypost_grpc_call_receive(c.ptr, bytePtr(data), C.size_t(len(data)), &state, &e), e)
	runtime.KeepAlive(c)
	return GRPCState(state)
}

// Answer is the answer, copied (the DATA of the call's stream: a
// length-prefixed gRPC message); nil unless the call is answered.
func (c *GRPCCall) Answer() []byte {
	return c.copyOut(func(out **C.uint8_t, n *C.size_t, e **C.waypost_error) C.waypost_status {
		return C.waypost_grpc_call_answer(c.ptr, out, n, e)
	})
}

// Failure says how the call failed ("" unless it failed).
func (c *GRPCCall) Failure() string {
	s := C.GoString(C.waypost_grpc_call_failure(c.ptr))
	runtime.KeepAlive(c)
	return s
}

// Close releases the call; it may be called more than once.
func (c *GRPCCall) Close() {
	if c.ptr != nil {
		C.waypost_grpc_call_free(c.ptr)
		c.ptr = nil
		runtime.SetFinalizer(c, nil)
	}
}
