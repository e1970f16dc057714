package waypost

// #include "bridge.h"
import "C"

import (
	"encoding/json"
	"time"
)

// Event is one state change (SPEC §6).
type Event struct {
	Index   uint64    // strictly increasing, from 1
	Type    string    // "registered", "health_changed", …
	At      time.Time // registry time of the change
	ID      string    // the instance concerned, "" if none
	Service string    // the service concerned, "" if none
	Source  string    // the source that caused it (SPEC §10), "" if none
	From    string    // health before a health_changed
	To      string    // health after a health_changed
}

type wireEvent struct {
	Index   uint64 `json:"index"`
	Type    string `json:"type"`
	At      uint64 `json:"at"`
	ID      string `json:"id,omitempty"`
	Service string `json:"service,omitempty"`
	Source  string `json:"source,omitempty"`
	From    string `json:"from,omitempty"`
	To      string `json:"to,omitempty"`
}

// AtMs is At in milliseconds since the Unix epoch, as on the wire.
func (e Event) AtMs() uint64 { return uint64(e.At.UnixMilli()) }

// MarshalJSON writes the wire form shared by every binding.
func (e Event) MarshalJSON() ([]byte, error) {
	return json.Marshal(wireEvent{e.Index, e.Type, e.AtMs(), e.ID, e.Service, e.Source, e.From, e.To})
}

func decodeEvents(text string) ([]Event, error) {
	if text == "" {
		return nil, nil
	}
	var wire []wireEvent
	if err := decode(text, &wire); err != nil {
		return nil, err
	}
	events := make([]Event, len(wire))
	for i, w := range wire {
		events[i] = Event{w.Index, w.Type, msTime(w.At), w.ID, w.Service, w.Source, w.From, w.To}
	}
	return events, nil
}

// Tick advances the registry clock to now and returns the events that
// produced (expiries, evictions, ejection ends). Calls allocate nothing
// when nothing fell due.
func (r *Registry) Tick(now time.Time) ([]Event, error) {
	t, err := ms(now)
	if err != nil {
		return nil, err
	}
	ret := C.wp_tick(r.addr, t)
	keepAlive(r)
	if err := status(ret.status, ret.err); err != nil {
		return nil, err
	}
	if ret.json == nil {
		return nil, nil
	}
	return decodeEvents(takeString(ret.json))
}

// NextDeadline is the earliest time at which the registry's state changes by
// itself (so a host can sleep until then); ok is false when nothing is due.
func (r *Registry) NextDeadline() (deadline time.Time, ok bool, err error) {
	var d C.uint64_t
	var e *C.waypost_error
	err = status(C.waypost_next_deadline(r.ptr, &d, &e), e)
	keepAlive(r)
	if err != nil || d == C.WAYPOST_NO_DEADLINE {
		return time.Time{}, false, err
	}
	return msTime(uint64(d)), true, nil
}

// EventsSince returns the retained events with index greater than after;
// ErrCompacted when some were dropped (resync from a Snapshot).
func (r *Registry) EventsSince(after uint64) ([]Event, error) {
	text, err := r.jsonCall(func(out **C.char, e **C.waypost_error) C.waypost_status {
		return C.waypost_events_since(r.ptr, C.uint64_t(after), out, e)
	})
	if err != nil {
		return nil, err
	}
	return decodeEvents(text)
}
