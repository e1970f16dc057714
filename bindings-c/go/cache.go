package waypost

import "sync/atomic"

// instanceCache maps slot indexes to immutable Instance values for one
// membership epoch: picks and discovers return cached pointers instead of
// copying strings across cgo on every call. Readers take no lock.
type instanceCache struct {
	epoch   uint64
	entries []atomic.Pointer[Instance]
}

func slotIndex(h Handle) int { return int(uint32(h)) }

// lookup returns the cached instance for a handle seen at epoch, fetching
// and caching it on a miss.
func (r *Registry) lookup(h Handle, epoch uint64) (*Instance, error) {
	if c := r.cache.Load(); c != nil && c.epoch == epoch {
		if i := slotIndex(h); i < len(c.entries) {
			if inst := c.entries[i].Load(); inst != nil && inst.Handle == h {
				return inst, nil
			}
		}
	}
	st, fetched, err := r.fetch(h)
	if err != nil {
		return nil, err
	}
	inst := new(Instance)
	*inst = st.Instance
	r.store(inst, fetched)
	return inst, nil
}

// store caches inst as fetched at epoch, unless the cache has moved on.
func (r *Registry) store(inst *Instance, epoch uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.cache.Load()
	i := slotIndex(inst.Handle)
	switch {
	case c != nil && c.epoch > epoch:
		return
	case c == nil || c.epoch < epoch:
		c = &instanceCache{epoch: epoch, entries: make([]atomic.Pointer[Instance], i+64)}
	case i >= len(c.entries):
		grown := &instanceCache{epoch: epoch, entries: make([]atomic.Pointer[Instance], 2*i+64)}
		for j := range c.entries {
			grown.entries[j].Store(c.entries[j].Load())
		}
		c = grown
	}
	c.entries[i].Store(inst)
	r.cache.Store(c)
}
