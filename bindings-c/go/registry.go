package waypost

// #include <stdlib.h>
// #include "bridge.h"
import "C"

import (
	"encoding/json"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Handle names a registered instance until it is removed.
type Handle uint64

// Registry is a service registry. It is safe for concurrent use by many
// goroutines (the C library locks inside); Close must not race other calls.
type Registry struct {
	ptr  *C.waypost_registry
	addr C.uintptr_t // ptr as an integer, for the hot-path helpers

	refs  atomic.Pointer[map[string]C.uint32_t] // service name -> reference, copy on write
	cache atomic.Pointer[instanceCache]
	// listings keeps the last unfiltered Discover answer per (service, all).
	listings sync.Map
	mu       sync.Mutex // serialises cache and refs rebuilds
}

func wrap(ptr *C.waypost_registry) *Registry {
	r := &Registry{ptr: ptr, addr: C.uintptr_t(uintptr(unsafe.Pointer(ptr)))}
	r.refs.Store(&map[string]C.uint32_t{})
	runtime.SetFinalizer(r, (*Registry).Close)
	return r
}

// NewRegistry creates a registry; start cfg from DefaultConfig.
func NewRegistry(cfg Config) (*Registry, error) {
	c, err := cfg.toC()
	if err != nil {
		return nil, err
	}
	var ptr *C.waypost_registry
	var e *C.waypost_error
	if err := status(C.waypost_registry_new(&c, &ptr, &e), e); err != nil {
		return nil, err
	}
	return wrap(ptr), nil
}

// NewRegistryJSON creates a registry from a JSON object of SPEC §4 keys
// (without "seed", the seed is drawn from host entropy).
func NewRegistryJSON(config string) (*Registry, error) {
	return construct("config", config, func(s *C.char, out **C.waypost_registry, e **C.waypost_error) C.waypost_status {
		return C.waypost_registry_new_json(s, out, e)
	})
}

// Restore creates a registry from a snapshot taken in any language.
func Restore(snapshot string) (*Registry, error) {
	return construct("snapshot", snapshot, func(s *C.char, out **C.waypost_registry, e **C.waypost_error) C.waypost_status {
		return C.waypost_registry_restore(s, out, e)
	})
}

func construct(name, text string, f func(*C.char, **C.waypost_registry, **C.waypost_error) C.waypost_status) (*Registry, error) {
	s, err := cstring(name, text)
	if err != nil {
		return nil, err
	}
	defer freeC(s)
	var ptr *C.waypost_registry
	var e *C.waypost_error
	if err := status(f(s, &ptr, &e), e); err != nil {
		return nil, err
	}
	return wrap(ptr), nil
}

// Close releases the registry. Calling it twice is harmless; no other call
// may run at the same time or after it.
func (r *Registry) Close() {
	if r.ptr != nil {
		C.waypost_registry_free(r.ptr)
		r.ptr, r.addr = nil, 0
		runtime.SetFinalizer(r, nil)
	}
}

// Register adds an instance, or replaces the fields of the one with the
// same id and service (renewing its lease).
func (r *Registry) Register(spec InstanceSpec, now time.Time) (Handle, error) {
	text, err := spec.EntryJSON("")
	if err != nil {
		return 0, err
	}
	return r.RegisterJSON(string(text), now)
}

// EntryJSON is the spec in the instance wire form (SPEC §2: durations as
// `ttl_ms` and `check_interval_ms`), with `"status"` when status is not
// empty: what a registrar writes to a store and a source entry reads.
func (spec InstanceSpec) EntryJSON(status string) ([]byte, error) {
	w, err := spec.wire()
	if err != nil {
		return nil, err
	}
	text, err := json.Marshal(struct {
		instanceWire
		Status string `json:"status,omitempty"`
	}{w, status})
	if err != nil {
		return nil, newError(CodeInvalidArgument, "invalid argument `instance`: "+err.Error())
	}
	return text, nil
}

// RegisterJSON registers an instance given as a JSON object with the SPEC §2
// field names.
func (r *Registry) RegisterJSON(instance string, now time.Time) (Handle, error) {
	t, err := ms(now)
	if err != nil {
		return 0, err
	}
	s, err := cstring("instance", instance)
	if err != nil {
		return 0, err
	}
	defer freeC(s)
	var h C.waypost_handle
	var e *C.waypost_error
	err = status(C.waypost_register_json(r.ptr, s, t, &h, &e), e)
	keepAlive(r)
	return Handle(h), err
}

func (r *Registry) idCall(op C.int, id string, arg uint32, now time.Time) error {
	t, err := ms(now)
	if err != nil {
		return err
	}
	if err := checkString("id", id); err != nil {
		return err
	}
	ret := C.wp_id_call(op, r.addr, id, C.uint32_t(arg), t)
	keepAlive(r)
	return status(ret.status, ret.err)
}

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// Heartbeat renews an instance's lease; an expired lease recovers.
// ErrNotFound means the host should register again.
func (r *Registry) Heartbeat(id string, now time.Time) error {
	return r.idCall(C.WP_HEARTBEAT, id, 0, now)
}

// HeartbeatHandle is Heartbeat by handle.
func (r *Registry) HeartbeatHandle(h Handle, now time.Time) error {
	t, err := ms(now)
	if err != nil {
		return err
	}
	ret := C.wp_heartbeat_handle(r.addr, C.waypost_handle(h), t)
	keepAlive(r)
	return status(ret.status, ret.err)
}

// Deregister removes an instance.
func (r *Registry) Deregister(id string, now time.Time) error {
	return r.idCall(C.WP_DEREGISTER, id, 0, now)
}

// Drain puts an instance in maintenance (on) or takes it out.
func (r *Registry) Drain(id string, on bool, now time.Time) error {
	return r.idCall(C.WP_DRAIN, id, b2u(on), now)
}

// CheckStatus is the result of an active check the host ran.
type CheckStatus uint32

// Check results.
const (
	CheckPass CheckStatus = C.WAYPOST_CHECK_STATUS_PASS
	CheckWarn CheckStatus = C.WAYPOST_CHECK_STATUS_WARN
	CheckFail CheckStatus = C.WAYPOST_CHECK_STATUS_FAIL
)

// ParseCheckStatus maps "pass", "warn" and "fail" to a CheckStatus.
func ParseCheckStatus(s string) (CheckStatus, error) {
	switch s {
	case "pass":
		return CheckPass, nil
	case "warn":
		return CheckWarn, nil
	case "fail":
		return CheckFail, nil
	}
	return 0, newError(CodeInvalidArgument, "invalid argument `status`: `"+s+"` is not one of pass, warn, fail")
}

// ReportCheck reports an active check's result.
func (r *Registry) ReportCheck(id string, result CheckStatus, now time.Time) error {
	return r.idCall(C.WP_CHECK, id, uint32(result), now)
}

// ReportOutcome reports the outcome of one call (outlier detection).
func (r *Registry) ReportOutcome(id string, success bool, now time.Time) error {
	return r.idCall(C.WP_OUTCOME, id, b2u(success), now)
}

// ReportOutcomeHandle is ReportOutcome by handle.
func (r *Registry) ReportOutcomeHandle(h Handle, success bool, now time.Time) error {
	t, err := ms(now)
	if err != nil {
		return err
	}
	ret := C.wp_outcome_handle(r.addr, C.waypost_handle(h), C.bool(success), t)
	keepAlive(r)
	return status(ret.status, ret.err)
}

// Begin marks a call to an instance as started (least_request).
func (r *Registry) Begin(id string, now time.Time) error {
	return r.idCall(C.WP_BEGIN, id, 0, now)
}

// End marks a call to an instance as finished.
func (r *Registry) End(id string, now time.Time) error {
	return r.idCall(C.WP_END, id, 0, now)
}

// jsonCall runs a C call that hands back an owned JSON string.
func (r *Registry) jsonCall(f func(out **C.char, e **C.waypost_error) C.waypost_status) (string, error) {
	var out *C.char
	var e *C.waypost_error
	s := f(&out, &e)
	keepAlive(r)
	if err := status(s, e); err != nil {
		return "", err
	}
	return takeString(out), nil
}

// withName runs f with a C copy of a string argument.
func withName(name, value string, f func(*C.char) error) error {
	s, err := cstring(name, value)
	if err != nil {
		return err
	}
	defer C.free(unsafe.Pointer(s))
	return f(s)
}

// Services lists the services that have instances, in byte order.
func (r *Registry) Services(now time.Time) ([]string, error) {
	t, err := ms(now)
	if err != nil {
		return nil, err
	}
	text, err := r.jsonCall(func(out **C.char, e **C.waypost_error) C.waypost_status {
		return C.waypost_services(r.ptr, t, out, e)
	})
	if err != nil {
		return nil, err
	}
	var names []string
	return names, decode(text, &names)
}

// DueChecks lists the instances whose active check should run now; each is
// rescheduled, so running what is returned never runs a check twice.
func (r *Registry) DueChecks(now time.Time) ([]string, error) {
	t, err := ms(now)
	if err != nil {
		return nil, err
	}
	text, err := r.jsonCall(func(out **C.char, e **C.waypost_error) C.waypost_status {
		return C.waypost_due_checks(r.ptr, t, out, e)
	})
	if err != nil {
		return nil, err
	}
	var ids []string
	return ids, decode(text, &ids)
}

// Snapshot is the whole registry as a JSON document, restorable with Restore
// in any language.
func (r *Registry) Snapshot() (string, error) {
	return r.jsonCall(func(out **C.char, e **C.waypost_error) C.waypost_status {
		return C.waypost_snapshot(r.ptr, out, e)
	})
}

// Metrics is every metric in the Prometheus text format.
func (r *Registry) Metrics() (string, error) {
	return r.jsonCall(func(out **C.char, e **C.waypost_error) C.waypost_status {
		return C.waypost_render_metrics(r.ptr, out, e)
	})
}

// ServiceModifyIndex is the index of the last change to a service or any of
// its instances (for long-poll watchers).
func (r *Registry) ServiceModifyIndex(service string) (uint64, error) {
	var index C.uint64_t
	err := withName("service", service, func(s *C.char) error {
		var e *C.waypost_error
		return status(C.waypost_service_modify_index(r.ptr, s, &index, &e), e)
	})
	keepAlive(r)
	return uint64(index), err
}

// Info is a point-in-time summary of a registry.
type Info struct {
	Clock            time.Time
	LastIndex        uint64
	Instances        uint64
	MembershipEpoch  uint64
	SelfPreservation bool
}

// Info summarises the registry.
func (r *Registry) Info() (Info, error) {
	var c C.waypost_info
	var e *C.waypost_error
	err := status(C.waypost_registry_info(r.ptr, &c, &e), e)
	keepAlive(r)
	return Info{
		Clock:            time.UnixMilli(int64(c.clock)),
		LastIndex:        uint64(c.last_index),
		Instances:        uint64(c.instances),
		MembershipEpoch:  uint64(c.membership_epoch),
		SelfPreservation: bool(c.self_preservation),
	}, err
}

func decode(text string, v interface{}) error {
	if err := json.Unmarshal([]byte(text), v); err != nil {
		return newError(CodeInvalidArgument, "malformed result from the C library: "+err.Error())
	}
	return nil
}
