// waypost from Go: the C library through cgo, with an idiomatic API.
// Run it from this directory (after `make c-lib` builds libwaypost.a):
//
//	go run .
package main

import (
	"errors"
	"fmt"
	"log"
	"time"

	"example.invalid/waypost"
)

func main() {
	cfg := waypost.DefaultConfig()
	cfg.TTL = 10 * time.Second
	cfg.RandomSeed, cfg.Seed = false, 7
	reg, err := waypost.NewRegistry(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close()

	start := time.UnixMilli(0) // virtual time; pass time.Time{} for the wall clock
	at := func(ms int64) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	for i, addr := range []string{"10.0.0.1", "10.0.0.2"} {
		spec := waypost.InstanceSpec{ID: fmt.Sprintf("api-%d", i+1), Service: "api", Address: addr, Port: 8080}
		if _, err := reg.Register(spec, at(0)); err != nil {
			log.Fatal(err)
		}
	}
	if err := reg.Heartbeat("api-1", at(9000)); err != nil { // api-2 never heartbeats
		log.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		p, err := reg.Pick("api", waypost.RoundRobin, nil, at(10001))
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("pick %d: %s at %s:%d\n", i, p.Instance.ID, p.Instance.Address, p.Instance.Port)
	}
	events, err := reg.EventsSince(0)
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range events {
		fmt.Printf("event %d %s %s at %d\n", e.Index, e.Type, e.ID, e.AtMs())
	}
	_, err = reg.Pick("billing", waypost.Random, nil, at(10001))
	if errors.Is(err, waypost.ErrUnknownService) {
		fmt.Println("pick billing:", err.(*waypost.Error).Code)
	}
}
