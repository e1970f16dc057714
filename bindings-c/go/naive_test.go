package waypost

// A plain-Go registry written the obvious way — an RWMutex over maps, a
// fresh sorted slice per discover, a full sweep per tick — as the baseline
// the benchmarks hold waypost against.

import (
	"sort"
	"sync"
)

type naiveInstance struct {
	id, service, address string
	port, weight         int
	lastRenewal          int64
	healthy              bool
	current              int // smooth WRR state
}

type naiveRegistry struct {
	mu       sync.RWMutex
	ttl      int64
	byID     map[string]*naiveInstance
	services map[string]map[string]*naiveInstance
	rr       map[string]int
}

func newNaive(ttl int64) *naiveRegistry {
	return &naiveRegistry{ttl: ttl, byID: map[string]*naiveInstance{},
		services: map[string]map[string]*naiveInstance{}, rr: map[string]int{}}
}

func (r *naiveRegistry) register(id, service, address string, port, weight int, now int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	inst := &naiveInstance{id: id, service: service, address: address, port: port, weight: weight, lastRenewal: now, healthy: true}
	r.byID[id] = inst
	if r.services[service] == nil {
		r.services[service] = map[string]*naiveInstance{}
	}
	r.services[service][id] = inst
}

func (r *naiveRegistry) heartbeat(id string, now int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	inst, ok := r.byID[id]
	if ok {
		inst.lastRenewal, inst.healthy = now, true
	}
	return ok
}

// discover returns the healthy instances in id order.
func (r *naiveRegistry) discover(service string, now int64) []*naiveInstance {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := []*naiveInstance{}
	for _, inst := range r.services[service] {
		if inst.healthy && now <= inst.lastRenewal+r.ttl {
			out = append(out, inst)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// tick sweeps every instance for expired leases.
func (r *naiveRegistry) tick(now int64) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var expired []string
	for _, inst := range r.byID {
		if inst.healthy && now > inst.lastRenewal+r.ttl {
			inst.healthy = false
			expired = append(expired, inst.id)
		}
	}
	return expired
}

// pickSmoothWRR is nginx's smooth weighted round robin over the healthy
// instances in id order.
func (r *naiveRegistry) pickSmoothWRR(service string, now int64) *naiveInstance {
	candidates := r.discover(service, now)
	r.mu.Lock()
	defer r.mu.Unlock()
	var best *naiveInstance
	total := 0
	for _, inst := range candidates {
		inst.current += inst.weight
		total += inst.weight
		if best == nil || inst.current > best.current {
			best = inst
		}
	}
	if best != nil {
		best.current -= total
	}
	return best
}

func (r *naiveRegistry) pickRoundRobin(service string, now int64) *naiveInstance {
	candidates := r.discover(service, now)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(candidates) == 0 {
		return nil
	}
	c := r.rr[service]
	r.rr[service] = c + 1
	return candidates[c%len(candidates)]
}
