package waypost

// Benchmarks at 1 000 instances: waypost through cgo beside the cgo call
// floor and beside the plain-Go registry in naive_test.go.
//   go test -run '^$' -bench . -benchtime 200000x

import (
	"fmt"
	"testing"
	"time"
)

const fleetSize = 1000

func benchFleet(b *testing.B) (*Registry, *naiveRegistry) {
	b.Helper()
	cfg := DefaultConfig()
	cfg.TTL = 24 * time.Hour // nothing expires while measuring
	cfg.RandomSeed, cfg.Seed = false, 1
	reg, err := NewRegistry(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(reg.Close)
	naive := newNaive(int64(24 * time.Hour / time.Millisecond))
	for i := 0; i < fleetSize; i++ {
		id, addr := fmt.Sprintf("api-%04d", i), fmt.Sprintf("10.0.%d.%d", i/256, i%256)
		if _, err := reg.Register(InstanceSpec{ID: id, Service: "api", Address: addr, Port: 8080, Weight: uint32(1 + i%5)}, at(0)); err != nil {
			b.Fatal(err)
		}
		naive.register(id, "api", addr, 8080, 1+i%5, 0)
	}
	// Warm the instance cache, as any running service would have.
	if _, err := reg.Discover("api", nil, at(0)); err != nil {
		b.Fatal(err)
	}
	if _, err := reg.Pick("api", RoundRobin, nil, at(0)); err != nil {
		b.Fatal(err)
	}
	return reg, naive
}

func BenchmarkCgoFloor(b *testing.B) {
	for i := 0; i < b.N; i++ {
		cgoFloor()
	}
}

func BenchmarkPick(b *testing.B) {
	reg, naive := benchFleet(b)
	now := at(1)
	b.Run("waypost", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := reg.Pick("api", RoundRobin, nil, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	svc, err := reg.Service("api")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("waypost-service-ref", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := svc.Pick(RoundRobin, nil, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("plain-go", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if naive.pickRoundRobin("api", 1) == nil {
				b.Fatal("no pick")
			}
		}
	})
}

func BenchmarkSmoothWRR(b *testing.B) {
	reg, naive := benchFleet(b)
	now := at(1)
	b.Run("waypost", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := reg.Pick("api", WeightedRoundRobin, nil, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("plain-go", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if naive.pickSmoothWRR("api", 1) == nil {
				b.Fatal("no pick")
			}
		}
	})
}

func BenchmarkHeartbeat(b *testing.B) {
	reg, naive := benchFleet(b)
	ids := make([]string, fleetSize)
	for i := range ids {
		ids[i] = fmt.Sprintf("api-%04d", i)
	}
	now := at(1)
	b.Run("waypost", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if err := reg.Heartbeat(ids[i%fleetSize], now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("plain-go", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			naive.heartbeat(ids[i%fleetSize], 1)
		}
	})
}

func BenchmarkDiscover(b *testing.B) {
	reg, naive := benchFleet(b)
	now := at(1)
	b.Run("waypost", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if d, err := reg.Discover("api", nil, now); err != nil || len(d.Instances) != fleetSize {
				b.Fatal(err)
			}
		}
	})
	b.Run("plain-go", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if len(naive.discover("api", 1)) != fleetSize {
				b.Fatal("short discover")
			}
		}
	})
}

func BenchmarkTick(b *testing.B) {
	reg, naive := benchFleet(b)
	b.Run("waypost", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := reg.Tick(at(int64(1 + i>>10))); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("plain-go", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			naive.tick(int64(1 + i>>10))
		}
	})
}

// Worker-local pickers: one goroutine's picker, then handler goroutines
// sharing a PickerPool and the locked registry path under RunParallel.
// Target: a picker's pick <= the cgo floor + 15 ns.
func BenchmarkPicker(b *testing.B) {
	reg, _ := benchFleet(b)
	now := at(1)
	svc, err := reg.Service("api")
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range []Strategy{RoundRobin, Random, WeightedRoundRobin} {
		p, err := svc.Picker()
		if err != nil {
			b.Fatal(err)
		}
		// Warm the picker's instance cache and its smooth-WRR table.
		for i := 0; i < 2*fleetSize; i++ {
			if _, err := p.Pick(s, "", now); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(s.String(), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := p.Pick(s, "", now); err != nil {
					b.Fatal(err)
				}
			}
		})
		p.Close()
	}
	b.Run("cgo floor", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			cgoFloor()
		}
	})
	pool := svc.PickerPool()
	b.Run("parallel pool round_robin", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := pool.Pick(RoundRobin, "", now); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("parallel registry round_robin", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := svc.Pick(RoundRobin, nil, now); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("parallel cgo floor", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				cgoFloor()
			}
		})
	})
}
