package main

// A minimal etcd registrar over etcd's JSON gateway, with the shape of
// waypost's etcd.Registrar (Endpoints, Instance, Prefix, TTL; Run(ctx)).
// Standard library only.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

type Registrar struct {
	Endpoints []string
	Instance  map[string]any
	Prefix    string
	TTL       int

	mu         sync.Mutex
	leaseID    string
	GrantedTTL int
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func (r *Registrar) post(ctx context.Context, path string, body any) (map[string]any, error) {
	data, _ := json.Marshal(body)
	var last error
	for _, endpoint := range r.Endpoints {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		req, _ := http.NewRequestWithContext(c, "POST", strings.TrimRight(endpoint, "/")+path, bytes.NewReader(data))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			last = err
			continue
		}
		// keepalive is a stream: its first line is the answer
		line, err := bufio.NewReader(resp.Body).ReadBytes('\n')
		resp.Body.Close()
		cancel()
		if err != nil && len(line) == 0 {
			last = err
			continue
		}
		out := map[string]any{}
		if err := json.Unmarshal(line, &out); err != nil {
			return nil, err
		}
		return out, nil
	}
	return nil, fmt.Errorf("no etcd endpoint answered %s: %v", path, last)
}

func (r *Registrar) key() string {
	return fmt.Sprintf("%s/%v/%v", r.Prefix, r.Instance["service"], r.Instance["id"])
}

func (r *Registrar) register(ctx context.Context) error {
	grant, err := r.post(ctx, "/v3/lease/grant", map[string]any{"TTL": r.TTL})
	if err != nil {
		return err
	}
	r.leaseID, _ = grant["ID"].(string)
	ttl, _ := grant["TTL"].(string)
	r.GrantedTTL, _ = strconv.Atoi(ttl)
	return r.put(ctx)
}

func (r *Registrar) put(ctx context.Context) error {
	value, _ := json.Marshal(r.Instance)
	_, err := r.post(ctx, "/v3/kv/put", map[string]any{"key": b64(r.key()), "value": b64(string(value)), "lease": r.leaseID})
	return err
}

// Update changes fields of the registered value (e.g. status) and writes it again.
func (r *Registrar) Update(ctx context.Context, fields map[string]any) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, v := range fields {
		r.Instance[k] = v
	}
	return r.put(ctx)
}

// Start registers once; Run keeps the lease alive until ctx ends, then revokes it.
func (r *Registrar) Start(ctx context.Context) error {
	if r.Prefix == "" {
		r.Prefix = "/waypost/services"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.register(ctx)
}

func (r *Registrar) Run(ctx context.Context) error {
	period := time.Duration(r.GrantedTTL) * time.Second / 3
	if period < 500*time.Millisecond {
		period = 500 * time.Millisecond
	}
	ticker := time.NewTicker(period)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			r.post(context.Background(), "/v3/lease/revoke", map[string]any{"ID": r.leaseID})
			return nil
		case <-ticker.C:
			r.mu.Lock()
			answer, err := r.post(ctx, "/v3/lease/keepalive", map[string]any{"ID": r.leaseID})
			if err == nil {
				result, _ := answer["result"].(map[string]any)
				ttl, _ := result["TTL"].(string)
				if n, _ := strconv.Atoi(ttl); n <= 0 {
					r.register(ctx) // lease lost: register again
				}
			}
			r.mu.Unlock()
		}
	}
}
