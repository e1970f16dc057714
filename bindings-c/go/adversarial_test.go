package waypost

// Hostile values in every argument position of every entry point that takes
// a number or a string: the sets the Python and JavaScript suites use
// (bindings-python/tests/test_adversarial.py, bindings-wasm/npm/test/adversarial.js),
// in Go's types. Each call must return nil or an *Error with a documented
// code (never a panic, never CodePanic), and the registry must work
// afterwards: register, pick, heartbeat, deregister, and a snapshot that
// restores identically.

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

var (
	hostileStrings = []string{
		"", "\x00", "a\x00b", "a\xffb", "\xff", "\xc3", // empty, NUL bytes, invalid UTF-8
		"\xed\xa0\x80",             // a lone surrogate as UTF-8 would write it
		"\xf4\x90\x80\x80",         // past U+10FFFF
		strings.Repeat("x", 1<<20), // 1 MB
		"api", "i1", "é",
	}
	hostileTimes = []time.Time{
		{}, time.UnixMilli(0), time.UnixMilli(-1), time.UnixMilli(1), time.UnixMilli(1<<53 + 1),
		time.UnixMilli(math.MaxInt64), time.UnixMilli(math.MinInt64),
		time.Unix(1<<62, 0), time.Unix(-1<<62, 0), // milliseconds past int64
	}
	hostileUint64s   = []uint64{0, 1, 1<<53 + 1, math.MaxUint64 - 1, math.MaxUint64}
	hostileDurations = []time.Duration{0, -1, 1, -time.Millisecond, time.Millisecond,
		1<<53 + 1, math.MaxInt64, math.MinInt64} // a Duration holds at most 2^63 ns: 9.2e12 ms
	hostileFloats = []float64{0, -1, 0.5, 1, 1.5, math.NaN(), math.Inf(1), math.Inf(-1),
		math.MaxFloat64, math.SmallestNonzeroFloat64, math.Copysign(0, -1), 1 << 53}
	hostileUint32s = []uint32{0, 1, 100, 101, math.MaxUint32}
	hostileInts    = []int{0, -1, 200, 410, 1 << 16, math.MaxInt32 + 1, math.MaxInt64, math.MinInt64}
)

// hostileCall is one call with one hostile value in one position.
type hostileCall struct {
	name string
	call func() error
}

var documentedCodes = map[Code]bool{
	CodeInvalidArgument: true, CodeNotFound: true, CodeUnknownService: true,
	CodeNoEligibleInstance: true, CodeConflict: true, CodeInvalidSnapshot: true, CodeCompacted: true,
}

// hostileRegistry is a small fleet with a source, a check and a picker in use.
func hostileRegistry(t *testing.T) *Registry {
	t.Helper()
	reg := newFleet(t, "i0", "i1", "i2")
	spec := InstanceSpec{ID: "w", Service: "web", Address: "10.0.1.1", Port: 81, Zone: "z1",
		Tags: []string{"t"}, Meta: map[string]string{"k": "v"}, CheckInterval: time.Second}
	if _, err := reg.Register(spec, at(0)); err != nil {
		t.Fatal(err)
	}
	if err := reg.SourceAdd("etcd", `{"kind":"etcd"}`); err != nil {
		t.Fatal(err)
	}
	return reg
}

// worksAfter checks the registry still answers correctly.
func worksAfter(t *testing.T, reg *Registry, what string) {
	t.Helper()
	now := at(1 << 40)
	if _, err := reg.Register(InstanceSpec{ID: "ok", Service: "api", Address: "h", Port: 1}, now); err != nil {
		t.Fatalf("after %s: register: %v", what, err)
	}
	if p, err := reg.Pick("api", FirstAvailable, nil, now); err != nil || p.Instance.Service != "api" {
		t.Fatalf("after %s: pick: %+v %v", what, p, err)
	}
	if err := reg.Heartbeat("ok", now); err != nil {
		t.Fatalf("after %s: heartbeat: %v", what, err)
	}
	if err := reg.Deregister("ok", now); err != nil {
		t.Fatalf("after %s: deregister: %v", what, err)
	}
	snap, err := reg.Snapshot()
	if err != nil {
		t.Fatalf("after %s: snapshot: %v", what, err)
	}
	back, err := Restore(snap)
	if err != nil {
		t.Fatalf("after %s: restore: %v", what, err)
	}
	defer back.Close()
	if again, _ := back.Snapshot(); again != snap {
		t.Fatalf("after %s: the snapshot does not restore identically", what)
	}
}

