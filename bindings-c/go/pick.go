package waypost

// #include "bridge.h"
import "C"

import (
	"encoding/json"
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// Strategy is a load-balancing strategy (SPEC §5).
type Strategy uint32

// String is the stable name, e.g. "round_robin".
func (s Strategy) String() string {
	p := C.waypost_strategy_name(C.uint32_t(s))
	if p == nil {
		return "unknown"
	}
	return C.GoString(p)
}

// ParseStrategy maps a stable name to its Strategy.
func ParseStrategy(name string) (Strategy, error) {
	var out C.uint32_t
	err := withName("strategy", name, func(s *C.char) error {
		var e *C.waypost_error
		return status(C.waypost_strategy_from_name(s, &out, &e), e)
	})
	return Strategy(out), err
}

// Filter selects instances carrying every tag and every metadata pair.
type Filter struct {
	Tags []string          `json:"tags,omitempty"`
	Meta map[string]string `json:"meta,omitempty"`
}

func (f Filter) empty() bool { return len(f.Tags) == 0 && len(f.Meta) == 0 }

func (f Filter) json() (string, error) {
	b, err := json.Marshal(f)
	if err != nil {
		return "", newError(CodeInvalidArgument, "invalid argument `filter`: "+err.Error())
	}
	if err := checkString("filter", string(b)); err != nil {
		return "", err
	}
	return string(b), nil
}

// PickOptions are the optional arguments of Pick.
type PickOptions struct {
	Key    string // consistent_hash key (required there); "" = none
	Zone   string // the caller's zone, preferred when it has candidates; "" = none
	Filter Filter
}

// Pick is the result of a pick.
type Pick struct {
	Instance *Instance // shared and cached: read-only
	Panic    bool      // the service was in panic: health was ignored
}

var noOptions PickOptions

// Pick chooses one instance of service with strategy; opts may be nil.
// The returned *Instance is cached per slot, so a pick copies no strings.
func (r *Registry) Pick(service string, strategy Strategy, opts *PickOptions, now time.Time) (Pick, error) {
	ref, known := (*r.refs.Load())[service]
	return r.pick(service, ref, known, strategy, opts, now)
}

// Service is a reference to one service, for the fastest picks: no name
// crosses into C and no map lookup happens per pick.
type Service struct {
	r    *Registry
	name string
	ref  C.uint32_t
}

// Service returns a reference to a service (it need not have instances yet).
func (r *Registry) Service(name string) (*Service, error) {
	var ref C.uint32_t
	err := withName("service", name, func(s *C.char) error {
		var e *C.waypost_error
		return status(C.waypost_service_ref(r.ptr, s, &ref, &e), e)
	})
	keepAlive(r)
	if err != nil {
		return nil, err
	}
	return &Service{r: r, name: name, ref: ref}, nil
}

// Name is the service's name.
func (s *Service) Name() string { return s.name }

// Pick is Registry.Pick for this service.
func (s *Service) Pick(strategy Strategy, opts *PickOptions, now time.Time) (Pick, error) {
	return s.r.pick(s.name, s.ref, true, strategy, opts, now)
}

func (r *Registry) pick(service string, ref C.uint32_t, known bool, strategy Strategy, opts *PickOptions, now time.Time) (Pick, error) {
	t, err := ms(now)
	if err != nil {
		return Pick{}, err
	}
	if opts == nil {
		opts = &noOptions
	}
	has := C.int(0)
	filter := ""
	if opts.Key != "" {
		has |= 1
	}
	if opts.Zone != "" {
		has |= 2
	}
	if !opts.Filter.empty() {
		has |= 4
		if filter, err = opts.Filter.json(); err != nil {
			return Pick{}, err
		}
	}
	if has != 0 {
		if err := checkString("key", opts.Key); err != nil {
			return Pick{}, err
		}
		if err := checkString("zone", opts.Zone); err != nil {
			return Pick{}, err
		}
	}
	if !known {
		if err := checkString("service", service); err != nil {
			return Pick{}, err
		}
	}
	// The pick and the fields of what it picked come back from one locked
	// call: the call sends the fields unless this cache (its epoch and the
	// slots it holds) already has them, so no other goroutine can remove
	// the instance in between and no pick is ever repeated.
	c := r.cache.Load()
	var epoch C.uint64_t
	var slots *C.uint64_t
	var words C.size_t
	if c != nil && len(c.known) > 0 {
		epoch = C.uint64_t(c.epoch)
		slots = (*C.uint64_t)(unsafe.Pointer(&c.known[0]))
		words = C.size_t(len(c.known))
	}
	byRef := C.int(0)
	if known {
		byRef = 1
	}
	ret := C.wp_pick_fields(r.addr, byRef, ref, service, C.uint32_t(strategy), has, opts.Key, opts.Zone, filter, t, epoch, slots, words)
	runtime.KeepAlive(c)
	keepAlive(r)
	if err := status(ret.status, ret.err); err != nil {
		return Pick{}, err
	}
	if !known {
		r.remember(service)
	}
	h := Handle(ret.r.handle)
	panicked := bool(ret.r.panic)
	if ret.json == nil {
		// The call found this slot in c at the registry's current epoch.
		if i := slotIndex(h); c != nil && i < len(c.entries) {
			if inst := c.entries[i].Load(); inst != nil && inst.Handle == h {
				return Pick{Instance: inst, Panic: panicked}, nil
			}
		}
		return Pick{}, newError(CodePanic, "the instance cache disagrees with the registry")
	}
	inst, err := decodeInstance(takeString(ret.json), h)
	if err != nil {
		return Pick{}, err
	}
	r.store(inst, uint64(ret.r.membership_epoch))
	return Pick{Instance: inst, Panic: panicked}, nil
}

// remember caches the reference of a service known to exist.
func (r *Registry) remember(service string) {
	var ref C.uint32_t
	err := withName("service", service, func(s *C.char) error {
		var e *C.waypost_error
		return status(C.waypost_service_ref(r.ptr, s, &ref, &e), e)
	})
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := *r.refs.Load()
	refs := make(map[string]C.uint32_t, len(old)+1)
	for k, v := range old {
		refs[k] = v
	}
	refs[service] = ref
	r.refs.Store(&refs)
}

// DiscoverOptions are the optional arguments of Discover.
type DiscoverOptions struct {
	All    bool // every instance with its health, not only the healthy ones
	Filter Filter
}

// Discovery is the answer of Discover: instances in id order.
type Discovery struct {
	Instances []*Instance // shared and cached: read-only
	Health    []Health    // parallel to Instances
	Panic     bool        // the service is in panic
}

var handleBuffers = sync.Pool{New: func() interface{} { return new(discoverBuffer) }}

type discoverBuffer struct {
	handles []C.waypost_handle
	health  []C.uint8_t
}

// Discover lists a service's instances in id order: the healthy ones, or
// with All every one; opts may be nil.
func (r *Registry) Discover(service string, opts *DiscoverOptions, now time.Time) (Discovery, error) {
	t, err := ms(now)
	if err != nil {
		return Discovery{}, err
	}
	all, hasFilter, filter := false, C.int(0), ""
	if opts != nil {
		all = opts.All
		if !opts.Filter.empty() {
			if filter, err = opts.Filter.json(); err != nil {
				return Discovery{}, err
			}
			hasFilter = 1
		}
	}
	if err := checkString("service", service); err != nil {
		return Discovery{}, err
	}
	buf := handleBuffers.Get().(*discoverBuffer)
	defer handleBuffers.Put(buf)
	var info C.waypost_discovery
	for {
		if cap(buf.handles) == 0 {
			buf.handles = make([]C.waypost_handle, 64)
			buf.health = make([]C.uint8_t, 64)
		}
		ret := C.wp_discover(r.addr, service, C.bool(all), hasFilter, filter, t,
			&buf.handles[0], &buf.health[0], C.size_t(len(buf.handles)))
		keepAlive(r)
		if err := status(ret.status, ret.err); err != nil {
			return Discovery{}, err
		}
		info = ret.info
		if int(info.count) <= len(buf.handles) {
			break
		}
		n := int(info.count) * 2
		buf.handles = make([]C.waypost_handle, n)
		buf.health = make([]C.uint8_t, n)
	}
	n := int(info.count)
	epoch, index := uint64(info.membership_epoch), uint64(info.modify_index)
	key := discoverKey{service, all}
	if hasFilter == 0 {
		if c, ok := r.listings.Load(key); ok {
			if c := c.(*listing); c.index == index {
				return c.copy(), nil
			}
		}
	}
	d := Discovery{Instances: make([]*Instance, 0, n), Health: make([]Health, 0, n), Panic: bool(info.panic)}
	complete := true
	for i := 0; i < n; i++ {
		inst, err := r.lookup(Handle(buf.handles[i]), epoch)
		if err != nil {
			complete = false
			continue // removed by another goroutine since the call
		}
		d.Instances = append(d.Instances, inst)
		d.Health = append(d.Health, Health(buf.health[i]))
	}
	if hasFilter == 0 && complete {
		c := &listing{index: index, d: d}
		r.listings.Store(key, c)
		return c.copy(), nil
	}
	return d, nil
}

// An unfiltered listing is the same while the service's discover stamp
// (its modify index) is (SPEC 5.4): it is kept and copied out instead of
// being rebuilt instance by instance.
type discoverKey struct {
	service string
	all     bool
}

type listing struct {
	index uint64
	d     Discovery
}

func (l *listing) copy() Discovery {
	return Discovery{
		Instances: append([]*Instance(nil), l.d.Instances...),
		Health:    append([]Health(nil), l.d.Health...),
		Panic:     l.d.Panic,
	}
}
