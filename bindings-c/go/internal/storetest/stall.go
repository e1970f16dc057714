package storetest

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Stall is a loopback server that accepts connections, reads what comes and
// never writes: over http a call waits for its answer, over https the TLS
// handshake never ends (the connection is still being opened).
type Stall struct {
	Port     int
	accepted atomic.Int64
	open     atomic.Int64
	ln       net.Listener
	wg       sync.WaitGroup
}

// StartStall listens on a free loopback port; the test's cleanup stops it
// (after NoLeaks's check when NoLeaks was called first).
func StartStall(t testing.TB) *Stall {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Stall{Port: ln.Addr().(*net.TCPAddr).Port, ln: ln}
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	acceptEach(ln, &s.wg, func(c net.Conn) {
		s.accepted.Add(1)
		s.open.Add(1)
		mu.Lock()
		conns[c] = true
		mu.Unlock()
		buf := make([]byte, 4096)
		for {
			if _, err := c.Read(buf); err != nil {
				break // the client closed it (or the stall server stopped)
			}
		}
		c.Close()
		mu.Lock()
		delete(conns, c)
		mu.Unlock()
		s.open.Add(-1)
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// URL is the server's address with scheme "http" or "https".
func (s *Stall) URL(scheme string) string { return fmt.Sprintf("%s://127.0.0.1:%d", scheme, s.Port) }

// Accepted counts the connections accepted so far.
func (s *Stall) Accepted() int64 { return s.accepted.Load() }

// Open counts the connections the client has not closed.
func (s *Stall) Open() int64 { return s.open.Load() }

// CloseMoments are when a test closes a helper after starting it: at once,
// a few ms later (the connection being opened), or once the server holds
// the call (-1).
var CloseMoments = []time.Duration{0, time.Millisecond, 3 * time.Millisecond, 10 * time.Millisecond, -1}

// CloseBound is how long a close may take against a Stall: generous on a
// loaded machine, far below the helpers' timeouts the tests set (LongTimeout).
const CloseBound = 15 * time.Second

// LongTimeout is every helper timeout in those tests: a close must not wait for it.
const LongTimeout = 2 * time.Minute

// CloseWhileStalled starts a helper against s (with start) for each scheme
// and moment, closes it (with close), and fails when a close takes
// CloseBound or the client leaves a connection open.
func (s *Stall) CloseWhileStalled(t *testing.T, start func(url string) (closeIt func()), schemes ...string) {
	t.Helper()
	for _, scheme := range schemes {
		for _, moment := range CloseMoments {
			seen := s.Accepted()
			closeIt := start(s.URL(scheme))
			if moment < 0 {
				Eventually(t, 10*time.Second, scheme+": the server to hold the call", func() bool { return s.Accepted() > seen })
			} else {
				time.Sleep(moment)
			}
			done := make(chan struct{})
			t0 := time.Now()
			go func() { closeIt(); close(done) }()
			select {
			case <-done:
			case <-time.After(CloseBound):
				t.Fatalf("%s at %v: close still waiting after %v", scheme, moment, CloseBound)
			}
			t.Logf("%s at %v: closed in %v", scheme, moment, time.Since(t0).Round(time.Millisecond))
		}
	}
	Eventually(t, 5*time.Second, "every connection the helper opened closed", func() bool { return s.Open() == 0 })
}

// acceptEach serves every connection ln accepts with handle, each in its
// own goroutine counted in wg, until ln is closed.
func acceptEach(ln net.Listener, wg *sync.WaitGroup, handle func(net.Conn)) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				handle(c)
			}()
		}
	}()
}
