package waypost

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func pickerFleet(t *testing.T, n int) (*Registry, []Handle) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.TTL = time.Hour
	cfg.RandomSeed, cfg.Seed = false, 7
	reg, err := NewRegistry(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	handles := make([]Handle, n)
	for i := range handles {
		h, err := reg.Register(InstanceSpec{ID: fmt.Sprintf("p%d", i), Service: "api", Address: "10.0.0.1", Port: 80 + uint16(i)}, at(0))
		if err != nil {
			t.Fatal(err)
		}
		handles[i] = h
	}
	return reg, handles
}

func TestPickerPicksAndSeesRemovals(t *testing.T) {
	reg, _ := pickerFleet(t, 3)
	svc, err := reg.Service("api")
	if err != nil {
		t.Fatal(err)
	}
	p, err := svc.Picker()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	seen := map[string]bool{}
	for i := 0; i < 3; i++ {
		pick, err := p.Pick(RoundRobin, "", at(1))
		if err != nil {
			t.Fatal(err)
		}
		seen[pick.Instance.ID] = true
	}
	if len(seen) != 3 {
		t.Fatalf("round robin visited %v", seen)
	}
	if _, err := p.Pick(ConsistentHash, "", at(1)); err == nil {
		t.Fatal("consistent_hash without a key was accepted")
	}
	if err := reg.Deregister("p1", at(2)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		pick, err := p.Pick(Random, "", at(2))
		if err != nil {
			t.Fatal(err)
		}
		if pick.Instance.ID == "p1" {
			t.Fatal("picked a removed instance")
		}
		if err := p.Begin(pick.Instance.Handle); err != nil {
			t.Fatal(err)
		}
		if err := p.End(pick.Instance.Handle); err != nil {
			t.Fatal(err)
		}
		if err := p.ReportOutcome(pick.Instance.Handle, true, at(2)); err != nil {
			t.Fatal(err)
		}
	}
	p.Close()
	p.Close()
	if _, err := p.Pick(RoundRobin, "", at(3)); err == nil {
		t.Fatal("a closed picker picked")
	}
}

// Goroutines pick through their own pickers and a pool, count in-flight
// calls and report outcomes while another removes and re-registers
// instances: no pick returns an instance whose removal had completed
// before the pick began.
func TestPickersUnderChurn(t *testing.T) {
	const n = 8
	reg, handles := pickerFleet(t, n)
	svc, err := reg.Service("api")
	if err != nil {
		t.Fatal(err)
	}
	pool := svc.PickerPool()
	var removed [400]atomic.Uint64
	var count atomic.Int32
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	worker := func(usePool bool) {
		defer wg.Done()
		p, err := svc.Picker()
		if err != nil {
			errs <- err
			return
		}
		defer p.Close()
		strategies := []Strategy{RoundRobin, Random, WeightedRoundRobin, LeastRequest}
		for i := 0; !stop.Load(); i++ {
			seen := int(count.Load())
			var pick Pick
			var err error
			if usePool {
				pick, err = pool.Pick(strategies[i%4], "", at(int64(i/64)))
			} else {
				pick, err = p.Pick(strategies[i%4], "", at(int64(i/64)))
			}
			if err != nil {
				errs <- err
				return
			}
			for k := 0; k < seen; k++ {
				if Handle(removed[k].Load()) == pick.Instance.Handle {
					errs <- fmt.Errorf("picked %s after its removal", pick.Instance.ID)
					return
				}
			}
			_ = p.Begin(pick.Instance.Handle)
			_ = p.End(pick.Instance.Handle)
			if err := p.ReportOutcome(pick.Instance.Handle, i%7 != 0, at(int64(i/64))); err != nil {
				errs <- err
				return
			}
		}
	}
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go worker(i%2 == 1)
	}
	deadline := time.Now().Add(1500 * time.Millisecond)
	for k := 0; k < len(removed) && time.Now().Before(deadline); k++ {
		i := k % n
		id := fmt.Sprintf("p%d", i)
		if err := reg.Deregister(id, at(0)); err != nil {
			t.Fatal(err)
		}
		removed[k].Store(uint64(handles[i]))
		count.Store(int32(k + 1))
		time.Sleep(time.Millisecond)
		h, err := reg.Register(InstanceSpec{ID: id, Service: "api", Address: "10.0.0.1", Port: 80 + uint16(i)}, at(0))
		if err != nil {
			t.Fatal(err)
		}
		handles[i] = h
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if count.Load() < 10 {
		t.Fatalf("only %d removals ran", count.Load())
	}
}

