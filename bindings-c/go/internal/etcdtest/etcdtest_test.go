package etcdtest

import (
	"reflect"
	"testing"
	"time"
)

func TestMemberSurvivesKillAndRestartsOnItsData(t *testing.T) {
	s := Start(t)
	rev, err := s.Client().Put("/h/a", "1", "")
	if err != nil {
		t.Fatal(err)
	}
	pid := s.cmd.Process.Pid
	s.Kill()
	if s.Running() {
		t.Fatal("still running after SIGKILL")
	}
	if _, err := s.Client().Revision(); err == nil {
		t.Fatal("a killed member answered")
	}
	s.Start()
	if s.cmd.Process.Pid == pid {
		t.Fatal("same process")
	}
	got, err := s.Client().GetPrefix("/h/")
	if err != nil || !reflect.DeepEqual(got, map[string]string{"/h/a": "1"}) {
		t.Fatalf("after restart: %v %v", got, err)
	}
	if r, _ := s.Client().Revision(); r != rev {
		t.Fatalf("revision %d, want %d", r, rev)
	}
}

func TestClusterCarriesOnWithoutItsLeader(t *testing.T) {
	c := StartCluster(t, 3)
	leader := c.WaitLeader(15 * time.Second)
	if _, err := leader.Client().Put("/h/k", "v", ""); err != nil {
		t.Fatal(err)
	}
	leader.Kill()
	var rest []*Server
	for _, m := range c.Members {
		if m.Running() {
			rest = append(rest, m)
		}
	}
	if len(rest) != 2 {
		t.Fatalf("%d members running", len(rest))
	}
	if l := c.WaitLeader(15 * time.Second); l == leader {
		t.Fatal("the killed member is still leader")
	}
	if _, err := rest[0].Client().Put("/h/k2", "v2", ""); err != nil {
		t.Fatal(err)
	}
	got, err := rest[1].Client().GetPrefix("/h/")
	if err != nil || !reflect.DeepEqual(got, map[string]string{"/h/k": "v", "/h/k2": "v2"}) {
		t.Fatalf("%v %v", got, err)
	}
}

// etcd binds its ports after they are chosen; one from the range the kernel
// hands to outgoing connections could be taken meanwhile.
func TestPortsBelowTheEphemeralRange(t *testing.T) {
	low := EphemeralLow()
	seen := map[int]bool{}
	for i := 0; i < 1000; i++ {
		p := FreePort(t)
		if seen[p] {
			t.Fatalf("port %d given twice", p)
		}
		seen[p] = true
		if low > 12000 && (p < 10000 || p >= low) {
			t.Fatalf("port %d, not in [10000, %d)", p, low)
		}
	}
}
