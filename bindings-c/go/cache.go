package waypost

import "sync/atomic"

// instanceCache maps slot indexes to immutable Instance values for one
// membership epoch: picks and discovers return cached pointers instead of
// copying strings across cgo on every call. Readers take no lock.
type instanceCache struct {
	epoch   uint64
	entries []atomic.Pointer[Instance]
	// known has bit i%64 of word i/64 set once entries[i] is stored: a
	// pick hands it to C, which sends the fields of a slot not in it.
	known []atomic.Uint64
}

func newCache(epoch uint64, n int) *instanceCache {
	n = (n + 63) &^ 63
	return &instanceCache{epoch: epoch, entries: make([]atomic.Pointer[Instance], n), known: make([]atomic.Uint64, n/64)}
}

// mark records that entries[i] is stored.
func (c *instanceCache) mark(i int) {
	w := &c.known[i/64]
	bit := uint64(1) << (uint(i) % 64)
	for {
		old := w.Load()
		if old&bit != 0 || w.CompareAndSwap(old, old|bit) {
			return
		}
	}
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
		c = newCache(epoch, i+64)
	case i >= len(c.entries):
		grown := newCache(epoch, 2*i+64)
		for j := range c.entries {
			grown.entries[j].Store(c.entries[j].Load())
		}
		for j := range c.known {
			grown.known[j].Store(c.known[j].Load())
		}
		c = grown
	}
	c.entries[i].Store(inst)
	c.mark(i)
	r.cache.Store(c)
}
