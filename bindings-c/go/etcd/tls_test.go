package etcd

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"example.invalid/waypost"
	"example.invalid/waypost/internal/etcdtest"
	"example.invalid/waypost/internal/storehttp"
)

// The helpers against a real etcd serving its clients over TLS, with a
// certificate from a throwaway CA made for the test (openssl CLI).
func TestHelpersOverTLS(t *testing.T) {
	certs := etcdtest.MakeCerts(t, t.TempDir())
	if certs == nil {
		t.Skip("no openssl CLI to make certificates")
	}
	etcd := etcdtest.StartTLS(t, certs)
	if !strings.HasPrefix(etcd.Endpoint(), "https://") {
		t.Fatal(etcd.Endpoint())
	}
	t.Run("with the CA file", func(t *testing.T) {
		noLeaks(t)
		reg, err := waypost.NewRegistry(waypost.DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer reg.Close()
		r := &Registrar{Endpoints: []string{etcd.Endpoint()}, Instance: api1, Prefix: "/tls", TTL: 2 * time.Second, CAFile: certs.CA}
		if err := r.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		m := &Mirror{Endpoints: []string{etcd.Endpoint()}, Registry: reg, Prefix: "/tls", CAFile: certs.CA}
		if err := m.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		health := func() string {
			m.Locker().Lock()
			defer m.Locker().Unlock()
			st, err := reg.Get(api1.ID, time.Now())
			if err != nil {
				return ""
			}
			return st.Health.String()
		}
		eventually(t, 10*time.Second, "the mirror to see the instance", func() bool { return health() == "healthy" })
		if err := r.Update(context.Background(), api1, "maintenance"); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "the mirror to see the update", func() bool { return health() == "draining" })
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if kv, _ := etcd.Client().GetPrefix("/tls"); len(kv) != 0 {
			t.Fatalf("still there: %v", kv)
		}
	})
	t.Run("without it the certificate is refused", func(t *testing.T) {
		noLeaks(t)
		r := &Registrar{Endpoints: []string{etcd.Endpoint()}, Instance: api1, Prefix: "/tls-no-ca"}
		err := r.Start(context.Background())
		var ee *Error
		if !errors.As(err, &ee) || !strings.Contains(err.Error(), "certificate") || !strings.Contains(err.Error(), etcd.Endpoint()) {
			t.Fatalf("want an *etcd.Error about the certificate: %v", err)
		}
		reg, _ := waypost.NewRegistry(waypost.DefaultConfig())
		defer reg.Close()
		m := &Mirror{Endpoints: []string{etcd.Endpoint()}, Registry: reg, Prefix: "/tls-no-ca"}
		if err := m.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "an error reported", func() bool { return m.Err() != nil })
		if !errors.As(m.Err(), &ee) || !strings.Contains(m.Err().Error(), "certificate") {
			t.Fatal(m.Err())
		}
		m.Close()
		if bad := (&Registrar{Endpoints: []string{etcd.Endpoint()}, Instance: api1, CAFile: "/nonexistent/ca.pem"}).Start(context.Background()); bad == nil {
			t.Fatal("a missing CA file should be an error")
		}
	})
}

// The gRPC client against the same member: ALPN h2 over TLS, verified.
func TestGRPCUnaryOverTLS(t *testing.T) {
	certs := etcdtest.MakeCerts(t, t.TempDir())
	if certs == nil {
		t.Skip("no openssl CLI to make certificates")
	}
	etcd := etcdtest.StartTLS(t, certs)
	noLeaks(t)
	want := putPlain(t, etcd.Client(), "/gtls", 3, 10)
	cfg, err := storehttp.TLSConfig("etcd", certs.CA)
	if err != nil {
		t.Fatal(err)
	}
	answer, err := grpcUnary(within(t, 5*time.Second), etcd.Endpoint(), cfg, rangePath, rangeRequest("/gtls"))
	if err != nil {
		t.Fatal(err)
	}
	if got := rangeKeys(t, answer); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("keys %v, want %v", got, want)
	}
	if _, err := grpcUnary(within(t, 5*time.Second), etcd.Endpoint(), nil, rangePath, rangeRequest("/gtls")); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("want the certificate refused: %v", err)
	}
}
