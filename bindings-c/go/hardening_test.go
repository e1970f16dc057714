package waypost

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"
)

// pickCounts reads the per-strategy pick counters of every service from a
// snapshot: what the registry itself accounted for.
func pickCounts(t *testing.T, reg *Registry) map[string][]uint64 {
	t.Helper()
	text, err := reg.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services []struct {
			Name    string
			Metrics struct{ Picks []uint64 }
		}
	}
	if err := json.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string][]uint64{}
	for _, s := range doc.Services {
		out[s.Name] = s.Metrics.Picks
	}
	return out
}

// A pick whose instance another goroutine removed used to pick again, up to
// eight times, each retry consuming round-robin and RNG state that no other
// language would: now every pick the registry counts is a pick returned.
func TestPicksAreNeverRepeatedWhileOthersRemoveInstances(t *testing.T) {
	reg := newFleet(t, "a", "b", "c", "d")
	stop := time.Now().Add(time.Second)
	var mu sync.Mutex
	returned := uint64(0)
	var wg sync.WaitGroup
	failures := make(chan error, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			n := uint64(0)
			for i := 0; time.Now().Before(stop); i++ {
				if g%2 == 0 {
					id := fmt.Sprintf("x%d-%d", g, i%16)
					spec := InstanceSpec{ID: id, Service: "api", Address: "10.0.1.1", Port: 80}
					if _, err := reg.Register(spec, at(1)); err != nil {
						failures <- err
						return
					}
					if err := reg.Deregister(id, at(1)); err != nil {
						failures <- err
						return
					}
					continue
				}
				p, err := reg.Pick("api", RoundRobin, nil, at(1))
				if err != nil {
					failures <- err
					return
				}
				if p.Instance == nil || p.Instance.Service != "api" || p.Instance.ID == "" {
					failures <- fmt.Errorf("pick returned %+v", p.Instance)
					return
				}
				n++
			}
			mu.Lock()
			returned += n
			mu.Unlock()
		}(g)
	}
	wg.Wait()
	close(failures)
	for err := range failures {
		t.Fatal(err)
	}
	counted := pickCounts(t, reg)["api"][int(RoundRobin)]
	if counted != returned || returned == 0 {
		t.Fatalf("the registry counted %d round-robin picks, callers got %d", counted, returned)
	}
}

// It used to answer compacted: `after + 1` wrapped in the core.
func TestEventsSinceTheLargestIndexIsEmpty(t *testing.T) {
	reg := newFleet(t, "a", "b")
	for _, after := range []uint64{reg.mustLastIndex(t), math.MaxUint64 - 1, math.MaxUint64} {
		events, err := reg.EventsSince(after)
		if err != nil || len(events) != 0 {
			t.Fatalf("EventsSince(%d) = %v, %v", after, events, err)
		}
	}
}

func (r *Registry) mustLastIndex(t *testing.T) uint64 {
	t.Helper()
	info, err := r.Info()
	if err != nil {
		t.Fatal(err)
	}
	return info.LastIndex
}

// "" is none in every binding (SPEC §5): a consistent_hash pick needs a
// real key, and an empty zone prefers nothing.
func TestAnEmptyKeyOrZoneIsNone(t *testing.T) {
	reg := newFleet(t, "a", "b")
	_, err := reg.Pick("api", ConsistentHash, &PickOptions{Key: ""}, at(1))
	wantCode(t, err, CodeInvalidArgument)
	p, err := reg.Pick("api", FirstAvailable, &PickOptions{Zone: ""}, at(1))
	if err != nil || p.Instance.ID != "a" {
		t.Fatalf("%v %v", p, err)
	}
}

// A snapshot that contradicts itself is refused by every binding.
func TestContradictorySnapshotsAreRefused(t *testing.T) {
	reg := newFleet(t, "a", "b")
	text, err := reg.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]interface{}
	if err := json.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatal(err)
	}
	doc["last_index"] = uint64(math.MaxUint64)
	bad, _ := json.Marshal(doc)
	_, err = Restore(string(bad))
	var we *Error
	if !errors.As(err, &we) || we.Code != CodeInvalidSnapshot {
		t.Fatalf("restored last_index 2^64-1: %v", err)
	}
}
