package waypost

// The whole Go path of a 10 000-key etcd range: the payload in, the
// registry updated (one SourceFeed through cgo), built as the core's
// criterion bench builds it (`cargo bench -p waypost-bench --bench sources
// -- etcd_range`) and bindings-python/bench/feed_range.py: the same
// instances and keys, each value as this package writes an InstanceSpec
// (which leaves out the empty meta and priority 0).
//   go test -run '^$' -bench SourceFeedRange -benchtime 20x

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func rangePayload(n int) string {
	var b strings.Builder
	b.WriteString(`{"header":{"cluster_id":"1","member_id":"2","revision":"10","raft_term":"2"},"kvs":[`)
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("api-%07d", i)
		value, _ := json.Marshal(InstanceSpec{
			ID: id, Service: "api", Address: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255),
			Port: 8080, Weight: uint32(1 + i%7), Tags: []string{"v1"}, Zone: "eu-1",
		})
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"key":"%s","create_revision":"2","mod_revision":"5","version":"1","value":"%s","lease":"7587869812316352005"}`,
			base64.StdEncoding.EncodeToString([]byte("/waypost/services/api/"+id)), base64.StdEncoding.EncodeToString(value))
	}
	fmt.Fprintf(&b, `],"count":"%d"}`, n)
	return b.String()
}

func BenchmarkSourceFeedRange10000(b *testing.B) {
	const n = 10_000
	payload := rangePayload(n)
	mirror := func(b *testing.B) *Registry {
		reg, err := NewRegistry(DefaultConfig())
		if err != nil {
			b.Fatal(err)
		}
		if err := reg.SourceAdd("etcd", `{"kind":"etcd"}`); err != nil {
			b.Fatal(err)
		}
		return reg
	}
	b.Run("into_empty_registry", func(b *testing.B) {
		b.SetBytes(int64(len(payload)))
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			reg := mirror(b)
			b.StartTimer()
			rep, err := reg.SourceFeed("etcd", payload, at(0), 200, "")
			if err != nil || rep.Added != n {
				b.Fatal(err, rep.Added)
			}
			b.StopTimer()
			reg.Close()
			b.StartTimer()
		}
	})
	b.Run("already_in_sync", func(b *testing.B) {
		reg := mirror(b)
		defer reg.Close()
		if _, err := reg.SourceFeed("etcd", payload, at(0), 200, ""); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(payload)))
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			rep, err := reg.SourceFeed("etcd", payload, at(1), 200, "")
			if err != nil || rep.Unchanged != n {
				b.Fatal(err, rep.Unchanged)
			}
		}
	})
	// As the mirrors feed it: the answer's bytes, no copy into a string.
	b.Run("already_in_sync_bytes", func(b *testing.B) {
		reg := mirror(b)
		defer reg.Close()
		body := []byte(payload)
		if _, err := reg.SourceFeedBytes("etcd", body, at(0), 200, ""); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(body)))
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			rep, err := reg.SourceFeedBytes("etcd", body, at(1), 200, "")
			if err != nil || rep.Unchanged != n {
				b.Fatal(err, rep.Unchanged)
			}
		}
	})
}
