package waypost

// #include "bridge.h"
import "C"

import "time"

// Report is what one reconcile call did (SPEC §10.2).
type Report struct {
	Added     uint32     `json:"added"`
	Updated   uint32     `json:"updated"`
	Removed   uint32     `json:"removed"`
	Unchanged uint32     `json:"unchanged"`
	Held      uint32     `json:"held"`
	Rejected  []Rejected `json:"rejected"`
	// Resync: the mirror was reset; the next request reads everything again.
	Resync bool `json:"resync"`
	// Changed: something was added, updated, removed or held back, or the
	// mirror was reset; the mirrors call OnChange exactly then.
	Changed bool `json:"changed"`
}

// Rejected is a record a reconcile skipped (the rest of its batch applied).
type Rejected struct {
	At      string `json:"at"`
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

// Request is what a mirror's host sends next (SPEC §10.4). With Stream,
// each message of the answer is fed on its own. With GRPC it is a gRPC
// unary call over HTTP/2: Path is the method, Body the base64 of the
// length-prefixed request message, and the answer's bytes are fed back as
// they came.
type Request struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	Body   string `json:"body"`
	Stream bool   `json:"stream"`
	GRPC   bool   `json:"grpc,omitempty"`
}

// strings3 runs f with C copies of up to three string arguments.
func strings3(names, values [3]string, n int, f func(a, b, c *C.char) error) error {
	var cs [3]*C.char
	for i := 0; i < n; i++ {
		s, err := cstring(names[i], values[i])
		if err != nil {
			for _, p := range cs[:i] {
				freeC(p)
			}
			return err
		}
		cs[i] = s
	}
	defer func() {
		for _, p := range cs[:n] {
			freeC(p)
		}
	}()
	return f(cs[0], cs[1], cs[2])
}

func (r *Registry) reportCall(f func(out **C.char, e **C.waypost_error) C.waypost_status) (Report, error) {
	var rep Report
	text, err := r.jsonCall(f)
	if err != nil {
		return rep, err
	}
	err = decode(text, &rep)
	if rep.Rejected == nil {
		rep.Rejected = []Rejected{}
	}
	return rep, err
}

// Sync makes the instances of service owned by source exactly the entries
// of entriesJSON (a JSON array of instance wire forms, each with an optional
// "status": passing, warning, critical or maintenance).
func (r *Registry) Sync(source, service, entriesJSON string, now time.Time) (Report, error) {
	t, err := ms(now)
	if err != nil {
		return Report{}, err
	}
	var rep Report
	err = strings3([3]string{"source", "service", "entries"}, [3]string{source, service, entriesJSON}, 3, func(a, b, c *C.char) error {
		var e error
		rep, e = r.reportCall(func(out **C.char, ce **C.waypost_error) C.waypost_status {
			return C.waypost_registry_sync(r.ptr, a, b, c, t, out, ce)
		})
		return e
	})
	return rep, err
}

// SourcePut adds or replaces one entry of source (a watch event's put).
func (r *Registry) SourcePut(source, entryJSON string, now time.Time) (Report, error) {
	t, err := ms(now)
	if err != nil {
		return Report{}, err
	}
	var rep Report
	err = strings3([3]string{"source", "entry"}, [3]string{source, entryJSON}, 2, func(a, b, _ *C.char) error {
		var e error
		rep, e = r.reportCall(func(out **C.char, ce **C.waypost_error) C.waypost_status {
			return C.waypost_registry_source_put(r.ptr, a, b, t, out, ce)
		})
		return e
	})
	return rep, err
}

// SourceDelete removes one id of source (an id it does not hold is a no-op).
func (r *Registry) SourceDelete(source, id string, now time.Time) (Report, error) {
	t, err := ms(now)
	if err != nil {
		return Report{}, err
	}
	var rep Report
	err = strings3([3]string{"source", "id"}, [3]string{source, id}, 2, func(a, b, _ *C.char) error {
		var e error
		rep, e = r.reportCall(func(out **C.char, ce **C.waypost_error) C.waypost_status {
			return C.waypost_registry_source_delete(r.ptr, a, b, t, out, ce)
		})
		return e
	})
	return rep, err
}

