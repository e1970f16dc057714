package etcd

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"example.invalid/waypost"
)

// TestSoakRegistrants keeps 1 000 registrants alive against one local etcd
// for WAYPOST_SOAK_SECONDS (skipped when unset; `make etcd-soak` runs 60 s)
// and requires that no lease was lost: every registrant registered exactly
// once and every key is still there at the end. It logs the CPU the
// registrars used, from this process's rusage.
func TestSoakRegistrants(t *testing.T) {
	seconds, err := strconv.Atoi(os.Getenv("WAYPOST_SOAK_SECONDS"))
	if err != nil || seconds <= 0 {
		t.Skip("set WAYPOST_SOAK_SECONDS to run the keep-alive soak")
	}
	const count = 1000
	etcd := store(t)
	prefix := freshPrefix()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	registrars := make([]*Registrar, count)
	for i := range registrars {
		r := &Registrar{
			Endpoints: []string{etcd.Endpoint()},
			Instance:  waypost.InstanceSpec{ID: fmt.Sprintf("soak-%04d", i), Service: "soak", Address: "10.0.0.1", Port: 8080},
			Prefix:    prefix,
			TTL:       10 * time.Second,
		}
		if err := r.Start(ctx); err != nil {
			t.Fatalf("registrant %d: %v", i, err)
		}
		registrars[i] = r
	}
	before := cpu()
	start := time.Now()
	time.Sleep(time.Duration(seconds) * time.Second)
	used := cpu() - before
	elapsed := time.Since(start)

	keys, err := etcd.Client().GetPrefix(prefix + "/")
	if err != nil {
		t.Fatal(err)
	}
	lost := 0
	for _, r := range registrars {
		if r.Registrations() != 1 || r.Err() != nil {
			lost++
		}
	}
	t.Logf("%d registrants, %v: %d keys present, %d registered again or failed; registrar CPU %.2f s (%.1f%% of one core)",
		count, elapsed.Round(time.Second), len(keys), lost, used.Seconds(), 100*used.Seconds()/elapsed.Seconds())
	if len(keys) != count || lost != 0 {
		t.Fatalf("keys %d of %d, %d registrants lost their lease", len(keys), count, lost)
	}
	for _, r := range registrars {
		if err := r.Close(); err != nil {
			t.Errorf("close %s: %v", r.Key(), err)
		}
	}
}

func cpu() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
