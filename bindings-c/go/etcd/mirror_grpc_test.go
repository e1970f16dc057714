package etcd

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"example.invalid/waypost/internal/storetest"
)

// fleetJSON is the wire form of instance id, i giving it an address of its own.
func fleetJSON(id string, i int) string {
	return fmt.Sprintf(`{"id":%q,"service":"api","address":"10.%d.%d.1","port":8080}`, id, i/256, i%256)
}

func TestMirrorReadsTheRangeOverGRPCByDefault(t *testing.T) {
	etcd := store(t)
	const n = 2000
	for _, gateway := range []bool{false, true} {
		t.Run(fmt.Sprintf("GatewayRange=%v", gateway), func(t *testing.T) {
			prefix := freshPrefix()
			putMany(t, etcd.Client(), n, func(i int) string { return fmt.Sprintf("%s/api/api-%d", prefix, i) },
				func(i int) string { return fleetJSON(fmt.Sprintf("api-%d", i), i) })
			sniff := storetest.StartSniff(t, strings.TrimPrefix(etcd.Endpoint(), "http://"), len(h2Preface))
			reg := newReg(t)
			m := &Mirror{Endpoints: []string{sniff.URL()}, Registry: reg, Prefix: prefix, GatewayRange: gateway}
			if err := m.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			waitSynced(t, m)
			if got := len(ids(reg)); got != n {
				t.Fatalf("%d instances, want %d", got, n)
			}
			etcd.Client().Put(prefix+"/api/api-new", fleetJSON("api-new", n), "")
			eventually(t, 5*time.Second, "the watch to follow", func() bool { return len(ids(reg)) == n+1 })
			h2, ranges := 0, 0
			for _, start := range sniff.Starts() {
				if start == h2Preface {
					h2++
				} else if strings.HasPrefix(start, "POST /v3/kv/range") {
					ranges++
				}
			}
			if gateway && (h2 != 0 || ranges != 1) || !gateway && (h2 != 1 || ranges != 0) {
				t.Fatalf("%d HTTP/2 connections, %d gateway ranges", h2, ranges)
			}
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// An endpoint that answers HTTP/1.1 only: the gRPC range fails there, is
// reported, and the mirror moves on to a member that answers.
func TestMirrorEndpointWithoutGRPCFailsOver(t *testing.T) {
	etcd := store(t)
	noLeaks(t)
	prefix := freshPrefix()
	if _, err := etcd.Client().Put(prefix+"/api/api-1", instJSON(1, ""), ""); err != nil {
		t.Fatal(err)
	}
	http1 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }))
	defer http1.Close()

	reg := newReg(t)
	alone := &Mirror{Endpoints: []string{http1.URL}, Registry: reg, Prefix: prefix}
	if err := alone.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "an error reported", func() bool { return alone.Err() != nil })
	var ee *Error
	if err := alone.Err(); !errors.As(err, &ee) || !strings.Contains(err.Error(), http1.URL) || !strings.Contains(err.Error(), "does not speak HTTP/2") {
		t.Fatalf("want an *etcd.Error naming the endpoint and gRPC: %v", err)
	}
	select {
	case <-alone.Synced():
		t.Fatal("synced without a member that speaks gRPC")
	default:
	}
	if err := alone.Close(); err == nil {
		t.Fatal("Close should return the failure still standing")
	}

	both := &Mirror{Endpoints: []string{http1.URL, etcd.Endpoint()}, Registry: newReg(t), Prefix: prefix}
	if err := both.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitSynced(t, both)
	if got := ids(both.Registry); len(got) != 1 || both.Endpoint() != etcd.Endpoint() {
		t.Fatalf("%v from %s", got, both.Endpoint())
	}
	if err := both.Close(); err != nil {
		t.Fatal(err)
	}
}
