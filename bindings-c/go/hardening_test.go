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

// Goroutines (run under -race by make c-test) hammer one registry with
// mixed operations for a bounded time; afterwards every event index is
// present once and every success a goroutine saw is counted once.
func TestGoroutinesMixedOperationsAddUp(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TTL = 24 * time.Hour
	cfg.RandomSeed, cfg.Seed = false, 3
	cfg.EventRetention = 1_000_000
	reg, err := NewRegistry(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	for i := 0; i < 8; i++ {
		if _, err := reg.Register(InstanceSpec{ID: fmt.Sprintf("base-%d", i), Service: "api", Address: "h", Port: 80}, at(0)); err != nil {
			t.Fatal(err)
		}
	}
	const workers = 16
	var counts [workers][4]uint64 // register, heartbeat, deregister, pick
	stop := time.Now().Add(2 * time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 20_000 && time.Now().Before(stop); i++ {
				id := fmt.Sprintf("t%d", (g*7+i)%48)
				var err error
				op := i % 6
				switch op {
				case 0:
					_, err = reg.Register(InstanceSpec{ID: id, Service: "api", Address: "h", Port: 81, Weight: uint32(1 + i%4)}, at(int64(i)))
				case 1:
					err = reg.Heartbeat(id, at(int64(i)))
				case 2:
					err = reg.Deregister(id, at(int64(i)))
				default:
					_, err = reg.Pick("api", []Strategy{RoundRobin, WeightedRoundRobin, Random}[op-3], nil, at(int64(i)))
					op = 3
				}
				var we *Error
				if errors.As(err, &we) && we.Code == CodeNotFound {
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				counts[g][op]++
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var total [4]uint64
	for g := range counts {
		for k := range total {
			total[k] += counts[g][k]
		}
	}
	text, err := reg.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		LastIndex uint64 `json:"last_index"`
		Services  []struct {
			Metrics struct {
				Picks           []uint64
				Registrations   uint64
				Deregistrations uint64
				Heartbeats      uint64
			}
		}
		Events []struct {
			Index uint64
			Type  string
		}
	}
	if err := json.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatal(err)
	}
	m := doc.Services[0].Metrics
	picks := m.Picks[int(RoundRobin)] + m.Picks[int(WeightedRoundRobin)] + m.Picks[int(Random)]
	if m.Registrations != 8+total[0] || m.Heartbeats != total[1] || m.Deregistrations != total[2] || picks != total[3] {
		t.Fatalf("metrics %+v (picks %d) against calls %v", m, picks, total)
	}
	if uint64(len(doc.Events)) != doc.LastIndex {
		t.Fatalf("%d events retained for last index %d", len(doc.Events), doc.LastIndex)
	}
	for i, e := range doc.Events {
		if e.Index != uint64(i+1) {
			t.Fatalf("event %d has index %d", i, e.Index)
		}
	}
	if _, err := Restore(text); err != nil {
		t.Fatal(err)
	}
	t.Logf("load: %d operations from %d goroutines, %d events, counts add up", total[0]+total[1]+total[2]+total[3], workers, doc.LastIndex)
}

// Every leaf of a real snapshot, mutated: either a registry that writes
// back a document that restores identically and keeps working, or
// invalid_snapshot.
func TestEveryLeafOfASnapshotMutated(t *testing.T) {
	reg := newFleet(t, "a", "b", "c")
	if err := reg.ReportOutcome("b", false, at(100)); err != nil {
		t.Fatal(err)
	}
	if err := reg.Drain("c", true, at(100)); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Pick("api", WeightedRoundRobin, nil, at(100)); err != nil {
		t.Fatal(err)
	}
	text, _ := reg.Snapshot()
	var doc interface{}
	if err := json.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatal(err)
	}
	tried, restored := 0, 0
	var walk func(v interface{}, set func(interface{}))
	walk = func(v interface{}, set func(interface{})) {
		switch x := v.(type) {
		case map[string]interface{}:
			for k, c := range x {
				k := k
				walk(c, func(n interface{}) { x[k] = n })
			}
		case []interface{}:
			for i, c := range x {
				i := i
				walk(c, func(n interface{}) { x[i] = n })
			}
		default:
			for _, n := range []interface{}{nil, 0, -1, 1.5, "", "x", true, 9007199254740993.0, uint64(math.MaxUint64)} {
				set(n)
				bad, _ := json.Marshal(doc)
				set(v)
				tried++
				copy, err := Restore(string(bad))
				if err != nil {
					wantCode(t, err, CodeInvalidSnapshot)
					continue
				}
				restored++
				again, err := copy.Snapshot()
				if err != nil {
					t.Fatal(err)
				}
				if back, err := Restore(again); err != nil {
					t.Fatalf("%s: a restored registry's snapshot is refused: %v", bad, err)
				} else {
					back.Close()
				}
				if _, err := copy.Register(InstanceSpec{ID: "z", Service: "api", Address: "h", Port: 1}, at(200)); err != nil {
					t.Fatal(err)
				}
				copy.Close()
			}
		}
	}
	walk(doc, func(interface{}) {})
	if restored == 0 || restored == tried || tried < 500 {
		t.Fatalf("%d tried, %d restored", tried, restored)
	}
	t.Logf("leaf mutations: %d tried, %d restored cleanly, %d invalid_snapshot", tried, restored, tried-restored)
}
