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

func msTime(v uint64) time.Time { return time.UnixMilli(int64(v)) }

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
