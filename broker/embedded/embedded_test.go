package embedded_test

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-llm/switchboard/broker/embedded"
)

func TestValidateRequiresAuthOffLoopback(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		o    embedded.Options
		want error
	}{
		{embedded.Options{Listen: "127.0.0.1:4222", StoreDir: dir}, embedded.ErrNoToken},
		{embedded.Options{Listen: "0.0.0.0:4222", StoreDir: dir, NoAuth: true}, embedded.ErrNoAuthNotLoopback},
		{embedded.Options{Listen: ":4222", StoreDir: dir, NoAuth: true}, embedded.ErrNoAuthNotLoopback},
		{embedded.Options{Listen: "10.1.2.3:4222", StoreDir: dir, NoAuth: true}, embedded.ErrNoAuthNotLoopback},
		{embedded.Options{Listen: "nats.example.com:4222", StoreDir: dir, NoAuth: true}, embedded.ErrNoAuthNotLoopback},
		{embedded.Options{Listen: "127.0.0.1:4222", StoreDir: dir, NoAuth: true, Token: "t"}, embedded.ErrTokenAndNoAuth},
		{embedded.Options{Listen: "127.0.0.1:4222", Token: "t"}, embedded.ErrNoStoreDir},
	}
	for _, tc := range cases {
		if err := tc.o.Validate(); !errors.Is(err, tc.want) {
			t.Errorf("%+v: err = %v, want %v", tc.o.Listen, err, tc.want)
		}
	}
	for _, ok := range []embedded.Options{
		{Listen: "127.0.0.1:-1", StoreDir: dir, NoAuth: true},
		{Listen: "[::1]:4222", StoreDir: dir, NoAuth: true},
		{Listen: "localhost:4222", StoreDir: dir, NoAuth: true},
		{Listen: "0.0.0.0:4222", StoreDir: dir, Token: "t"},
		{StoreDir: dir, Token: "t"},
	} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%q: %v", ok.Listen, err)
		}
	}
}

func TestTokenServerRefusesUnauthenticated(t *testing.T) {
	s, err := embedded.Start(embedded.Options{Listen: "127.0.0.1:-1", StoreDir: t.TempDir(), Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if nc, err := nats.Connect(s.ClientURL()); !errors.Is(err, nats.ErrAuthorization) {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("unauthenticated connect: %v, want an authorization error", err)
	}
	if nc, err := nats.Connect(s.ClientURL(), nats.Token("wrong")); !errors.Is(err, nats.ErrAuthorization) {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("wrong token: %v", err)
	}
	nc, err := nats.Connect(s.ClientURL(), nats.Token("tok"))
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
}
