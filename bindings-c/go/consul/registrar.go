package consul

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"example.invalid/waypost"
	"example.invalid/waypost/internal/storehttp"
)

// Registrar registers Instance with the agent (PUT /v1/agent/service/register)
// with a TTL check and DeregisterCriticalServiceAfter, passes the check
// every TTL/3, registers again when the agent no longer knows it, and
// deregisters on a clean stop so the instance leaves at once.
//
// Update changes the registration in place (a drain is Update(ctx,
// instance, "maintenance")); the status maps as the core's Consul reader
// reads it back: "warning" and "critical" are the TTL check's status,
// which every later heartbeat keeps (warn / fail instead of pass);
// "maintenance" turns on the agent's maintenance mode for the service
// (reason "waypost: maintenance"), a later other status turns it off. Every
// later registration sends the updated instance. The core builds the
// registration (waypost.NewConsulRegistration), so every language sends
// the same bytes.
type Registrar struct {
	Address         string
	Instance        waypost.InstanceSpec // read at Start; change it later with Update
	TTL             time.Duration        // the check's TTL, whole seconds; default 10 s
	DeregisterAfter time.Duration        // critical this long → Consul removes it; default 1 min
	Token           string
	CAFile          string
	Timeout         time.Duration // per request; default 2 s
	OnError         func(error)

	server *storehttp.Server

	// writing is held while the registrar writes to the agent, so a
	// registration, a heartbeat and an Update never cross (the last
	// instance written is the last one given).
	writing     sync.Mutex
	registered  bool                       // under writing: Start registered it
	stopped     bool                       // under writing: Close has begun
	reg         waypost.ConsulRegistration // under writing: what is sent
	maintenance bool                       // under writing: maintenance mode turned on
	stale       bool                       // under writing: an update not yet all sent

	mu            sync.Mutex
	registrations int
	heartbeats    int
	err           error
	state         string

	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// NewRegistrar is a Registrar with the defaults.
func NewRegistrar(address string, instance waypost.InstanceSpec) *Registrar {
	return &Registrar{Address: address, Instance: instance}
}

// seconds is d in whole seconds, rounded up.
func seconds(d time.Duration) uint64 {
	return uint64((d + time.Second - 1) / time.Second)
}

func (r *Registrar) prepare() error {
	if r.TTL < 0 || r.DeregisterAfter < 0 {
		return errors.New("consul: Registrar.TTL and DeregisterAfter must not be negative")
	}
	if r.TTL == 0 {
		r.TTL = 10 * time.Second
	}
	if r.DeregisterAfter == 0 {
		r.DeregisterAfter = time.Minute
	}
	if r.Timeout == 0 {
		r.Timeout = 2 * time.Second
	}
	reg, err := r.registration(r.Instance, "")
	if err != nil {
		return err
	}
	r.reg = reg
	r.server, err = newServer(r.Address, r.Token, r.CAFile, r.Timeout)
	return err
}

// registration is what the core says to send for in with status.
func (r *Registrar) registration(in waypost.InstanceSpec, status string) (waypost.ConsulRegistration, error) {
	entry, err := in.EntryJSON(status)
	if err != nil {
		return waypost.ConsulRegistration{}, err
	}
	return waypost.NewConsulRegistration(string(entry), seconds(r.TTL), seconds(r.DeregisterAfter))
}

// Update replaces the registration with instance and status ("" or
// "passing", "warning", "critical", "maintenance": what mirrors read;
// "maintenance" drains it), and keeps it: heartbeats keep its check status
// and a registration after the agent forgot it sends this instance. ID and
// Service must not change. After Close it is only kept. When the agent
// cannot be reached or refuses it returns the error (the instance is kept
// and the heartbeat goroutine sends it once the agent answers).
func (r *Registrar) Update(ctx context.Context, instance waypost.InstanceSpec, status string) error {
	if r.server == nil {
		return errors.New("consul: Registrar.Update before Start")
	}
	if instance.ID != r.Instance.ID || instance.Service != r.Instance.Service {
		return fmt.Errorf("consul: Update keeps the instance %s/%s (same ID and Service), got %s/%s",
			r.Instance.Service, r.Instance.ID, instance.Service, instance.ID)
	}
	reg, err := r.registration(instance, status)
	if err != nil {
		return err
	}
	r.writing.Lock()
	defer r.writing.Unlock()
	r.reg = reg
	if !r.registered || r.stopped {
		return nil
	}
	return r.register(ctx)
}

// Registrations counts the registrations sent (1 + re-registrations).
func (r *Registrar) Registrations() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.registrations
}

// Heartbeats counts the check passes sent.
func (r *Registrar) Heartbeats() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.heartbeats
}

