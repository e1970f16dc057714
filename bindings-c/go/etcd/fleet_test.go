package etcd

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"example.invalid/waypost"
	"example.invalid/waypost/internal/etcdtest"
)

// member is a Python or Node process in the fleet: it registers itself,
// mirrors etcd and answers JSON-line commands.
type member struct {
	name string
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	mu   sync.Mutex
}

func (m *member) ask(t *testing.T, op string) map[string]any {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	fmt.Fprintf(m.in, "{\"op\":%q}\n", op)
	if !m.out.Scan() {
		t.Fatalf("%s: no answer to %s: %v", m.name, op, m.out.Err())
	}
	var v map[string]any
	if err := json.Unmarshal(m.out.Bytes(), &v); err != nil {
		t.Fatalf("%s: %q: %v", m.name, m.out.Text(), err)
	}
	return v
}

func repoRoot() string { return filepath.Join("..", "..", "..") }

// fleetTools finds the Python virtualenv (make python-venv) and the built
// npm package (make wasm); without them the test is skipped, unless
// WAYPOST_FLEET_REQUIRED is set (make test sets it), when it fails.
func fleetTools(t *testing.T) (python, node string) {
	t.Helper()
	python = os.Getenv("WAYPOST_PYTHON")
	if python == "" {
		python, _ = filepath.Abs(filepath.Join(repoRoot(), "target", "py-venv", "bin", "python"))
	}
	missing := []string{}
	if _, err := os.Stat(python); err != nil {
		missing = append(missing, python+" (make python-venv)")
	}
	if _, err := os.Stat(filepath.Join(repoRoot(), "bindings-wasm", "npm", "dist", "etcd.js")); err != nil {
		missing = append(missing, "bindings-wasm/npm/dist (make wasm)")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing = append(missing, "node")
	}
	if len(missing) > 0 {
		if os.Getenv("WAYPOST_FLEET_REQUIRED") != "" {
			t.Fatalf("the fleet test needs %s", strings.Join(missing, ", "))
		}
		t.Skipf("the fleet test needs %s", strings.Join(missing, ", "))
	}
	return python, node
}

