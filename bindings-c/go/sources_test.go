package waypost

import (
	"errors"
	"os"
	"reflect"
	"testing"
)

const api1 = `{"id":"api-1","service":"api","address":"10.0.0.1","port":8080}`

func TestSyncPutDeleteReports(t *testing.T) {
	reg := newFleet(t)
	rep, err := reg.Sync("etcd", "api", `[`+api1+`,{"id":"api-2","service":"api","address":"10.0.0.2","port":80,"status":"warning"}]`, at(1))
	if err != nil || rep.Added != 2 || rep.Resync || !rep.Changed || len(rep.Rejected) != 0 {
		t.Fatalf("%+v %v", rep, err)
	}
	st, err := reg.Get("api-2", at(1))
	if err != nil || st.Health != Degraded {
		t.Fatalf("%+v %v", st, err)
	}
	rep, err = reg.Sync("etcd", "api", `[`+api1+`,{"id":"x","service":"api","port":1}]`, at(2))
	if err != nil || rep.Unchanged != 1 || rep.Removed != 1 || len(rep.Rejected) != 1 || rep.Rejected[0].Code != CodeInvalidArgument {
		t.Fatalf("%+v %v", rep, err)
	}
	if rep, err = reg.SourcePut("etcd", `{"id":"api-3","service":"api","address":"h","port":1,"status":"maintenance"}`, at(3)); err != nil || rep.Added != 1 {
		t.Fatalf("%+v %v", rep, err)
	}
	if rep, err = reg.SourceDelete("etcd", "api-3", at(4)); err != nil || rep.Removed != 1 {
		t.Fatalf("%+v %v", rep, err)
	}
	if rep, err = reg.SourceDelete("etcd", "api-3", at(5)); err != nil || rep.Removed != 0 || rep.Changed {
		t.Fatalf("a repeated delete is a no-op: %+v %v", rep, err)
	}
	wantCode(t, reg.Deregister("api-1", at(6)), CodeConflict)
	_, err = reg.SourcePut("consul", api1, at(6))
	wantCode(t, err, CodeConflict)
}

func TestSourceMirrorCallsAndBadInput(t *testing.T) {
	reg := newFleet(t)
	_, err := reg.SourceRequest("etcd")
	wantCode(t, err, CodeInvalidArgument)
	wantCode(t, reg.SourceAdd("x", `{"kind":"nope"}`), CodeInvalidArgument)
	wantCode(t, reg.SourceAdd("x", "not json"), CodeInvalidArgument)
	_, err = reg.SourceFeed("etcd", "{}", at(1), 200, "")
	wantCode(t, err, CodeInvalidArgument)
	_, err = reg.SourceFeed("etcd", "{}", at(1), 70000, "")
	wantCode(t, err, CodeInvalidArgument)
	_, err = reg.Sync("etcd", "api", "[\x00]", at(1))
	wantCode(t, err, CodeInvalidArgument)
	_, err = reg.Sync("etcd", "api", "{}", at(1))
	var we *Error
	if !errors.As(err, &we) {
		t.Fatalf("want a waypost error, got %v", err)
	}
}

// A gRPC range answer is binary (it starts with a NUL byte): it reaches the
// core whole, and reads as the gateway's answer of the same range.
func TestGRPCRangeAnswerIsFedAsBytes(t *testing.T) {
	grpc, err := os.ReadFile("../../tests/fixtures/etcd-grpc/range.grpc")
	if err != nil {
		t.Fatal(err)
	}
	gateway, err := os.ReadFile("../../tests/fixtures/etcd-grpc/range-gateway.json")
	if err != nil {
		t.Fatal(err)
	}
	byGRPC, byJSON := newFleet(t), newFleet(t)
	if err := byGRPC.SourceAdd("etcd", `{"kind":"etcd","grpc":true}`); err != nil {
		t.Fatal(err)
	}
	if err := byJSON.SourceAdd("etcd", `{"kind":"etcd"}`); err != nil {
		t.Fatal(err)
	}
	req, err := byGRPC.SourceRequest("etcd")
	if err != nil || !req.GRPC || req.Stream || req.Path != "/etcdserverpb.KV/Range" {
		t.Fatalf("%+v %v", req, err)
	}
	a, err := byGRPC.SourceFeedBytes("etcd", grpc, at(1), 200, "")
	if err != nil || a.Added != 4 || len(a.Rejected) != 0 {
		t.Fatalf("%+v %v", a, err)
	}
	b, err := byJSON.SourceFeed("etcd", string(gateway), at(1), 200, "")
	if err != nil || !reflect.DeepEqual(a, b) {
		t.Fatalf("gRPC %+v, gateway %+v %v", a, b, err)
	}
	// The string form carries the NUL bytes too.
	again := newFleet(t)
	if err := again.SourceAdd("etcd", `{"kind":"etcd","grpc":true}`); err != nil {
		t.Fatal(err)
	}
	if c, err := again.SourceFeed("etcd", string(grpc), at(1), 200, ""); err != nil || c.Added != 4 {
		t.Fatalf("%+v %v", c, err)
	}
	wr, err := byGRPC.SourceRequest("etcd")
	if err != nil || wr.GRPC || !wr.Stream {
		t.Fatalf("the watch is the gateway's: %+v %v", wr, err)
	}
	_, err = byGRPC.SourceFeedBytes("etcd", grpc[:len(grpc)-1], at(2), 200, "")
	wantCode(t, err, CodeInvalidArgument)
	_, err = byGRPC.SourceFeedBytes("etcd", nil, at(2), 200, "")
	wantCode(t, err, CodeInvalidArgument)
}
