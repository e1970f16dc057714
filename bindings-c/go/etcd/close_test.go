package etcd

import (
	"context"
	"testing"

	"example.invalid/waypost"
	"example.invalid/waypost/internal/storetest"
)

// A close whose first call is being connected (a TLS handshake that never
// ends), or waits for an answer, returns at once and leaves nothing behind.
func TestCloseWhileTheFirstCallStalls(t *testing.T) {
	stall := storetest.StartStall(t)
	storetest.NoLeaks(t)
	t.Run("Mirror", func(t *testing.T) {
		stall.CloseWhileStalled(t, func(url string) func() {
			reg, err := waypost.NewRegistry(waypost.DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			m := &Mirror{Endpoints: []string{url}, Registry: reg, Timeout: storetest.LongTimeout}
			if err := m.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			return func() { m.Close(); reg.Close() }
		}, "http", "https")
	})
	t.Run("Registrar", func(t *testing.T) {
		stall.CloseWhileStalled(t, func(url string) func() {
			// Start blocks on the first registration: its context ends it.
			ctx, cancel := context.WithCancel(context.Background())
			r := &Registrar{Endpoints: []string{url}, Instance: api1, Timeout: storetest.LongTimeout}
			failed := make(chan error, 1)
			go func() { failed <- r.Start(ctx) }()
			return func() {
				cancel()
				if err := <-failed; err == nil {
					t.Error("Start succeeded against a server that never answers")
				}
				r.Close()
			}
		}, "http", "https")
	})
}
