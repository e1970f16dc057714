package waypost

// Runs every scenario file (SPEC §9) through the Go API, and so through the
// C ABI, and writes transcripts to compare with the Rust reference.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

type object = map[string]interface{}

func scenarioDir() string {
	if dir := os.Getenv("WAYPOST_SCENARIOS"); dir != "" {
		return dir
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "tests", "scenarios")
}

func decodeJSON(data []byte, v interface{}) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	return d.Decode(v)
}

func strArg(step object, key string) string {
	s, ok := step[key].(string)
	if !ok {
		panic(fmt.Sprintf("step needs string `%s`: %v", key, step))
	}
	return s
}

func boolArg(step object, key string, def bool) bool {
	if b, ok := step[key].(bool); ok {
		return b
	}
	return def
}

func uintArg(v interface{}) uint64 {
	n, ok := v.(json.Number)
	if !ok {
		panic(fmt.Sprintf("not a number: %v", v))
	}
	var u uint64
	if _, err := fmt.Sscan(n.String(), &u); err != nil {
		panic(fmt.Sprintf("not a non-negative integer: %v", n))
	}
	return u
}

func filterOf(step object) Filter {
	var f Filter
	if tags, ok := step["tags"].([]interface{}); ok {
		for _, t := range tags {
			f.Tags = append(f.Tags, t.(string))
		}
	}
	if meta, ok := step["meta"].(object); ok {
		f.Meta = map[string]string{}
		for k, v := range meta {
			f.Meta[k] = v.(string)
		}
	}
	return f
}

func eventValues(events []Event) []interface{} {
	out := make([]interface{}, len(events))
	for i, e := range events {
		v := object{"index": e.Index, "type": e.Type, "at": e.AtMs()}
		for k, s := range map[string]string{"id": e.ID, "service": e.Service, "source": e.Source, "from": e.From, "to": e.To} {
			if s != "" {
				v[k] = s
			}
		}
		out[i] = v
	}
	return out
}

func stringValues(items []string) []interface{} {
	out := make([]interface{}, len(items))
	for i, s := range items {
		out[i] = s
	}
	return out
}

type runner struct {
	reg       *Registry
	lastEvent uint64
}