// picksCounted reads the registry's round-robin pick count for service
// from its metrics (pickers fold theirs in at each refresh).
func picksCounted(t *testing.T, reg *Registry, service string) uint64 {
	t.Helper()
	text, err := reg.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	prefix := `waypost_picks_total{service="` + service + `",strategy="round_robin"} `
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, prefix) {
			n, err := strconv.ParseUint(strings.TrimPrefix(line, prefix), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	return 0
}

// While another goroutine removes and re-registers instances, every pick
// of a picker is one step of its sequence (the picks the registry counts
// are exactly the picks answered: none is repeated because its instance
// vanished) and hands back the fields of the instance it picked, from the
// table it picked from.
func TestPickerPickIsOneStepUnderDeregistration(t *testing.T) {
	const n = 12
	cfg := DefaultConfig()
	cfg.TTL = time.Hour
	cfg.RandomSeed, cfg.Seed = false, 11
	reg, err := NewRegistry(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	spec := func(i int) InstanceSpec {
		return InstanceSpec{ID: fmt.Sprintf("d%02d", i), Service: "dereg", Address: fmt.Sprintf("10.7.0.%d", i), Port: 9000 + uint16(i)}
	}
	for i := 0; i < n; i++ {
		if _, err := reg.Register(spec(i), at(0)); err != nil {
			t.Fatal(err)
		}
	}
	svc, err := reg.Service("dereg")
	if err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	churned := make(chan error, 1)
	go func() {
		var err error
		for k := 0; !stop.Load() && err == nil; k++ {
			i := k % n
			if err = reg.Deregister(spec(i).ID, at(0)); err == nil {
				_, err = reg.Register(spec(i), at(0))
			}
		}
		churned <- err
	}()
	const workers = 3
	answered := make([]uint64, workers)
	pickers := make([]*Picker, workers)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		p, err := svc.Picker()
		if err != nil {
			t.Fatal(err)
		}
		pickers[w] = p
		wg.Add(1)
		go func(w int, p *Picker) {
			defer wg.Done()
			for i := 0; i < 3000; i++ {
				pick, err := p.Pick(RoundRobin, "", at(0))
				if err != nil {
					var e *Error
					if errors.As(err, &e) && (e.Code == CodeNoEligibleInstance || e.Code == CodeUnknownService) {
						continue
					}
					errs <- err
					return
				}
				answered[w]++
				inst := pick.Instance
				var k int
				if _, err := fmt.Sscanf(inst.ID, "d%02d", &k); err != nil || inst.Port != 9000+uint16(k) ||
					inst.Address != fmt.Sprintf("10.7.0.%d", k) || inst.Service != "dereg" {
					errs <- fmt.Errorf("picked %+v: fields of another instance", inst)
					return
				}
			}
		}(w, p)
	}
	wg.Wait()
	stop.Store(true)
	if err := <-churned; err != nil {
		t.Fatal(err)
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// A change makes each picker refresh at its next pick (folding its
	// count in); that pick is a random one, counted apart.
	if _, err := reg.Register(spec(n), at(1)); err != nil {
		t.Fatal(err)
	}
	var total uint64
	for w, p := range pickers {
		if _, err := p.Pick(Random, "", at(1)); err != nil {
			t.Fatal(err)
		}
		p.Close()
		total += answered[w]
	}
	if got := picksCounted(t, reg, "dereg"); got != total || total == 0 {
		t.Fatalf("the registry counted %d round-robin picker steps for %d picks answered", got, total)
	}
}

// A picker made with a zone and filter draws from what Pick draws from with
// the same options.
func TestPickerWithOptionsPicksAsPickDoes(t *testing.T) {
	reg, _ := pickerFleet(t, 0)
	for i := 0; i < 8; i++ {
		s := InstanceSpec{ID: fmt.Sprintf("z%d", i), Service: "zoned", Address: "10.0.0.1", Port: 80, Zone: []string{"a", "b"}[i%2]}
		if i%3 != 0 {
			s.Tags = []string{"x"}
		}
		if _, err := reg.Register(s, at(0)); err != nil {
			t.Fatal(err)
		}
	}
	svc, err := reg.Service("zoned")
	if err != nil {
		t.Fatal(err)
	}
	opts := PickOptions{Zone: "b", Filter: Filter{Tags: []string{"x"}}}
	p, err := svc.PickerWith(&opts)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	pool := svc.PickerPoolWith(&opts)
	want := map[string]bool{"z1": true, "z5": true, "z7": true}
	for i := 0; i < 30; i++ {
		pick, err := p.Pick(RoundRobin, "", at(1))
		if err != nil {
			t.Fatal(err)
		}
		if !want[pick.Instance.ID] {
			t.Fatalf("picked %s outside zone b with tag x", pick.Instance.ID)
		}
		key := fmt.Sprintf("user-%d", i)
		got, err := pool.Pick(ConsistentHash, key, at(1))
		if err != nil {
			t.Fatal(err)
		}
		keyed := opts
		keyed.Key = key
		ref, err := reg.Pick("zoned", ConsistentHash, &keyed, at(1))
		if err != nil {
			t.Fatal(err)
		}
		if got.Instance.ID != ref.Instance.ID {
			t.Fatalf("key %s: picker %s, registry %s", key, got.Instance.ID, ref.Instance.ID)
		}
	}
	if _, err := svc.PickerWith(&PickOptions{Key: "k"}); err == nil {
		t.Fatal("a picker took a key at construction")
	}
}