// runHostile runs every call, each with a recover, and checks what it returned.
func runHostile(t *testing.T, reg *Registry, value string, calls []hostileCall) int {
	t.Helper()
	for _, c := range calls {
		var err error
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("%s(%s) panicked: %v", c.name, value, p)
				}
			}()
			err = c.call()
		}()
		if err == nil {
			continue
		}
		var we *Error
		if !errors.As(err, &we) || !documentedCodes[we.Code] || we.Message == "" {
			t.Fatalf("%s(%s): %T %v", c.name, value, err, err)
		}
	}
	worksAfter(t, reg, value)
	return len(calls)
}

// short names a value in a failure message without printing a megabyte.
func short(v interface{}) string {
	s := fmt.Sprintf("%q", v)
	if len(s) > 40 {
		s = fmt.Sprintf("%s… (%d bytes)", s[:40], len(s))
	}
	return s
}

func ignore[T any](_ T, err error) error { return err }

func stringCalls(reg *Registry, s string) []hostileCall {
	now := at(5)
	spec := func(f func(*InstanceSpec)) func() error {
		return func() error {
			in := InstanceSpec{ID: "x", Service: "api", Address: "h", Port: 1}
			f(&in)
			return ignore(reg.Register(in, now))
		}
	}
	pickWith := func(o PickOptions) func() error {
		return func() error { return ignore(reg.Pick("api", ConsistentHash, &o, now)) }
	}
	filter := Filter{Tags: []string{s}, Meta: map[string]string{s: s}}
	return []hostileCall{
		{"NewRegistryJSON", func() error { r, err := NewRegistryJSON(s); closeIf(r); return err }},
		{"Restore", func() error { r, err := Restore(s); closeIf(r); return err }},
		{"RegisterJSON", func() error { return ignore(reg.RegisterJSON(s, now)) }},
		{"Register.ID", spec(func(in *InstanceSpec) { in.ID = s })},
		{"Register.Service", spec(func(in *InstanceSpec) { in.Service = s })},
		{"Register.Address", spec(func(in *InstanceSpec) { in.Address = s })},
		{"Register.Zone", spec(func(in *InstanceSpec) { in.Zone = s })},
		{"Register.Tags", spec(func(in *InstanceSpec) { in.Tags = []string{s} })},
		{"Register.Meta key", spec(func(in *InstanceSpec) { in.Meta = map[string]string{s: "v"} })},
		{"Register.Meta value", spec(func(in *InstanceSpec) { in.Meta = map[string]string{"k": s} })},
		{"Heartbeat", func() error { return reg.Heartbeat(s, now) }},
		{"Deregister", func() error { return reg.Deregister(s, now) }},
		{"Drain", func() error { return reg.Drain(s, true, now) }},
		{"ReportCheck", func() error { return reg.ReportCheck(s, CheckFail, now) }},
		{"ReportOutcome", func() error { return reg.ReportOutcome(s, false, now) }},
		{"Begin", func() error { return reg.Begin(s, now) }},
		{"End", func() error { return reg.End(s, now) }},
		{"Get", func() error { return ignore(reg.Get(s, now)) }},
		{"Pick.service", func() error { return ignore(reg.Pick(s, RoundRobin, nil, now)) }},
		{"Pick.Key", pickWith(PickOptions{Key: s})},
		{"Pick.Zone", pickWith(PickOptions{Key: "k", Zone: s})},
		{"Pick.Filter", pickWith(PickOptions{Key: "k", Filter: filter})},
		{"Service", func() error { return ignore(reg.Service(s)) }},
		{"Picker.Pick key", func() error { return pickerPick(reg, s) }},
		{"Discover.service", func() error { return ignore(reg.Discover(s, nil, now)) }},
		{"Discover.Filter", func() error { return ignore(reg.Discover("api", &DiscoverOptions{Filter: filter}, now)) }},
		{"ServiceModifyIndex", func() error { return ignore(reg.ServiceModifyIndex(s)) }},
		{"ParseStrategy", func() error { return ignore(ParseStrategy(s)) }},
		{"ParseCheckStatus", func() error { return ignore(ParseCheckStatus(s)) }},
		{"Sync.source", func() error { return ignore(reg.Sync(s, "api", "[]", now)) }},
		{"Sync.service", func() error { return ignore(reg.Sync("etcd", s, "[]", now)) }},
		{"Sync.entries", func() error { return ignore(reg.Sync("etcd", "api", s, now)) }},
		{"SourcePut.source", func() error {
			return ignore(reg.SourcePut(s, `{"id":"e","service":"api","address":"h","port":1}`, now))
		}},
		{"SourcePut.entry", func() error { return ignore(reg.SourcePut("etcd", s, now)) }},
		{"SourceDelete.source", func() error { return ignore(reg.SourceDelete(s, "e", now)) }},
		{"SourceDelete.id", func() error { return ignore(reg.SourceDelete("etcd", s, now)) }},
		{"SourceAdd.name", func() error { return reg.SourceAdd(s, `{"kind":"etcd"}`) }},
		{"SourceAdd.options", func() error { return reg.SourceAdd("other", s) }},
		{"SourceRequest", func() error { return ignore(reg.SourceRequest(s)) }},
		{"SourceFeed.name", func() error { return ignore(reg.SourceFeed(s, `{"header":{"revision":"1"}}`, now, 200, "")) }},
		{"SourceFeed.body", func() error { return ignore(reg.SourceFeed("etcd", s, now, 200, "")) }},
		{"SourceFeed.index", func() error { return ignore(reg.SourceFeed("etcd", `{"header":{"revision":"1"}}`, now, 200, s)) }},
		{"NewGRPCCall.scheme", func() error { return grpcCall(s, "h:1", "/p", nil) }},
		{"NewGRPCCall.authority", func() error { return grpcCall("http", s, "/p", nil) }},
		{"NewGRPCCall.path", func() error { return grpcCall("http", "h:1", s, nil) }},
		{"NewGRPCCall.message", func() error { return grpcCall("http", "h:1", "/p", []byte(s)) }},
		{"GRPCCall.Receive", func() error { return grpcCall("http", "h:1", "/p", nil, []byte(s)) }},
	}
}

