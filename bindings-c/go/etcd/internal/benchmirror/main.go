// Command benchmirror measures put → mirror updated and a large mirror
// start for etcd.Mirror; run by bench/stores/bench.mjs against its etcd.
// Prints one JSON object.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"example.invalid/waypost"
	"example.invalid/waypost/etcd"
)

type stats struct {
	Median float64 `json:"median"`
	P99    float64 `json:"p99"`
	N      int     `json:"n"`
}

func of(xs []float64) stats {
	sort.Float64s(xs)
	i := int(0.99 * float64(len(xs)))
	if i >= len(xs) {
		i = len(xs) - 1
	}
	return stats{xs[len(xs)/2], xs[i], len(xs)}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func registry() *waypost.Registry {
	cfg := waypost.DefaultConfig()
	cfg.RandomSeed, cfg.Seed = false, 1
	reg, err := waypost.NewRegistry(cfg)
	if err != nil {
		panic(err)
	}
	return reg
}

func main() {
	endpoint, big := os.Args[1], os.Args[2]
	nBig, _ := strconv.Atoi(os.Args[3])
	n, reps := envInt("BENCH_LAT_N", 300), envInt("BENCH_REPS", 5)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	put := func(key, value string) {
		body := fmt.Sprintf(`{"key":%q,"value":%q}`, b64(key), b64(value))
		resp, err := http.Post(endpoint+"/v3/kv/put", "application/json", strings.NewReader(body))
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
	}

	prefix := "/bench/lat-go"
	seen := make(chan struct{}, 1)
	reg := registry()
	m := &etcd.Mirror{Endpoints: []string{endpoint}, Registry: reg, Prefix: prefix,
		OnChange: func(waypost.Report) {
			select {
			case seen <- struct{}{}:
			default:
			}
		}}
	if err := m.Start(context.Background()); err != nil {
		panic(err)
	}
	<-m.Synced()
	lat := []float64{}
	for i := 0; i < n+20; i++ {
		id := fmt.Sprintf("api-%d", i%50)
		t0 := time.Now()
		put(prefix+"/api/"+id, fmt.Sprintf(`{"id":%q,"service":"api","address":"10.0.0.1","port":%d}`, id, 8080+i))
		<-seen
		if i >= 20 {
			lat = append(lat, float64(time.Since(t0).Nanoseconds())/1e6)
		}
	}
	m.Close()
	reg.Close()

	start := []float64{}
	for r := 0; r < reps; r++ {
		t0 := time.Now()
		reg2 := registry()
		m2 := &etcd.Mirror{Endpoints: []string{endpoint}, Registry: reg2, Prefix: big}
		if err := m2.Start(context.Background()); err != nil {
			panic(err)
		}
		for m2.Feeds() < 2 { // the range applied and the watch open
			time.Sleep(200 * time.Microsecond)
		}
		start = append(start, float64(time.Since(t0).Nanoseconds())/1e6)
		info, _ := reg2.Info()
		if int(info.Instances) != nBig {
			panic(fmt.Sprintf("mirror holds %d", info.Instances))
		}
		m2.Close()
		reg2.Close()
	}
	out, _ := json.Marshal(map[string]stats{"latency": of(lat), "start": of(start)})
	fmt.Println(string(out))
}