// SourceAdd declares a mirrored source from its options, e.g.
// {"kind": "etcd", "prefix": "/waypost/services"}.
func (r *Registry) SourceAdd(name, optionsJSON string) error {
	err := strings3([3]string{"name", "options"}, [3]string{name, optionsJSON}, 2, func(a, b, _ *C.char) error {
		var e *C.waypost_error
		return status(C.waypost_registry_source_add(r.ptr, a, b, &e), e)
	})
	keepAlive(r)
	return err
}

// SourceRequest is the request the host must send next for source name.
func (r *Registry) SourceRequest(name string) (Request, error) {
	var req Request
	err := withName("name", name, func(n *C.char) error {
		text, err := r.jsonCall(func(out **C.char, e **C.waypost_error) C.waypost_status {
			return C.waypost_registry_source_request(r.ptr, n, out, e)
		})
		if err != nil {
			return err
		}
		return decode(text, &req)
	})
	return req, err
}

// SourceFeed hands source name what its last request brought back: body (a
// whole response, or one message of a stream: text, or the bytes of a
// binary answer such as etcd's gRPC range, NUL bytes included), the HTTP
// status and the store's index header ("" for none). A report with Resync
// means the next request reads everything again.
func (r *Registry) SourceFeed(name, body string, now time.Time, status int, index string) (Report, error) {
	return r.SourceFeedBytes(name, []byte(body), now, status, index)
}

// SourceFeedBytes is SourceFeed for a body held as bytes (no copy into a
// string first).
func (r *Registry) SourceFeedBytes(name string, body []byte, now time.Time, status int, index string) (Report, error) {
	t, err := ms(now)
	if err != nil {
		return Report{}, err
	}
	if status < 0 || status > 65535 {
		return Report{}, newError(CodeInvalidArgument, "invalid argument `status`: not an HTTP status")
	}
	n := 1
	if index != "" {
		n = 2
	}
	var rep Report
	err = strings3([3]string{"name", "index"}, [3]string{name, index}, n, func(a, c, _ *C.char) error {
		// The body goes by pointer and length (it may hold NUL bytes).
		p := bytePtr(body)
		var e error
		rep, e = r.reportCall(func(out **C.char, ce **C.waypost_error) C.waypost_status {
			return C.waypost_registry_source_feed_bytes(r.ptr, a, p, C.size_t(len(body)), t, C.uint16_t(status), c, out, ce)
		})
		return e
	})
	return rep, err
}

// ConsulRegistration is what a Consul registrar sends the local agent for
// one instance (SPEC §10.4, Consul registration), as the core builds it.
type ConsulRegistration struct {
	ID      string `json:"id"`
	Service string `json:"service"`
	// CheckID is the TTL check's id, "service:<id>".
	CheckID string `json:"check_id"`
	// Body is the text to PUT to /v1/agent/service/register.
	Body string `json:"body"`
	// HeartbeatPath keeps the check's status: /v1/agent/check/<pass|warn|fail>/service:<id>.
	HeartbeatPath string `json:"heartbeat_path"`
	// Maintenance: the agent's maintenance mode for the service is on.
	Maintenance bool `json:"maintenance"`
	// DeregisterPath removes the service at once: /v1/agent/service/deregister/<id>.
	DeregisterPath string `json:"deregister_path"`
	// MaintenanceOnPath turns the agent's maintenance mode on:
	// /v1/agent/service/maintenance/<id>?enable=true&reason=waypost%3A%20maintenance.
	MaintenanceOnPath string `json:"maintenance_on_path"`
	// MaintenanceOffPath turns it off: /v1/agent/service/maintenance/<id>?enable=false.
	MaintenanceOffPath string `json:"maintenance_off_path"`
}

// NewConsulRegistration is the registration of entryJSON (the instance wire
// form plus an optional "status": passing, warning, critical or
// maintenance) with a TTL check of ttlS seconds that Consul removes after
// deregisterAfterS seconds critical (each 1-86400).
func NewConsulRegistration(entryJSON string, ttlS, deregisterAfterS uint64) (ConsulRegistration, error) {
	var reg ConsulRegistration
	err := withName("entry", entryJSON, func(entry *C.char) error {
		var out *C.char
		var e *C.waypost_error
		if err := status(C.waypost_consul_registration(entry, C.uint64_t(ttlS), C.uint64_t(deregisterAfterS), &out, &e), e); err != nil {
			return err
		}
		return decode(takeString(out), &reg)
	})
	return reg, err
}
