package waypost

import (
	"fmt"
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
