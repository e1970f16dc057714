package storetest

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Sniff is a loopback proxy to a server that keeps how each connection
// began, so a test sees which protocol a client spoke (an HTTP/2 preface,
// an HTTP/1.1 request line).
type Sniff struct {
	ln     net.Listener
	head   int
	mu     sync.Mutex
	starts []string
	wg     sync.WaitGroup
}

// StartSniff forwards to target (host:port) and keeps the first head bytes
// of each connection; the test's cleanup stops it.
func StartSniff(t testing.TB, target string, head int) *Sniff {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Sniff{ln: ln, head: head}
	acceptEach(ln, &s.wg, func(c net.Conn) {
		defer c.Close()
		up, err := net.Dial("tcp", target)
		if err != nil {
			return
		}
		defer up.Close()
		first := make([]byte, s.head)
		n, _ := io.ReadFull(c, first)
		s.mu.Lock()
		s.starts = append(s.starts, string(first[:n]))
		s.mu.Unlock()
		if _, err := up.Write(first[:n]); err != nil {
			return
		}
		go func() { _, _ = io.Copy(c, up); c.Close() }()
		_, _ = io.Copy(up, c)
	})
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

// URL is the proxy's http:// address.
func (s *Sniff) URL() string { return "http://" + s.ln.Addr().String() }

// Starts are the first bytes of each connection so far.
func (s *Sniff) Starts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string{}, s.starts...)
}
