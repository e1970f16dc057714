// Package storetest runs the loopback stand-in of Consul's and the
// Kubernetes API server's HTTP APIs (tests/fakes/store_server.py) for the
// Go tests: a child process on 127.0.0.1 and a free port, stopped when its
// stdin closes and killed by PID in the test's cleanup whatever happens.
package storetest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// Server is one running stand-in.
type Server struct {
	URL    string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	client *http.Client
}

// Root is the repository root.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "..")
}

// Start runs the stand-in (with a bearer token for the Kubernetes API when
// token is not empty); the test's cleanup stops it.
func Start(t testing.TB, token string) *Server {
	t.Helper()
	args := []string{filepath.Join(Root(), "tests", "fakes", "store_server.py"), "--max-seconds", "120"}
	if token != "" {
		args = append(args, "--token", token)
	}
	cmd := exec.Command("python3", args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("store server: %v", err)
	}
	s := &Server{cmd: cmd, stdin: stdin, client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
	t.Cleanup(s.Stop)
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- line
		io.Copy(io.Discard, stdout)
	}()
	select {
	case line := <-lines:
		var hello struct{ Port int }
		if err := json.Unmarshal([]byte(line), &hello); err != nil || hello.Port == 0 {
			t.Fatalf("store server said %q", line)
		}
		s.URL = fmt.Sprintf("http://127.0.0.1:%d", hello.Port)
	case <-time.After(10 * time.Second):
		t.Fatal("store server did not start")
	}
	return s
}

// Stop ends the server (stdin closed, then killed by PID if it lingers).
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.stdin.Close()
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
}

// Call sends one request (body as JSON unless nil) and decodes the answer into out (when not nil).
func (s *Server) Call(t testing.TB, method, path string, body, out any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.URL+path, r)
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

// Stats is what GET /_test/stats says.
type Stats struct {
	Requests           map[string]int `json:"requests"`
	Open               int            `json:"open"`
	Watches            int            `json:"watches"`
	ConsulIndex        int            `json:"consul_index"`
	K8sResourceVersion int            `json:"k8s_resource_version"`
}

// Stats reads the server's counters.
func (s *Server) Stats(t testing.TB) Stats {
	t.Helper()
	var st Stats
	s.Call(t, "GET", "/_test/stats", nil, &st)
	return st
}

// Eventually waits for cond, failing the test after d.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// NoLeaks fails the test when goroutines started during it outlive it.
func NoLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			t.Errorf("%d goroutines leaked:\n%s", n-before, buf[:runtime.Stack(buf, true)])
		}
	})
}
