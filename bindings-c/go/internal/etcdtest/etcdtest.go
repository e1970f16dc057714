// Package etcdtest runs a real etcd for tests: 127.0.0.1, free ports, a
// temporary data directory, stopped by PID whatever happens (t.Cleanup).
// Server is one member (Start, Stop, Kill, Restart on the same data and
// ports); Cluster is three. Client talks to the JSON gateway with net/http,
// independently of the helpers under test.
package etcdtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binary is the etcd executable the tests start.
func Binary() string {
	if p := os.Getenv("WAYPOST_ETCD"); p != "" {
		return p
	}
	return "/usr/bin/etcd"
}

// EphemeralLow is the lowest port the kernel hands out on its own (outgoing
// connections, binds to port 0).
func EphemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		if low, err := strconv.Atoi(f[0]); err == nil {
			return low
		}
	}
	return 32768
}

// given holds the ports FreePort has chosen; its own source because Go
// 1.19 seeds math/rand's global one the same in every process, and the
// test binaries of several packages run at once.
var given = struct {
	sync.Mutex
	ports map[int]bool
	rand  *rand.Rand
}{ports: map[int]bool{}, rand: rand.New(rand.NewSource(time.Now().UnixNano() ^ int64(os.Getpid())<<32))}

// FreePort is a port free now, chosen below the kernel's ephemeral range and
// never given twice in this process: etcd binds it later, and a port from
// that range could meanwhile become the local port of an outgoing
// connection (a member dialling its peers, say).
func FreePort(t testing.TB) int {
	t.Helper()
	given.Lock()
	defer given.Unlock()
	low := EphemeralLow()
	if low > 65536 {
		low = 65536
	}
	for i := 0; low > 12000 && i < 200; i++ {
		port := 10000 + given.rand.Intn(low-10000)
		if given.ports[port] {
			continue
		}
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			l.Close()
			given.ports[port] = true
			return port
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Server is one etcd member. A single member keeps etcd's default timing
// (minimum lease TTL ~2 s); cluster members elect faster.
type Server struct {
	t              testing.TB
	Name           string
	Dir            string
	ClientPort     int
	PeerPort       int
	InitialCluster string
	FastElection   bool   // heartbeat 50 ms, election 500 ms (cluster members)
	TLS            *Certs // serve clients over https with these (StartTLS)
	cmd            *exec.Cmd
	done           chan struct{}
}

// Endpoint is the member's client URL.
func (s *Server) Endpoint() string {
	if s.TLS != nil {
		return fmt.Sprintf("https://127.0.0.1:%d", s.ClientPort)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", s.ClientPort)
}

// Certs is a throwaway CA and a server certificate for 127.0.0.1 it
// signed, made with the openssl CLI: the paths of CA (PEM), Cert and Key.
type Certs struct{ CA, Cert, Key string }

// MakeCerts writes them into dir; nil when there is no openssl CLI.
func MakeCerts(t testing.TB, dir string) *Certs {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		return nil
	}
	p := func(n string) string { return filepath.Join(dir, n) }
	c := &Certs{CA: p("ca.pem"), Cert: p("server.pem"), Key: p("server.key")}
	if err := os.WriteFile(p("ext.cnf"), []byte("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ec := []string{"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"}
	for _, argv := range [][]string{
		append(append([]string{"req", "-x509"}, ec...), "-keyout", p("ca.key"), "-out", c.CA, "-days", "1", "-subj", "/CN=waypost-test-ca"),
		append(append([]string{"req"}, ec...), "-keyout", c.Key, "-out", p("server.csr"), "-subj", "/CN=127.0.0.1"),
		{"x509", "-req", "-in", p("server.csr"), "-CA", c.CA, "-CAkey", p("ca.key"), "-CAcreateserial", "-out", c.Cert, "-days", "1", "-extfile", p("ext.cnf")},
	} {
		if out, err := exec.Command("openssl", argv...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %s: %v: %s", argv[0], err, out)
		}
	}
	return c
}

// StartTLS runs a single member serving its clients over https with certs.
func StartTLS(t testing.TB, certs *Certs) *Server {
	t.Helper()
	s := newServer(t, "n0", t.TempDir(), 0, "")
	s.TLS = certs
	s.Start()
	return s
}

// httpClient trusts the member's CA when it serves https.
func (s *Server) httpClient(timeout time.Duration) *http.Client {
	c := &http.Client{Timeout: timeout}
	if s.TLS != nil {
		pem, err := os.ReadFile(s.TLS.CA)
		if err != nil {
			s.t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		// No kept connection: nothing outlives a call (the tests count goroutines).
		c.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}
	}
	return c
}

// PeerURL is the member's peer URL.
func (s *Server) PeerURL() string { return fmt.Sprintf("http://127.0.0.1:%d", s.PeerPort) }

// Client talks to this member.
func (s *Server) Client() *Client {
	if s.TLS == nil {
		return &Client{Endpoint: s.Endpoint()}
	}
	return &Client{Endpoint: s.Endpoint(), http: s.httpClient(0)}
}

func newServer(t testing.TB, name, dir string, peer int, initial string) *Server {
	s := &Server{t: t, Name: name, Dir: dir, ClientPort: FreePort(t), PeerPort: peer, InitialCluster: initial}
	if s.PeerPort == 0 {
		s.PeerPort = FreePort(t)
	}
	if s.InitialCluster == "" {
		s.InitialCluster = name + "=" + s.PeerURL()
	}
	t.Cleanup(func() { s.Kill() })
	return s
}

// Start runs a single member and waits until it is ready.
func Start(t testing.TB) *Server {
	t.Helper()
	s := newServer(t, "n0", t.TempDir(), 0, "")
	s.Start()
	return s
}

// Launch starts the process without waiting.
func (s *Server) Launch() {
	s.t.Helper()
	if _, err := os.Stat(Binary()); err != nil {
		s.t.Fatalf("%s not found: install Debian's etcd-server (make test does)", Binary())
	}
	log, err := os.OpenFile(filepath.Join(s.Dir, s.Name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	defer log.Close()
	args := []string{
		"--name", s.Name, "--data-dir", filepath.Join(s.Dir, s.Name+".etcd"),
		"--listen-client-urls", s.Endpoint(), "--advertise-client-urls", s.Endpoint(),
		"--listen-peer-urls", s.PeerURL(), "--initial-advertise-peer-urls", s.PeerURL(),
		"--initial-cluster", s.InitialCluster, "--initial-cluster-state", "new",
		"--initial-cluster-token", "waypost-test",
		"--logger", "zap", "--log-outputs", "stderr"}
	if s.FastElection {
		args = append(args, "--heartbeat-interval", "50", "--election-timeout", "500")
	}
	if s.TLS != nil {
		args = append(args, "--cert-file", s.TLS.Cert, "--key-file", s.TLS.Key)
	}
	cmd := exec.Command(Binary(), args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(s.done)
}

// Running says whether the process is alive.
func (s *Server) Running() bool {
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, s.Name+".log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// WaitReady waits until /health says true.
func (s *Server) WaitReady(timeout time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	c := s.httpClient(time.Second)
	for time.Now().Before(deadline) {
		if !s.Running() {
			s.t.Fatalf("etcd %s exited: %s", s.Name, s.logTail())
		}
		if resp, err := c.Get(s.Endpoint() + "/health"); err == nil {
			var h struct{ Health string }
			_ = json.NewDecoder(resp.Body).Decode(&h)
			resp.Body.Close()
			if h.Health == "true" {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("etcd %s not ready after %v: %s", s.Name, timeout, s.logTail())
}

// Start launches the member and waits until it is ready.
func (s *Server) Start() {
	s.t.Helper()
	s.Launch()
	s.WaitReady(15 * time.Second)
}

func (s *Server) end(sig syscall.Signal) {
	if !s.Running() {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// Signal sends sig to the member's process (SIGSTOP freezes it: its
// kernel still accepts connections, and nothing answers them).
func (s *Server) Signal(sig syscall.Signal) error {
	if !s.Running() {
		return fmt.Errorf("etcd %s is not running", s.Name)
	}
	return s.cmd.Process.Signal(sig)
}

// Freeze sends SIGSTOP and waits until every thread of the process has
// stopped. The kernel stops a process's threads one by one as each is
// scheduled, so on a busy machine a thread can still answer a request after
// the signal was sent: a test that needs a silent etcd waits for it.
func (s *Server) Freeze() error {
	if err := s.Signal(syscall.SIGSTOP); err != nil {
		return err
	}
	tasks := fmt.Sprintf("/proc/%d/task", s.cmd.Process.Pid)
	deadline := time.Now().Add(5 * time.Second)
	for {
		var states []string
		entries, err := os.ReadDir(tasks)
		if err != nil { // no /proc to ask: give the threads a second
			time.Sleep(time.Second)
			return nil
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(tasks, e.Name(), "stat"))
			if err != nil { // a thread that ended meanwhile
				continue
			}
			if i := bytes.LastIndexByte(b, ')'); i >= 0 {
				if f := strings.Fields(string(b[i+1:])); len(f) > 0 {
					states = append(states, f[0])
				}
			}
		}
		stopped := len(states) > 0
		for _, st := range states {
			stopped = stopped && (st == "T" || st == "t")
		}
		if stopped {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd %s: threads not all stopped after 5 s: %v", s.Name, states)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop is a clean stop (SIGTERM).
func (s *Server) Stop() { s.end(syscall.SIGTERM) }

// Kill is the crash case (SIGKILL).
func (s *Server) Kill() { s.end(syscall.SIGKILL) }

// Restart starts the member again on the same data directory and ports.
func (s *Server) Restart() { s.Stop(); s.Start() }

// Cluster is three members on loopback.
type Cluster struct {
	t       testing.TB
	Members []*Server
}

// StartCluster runs n members and waits until they are ready.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	dir := t.TempDir()
	peers := make([]int, n)
	parts := make([]string, n)
	for i := range peers {
		peers[i] = FreePort(t)
		parts[i] = fmt.Sprintf("m%d=http://127.0.0.1:%d", i, peers[i])
	}
	c := &Cluster{t: t}
	for i := range peers {
		m := newServer(t, fmt.Sprintf("m%d", i), dir, peers[i], strings.Join(parts, ","))
		m.FastElection = true
		c.Members = append(c.Members, m)
	}
	for _, m := range c.Members {
		m.Launch()
	}
	for _, m := range c.Members {
		m.WaitReady(30 * time.Second)
	}
	return c
}

// Endpoints are the members' client URLs.
func (c *Cluster) Endpoints() []string {
	out := make([]string, len(c.Members))
	for i, m := range c.Members {
		out[i] = m.Endpoint()
	}
	return out
}

// WaitLeader is the live leader once the live members agree on one.
func (c *Cluster) WaitLeader(timeout time.Duration) *Server {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ids := map[string]*Server{}
		leader := ""
		ok := true
		for _, m := range c.Members {
			if !m.Running() {
				continue
			}
			var st struct {
				Header struct {
					MemberID string `json:"member_id"`
				}
				Leader string
			}
			if err := m.Client().Call("/v3/maintenance/status", map[string]any{}, &st); err != nil {
				ok = false
				break
			}
			ids[st.Header.MemberID] = m
			if leader == "" {
				leader = st.Leader
			}
		}
		if m, found := ids[leader]; ok && found {
			return m
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatal("no leader")
	return nil
}

// Client is just enough of the v3 JSON gateway to check and poke the store.
type Client struct {
	Endpoint string
	http     *http.Client // nil: http.DefaultClient
}

// B64 encodes a key or value.
func B64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// PrefixEnd is the range end of a prefix read.
func PrefixEnd(prefix string) string {
	b := []byte(prefix)
	b[len(b)-1]++
	return base64.StdEncoding.EncodeToString(b)
}

// Call posts body to path and decodes the answer into out.
func (c *Client) Call(path string, body, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(ctx, "POST", c.Endpoint+path, bytes.NewReader(b))
	hc := c.http
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: HTTP %d", path, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

type header struct {
	Header struct{ Revision string }
}

// Put writes a key (lease "" for none) and answers the revision.
func (c *Client) Put(key, value, lease string) (int64, error) {
	body := map[string]string{"key": B64(key), "value": B64(value)}
	if lease != "" {
		body["lease"] = lease
	}
	var h header
	err := c.Call("/v3/kv/put", body, &h)
	rev, _ := strconv.ParseInt(h.Header.Revision, 10, 64)
	return rev, err
}

// Delete removes a key.
func (c *Client) Delete(key string) error {
	var h header
	return c.Call("/v3/kv/deleterange", map[string]string{"key": B64(key)}, &h)
}

// GetPrefix reads every key under prefix.
func (c *Client) GetPrefix(prefix string) (map[string]string, error) {
	var out struct {
		Kvs []struct{ Key, Value []byte }
	}
	err := c.Call("/v3/kv/range", map[string]string{"key": B64(prefix), "range_end": PrefixEnd(prefix)}, &out)
	m := map[string]string{}
	for _, kv := range out.Kvs {
		m[string(kv.Key)] = string(kv.Value)
	}
	return m, err
}

// Revision is the store's current revision.
func (c *Client) Revision() (int64, error) {
	var h header
	err := c.Call("/v3/kv/range", map[string]string{"key": B64("\x00")}, &h)
	rev, _ := strconv.ParseInt(h.Header.Revision, 10, 64)
	return rev, err
}

// Compact compacts the history up to revision.
func (c *Client) Compact(revision int64) error {
	var h header
	return c.Call("/v3/kv/compaction", map[string]any{"revision": strconv.FormatInt(revision, 10), "physical": true}, &h)
}
