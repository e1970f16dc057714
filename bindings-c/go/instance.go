package waypost

// #include "bridge.h"
import "C"

import (
	"time"
)

// Health is the public health of an instance (SPEC §3).
type Health uint8

var healthNames = func() map[string]Health {
	m := map[string]Health{}
	for _, h := range allHealth {
		m[h.String()] = h
	}
	return m
}()

// String is the stable name, e.g. "healthy".
func (h Health) String() string {
	p := C.waypost_health_name(C.uint32_t(h))
	if p == nil {
		return "unknown"
	}
	return C.GoString(p)
}

// MarshalText writes the stable name.
func (h Health) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText reads the stable name.
func (h *Health) UnmarshalText(b []byte) error {
	v, ok := healthNames[string(b)]
	if !ok {
		return newError(CodeInvalidArgument, "unknown health `"+string(b)+"`")
	}
	*h = v
	return nil
}

// InstanceStatus is an instance with its dynamic state at the time asked.
type InstanceStatus struct {
	Instance
	Health              Health
	ModifyIndex         uint64
	Revision            uint64
	RegisteredAt        time.Time
	LastRenewal         time.Time
	LeaseDeadline       time.Time
	EffectiveWeight     float64
	Inflight            uint64
	ConsecutiveFailures uint32
	EjectedUntil        time.Time // zero unless ejected
	LastCheck           string    // "", "pass", "warn" or "fail"
	// SourceStatus is the source's verdict for a source-owned instance
	// ("passing", "warning", "critical", "maintenance"), else "".
	SourceStatus string
	// Held: a removal its source asked for is held back (SPEC §10.3).
	Held bool
}

// wireInstance is the JSON wire form shared by every binding: the
// instance's fields (generated from the core's table), then the status.
type wireInstance struct {
	instanceRead
	Health              Health  `json:"health"`
	ModifyIndex         uint64  `json:"modify_index"`
	Revision            uint64  `json:"revision"`
	RegisteredAt        uint64  `json:"registered_at"`
	LastRenewal         uint64  `json:"last_renewal"`
	LeaseDeadline       uint64  `json:"lease_deadline"`
	EffectiveWeight     float64 `json:"effective_weight"`
	Inflight            uint64  `json:"inflight"`
	ConsecutiveFailures uint32  `json:"consecutive_failures"`
	EjectedUntil        *uint64 `json:"ejected_until"`
	LastCheck           *string `json:"last_check"`
	SourceStatus        string  `json:"status"`
	Held                bool    `json:"held"`
}

func msTime(v uint64) time.Time { return time.UnixMilli(int64(v)) }

func (w *wireInstance) status() InstanceStatus {
	s := InstanceStatus{
		Instance:            w.instance(),
		Health:              w.Health,
		ModifyIndex:         w.ModifyIndex,
		Revision:            w.Revision,
		RegisteredAt:        msTime(w.RegisteredAt),
		LastRenewal:         msTime(w.LastRenewal),
		LeaseDeadline:       msTime(w.LeaseDeadline),
		EffectiveWeight:     w.EffectiveWeight,
		Inflight:            w.Inflight,
		ConsecutiveFailures: w.ConsecutiveFailures,
		SourceStatus:        w.SourceStatus,
		Held:                w.Held,
	}
	if w.EjectedUntil != nil {
		s.EjectedUntil = msTime(*w.EjectedUntil)
	}
	if w.LastCheck != nil {
		s.LastCheck = *w.LastCheck
	}
	return s
}

// Get returns an instance with its status at now.
func (r *Registry) Get(id string, now time.Time) (InstanceStatus, error) {
	t, err := ms(now)
	if err != nil {
		return InstanceStatus{}, err
	}
	var text string
	err = withName("id", id, func(s *C.char) error {
		var e error
		text, e = r.jsonCall(func(out **C.char, ce **C.waypost_error) C.waypost_status {
			return C.waypost_get(r.ptr, s, t, out, ce)
		})
		return e
	})
	if err != nil {
		return InstanceStatus{}, err
	}
	var w wireInstance
	if err := decode(text, &w); err != nil {
		return InstanceStatus{}, err
	}
	return w.status(), nil
}

// Instance returns the instance behind a handle with its status (as of the
// registry clock); ErrNotFound once it is removed.
func (r *Registry) Instance(h Handle) (InstanceStatus, error) {
	st, _, err := r.fetch(h)
	return st, err
}

// decodeInstance reads the JSON of the instance behind h.
func decodeInstance(text string, h Handle) (*Instance, error) {
	var w wireInstance
	if err := decode(text, &w); err != nil {
		return nil, err
	}
	st := w.status()
	st.Handle = h
	inst := new(Instance)
	*inst = st.Instance
	return inst, nil
}

func (r *Registry) fetch(h Handle) (InstanceStatus, uint64, error) {
	var epoch C.uint64_t
	text, err := r.jsonCall(func(out **C.char, e **C.waypost_error) C.waypost_status {
		return C.waypost_instance(r.ptr, C.waypost_handle(h), out, &epoch, e)
	})
	if err != nil {
		return InstanceStatus{}, 0, err
	}
	var w wireInstance
	if err := decode(text, &w); err != nil {
		return InstanceStatus{}, 0, err
	}
	st := w.status()
	st.Handle = h
	return st, uint64(epoch), nil
}
