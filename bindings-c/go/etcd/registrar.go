// Package etcd keeps an instance registered in etcd (Registrar) and mirrors
// etcd into a waypost Registry (Mirror), over etcd's v3 JSON gateway with
// net/http only.
//
// The core decides everything a mirror does (what to read, where to watch
// from, when to resync); the mirror sends what SourceRequest names and hands
// each answer back with SourceFeed. Both helpers take several client URLs
// and move to the next when one fails; background failures are visible
// (Err, Status, an OnError callback, the error Close returns).
package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"example.invalid/waypost"
)

// DefaultPrefix is where instances live: <prefix>/<service>/<id>.
const DefaultPrefix = "/waypost/services"

// Registrar keeps one instance registered under <Prefix>/<service>/<id>
// with a lease: kept alive every TTL/3, registered again with a new lease
// when the lease is lost (or the key is gone), revoked on a clean stop so
// the instance disappears at once. etcd raises a TTL below its minimum
// (about 2 s): GrantedTTL says what it granted. Update changes the value
// (a drain is Update(ctx, instance, "maintenance")); every later
// registration writes the updated one.
type Registrar struct {
	Endpoints []string
	Instance  waypost.InstanceSpec // read at Start; change it later with Update
	Prefix    string               // default DefaultPrefix
	TTL       time.Duration        // whole seconds, rounded up; default 10 s
	Timeout   time.Duration        // per request; default 2 s
	CAFile    string               // PEM CA for https endpoints; default the system's CAs
	OnError   func(error)          // called from the background goroutine

	etcd *endpoints
	key  string

	// writing is held while the registrar writes to etcd, so a
	// registration and an Update never cross (the last value written is
	// the last one given).
	writing sync.Mutex
	stopped bool   // under writing: Close has begun
	value   string // written under writing and mu

	mu            sync.Mutex
	leaseID       string
	granted       time.Duration
	registrations int
	err           error
	status        string

	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// NewRegistrar is a Registrar with the defaults.
func NewRegistrar(endpoints []string, instance waypost.InstanceSpec) *Registrar {
	return &Registrar{Endpoints: endpoints, Instance: instance}
}

func (r *Registrar) prepare() error {
	if r.Instance.ID == "" || r.Instance.Service == "" {
		return errors.New("etcd: Registrar.Instance needs ID and Service")
	}
	if strings.Contains(r.Instance.Service, "/") {
		return fmt.Errorf("etcd: service %q must not contain '/' (it is a key segment)", r.Instance.Service)
	}
	if r.TTL < 0 {
		return errors.New("etcd: Registrar.TTL must not be negative")
	}
	if r.TTL == 0 {
		r.TTL = 10 * time.Second
	}
	prefix := r.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	value, err := encodeValue(r.Instance, "")
	if err != nil {
		return err
	}
	e, err := newEndpoints(r.Endpoints, r.Timeout, r.CAFile)
	if err != nil {
		return err
	}
	r.etcd, r.value = e, value
	r.key = instanceKey(prefix, r.Instance)
	return nil
}

func instanceKey(prefix string, spec waypost.InstanceSpec) string {
	return strings.TrimRight(prefix, "/") + "/" + spec.Service + "/" + spec.ID
}

// encodeValue is the value a registrar writes: the instance wire form,
// with the source status when one is given.
func encodeValue(spec waypost.InstanceSpec, status string) (string, error) {
	known := waypost.SourceStatuses()
	valid := status == ""
	for _, name := range known {
		valid = valid || status == name
	}
	if !valid {
		last := len(known) - 1
		return "", fmt.Errorf("etcd: status %q: expected %s or %s", status, strings.Join(known[:last], ", "), known[last])
	}
	b, err := spec.EntryJSON(status)
	return string(b), err
}

// Update replaces the registered value with instance and status ("" or
// "passing", "warning", "critical", "maintenance": what mirrors read;
// "maintenance" drains it) under the registrar's lease, and keeps it: a
// registration after a lost lease writes this value. The key stays: ID
// and Service must not change. After Close it is only kept. When the lease
// is gone the instance is registered again at once; when no endpoint
// answers it returns the error (the value is kept and the keep-alive
// goroutine writes it once etcd answers).
func (r *Registrar) Update(ctx context.Context, instance waypost.InstanceSpec, status string) error {
	if r.etcd == nil {
		return errors.New("etcd: Registrar.Update before Start")
	}
	if instance.ID != r.Instance.ID || instance.Service != r.Instance.Service {
		return fmt.Errorf("etcd: Update keeps the key %s (same ID and Service), got %s/%s", r.key, instance.Service, instance.ID)
	}
	value, err := encodeValue(instance, status)
	if err != nil {
		return err
	}
	r.writing.Lock()
	defer r.writing.Unlock()
	r.mu.Lock()
	r.value = value
	r.mu.Unlock()
	lease := r.LeaseID()
	if lease == "" || r.stopped {
		return nil
	}
	var put struct{}
	err = r.etcd.call(ctx, "/v3/kv/put", map[string]string{"key": b64(r.key), "value": b64(value), "lease": lease}, &put)
	var refused *Error
	if errors.As(err, &refused) && refused.Status != 0 {
		return r.register(ctx) // etcd refuses a put under a lost lease
	}
	return err
}

// Value is the value registered (the instance wire form, JSON, with the
// status Update gave).
func (r *Registrar) Value() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.value
}

// Key is the instance's key in etcd.
func (r *Registrar) Key() string { return r.key }

