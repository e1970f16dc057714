package main

import (
	"context"
	"sync"
	"time"

	"example.invalid/waypost"
	"example.invalid/waypost/etcd"
)

// peerView is this service's mirror of the fleet, and the changes it saw.
type peerView struct {
	mirror  *etcd.Mirror
	mu      sync.Mutex
	seen    map[string]string
	changes []map[string]any
}

func newPeerView(endpoints []string) (*peerView, error) {
	registry, err := waypost.NewRegistry(waypost.DefaultConfig())
	if err != nil {
		return nil, err
	}
	return &peerView{
		mirror: &etcd.Mirror{Endpoints: endpoints, Registry: registry},
		seen:   map[string]string{},
	}, nil
}

// health is id → health of every mirrored instance, read under the mirror's lock.
func (p *peerView) health() map[string]string {
	lock := p.mirror.Locker()
	lock.Lock()
	defer lock.Unlock()
	out := map[string]string{}
	now := time.Now()
	services, _ := p.mirror.Registry.Services(now)
	for _, service := range services {
		d, err := p.mirror.Registry.Discover(service, &waypost.DiscoverOptions{All: true}, now)
		if err != nil {
			continue
		}
		for i, inst := range d.Instances {
			out[inst.ID] = d.Health[i].String()
		}
	}
	return out
}

// watch notes every change of the mirrored view, with wall-clock ms.
func (p *peerView) watch(ctx context.Context) {
	ticker := time.NewTicker(20 * time.Millisecond)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		now := p.health()
		t := time.Now().UnixMilli()
		p.mu.Lock()
		for id, h := range now {
			if before, ok := p.seen[id]; !ok || before != h {
				var from any
				if ok {
					from = before
				}
				p.changes = append(p.changes, map[string]any{"t": t, "id": id, "from": from, "to": h})
			}
		}
		for id, before := range p.seen {
			if _, ok := now[id]; !ok {
				p.changes = append(p.changes, map[string]any{"t": t, "id": id, "from": before, "to": nil})
			}
		}
		p.seen = now
		p.mu.Unlock()
	}
}

func (p *peerView) state() map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	errText := ""
	if err := p.mirror.Err(); err != nil {
		errText = err.Error()
	}
	return map[string]any{"mirror": "etcd.Mirror (Go)", "revision": p.mirror.Revision(), "status": p.mirror.Status(),
		"error": errText, "instances": p.seen, "changes": p.changes}
}