// Err is the last background failure, nil once a heartbeat succeeds again.
func (r *Registrar) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Status is "idle", "registered", "retrying" or "stopped".
func (r *Registrar) Status() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == "" {
		return "idle"
	}
	return r.state
}

func (r *Registrar) put(ctx context.Context, path, body string) (int, error) {
	a, err := r.server.Do(ctx, "PUT", path, body, false, 0)
	if err != nil {
		return 0, err
	}
	if a.Status != 200 && a.Status != 404 {
		return a.Status, r.server.Fail(path, a.Status, "PUT %s answered HTTP %d: %.300s", path, a.Status, a.Body)
	}
	return a.Status, nil
}

// must is put where only 200 will do.
func (r *Registrar) must(ctx context.Context, path, body string) error {
	status, err := r.put(ctx, path, body)
	if err == nil && status != 200 {
		err = r.server.Fail(path, status, "PUT %s answered HTTP %d", path, status)
	}
	return err
}

// register registers the instance as it is now: the registration, the
// check's status (an agent that knew the check keeps its old one),
// maintenance mode on, or off when it was on (a registration anew may
// have dropped it: turned on again). Until all of it went through, the
// next heartbeat does it again. r.writing is held.
func (r *Registrar) register(ctx context.Context) error {
	r.stale = true
	if err := r.must(ctx, "/v1/agent/service/register", r.reg.Body); err != nil {
		return err
	}
	r.mu.Lock()
	r.registrations++
	r.mu.Unlock()
	if err := r.must(ctx, r.reg.HeartbeatPath, ""); err != nil {
		return err
	}
	if want := r.reg.Maintenance; want || r.maintenance {
		path := r.reg.MaintenanceOffPath
		if want {
			path = r.reg.MaintenanceOnPath
		}
		if err := r.must(ctx, path, ""); err != nil {
			return err
		}
		r.maintenance = want
	}
	r.stale = false
	return nil
}

func (r *Registrar) beat(ctx context.Context) error {
	r.writing.Lock()
	defer r.writing.Unlock()
	if r.stopped {
		return nil
	}
	if r.stale {
		if err := r.register(ctx); err != nil {
			return err
		}
	} else if status, err := r.put(ctx, r.reg.HeartbeatPath, ""); err != nil {
		return err
	} else if status == 404 {
		if err := r.register(ctx); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.heartbeats++
	r.mu.Unlock()
	return nil
}

func (r *Registrar) run(ctx context.Context) {
	defer close(r.done)
	interval := r.TTL / 3
	if interval < 100*time.Millisecond {
		interval = 100 * time.Millisecond
	}
	delay := interval
	for storehttp.Sleep(ctx, delay) {
		if err := r.beat(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			r.mu.Lock()
			r.err, r.state = err, "retrying"
			r.mu.Unlock()
			if r.OnError != nil {
				r.OnError(err)
			}
			if delay /= 2; delay < 100*time.Millisecond {
				delay = 100 * time.Millisecond
			}
			continue
		}
		r.mu.Lock()
		r.err, r.state = nil, "registered"
		r.mu.Unlock()
		delay = interval
	}
}

// Start registers now (an error when the agent refuses or cannot be
// reached) and passes the check in a goroutine until ctx ends or Close.
func (r *Registrar) Start(ctx context.Context) error {
	if r.done != nil {
		return errors.New("consul: Registrar already started")
	}
	if err := r.prepare(); err != nil {
		return err
	}
	r.writing.Lock()
	err := r.register(ctx)
	r.registered = err == nil
	r.writing.Unlock()
	if err != nil {
		r.server.Close()
		return err
	}
	r.mu.Lock()
	r.state = "registered"
	r.mu.Unlock()
	bg, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	go r.run(bg)
	go func(done chan struct{}) {
		select {
		case <-ctx.Done():
			r.Close()
		case <-done:
		}
	}(r.done)
	return nil
}

// Close stops the heartbeats and deregisters the instance; it waits for
// the goroutine and returns the deregister's failure (nil when it left).
// Safe to call twice.
func (r *Registrar) Close() error {
	if r.done == nil {
		return nil
	}
	r.closeOnce.Do(func() {
		r.cancel()
		<-r.done
		r.writing.Lock()
		r.stopped = true
		path := r.reg.DeregisterPath
		r.writing.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 2*r.Timeout)
		_, err := r.put(ctx, path, "")
		cancel()
		r.server.Close()
		r.mu.Lock()
		r.state, r.err = "stopped", err
		r.mu.Unlock()
		r.closeErr = err
	})
	return r.closeErr
}

// Run registers, keeps the instance registered until ctx ends, then
// deregisters. It returns the first registration's failure, or Close's.
func (r *Registrar) Run(ctx context.Context) error {
	if err := r.Start(ctx); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-r.done:
	}
	return r.Close()
}