func startMember(t *testing.T, name string, argv []string, endpoints []string, prefix string, self waypost.InstanceSpec) *member {
	t.Helper()
	b, _ := json.Marshal(self)
	cmd := exec.Command(argv[0], append(argv[1:], strings.Join(endpoints, ","), prefix, string(b))...)
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe()
	outPipe, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m := &member{name: name, cmd: cmd, in: in, out: bufio.NewScanner(outPipe)}
	m.out.Buffer(make([]byte, 1<<20), 1<<20)
	t.Cleanup(func() {
		in.Close()
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	if !m.out.Scan() || !strings.Contains(m.out.Text(), "ready") {
		t.Fatalf("%s did not start: %q", name, m.out.Text())
	}
	return m
}

// goState is the same answers from the in-process Go member.
func goState(reg *waypost.Registry, lock sync.Locker, op string) map[string]any {
	lock.Lock()
	defer lock.Unlock()
	out := map[string]any{}
	if op == "ids" {
		idList, health := []any{}, []any{}
		if d, err := reg.Discover("api", &waypost.DiscoverOptions{All: true}, time.Time{}); err == nil {
			for i, inst := range d.Instances {
				idList = append(idList, inst.ID)
				health = append(health, d.Health[i].String())
			}
		}
		out["ids"], out["health"] = idList, health
		return out
	}
	pick := func(s waypost.Strategy, key string) any {
		var opts *waypost.PickOptions
		if key != "" {
			opts = &waypost.PickOptions{Key: key}
		}
		p, err := reg.Pick("api", s, opts, time.Time{})
		if err != nil {
			return err.Error()
		}
		return p.Instance.ID
	}
	hash, random, weighted, rr := []any{}, []any{}, []any{}, []any{}
	for i := 0; i < 20; i++ {
		hash = append(hash, pick(waypost.ConsistentHash, fmt.Sprintf("k%d", i)))
	}
	for i := 0; i < 10; i++ {
		random = append(random, pick(waypost.Random, ""))
	}
	for i := 0; i < 10; i++ {
		weighted = append(weighted, pick(waypost.WeightedRandom, ""))
	}
	for i := 0; i < 6; i++ {
		rr = append(rr, pick(waypost.RoundRobin, ""))
	}
	out["hash"], out["random"], out["weighted"], out["rr"] = hash, random, weighted, rr
	return out
}

func TestFleetPythonNodeGoMirrorsAgreeThroughFaults(t *testing.T) {
	python, node := fleetTools(t)
	etcd := etcdtest.Start(t)
	prefix := freshPrefix()
	eps := []string{etcd.Endpoint()}
	spec := func(id string, i int) waypost.InstanceSpec {
		return waypost.InstanceSpec{ID: id, Service: "api", Address: fmt.Sprintf("10.0.1.%d", i), Port: 8080, Weight: uint32(i)}
	}
	py := startMember(t, "python", []string{python, filepath.Join(repoRoot(), "bindings-python", "tests", "fleet_child.py")}, eps, prefix, spec("py-1", 1))
	js := startMember(t, "node", []string{node, filepath.Join(repoRoot(), "bindings-wasm", "npm", "test", "fleet-child.mjs")}, eps, prefix, spec("node-1", 2))

	cfg := waypost.DefaultConfig()
	cfg.RandomSeed, cfg.Seed = false, 7
	reg, err := waypost.NewRegistry(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	gr := &Registrar{Endpoints: eps, Instance: spec("go-1", 3), Prefix: prefix, TTL: 2 * time.Second}
	if err := gr.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer gr.Close()
	gm := &Mirror{Endpoints: eps, Registry: reg, Prefix: prefix}
	if err := gm.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer gm.Close()

	// agree waits until every mirror holds want, then compares discover
	// answers and picks (same seed, same calls) across the three.
	agree := func(phase string, want ...string) {
		t.Helper()
		wantIDs := []any{}
		for _, id := range want {
			wantIDs = append(wantIDs, id)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			states := []map[string]any{goState(reg, gm.Locker(), "ids"), py.ask(t, "ids"), js.ask(t, "ids")}
			same := true
			for _, s := range states {
				same = same && reflect.DeepEqual(s["ids"], wantIDs)
			}
			if same {
				if !reflect.DeepEqual(states[0], states[1]) || !reflect.DeepEqual(states[0], states[2]) {
					t.Fatalf("%s: discover differs: go %v, python %v, node %v", phase, states[0], states[1], states[2])
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: mirrors did not reach %v: go %v, python %v, node %v", phase, want, states[0], states[1], states[2])
			}
			time.Sleep(50 * time.Millisecond)
		}
		picks := []map[string]any{goState(reg, gm.Locker(), "picks"), py.ask(t, "picks"), js.ask(t, "picks")}
		if !reflect.DeepEqual(picks[0], picks[1]) || !reflect.DeepEqual(picks[0], picks[2]) {
			t.Fatalf("%s: picks differ:\n go     %v\n python %v\n node   %v", phase, picks[0], picks[1], picks[2])
		}
		t.Logf("%s: %d instances, discover and picks equal in Go, Python and Node", phase, len(want))
	}

	agree("registered", "go-1", "node-1", "py-1")

	// A registrant SIGKILLed: gone from every mirror.
	victim := exec.Command(os.Args[0], "-test.run=^$")
	victim.Env = append(os.Environ(), "WAYPOST_TEST_REGISTRANT="+etcd.Endpoint(), "WAYPOST_TEST_PREFIX="+prefix)
	out, _ := victim.StdoutPipe()
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	var granted int
	fmt.Fscan(out, &granted)
	agree("victim registered", "api-9", "go-1", "node-1", "py-1")
	victim.Process.Kill()
	victim.Wait()
	agree("victim SIGKILLed", "go-1", "node-1", "py-1")

	// A clean stop: gone at once.
	js.ask(t, "stop_registrar")
	agree("node registrar stopped", "go-1", "py-1")

	// etcd SIGKILLed and restarted on its data: every mirror resumes.
	etcd.Kill()
	time.Sleep(500 * time.Millisecond)
	etcd.Start()
	etcd.Client().Put(prefix+"/api/extra-1", `{"id":"extra-1","service":"api","address":"10.0.2.1","port":80,"status":"warning"}`, "")
	agree("etcd restarted", "extra-1", "go-1", "py-1")

	// A forced compaction, then more changes: still equal.
	rev, _ := etcd.Client().Revision()
	etcd.Client().Compact(rev)
	etcd.Client().Delete(prefix + "/api/extra-1")
	agree("compacted", "go-1", "py-1")
	py.ask(t, "exit")
	js.ask(t, "exit")
	for _, m := range []*member{py, js} {
		m.in.Close()
		exited := make(chan error, 1)
		go func(c *exec.Cmd) { exited <- c.Wait() }(m.cmd)
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("%s exited with %v", m.name, err)
			}
		case <-time.After(10 * time.Second):
			m.cmd.Process.Kill()
			t.Fatalf("%s did not exit after its mirror and registrar closed", m.name)
		}
	}
}