// grpcCall makes a gRPC call's HTTP/2 and hands it reads: a bad argument
// is an error; whatever is read, the call answers a state.
func grpcCall(scheme, authority, path string, msg []byte, reads ...[]byte) error {
	call, err := NewGRPCCall(scheme, authority, path, msg, 0)
	if err != nil {
		return err
	}
	defer call.Close()
	_ = call.Output()
	for _, r := range reads {
		call.Receive(r)
	}
	_, _ = call.Answer(), call.Failure()
	return nil
}

func closeIf(r *Registry) {
	if r != nil {
		r.Close()
	}
}

// withPicker runs f on a new picker of service api.
func withPicker(reg *Registry, f func(*Picker) error) error {
	svc, err := reg.Service("api")
	if err != nil {
		return err
	}
	p, err := svc.Picker()
	if err != nil {
		return err
	}
	defer p.Close()
	return f(p)
}

// pickerPick picks from api's picker with key.
func pickerPick(reg *Registry, key string) error {
	return withPicker(reg, func(p *Picker) error { return ignore(p.Pick(ConsistentHash, key, at(5))) })
}

func timeCalls(reg *Registry, now time.Time) []hostileCall {
	h, _ := reg.Register(InstanceSpec{ID: "i1", Service: "api", Address: "10.0.0.2", Port: 80}, at(0))
	svc, _ := reg.Service("api")
	return []hostileCall{
		{"Register", func() error {
			return ignore(reg.Register(InstanceSpec{ID: "x", Service: "api", Address: "h", Port: 1}, now))
		}},
		{"RegisterJSON", func() error {
			return ignore(reg.RegisterJSON(`{"id":"y","service":"api","address":"h","port":1}`, now))
		}},
		{"Heartbeat", func() error { return reg.Heartbeat("i0", now) }},
		{"HeartbeatHandle", func() error { return reg.HeartbeatHandle(h, now) }},
		{"Drain", func() error { return reg.Drain("i2", true, now) }},
		{"ReportCheck", func() error { return reg.ReportCheck("w", CheckWarn, now) }},
		{"ReportOutcome", func() error { return reg.ReportOutcome("i0", false, now) }},
		{"ReportOutcomeHandle", func() error { return reg.ReportOutcomeHandle(h, true, now) }},
		{"Begin", func() error { return reg.Begin("i0", now) }},
		{"End", func() error { return reg.End("i0", now) }},
		{"Get", func() error { return ignore(reg.Get("i0", now)) }},
		{"Pick", func() error { return ignore(reg.Pick("api", WeightedRoundRobin, nil, now)) }},
		{"Service.Pick", func() error { return ignore(svc.Pick(Random, nil, now)) }},
		{"Picker.Pick", func() error {
			return withPicker(reg, func(p *Picker) error {
				if _, err := p.Pick(LeastRequest, "", now); err != nil {
					return err
				}
				return p.ReportOutcome(h, false, now)
			})
		}},
		{"Discover", func() error { return ignore(reg.Discover("api", &DiscoverOptions{All: true}, now)) }},
		{"Services", func() error { return ignore(reg.Services(now)) }},
		{"DueChecks", func() error { return ignore(reg.DueChecks(now)) }},
		{"Tick", func() error { return ignore(reg.Tick(now)) }},
		{"Sync", func() error {
			return ignore(reg.Sync("etcd", "db", `[{"id":"d","service":"db","address":"h","port":1}]`, now))
		}},
		{"SourcePut", func() error {
			return ignore(reg.SourcePut("etcd", `{"id":"e","service":"db","address":"h","port":1}`, now))
		}},
		{"SourceDelete", func() error { return ignore(reg.SourceDelete("etcd", "e", now)) }},
		{"SourceFeed", func() error { return ignore(reg.SourceFeed("etcd", `{"header":{"revision":"3"}}`, now, 200, "")) }},
		{"Deregister", func() error { return reg.Deregister("i1", now) }},
	}
}