func (r *runner) run(step object, at time.Time) (object, error) {
	op := strArg(step, "op")
	out := object{}
	switch op {
	case "register":
		instance, err := json.Marshal(step["instance"])
		if err != nil {
			panic(err)
		}
		if _, err := r.reg.RegisterJSON(string(instance), at); err != nil {
			return nil, err
		}
	case "deregister":
		return out, r.reg.Deregister(strArg(step, "id"), at)
	case "heartbeat":
		return out, r.reg.Heartbeat(strArg(step, "id"), at)
	case "begin":
		return out, r.reg.Begin(strArg(step, "id"), at)
	case "end":
		return out, r.reg.End(strArg(step, "id"), at)
	case "check":
		status, err := ParseCheckStatus(strArg(step, "status"))
		if err != nil {
			return nil, err
		}
		return out, r.reg.ReportCheck(strArg(step, "id"), status, at)
	case "outcome":
		success, ok := step["success"].(bool)
		if !ok {
			panic("outcome needs success")
		}
		return out, r.reg.ReportOutcome(strArg(step, "id"), success, at)
	case "drain":
		return out, r.reg.Drain(strArg(step, "id"), boolArg(step, "on", true), at)
	case "tick":
		events, err := r.reg.Tick(at)
		if err != nil {
			return nil, err
		}
		out["events"] = eventValues(events)
	case "discover":
		found, err := r.reg.Discover(strArg(step, "service"), &DiscoverOptions{All: boolArg(step, "all", false), Filter: filterOf(step)}, at)
		if err != nil {
			return nil, err
		}
		ids, health := []interface{}{}, []interface{}{}
		for i, inst := range found.Instances {
			ids = append(ids, inst.ID)
			health = append(health, found.Health[i].String())
		}
		out["ids"], out["health"], out["panic"] = ids, health, found.Panic
	case "pick", "picks":
		strategy, err := ParseStrategy(strArg(step, "strategy"))
		if err != nil {
			return nil, err
		}
		opts := PickOptions{Filter: filterOf(step)}
		if key, ok := step["key"].(string); ok {
			opts.Key = key
		}
		if zone, ok := step["zone"].(string); ok {
			opts.Zone = zone
		}
		service := strArg(step, "service")
		if op == "pick" {
			p, err := r.reg.Pick(service, strategy, &opts, at)
			if err != nil {
				return nil, err
			}
			out["id"], out["panic"] = p.Instance.ID, p.Panic
			break
		}
		count := uint64(1)
		if c, ok := step["count"]; ok {
			count = uintArg(c)
		}
		prefix, hasPrefix := step["key_prefix"].(string)
		ids := []interface{}{}
		for i := uint64(0); i < count; i++ {
			if hasPrefix {
				opts.Key = fmt.Sprintf("%s%d", prefix, i)
			}
			p, err := r.reg.Pick(service, strategy, &opts, at)
			if err != nil {
				return nil, err
			}
			ids = append(ids, p.Instance.ID)
		}
		out["ids"] = ids
	case "events":
		events, err := r.reg.EventsSince(r.lastEvent)
		if err != nil {
			return nil, err
		}
		if len(events) > 0 {
			r.lastEvent = events[len(events)-1].Index
		}
		out["events"] = eventValues(events)
	case "get":
		st, err := r.reg.Get(strArg(step, "id"), at)
		if err != nil {
			return nil, err
		}
		out["id"], out["service"], out["health"] = st.ID, st.Service, st.Health.String()
		out["modify_index"], out["inflight"] = st.ModifyIndex, st.Inflight
		if st.Source != "" {
			out["source"], out["held"] = st.Source, st.Held
		}
	case "services":
		names, err := r.reg.Services(at)
		if err != nil {
			return nil, err
		}
		out["services"] = stringValues(names)
	case "due_checks":
		ids, err := r.reg.DueChecks(at)
		if err != nil {
			return nil, err
		}
		out["ids"] = stringValues(ids)
	case "snapshot_restore":
		text, err := r.reg.Snapshot()
		if err != nil {
			return nil, err
		}
		restored, err := Restore(text)
		if err != nil {
			return nil, err
		}
		r.reg.Close()
		r.reg = restored
	case "sync":
		rep, err := r.reg.Sync(strArg(step, "source"), strArg(step, "service"), jsonText(step["entries"]), at)
		if err != nil {
			return nil, err
		}
		out["report"] = rep
	case "source_put":
		rep, err := r.reg.SourcePut(strArg(step, "source"), jsonText(step["entry"]), at)
		if err != nil {
			return nil, err
		}
		out["report"] = rep
	case "source_delete":
		rep, err := r.reg.SourceDelete(strArg(step, "source"), strArg(step, "id"), at)
		if err != nil {
			return nil, err
		}
		out["report"] = rep
	case "source_add":
		if err := r.reg.SourceAdd(strArg(step, "name"), jsonText(step["options"])); err != nil {
			return nil, err
		}
	case "source_request":
		req, err := r.reg.SourceRequest(strArg(step, "name"))
		if err != nil {
			return nil, err
		}
		out["request"] = req
	case "source_feed", "etcd_range", "etcd_watch", "consul_health", "k8s_slices":
		name, payload, status, index := feedNames[op], step["payload"], 200, ""
		if n, ok := step["name"].(string); ok {
			name = n
		}
		if op == "source_feed" {
			payload = step["body"]
		}
		if s, ok := step["status"]; ok {
			status = int(uintArg(s))
		}
		if i, ok := step["index"].(string); ok {
			index = i
		}
		body := []byte(payloadText(payload))
		// A binary payload (a gRPC answer) comes as `body_base64`.
		if coded, ok := step["body_base64"].(string); ok {
			raw, err := base64.StdEncoding.DecodeString(coded)
			if err != nil {
				panic(fmt.Sprintf("body_base64: %v", err))
			}
			body = raw
		}
		rep, err := r.reg.SourceFeedBytes(name, body, at, status, index)
		if err != nil {
			return nil, err
		}
		out["report"] = rep
	case "k8s_watch":
		name, status := "k8s", 200
		if n, ok := step["name"].(string); ok {
			name = n
		}
		if s, ok := step["status"]; ok {
			status = int(uintArg(s))
		}
		body := payloadText(step["payload"])
		if events, ok := step["payload"].([]interface{}); ok {
			lines := make([]string, len(events))
			for k, e := range events {
				lines[k] = payloadText(e)
			}
			body = strings.Join(lines, "\n")
		}
		rep, err := r.reg.SourceFeed(name, body, at, status, "")
		if err != nil {
			return nil, err
		}
		out["report"] = rep
	default:
		panic(fmt.Sprintf("unknown op `%s`", op))
	}
	return out, nil
}

// feedNames are the feed ops and the source each defaults to.
var feedNames = map[string]string{"source_feed": "etcd", "etcd_range": "etcd", "etcd_watch": "etcd", "consul_health": "consul", "k8s_slices": "k8s"}

// jsonText writes a decoded JSON value back as text.
func jsonText(v interface{}) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// payloadText is a feed payload as the core reads it: a string as it is,
// any other JSON value written out.
func payloadText(v interface{}) string {
	if s, ok := v.(string); ok {
		return s
	}
	return jsonText(v)
}

// normalise round-trips a value through JSON so comparisons see JSON values.
func normalise(v interface{}) interface{} {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	var out interface{}
	if err := decodeJSON(b, &out); err != nil {
		panic(err)
	}
	return out
}

