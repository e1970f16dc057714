package consul

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"example.invalid/waypost"
	"example.invalid/waypost/internal/storehttp"
)

// Registrar registers Instance with the agent (PUT /v1/agent/service/register)
// with a TTL check and DeregisterCriticalServiceAfter, passes the check
// every TTL/3, registers again when the agent no longer knows it, and
// deregisters on a clean stop so the instance leaves at once.
type Registrar struct {
	Address         string
	Instance        waypost.InstanceSpec
	TTL             time.Duration // the check's TTL, whole seconds; default 10 s
	DeregisterAfter time.Duration // critical this long → Consul removes it; default 1 min
	Token           string
	CAFile          string
	Timeout         time.Duration // per request; default 2 s
	OnError         func(error)

	server *storehttp.Server
	body   string

	mu            sync.Mutex
	registrations int
	heartbeats    int
	err           error
	status        string

	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// NewRegistrar is a Registrar with the defaults.
func NewRegistrar(address string, instance waypost.InstanceSpec) *Registrar {
	return &Registrar{Address: address, Instance: instance}
}

func seconds(d time.Duration) string {
	return fmt.Sprintf("%ds", int64((d+time.Second-1)/time.Second))
}

func (r *Registrar) prepare() error {
	if r.Instance.ID == "" || r.Instance.Service == "" {
		return errors.New("consul: Registrar.Instance needs ID and Service")
	}
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
	in := r.Instance
	weight := in.Weight
	if weight == 0 {
		weight = 1
	}
	body := map[string]any{
		"ID": in.ID, "Name": in.Service, "Address": in.Address, "Port": in.Port,
		"Tags": append([]string{}, in.Tags...), "Meta": in.Meta,
		"Weights": map[string]uint32{"Passing": weight, "Warning": 1},
		"Check": map[string]string{
			"CheckID": "service:" + in.ID, "Name": "waypost TTL for " + in.ID, "TTL": seconds(r.TTL),
			"Status": "passing", "DeregisterCriticalServiceAfter": seconds(r.DeregisterAfter),
		},
	}
	if in.Zone != "" {
		body["Locality"] = map[string]string{"Zone": in.Zone}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	r.body = string(b)
	r.server, err = newServer(r.Address, r.Token, r.CAFile, r.Timeout)
	return err
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
	if r.status == "" {
		return "idle"
	}
	return r.status
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

func (r *Registrar) register(ctx context.Context) error {
	const path = "/v1/agent/service/register"
	status, err := r.put(ctx, path, r.body)
	if err != nil {
		return err
	}
	if status != 200 {
		return r.server.Fail(path, status, "PUT %s answered HTTP %d", path, status)
	}
	r.mu.Lock()
	r.registrations++
	r.mu.Unlock()
	return nil
}

func (r *Registrar) beat(ctx context.Context) error {
	status, err := r.put(ctx, "/v1/agent/check/pass/service:"+url.PathEscape(r.Instance.ID), "")
	if err != nil {
		return err
	}
	if status == 404 {
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
			r.err, r.status = err, "retrying"
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
		r.err, r.status = nil, "registered"
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
	if err := r.register(ctx); err != nil {
		r.server.Close()
		return err
	}
	r.mu.Lock()
	r.status = "registered"
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
		ctx, cancel := context.WithTimeout(context.Background(), 2*r.Timeout)
		_, err := r.put(ctx, "/v1/agent/service/deregister/"+url.PathEscape(r.Instance.ID), "")
		cancel()
		r.server.Close()
		r.mu.Lock()
		r.status, r.err = "stopped", err
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
