package waypost

/*
#cgo CFLAGS: -I${SRCDIR}/../include
#cgo LDFLAGS: ${SRCDIR}/../../target/release/libwaypost.a -lm -ldl -lpthread
#include "bridge.h"
*/
import "C"

import (
	"runtime"
	"strings"
	"time"
	"unsafe"
)

// status turns a C status and error object into a Go error (nil on success),
// releasing the error object.
func status(s C.waypost_status, e *C.waypost_error) error {
	if s == C.WAYPOST_STATUS_OK {
		return nil
	}
	err := &Error{Code: Code(C.GoString(C.waypost_status_code(C.int32_t(s)))), Message: "unknown error"}
	if e != nil {
		err.Message = C.GoString(C.waypost_error_message(e))
		C.waypost_error_free(e)
	}
	return err
}

// ms converts a Go time to the core's milliseconds; the zero time means now.
func ms(now time.Time) (C.uint64_t, error) {
	if now.IsZero() {
		now = time.Now()
	}
	t := now.UnixMilli()
	if t < 0 {
		return 0, newError(CodeInvalidArgument, "invalid argument `now`: before 1970")
	}
	return C.uint64_t(t), nil
}

// checkString rejects strings C would silently truncate.
func checkString(name, s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return newError(CodeInvalidArgument, "invalid argument `"+name+"`: contains a NUL byte")
	}
	return nil
}

// cstring is a C copy of s for calls off the hot path; free it with freeC.
func cstring(name, s string) (*C.char, error) {
	if err := checkString(name, s); err != nil {
		return nil, err
	}
	return C.CString(s), nil
}

func freeC(p *C.char) { C.free(unsafe.Pointer(p)) }

// takeString copies an owned C string into Go and releases it.
func takeString(p *C.char) string {
	if p == nil {
		return ""
	}
	s := C.GoString(p)
	C.waypost_string_free(p)
	return s
}

// Version is the C library's version.
func Version() string { return C.GoString(C.waypost_version()) }

func keepAlive(r *Registry) { runtime.KeepAlive(r) }

// cgoFloor makes the cheapest possible cgo call (benchmarks compare with it).
func cgoFloor() { C.wp_noop() }

// bytePtr is b's first byte for C to read during one call (b holds no Go
// pointers), or nil for an empty b.
func bytePtr(b []byte) *C.uint8_t {
	if len(b) == 0 {
		return nil
	}
	return (*C.uint8_t)(unsafe.Pointer(&b[0]))
}