func uint64Calls(reg *Registry, v uint64) []hostileCall {
	h := Handle(v)
	return []hostileCall{
		{"EventsSince", func() error { return ignore(reg.EventsSince(v)) }},
		{"HeartbeatHandle", func() error { return reg.HeartbeatHandle(h, at(5)) }},
		{"ReportOutcomeHandle", func() error { return reg.ReportOutcomeHandle(h, false, at(5)) }},
		{"Instance", func() error { return ignore(reg.Instance(h)) }},
		{"Config.Seed", func() error {
			cfg := DefaultConfig()
			cfg.RandomSeed, cfg.Seed = false, v
			r, err := NewRegistry(cfg)
			closeIf(r)
			return err
		}},
		{"Picker handle", func() error {
			return withPicker(reg, func(p *Picker) error {
				if err := p.Begin(h); err != nil {
					return err
				}
				if err := p.End(h); err != nil {
					return err
				}
				return p.ReportOutcome(h, false, at(5))
			})
		}},
	}
}

// configCall builds a registry from the defaults with one field changed.
func configCall(name string, set func(*Config)) hostileCall {
	return hostileCall{"Config." + name, func() error {
		cfg := DefaultConfig()
		set(&cfg)
		r, err := NewRegistry(cfg)
		if err == nil {
			// A registry made from it must work too.
			defer r.Close()
			_, err = r.Register(InstanceSpec{ID: "a", Service: "api", Address: "h", Port: 1}, at(1))
			if err == nil {
				_, err = r.Tick(at(1 << 40))
			}
		}
		return err
	}}
}

func specCall(reg *Registry, name string, set func(*InstanceSpec)) hostileCall {
	return hostileCall{"Register." + name, func() error {
		in := InstanceSpec{ID: "x", Service: "api", Address: "h", Port: 1}
		set(&in)
		_, err := reg.Register(in, at(5))
		return err
	}}
}

func durationCalls(reg *Registry, d time.Duration) []hostileCall {
	return []hostileCall{
		configCall("TTL", func(c *Config) { c.TTL = d }),
		configCall("EvictAfter", func(c *Config) { c.EvictAfter = d }),
		configCall("BaseEjection", func(c *Config) { c.BaseEjection = d }),
		configCall("MaxEjection", func(c *Config) { c.MaxEjection = d }),
		configCall("SlowStart", func(c *Config) { c.SlowStart = d }),
		specCall(reg, "TTL", func(in *InstanceSpec) { in.TTL = d }),
		specCall(reg, "CheckInterval", func(in *InstanceSpec) { in.CheckInterval = d }),
	}
}

func floatCalls(f float64) []hostileCall {
	return []hostileCall{
		configCall("PanicThreshold", func(c *Config) { c.PanicThreshold = f }),
		configCall("SelfPreservationThreshold", func(c *Config) { c.SelfPreservationThreshold = f }),
	}
}