// LeaseID is the lease in use ("" before Start and after Close).
func (r *Registrar) LeaseID() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leaseID
}

// GrantedTTL is the TTL etcd granted.
func (r *Registrar) GrantedTTL() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.granted
}

// Registrations counts the registrations made (1 + each new lease).
func (r *Registrar) Registrations() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.registrations
}

// Err is the last background failure, nil once healthy again.
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

// Endpoint is the client URL in use now.
func (r *Registrar) Endpoint() string { return r.etcd.cur() }

// register grants a lease and writes the value under it; r.writing is held.
func (r *Registrar) register(ctx context.Context) error {
	secs := int64((r.TTL + time.Second - 1) / time.Second)
	var grant struct {
		ID  string
		TTL string
	}
	if err := r.etcd.call(ctx, "/v3/lease/grant", map[string]int64{"TTL": secs}, &grant); err != nil {
		return err
	}
	ttl, _ := strconv.ParseInt(grant.TTL, 10, 64)
	if grant.ID == "" || ttl <= 0 {
		return &Error{Endpoint: r.etcd.cur(), Path: "/v3/lease/grant", Message: fmt.Sprintf("etcd %s: lease grant answered ID %q TTL %q", r.etcd.cur(), grant.ID, grant.TTL)}
	}
	var put struct{}
	if err := r.etcd.call(ctx, "/v3/kv/put", map[string]string{"key": b64(r.key), "value": b64(r.value), "lease": grant.ID}, &put); err != nil {
		return err
	}
	r.mu.Lock()
	r.leaseID, r.granted = grant.ID, time.Duration(ttl)*time.Second
	r.registrations++
	r.mu.Unlock()
	return nil
}

// renew is one keep-alive round: renew the lease; register again when it
// is gone, put the key back when only the key is gone.
func (r *Registrar) renew(ctx context.Context) error {
	r.writing.Lock()
	defer r.writing.Unlock()
	if r.stopped {
		return nil
	}
	lease := r.LeaseID()
	if lease == "" {
		return r.register(ctx)
	}
	var ka struct {
		Result struct{ TTL string }
		Error  json.RawMessage
	}
	if err := r.etcd.firstMessage(ctx, "/v3/lease/keepalive", map[string]string{"ID": lease}, &ka); err != nil {
		return err
	}
	if len(ka.Error) > 0 {
		return &Error{Endpoint: r.etcd.cur(), Path: "/v3/lease/keepalive", Message: fmt.Sprintf("etcd %s: keep-alive answered %s", r.etcd.cur(), ka.Error)}
	}
	if ttl, _ := strconv.ParseInt(ka.Result.TTL, 10, 64); ttl <= 0 {
		return r.register(ctx)
	}
	var found struct{ Count string }
	if err := r.etcd.call(ctx, "/v3/kv/range", map[string]any{"key": b64(r.key), "count_only": true}, &found); err != nil {
		return err
	}
	if found.Count == "" || found.Count == "0" {
		var put struct{}
		return r.etcd.call(ctx, "/v3/kv/put", map[string]string{"key": b64(r.key), "value": b64(r.value), "lease": lease}, &put)
	}
	return nil
}

func (r *Registrar) interval() time.Duration {
	g := r.GrantedTTL()
	if g == 0 {
		g = r.TTL
	}
	if d := g / 3; d > 200*time.Millisecond {
		return d
	}
	return 200 * time.Millisecond
}

func (r *Registrar) run(ctx context.Context) {
	defer close(r.done)
	delay := r.interval()
	timer := time.NewTimer(delay)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		if err := r.renew(ctx); err != nil {
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
		} else {
			r.mu.Lock()
			r.err, r.status = nil, "registered"
			r.mu.Unlock()
			delay = r.interval()
		}
		timer.Reset(delay)
	}
}

// Start registers now (an error when no endpoint answers) and keeps the
// lease alive in a goroutine until ctx ends or Close is called.
func (r *Registrar) Start(ctx context.Context) error {
	if r.done != nil {
		return errors.New("etcd: Registrar already started")
	}
	if err := r.prepare(); err != nil {
		return err
	}
	r.writing.Lock()
	err := r.register(ctx)
	r.writing.Unlock()
	if err != nil {
		r.etcd.close()
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

// Close stops the keep-alives and revokes the lease, so the key is deleted
// at once; it waits for the goroutine. It returns the revoke's failure, or
// the background failure still standing (nil when all was well). Safe to
// call twice.
func (r *Registrar) Close() error {
	if r.done == nil {
		return nil
	}
	r.closeOnce.Do(func() { r.closeErr = r.shutdown() })
	return r.closeErr
}

func (r *Registrar) shutdown() error {
	r.cancel()
	<-r.done
	r.writing.Lock()
	r.stopped = true
	r.writing.Unlock()
	r.mu.Lock()
	lease := r.leaseID
	r.leaseID = ""
	err := r.err
	r.mu.Unlock()
	if lease != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 2*r.etcd.timeout)
		var out struct{}
		if rerr := r.etcd.call(ctx, "/v3/lease/revoke", map[string]string{"ID": lease}, &out); rerr != nil {
			err = rerr
		} else {
			err = nil
		}
		cancel()
	}
	r.etcd.close()
	r.mu.Lock()
	r.status, r.err = "stopped", err
	r.mu.Unlock()
	return err
}

// Run registers, keeps the instance registered until ctx ends, then
// revokes. It returns the first registration's failure, or Close's.
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
