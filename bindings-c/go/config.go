package waypost

// #include "bridge.h"
import "C"

import (
	"time"
)

// Config is the registry configuration (SPEC §4). Start from DefaultConfig
// and change fields: the zero Config is not valid (its TTL is 0).
// Durations are whole milliseconds (finer parts are dropped).
type Config struct {
	TTL                          time.Duration // lease length
	EvictAfter                   time.Duration // time a lease may stay expired before removal; 0 = never
	Seed                         uint64        // RNG seed, used when RandomSeed is false
	RandomSeed                   bool          // draw the seed from host entropy (the default)
	CheckRise                    uint32        // passing checks that make a failing instance healthy
	CheckFall                    uint32        // failing checks that make an instance unhealthy
	ConsecutiveFailures          uint32        // call failures that eject an instance; 0 = off
	BaseEjection                 time.Duration // first ejection length
	MaxEjection                  time.Duration // cap on one ejection
	MaxEjectionPercent           uint32        // cap on ejected share of a service, percent
	PanicThreshold               float64       // 0.0–1.0; 0 = off
	SlowStart                    time.Duration // slow-start window; 0 = off
	SelfPreservationThreshold    float64       // 0.0–1.0; 0 = off
	SelfPreservationMinInstances uint32        // self-preservation applies from this many instances
	EventRetention               uint32        // events kept for EventsSince
	TrustEmptySync               bool          // a source's empty full sync may remove instances
}

func durationMs(name string, d time.Duration) (uint64, error) {
	if d < 0 {
		return 0, newError(CodeInvalidArgument, "invalid argument `"+name+"`: negative duration")
	}
	return uint64(d / time.Millisecond), nil
}

// DefaultConfig is the SPEC §4 defaults, as the C library gives them, with
// a random seed.
func DefaultConfig() Config {
	c := C.waypost_config_default()
	d := func(v C.uint64_t) time.Duration { return time.Duration(v) * time.Millisecond }
	return Config{
		TTL:                          d(c.ttl_ms),
		EvictAfter:                   d(c.evict_after_ms),
		Seed:                         uint64(c.seed),
		RandomSeed:                   bool(c.random_seed),
		CheckRise:                    uint32(c.check_rise),
		CheckFall:                    uint32(c.check_fall),
		ConsecutiveFailures:          uint32(c.consecutive_failures),
		BaseEjection:                 d(c.base_ejection_ms),
		MaxEjection:                  d(c.max_ejection_ms),
		MaxEjectionPercent:           uint32(c.max_ejection_percent),
		PanicThreshold:               float64(c.panic_threshold),
		SlowStart:                    d(c.slow_start_ms),
		SelfPreservationThreshold:    float64(c.self_preservation_threshold),
		SelfPreservationMinInstances: uint32(c.self_preservation_min_instances),
		EventRetention:               uint32(c.event_retention),
		TrustEmptySync:               bool(c.trust_empty_sync),
	}
}

func (cfg Config) toC() (C.waypost_config, error) {
	var c C.waypost_config
	fields := []struct {
		name string
		d    time.Duration
		dst  *C.uint64_t
	}{
		{"TTL", cfg.TTL, &c.ttl_ms},
		{"EvictAfter", cfg.EvictAfter, &c.evict_after_ms},
		{"BaseEjection", cfg.BaseEjection, &c.base_ejection_ms},
		{"MaxEjection", cfg.MaxEjection, &c.max_ejection_ms},
		{"SlowStart", cfg.SlowStart, &c.slow_start_ms},
	}
	for _, f := range fields {
		v, err := durationMs(f.name, f.d)
		if err != nil {
			return c, err
		}
		*f.dst = C.uint64_t(v)
	}
	c.seed = C.uint64_t(cfg.Seed)
	c.random_seed = C.bool(cfg.RandomSeed)
	c.check_rise = C.uint32_t(cfg.CheckRise)
	c.check_fall = C.uint32_t(cfg.CheckFall)
	c.consecutive_failures = C.uint32_t(cfg.ConsecutiveFailures)
	c.max_ejection_percent = C.uint32_t(cfg.MaxEjectionPercent)
	c.panic_threshold = C.double(cfg.PanicThreshold)
	c.self_preservation_threshold = C.double(cfg.SelfPreservationThreshold)
	c.self_preservation_min_instances = C.uint32_t(cfg.SelfPreservationMinInstances)
	c.event_retention = C.uint32_t(cfg.EventRetention)
	c.trust_empty_sync = C.bool(cfg.TrustEmptySync)
	return c, nil
}