func uint32Calls(reg *Registry, v uint32) []hostileCall {
	return []hostileCall{
		configCall("CheckRise", func(c *Config) { c.CheckRise = v }),
		configCall("CheckFall", func(c *Config) { c.CheckFall = v }),
		configCall("ConsecutiveFailures", func(c *Config) { c.ConsecutiveFailures = v }),
		configCall("MaxEjectionPercent", func(c *Config) { c.MaxEjectionPercent = v }),
		configCall("SelfPreservationMinInstances", func(c *Config) { c.SelfPreservationMinInstances = v }),
		configCall("EventRetention", func(c *Config) { c.EventRetention = v }),
		specCall(reg, "Weight", func(in *InstanceSpec) { in.Weight = v }),
		specCall(reg, "Port", func(in *InstanceSpec) { in.Port = uint16(v) }),
		specCall(reg, "Priority", func(in *InstanceSpec) { in.Priority = uint8(v) }),
		{"Pick.Strategy", func() error { return ignore(reg.Pick("api", Strategy(v), nil, at(5))) }},
		{"ReportCheck.status", func() error { return reg.ReportCheck("i0", CheckStatus(v), at(5)) }},
	}
}

func intCalls(reg *Registry, status int) []hostileCall {
	return []hostileCall{
		{"NewGRPCCall.maxAnswer", func() error {
			call, err := NewGRPCCall("http", "h:1", "/p", nil, status)
			if err == nil {
				call.Close()
			}
			return err
		}},
		{"SourceFeed.status", func() error {
			return ignore(reg.SourceFeed("etcd", `{"header":{"revision":"1"}}`, at(5), status, ""))
		}},
	}
}

func TestHostileValuesInEveryPositionAreTypedErrorsOrAnswers(t *testing.T) {
	tried := 0
	for _, s := range hostileStrings {
		reg := hostileRegistry(t)
		tried += runHostile(t, reg, "string "+short(s), stringCalls(reg, s))
	}
	for _, now := range hostileTimes {
		reg := hostileRegistry(t)
		tried += runHostile(t, reg, "time "+short(now.String()), timeCalls(reg, now))
	}
	for _, v := range hostileUint64s {
		reg := hostileRegistry(t)
		tried += runHostile(t, reg, fmt.Sprint("uint64 ", v), uint64Calls(reg, v))
	}
	for _, d := range hostileDurations {
		reg := hostileRegistry(t)
		tried += runHostile(t, reg, fmt.Sprint("duration ", int64(d)), durationCalls(reg, d))
	}
	for _, f := range hostileFloats {
		reg := hostileRegistry(t)
		tried += runHostile(t, reg, fmt.Sprint("float ", f), floatCalls(f))
	}
	for _, v := range hostileUint32s {
		reg := hostileRegistry(t)
		tried += runHostile(t, reg, fmt.Sprint("uint32 ", v), uint32Calls(reg, v))
	}
	for _, v := range hostileInts {
		reg := hostileRegistry(t)
		tried += runHostile(t, reg, fmt.Sprint("int ", v), intCalls(reg, v))
	}
	t.Logf("%d hostile calls: typed errors or answers, and the registry worked after each value", tried)
	if tried < 700 {
		t.Fatalf("only %d calls", tried)
	}
}

// Values the binding itself must refuse rather than pass on altered: a NUL
// byte (C would cut the string there), a negative duration or time, an HTTP
// status outside 0–65535.
func TestValuesGoCannotPassOnAreRefused(t *testing.T) {
	reg := hostileRegistry(t)
	for _, err := range []error{
		reg.Heartbeat("i0\x00tail", at(5)),
		ignore(reg.Register(InstanceSpec{ID: "x", Service: "api", Address: "h", Port: 1, TTL: -time.Millisecond}, at(5))),
		reg.Heartbeat("i0", time.UnixMilli(-1)),
		ignore(reg.SourceFeed("etcd", "{}", at(5), 1<<16, "")),
		ignore(reg.SourceFeed("etcd", "{}", at(5), -1, "")),
		ignore(reg.Sync("etcd", "api", "[\x00]", at(5))),
	} {
		wantCode(t, err, CodeInvalidArgument)
	}
	// Invalid UTF-8 reaches the core and is refused there, by name.
	wantCode(t, reg.Heartbeat("a\xffb", at(5)), CodeInvalidArgument)
	_, err := Restore("\xff")
	wantCode(t, err, CodeInvalidSnapshot)
	worksAfter(t, reg, "refused values")
}
