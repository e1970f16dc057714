// A Go HTTP service that registers itself in etcd.
//
//	go run ./examples/fleet/go -id go-1 -port 8021 -etcd http://127.0.0.1:2379
//
// /hello answers with its id, /health with 200 (503 while draining);
// /admin/fail?rate=0.5 fails that share of /hello calls, /admin/drain?on=1
// marks it `maintenance` in etcd so mirrors send it no new traffic,
// /admin/status?status=critical writes any source status. A status change is
// Registrar.Update, so a registration after a lost lease keeps it.
// It also mirrors the whole fleet from etcd (etcd.Mirror into a waypost
// Registry) — what a Go client of the other services would do — and shows
// that view at /mirror, with the instant each change reached it.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"example.invalid/waypost"
	"example.invalid/waypost/etcd"
)

func env(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func main() {
	id := flag.String("id", env("ID", "go-1"), "instance id")
	service := flag.String("service", env("SERVICE", "hello-go"), "service name")
	port := flag.Int("port", atoi(env("PORT", "8021")), "port on 127.0.0.1")
	endpoints := flag.String("etcd", env("ETCD", "http://127.0.0.1:2379"), "comma-separated etcd endpoints")
	weight := flag.Int("weight", atoi(env("WEIGHT", "1")), "weight")
	zone := flag.String("zone", env("ZONE", "zone-a"), "zone")
	ttl := flag.Int("ttl", atoi(env("TTL", "3")), "lease TTL in seconds")
	failRate := flag.Float64("fail-rate", 0, "share of /hello calls that fail")
	flag.Parse()

	var mu sync.Mutex
	draining := false
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	spec := waypost.InstanceSpec{ID: *id, Service: *service, Address: "127.0.0.1", Port: uint16(*port),
		Weight: uint32(*weight), Zone: *zone, Meta: map[string]string{"lang": "go"}}
	registrar := &etcd.Registrar{Endpoints: strings.Split(*endpoints, ","), Instance: spec, TTL: time.Duration(*ttl) * time.Second}
	reply := func(w http.ResponseWriter, code int, body any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(body)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		fail := rand.Float64() < *failRate
		mu.Unlock()
		if fail {
			reply(w, 503, map[string]any{"id": *id, "error": "injected failure"})
			return
		}
		reply(w, 200, map[string]any{"id": *id, "lang": "go", "hello": "world"})
	})
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		code := 200
		if draining {
			code = 503
		}
		reply(w, code, map[string]any{"id": *id, "draining": draining})
	})
	mux.HandleFunc("/admin/fail", func(w http.ResponseWriter, r *http.Request) {
		rate, err := strconv.ParseFloat(r.URL.Query().Get("rate"), 64)
		if err != nil {
			rate = 0.5
		}
		mu.Lock()
		*failRate = rate
		mu.Unlock()
		reply(w, 200, map[string]any{"id": *id, "fail_rate": rate})
	})
	// Under the registrar's lease, and kept for any later registration.
	setStatus := func(w http.ResponseWriter, r *http.Request, status string) {
		if err := registrar.Update(r.Context(), spec, status); err != nil {
			reply(w, 502, map[string]any{"id": *id, "error": err.Error()})
			return
		}
		mu.Lock()
		defer mu.Unlock()
		reply(w, 200, map[string]any{"id": *id, "status": status, "draining": draining})
	}
	mux.HandleFunc("/admin/drain", func(w http.ResponseWriter, r *http.Request) {
		on := r.URL.Query().Get("on") != "0"
		mu.Lock()
		draining = on
		mu.Unlock()
		status := "passing"
		if on {
			status = "maintenance"
		}
		setStatus(w, r, status)
	})
	mux.HandleFunc("/admin/status", func(w http.ResponseWriter, r *http.Request) {
		status := r.URL.Query().Get("status")
		if status == "" {
			reply(w, 400, map[string]any{"error": "status: one of passing, warning, critical, maintenance"})
			return
		}
		setStatus(w, r, status)
	})

	peers, err := newPeerView(strings.Split(*endpoints, ","))
	if err == nil {
		err = peers.mirror.Start(ctx)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, *id+": mirror:", err)
		os.Exit(1)
	}
	go peers.watch(ctx)
	mux.HandleFunc("/mirror", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, peers.state())
	})

	server := &http.Server{Addr: fmt.Sprintf("127.0.0.1:%d", *port), Handler: mux}
	if err := registrar.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, *id+":", err)
		os.Exit(1)
	}
	fmt.Printf("%s: %s on 127.0.0.1:%d, waypost etcd.Registrar, lease TTL %v\n", *id, *service, *port, registrar.GrantedTTL())
	done := make(chan struct{})
	go func() { <-ctx.Done(); registrar.Close(); peers.mirror.Close(); server.Close(); close(done) }()
	if err := server.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, *id+":", err)
		stop()
	}
	<-done
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }
