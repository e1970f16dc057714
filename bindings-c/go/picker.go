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
	// membership epoch (the table's); known has bit i%64 of word i/64 set
	// once instances[i] is stored: a pick hands it to C, which sends the
	// fields of a slot not in it.
	epoch     uint64
	instances []*Instance
	known     []uint64
}

// Picker returns a new picker for this service.
func (s *Service) Picker() (*Picker, error) { return s.PickerWith(nil) }

// PickerWith returns a picker whose picks draw from the candidates Pick
// draws from with opts' Zone and Filter (SPEC §5.2); opts may be nil. Its
// Key must be "": the key comes with each pick.
func (s *Service) PickerWith(opts *PickOptions) (*Picker, error) {
	if err := checkString("service", s.name); err != nil {
		return nil, err
	}
	has, zone, filter := C.int(0), "", ""
	if opts != nil {
		if opts.Key != "" {
			return nil, newError(CodeInvalidArgument, "invalid argument `key`: a picker takes its key with each pick")
		}
		if opts.Zone != "" {
			if err := checkString("zone", opts.Zone); err != nil {
				return nil, err
			}
			has, zone = has|2, opts.Zone
		}
		if !opts.Filter.empty() {
			var err error
			if filter, err = opts.Filter.json(); err != nil {
				return nil, err
			}
			has |= 4
		}
	}
	ret := C.wp_picker_new_with(s.r.addr, s.name, has, zone, filter)
	keepAlive(s.r)
	if err := status(ret.status, ret.err); err != nil {
		return nil, err
	}
	ptr := ret.p
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
	hasKey := C.int(0)
	if key != "" {
		if err := checkString("key", key); err != nil {
			return Pick{}, err
		}
		hasKey = 1
	}
	// The pick and the fields of what it picked come from one call, out of
	// the table the pick read: nothing can remove the instance in between,
	// so a pick is one step of the picker and never repeated.
	var slots *C.uint64_t
	if len(p.known) > 0 {
		slots = (*C.uint64_t)(unsafe.Pointer(&p.known[0]))
	}
	ret := C.wp_picker_pick_fields(p.addr, C.uint32_t(strategy), hasKey, key, t,
		C.uint64_t(p.epoch), slots, C.size_t(len(p.known)))
	runtime.KeepAlive(p)
	if err := status(ret.status, ret.err); err != nil {
		return Pick{}, err
	}
	h := Handle(ret.r.handle)
	panicked := bool(ret.r.panic)
	i := slotIndex(h)
	if ret.json == nil {
		// The call found this slot in the cache at the table's epoch.
		if i < len(p.instances) {
			if inst := p.instances[i]; inst != nil && inst.Handle == h {
				return Pick{Instance: inst, Panic: panicked}, nil
			}
		}
		return Pick{}, newError(CodePanic, "the picker's instance cache disagrees with its table")
	}
	inst, err := decodeInstance(takeString(ret.json), h)
	if err != nil {
		return Pick{}, err
	}
	p.store(i, inst, uint64(ret.r.membership_epoch))
	return Pick{Instance: inst, Panic: panicked}, nil
}

// store caches the instance of slot i for the table's membership epoch.
func (p *Picker) store(i int, inst *Instance, epoch uint64) {
	if epoch != p.epoch {
		for j := range p.instances {
			p.instances[j] = nil
		}
		for j := range p.known {
			p.known[j] = 0
		}
		p.epoch = epoch
	}
	if i >= len(p.instances) {
		n := (2*i + 64) &^ 63
		grown := make([]*Instance, n)
		copy(grown, p.instances)
		p.instances = grown
		known := make([]uint64, n/64)
		copy(known, p.known)
		p.known = known
	}
	p.instances[i] = inst
	p.known[i/64] |= 1 << (uint(i) % 64)
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
func (s *Service) PickerPool() *PickerPool { return s.PickerPoolWith(nil) }

// PickerPoolWith returns a pool of pickers made with PickerWith(opts).
func (s *Service) PickerPoolWith(opts *PickOptions) *PickerPool {
	pp := &PickerPool{s: s}
	var o *PickOptions
	if opts != nil {
		copied := *opts
		o = &copied
	}
	pp.pool.New = func() any {
		p, err := s.PickerWith(o)
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
