package waypost

// #include "bridge.h"
import "C"

import (
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// Picker is a worker-local picker for one service (SPEC §5.2): it picks
// from a candidate table the registry publishes, with its own round-robin
// and smooth-WRR positions and its own random stream, and takes the
// registry's lock only when the service changed. A Picker belongs to one
// goroutine at a time; handler goroutines share pickers through a
// PickerPool.
type Picker struct {
	r    *Registry
	ptr  *C.waypost_picker
	addr C.uintptr_t
	// Instances of the current table by slot index, valid for one
	// membership epoch (the table's).
	epoch     uint64
	instances []*Instance
}

// Picker returns a new picker for this service.
func (s *Service) Picker() (*Picker, error) {
	var ptr *C.waypost_picker
	err := withName("service", s.name, func(n *C.char) error {
		var e *C.waypost_error
		return status(C.waypost_picker_new(s.r.ptr, n, &ptr, &e), e)
	})
	keepAlive(s.r)
	if err != nil {
		return nil, err
	}
	p := &Picker{r: s.r, ptr: ptr, addr: C.uintptr_t(uintptr(unsafe.Pointer(ptr)))}
	runtime.SetFinalizer(p, (*Picker).Close)
	return p, nil
}

// Close releases the picker (its unreported outcomes reach the registry
// first). Safe to call twice.
func (p *Picker) Close() {
	if p.ptr != nil {
		C.waypost_picker_free(p.ptr)
		p.ptr, p.addr = nil, 0
		runtime.SetFinalizer(p, nil)
	}
}

// Pick chooses one instance with strategy; key is the consistent_hash key
// ("" = none). now is the zero time for the wall clock.
func (p *Picker) Pick(strategy Strategy, key string, now time.Time) (Pick, error) {
	t, err := ms(now)
	if err != nil {
		return Pick{}, err
	}
	if p.ptr == nil {
		return Pick{}, newError(CodeInvalidArgument, "invalid argument `picker`: closed")
	}
	for attempt := 0; ; attempt++ {
		var ret C.wp_pick_ret
		if key == "" {
			ret = C.wp_picker_pick(p.addr, C.uint32_t(strategy), 0, "", t)
		} else {
			if err := checkString("key", key); err != nil {
				return Pick{}, err
			}
			ret = C.wp_picker_pick(p.addr, C.uint32_t(strategy), 1, key, t)
		}
		runtime.KeepAlive(p)
		if err := status(ret.status, ret.err); err != nil {
			return Pick{}, err
		}
		inst, err := p.instance(Handle(ret.r.handle), uint64(ret.r.membership_epoch))
		if err == nil {
			return Pick{Instance: inst, Panic: bool(ret.r.panic)}, nil
		}
		// Removed between the pick and the fetch of its fields: the
		// picker sees the removal at its next pick.
		if attempt >= 8 {
			return Pick{}, errVanished
		}
	}
}

// instance returns the fields of a picked handle, from the picker's own
// cache while its table's membership epoch holds.
func (p *Picker) instance(h Handle, epoch uint64) (*Instance, error) {
	i := slotIndex(h)
	if epoch == p.epoch && i < len(p.instances) {
		if inst := p.instances[i]; inst != nil && inst.Handle == h {
			return inst, nil
		}
	}
	inst, err := p.r.lookup(h, epoch)
	if err != nil {
		return nil, err
	}
	if epoch != p.epoch {
		for j := range p.instances {
			p.instances[j] = nil
		}
		p.epoch = epoch
	}
	if i >= len(p.instances) {
		grown := make([]*Instance, 2*i+64)
		copy(grown, p.instances)
		p.instances = grown
	}
	p.instances[i] = inst
	return inst, nil
}

func (p *Picker) call(op C.int, h Handle, now time.Time) error {
	t, err := ms(now)
	if err != nil {
		return err
	}
	if p.ptr == nil {
		return newError(CodeInvalidArgument, "invalid argument `picker`: closed")
	}
	ret := C.wp_picker_call(p.addr, op, C.waypost_handle(h), t)
	runtime.KeepAlive(p)
	return status(ret.status, ret.err)
}

// ReportOutcome records a call's outcome for outlier detection; it reaches
// the registry within 64 outcomes or 100 ms (of now), at a later call.
func (p *Picker) ReportOutcome(h Handle, success bool, now time.Time) error {
	op := C.int(C.WP_PICKER_OUTCOME_OK)
	if !success {
		op = C.WP_PICKER_OUTCOME_FAILED
	}
	return p.call(op, h, now)
}

// Begin marks a call to h as started (least_request); every picker of the
// registry sees the count at once.
func (p *Picker) Begin(h Handle) error { return p.call(C.WP_PICKER_BEGIN, h, time.Time{}) }

// End marks a call to h as finished.
func (p *Picker) End(h Handle) error { return p.call(C.WP_PICKER_END, h, time.Time{}) }

// PickerPool hands pickers of one service to handler goroutines: each
// call borrows a picker (sync.Pool keeps about one per processor), so
// many goroutines pick without sharing a lock.
type PickerPool struct {
	s    *Service
	pool sync.Pool
}

// PickerPool returns a pool of pickers for this service.
func (s *Service) PickerPool() *PickerPool {
	pp := &PickerPool{s: s}
	pp.pool.New = func() any {
		p, err := s.Picker()
		if err != nil {
			return err
		}
		return p
	}
	return pp
}

// Pick borrows a picker, picks and returns it to the pool.
func (pp *PickerPool) Pick(strategy Strategy, key string, now time.Time) (Pick, error) {
	switch v := pp.pool.Get().(type) {
	case *Picker:
		pick, err := v.Pick(strategy, key, now)
		pp.pool.Put(v)
		return pick, err
	case error:
		return Pick{}, v
	default:
		return Pick{}, newError(CodeInvalidArgument, "invalid argument `pool`")
	}
}

// ReportOutcome records an outcome through a borrowed picker.
func (pp *PickerPool) ReportOutcome(h Handle, success bool, now time.Time) error {
	switch v := pp.pool.Get().(type) {
	case *Picker:
		err := v.ReportOutcome(h, success, now)
		pp.pool.Put(v)
		return err
	case error:
		return v
	default:
		return newError(CodeInvalidArgument, "invalid argument `pool`")
	}
}