func checkExpect(t *testing.T, ctx string, expect object, line object) {
	t.Helper()
	ok := line["ok"].(bool)
	if code, want := expect["error"]; want {
		if ok || line["error"] != code {
			t.Fatalf("%s: expected error %v", ctx, code)
		}
	} else if !ok {
		t.Fatalf("%s: expected success", ctx)
	}
	for key, want := range expect {
		switch key {
		case "error", "tolerance":
		case "ids", "id", "health", "panic", "services", "source", "held":
			if !reflect.DeepEqual(normalise(line[key]), want) {
				t.Fatalf("%s: `%s` is %v, want %v", ctx, key, line[key], want)
			}
		case "report", "request":
			got, _ := normalise(line[key]).(object)
			for field, value := range want.(object) {
				if !reflect.DeepEqual(got[field], value) {
					t.Fatalf("%s: `%s.%s` is %v, want %v", ctx, key, field, got[field], value)
				}
			}
		case "events":
			got := normalise(line["events"]).([]interface{})
			w := want.([]interface{})
			if len(got) != len(w) {
				t.Fatalf("%s: %d events, want %d", ctx, len(got), len(w))
			}
			for i := range w {
				for field, value := range w[i].(object) {
					if !reflect.DeepEqual(got[i].(object)[field], value) {
						t.Fatalf("%s: event field `%s` of %v", ctx, field, w[i])
					}
				}
			}
		case "counts":
			counts := map[string]uint64{}
			for _, id := range line["ids"].([]interface{}) {
				counts[id.(string)]++
			}
			wantCounts := map[string]uint64{}
			for id, n := range want.(object) {
				if c := uintArg(n); c > 0 {
					wantCounts[id] = c
				}
			}
			if !reflect.DeepEqual(counts, wantCounts) {
				t.Fatalf("%s: counts %v, want %v", ctx, counts, wantCounts)
			}
		case "shares":
			ids := line["ids"].([]interface{})
			tolerance := 0.05
			if tol, ok := expect["tolerance"].(json.Number); ok {
				tolerance, _ = tol.Float64()
			}
			for id, share := range want.(object) {
				n := 0
				for _, x := range ids {
					if x == id {
						n++
					}
				}
				got := float64(n) / float64(len(ids))
				s, _ := share.(json.Number).Float64()
				if math.Abs(got-s) > tolerance {
					t.Fatalf("%s: share of %s is %v, want %v±%v", ctx, id, got, s, tolerance)
				}
			}
		default:
			t.Fatalf("%s: unknown expectation `%s`", ctx, key)
		}
	}
}

func runScenario(t *testing.T, path string) []object {
	name := filepath.Base(path)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc object
	if err := decodeJSON(data, &doc); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	config, _ := doc["config"].(object)
	if config == nil {
		config = object{}
	}
	if _, ok := config["seed"]; !ok {
		config["seed"] = json.Number("0")
	}
	configText, _ := json.Marshal(config)
	reg, err := NewRegistryJSON(string(configText))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	r := &runner{reg: reg}
	defer func() { r.reg.Close() }()
	var at uint64
	var transcript []object
	for i, s := range doc["steps"].([]interface{}) {
		step := s.(object)
		if v, ok := step["at"]; ok {
			at = uintArg(v)
		}
		op := strArg(step, "op")
		line := object{"step": i, "op": op}
		fields, err := r.run(step, time.UnixMilli(int64(at)))
		if err != nil {
			var we *Error
			if !errors.As(err, &we) {
				t.Fatalf("%s step %d: untyped error %v", name, i, err)
			}
			line["ok"], line["error"] = false, string(we.Code)
		} else {
			line["ok"] = true
			for k, v := range fields {
				line[k] = v
			}
		}
		ctx := fmt.Sprintf("%s step %d: got %v", name, i, line)
		if expect, ok := step["expect"].(object); ok {
			checkExpect(t, ctx, expect, line)
		} else if !line["ok"].(bool) {
			t.Fatalf("%s", ctx)
		}
		transcript = append(transcript, line)
	}
	return transcript
}

func TestEveryScenarioFilePasses(t *testing.T) {
	dir := scenarioDir()
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenario files in %s", dir)
	}
	sort.Strings(files)
	outDir := ""
	if root := os.Getenv("WAYPOST_TRANSCRIPTS"); root != "" {
		outDir = filepath.Join(root, "go")
		if err := os.MkdirAll(outDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, path := range files {
		transcript := runScenario(t, path)
		if outDir == "" {
			continue
		}
		var b strings.Builder
		for _, line := range transcript {
			text, err := json.Marshal(line)
			if err != nil {
				t.Fatal(err)
			}
			b.Write(text)
			b.WriteByte('\n')
		}
		stem := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
		if err := os.WriteFile(filepath.Join(outDir, stem+".jsonl"), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d scenario files passed", len(files))
}
