package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/switchboard-llm/switchboard/broker/natsconn"
	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/internal/syncbuf"
	"github.com/switchboard-llm/switchboard/internal/testenv"
	"github.com/switchboard-llm/switchboard/llm/mock"
	"github.com/switchboard-llm/switchboard/topology"
)

// mockConfig writes a config with one mock provider "p" (a real mock
// server over HTTP) and a route "chat" over it.
func mockConfig(t *testing.T) string {
	t.Helper()
	srv := testenv.StartMock(t, mock.Options{})
	path := filepath.Join(t.TempDir(), "switchboard.yaml")
	cfg := fmt.Sprintf("providers:\n  - {name: p, kind: mock, base_url: '%s/v1', timeout: 5s}\nroutes:\n  - {name: chat, targets: [{provider: p, model: m}]}\n", srv.URL())
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// submitOne runs `submit` over a one-line batch and checks its result.
func submitOne(t *testing.T, args ...string) {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.jsonl"), filepath.Join(dir, "out.jsonl")
	line := `{"custom_id":"r1","method":"POST","url":"/v1/chat/completions","body":{"model":"chat","messages":[{"role":"user","content":"hi"}]}}` + "\n"
	if err := os.WriteFile(in, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := runSubmit(ctx, append([]string{in, "--out", out, "--no-progress"}, args...), &stdout, &stderr)
	if err != nil || !strings.Contains(stdout.String(), "1 succeeded") {
		t.Fatalf("submit: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	data, err := os.ReadFile(out)
	if err != nil || !strings.Contains(string(data), "mock reply to: hi") {
		t.Fatalf("results %s (%v)", data, err)
	}
}

// startUp runs `up` with the mock config until the test ends (or stop is
// called) and returns the NATS URL it recorded.
func startUp(t *testing.T, cfg, dataDir string) (url string, stdout *syncbuf.Buffer, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncbuf.Buffer
	stdout = &syncbuf.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- runUp(ctx, []string{"--config", cfg, "--data-dir", dataDir, "--http", freeAddr(t),
			"--nats-listen", "127.0.0.1:-1", "--clickhouse", "clickhouse://127.0.0.1:1/none"}, stdout, &stderr)
	}()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("up: %v\n%s", err, stderr.String())
			}
		case <-time.After(60 * time.Second):
			t.Error("up did not stop")
		}
	}
	t.Cleanup(stop)
	natstest.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		select {
		case err := <-done:
			t.Fatalf("up exited early: %v\n%s", err, stderr.String())
		default:
		}
		if !strings.Contains(stdout.String(), "switchboard is up") {
			return errors.New("not up yet")
		}
		var err error
		url, err = natsconn.ReadURL(dataDir)
		return err
	})
	return url, stdout, stop
}

// `up` runs its embedded NATS server with a token made under --data-dir
// (mode 0600, the same after a restart): it refuses an unauthenticated
// client, prints where the token is, and `dlq` and `submit` given only
// --data-dir find the URL and the token by themselves. The URL file goes
// when `up` stops.
func TestUpEmbeddedNATSRequiresToken(t *testing.T) {
	cfg := mockConfig(t)
	dataDir := t.TempDir()
	url, stdout, stop := startUp(t, cfg, dataDir)
	st, err := os.Stat(natsconn.TokenFile(dataDir))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", st, err)
	}
	token, err := natsconn.ReadToken(dataDir)
	if err != nil || !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(token) {
		t.Fatalf("token %q: %v", token, err)
	}
	if !strings.Contains(stdout.String(), "requires the token in "+natsconn.TokenFile(dataDir)) {
		t.Errorf("up does not say where the token is: %s", stdout.String())
	}
	if strings.Contains(stdout.String(), token) {
		t.Errorf("up printed its token")
	}

	if nc, err := nats.Connect(url); !errors.Is(err, nats.ErrAuthorization) {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("unauthenticated connect to up's NATS: %v, want an authorization error", err)
	}
	nc, err := nats.Connect(url, nats.Token(token))
	if err != nil {
		t.Fatalf("with the token: %v", err)
	}
	deadLetter(t, nc)
	nc.Close()

	var out, errOut bytes.Buffer
	if code := run([]string{"dlq", "list", "--data-dir", dataDir}, &out, &errOut); code != exitOK || !strings.Contains(out.String(), "llm.dlq.poison") {
		t.Fatalf("dlq list --data-dir: exit %d: %s %s", code, out.String(), errOut.String())
	}
	submitOne(t, "--config", cfg, "--data-dir", dataDir)

	stop()
	if _, err := os.Stat(natsconn.URLFile(dataDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("nats.url left behind: %v", err)
	}

	// Restarted, up keeps its token: clients holding it still connect.
	url, _, _ = startUp(t, cfg, dataDir)
	if again, err := natsconn.ReadToken(dataDir); err != nil || again != token {
		t.Fatalf("token after restart: changed %v (%v)", again != token, err)
	}
	nc, err = nats.Connect(url, nats.Token(token))
	if err != nil {
		t.Fatalf("old token after restart: %v", err)
	}
	nc.Close()
}

// A worker and `submit` given only --data-dir use the URL and token a
// local `up` left there.
func TestWorkerAndSubmitTakeTokenFromDataDir(t *testing.T) {
	dataDir := t.TempDir()
	token, err := natsconn.EnsureToken(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	ns := natstest.StartWith(t, func(o *server.Options) { o.Authorization = token })
	if err := natsconn.WriteURL(dataDir, ns.ClientURL()); err != nil {
		t.Fatal(err)
	}
	cfg := mockConfig(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncbuf.Buffer
	done := make(chan error, 1)
	go func() {
		done <- runWorker(ctx, []string{"--config", cfg, "--provider", "p", "--data-dir", dataDir}, &stderr, &stderr)
	}()
	waitForClient(t, ns, "switchboard-worker-p", done)
	// Connected is not ready: the worker provisions the streams and its
	// consumer next, and submit needs them.
	_, js := ns.ConnectWith(t, nats.Token(token))
	natstest.CheckFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		_, err := js.Consumer(natstest.Context(t), topology.StreamJobs, topology.WorkerConsumer("p"))
		return err
	})
	submitOne(t, "--config", cfg, "--data-dir", dataDir)
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("worker: %v", err)
	}
}

// deadLetter provisions the streams and puts one dead letter in the DLQ,
// for `dlq list` to show.
func deadLetter(t *testing.T, nc *nats.Conn) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := natstest.Context(t)
	if err := topology.Ensure(ctx, js, config.Limits{}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, topology.DLQ("poison"), []byte("not a job")); err != nil {
		t.Fatal(err)
	}
}

// waitForClient waits until the server shows a client of that name.
func waitForClient(t *testing.T, ns *natstest.Server, name string, done chan error) {
	t.Helper()
	natstest.CheckFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		select {
		case err := <-done:
			t.Fatalf("%s exited early: %v", name, err)
		default:
		}
		cz, err := ns.Connz(&server.ConnzOptions{})
		if err != nil {
			return err
		}
		for _, c := range cz.Conns {
			if c.Name == name {
				return nil
			}
		}
		return fmt.Errorf("no client %q yet", name)
	})
}

// The long-running commands stop with exit 1 and a clear message when their
// NATS connection is closed for good (here: the server revokes their
// token), instead of staying up without NATS.
func TestLongRunningCommandsExitWhenNATSIsLostForGood(t *testing.T) {
	cfg := mockConfig(t)
	tok := "token-0"
	ns := natstest.StartWith(t, func(o *server.Options) { o.Authorization = tok })
	_, js := ns.ConnectWith(t, nats.Token(tok))
	// running: the command got past its setup and serves.
	workerPulling := func() error {
		info, err := js.Consumer(natstest.Context(t), topology.StreamJobs, topology.WorkerConsumer("p"))
		if err != nil {
			return err
		}
		if info.CachedInfo().NumWaiting == 0 {
			if i, err := info.Info(natstest.Context(t)); err != nil || i.NumWaiting == 0 {
				return fmt.Errorf("worker not pulling yet (%v)", err)
			}
		}
		return nil
	}
	ready := func(addr string) func() error {
		return func() error {
			resp, err := http.Get("http://" + addr + "/readyz")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("readyz %d", resp.StatusCode)
			}
			return nil
		}
	}
	gwAddr, upAddr := freeAddr(t), freeAddr(t)
	cases := []struct {
		client  string
		args    []string
		running func() error
	}{
		{"switchboard-worker-p", []string{"worker", "--config", cfg, "--provider", "p"}, workerPulling},
		{"switchboard-gateway", []string{"gateway", "--config", cfg, "--http", gwAddr}, ready(gwAddr)},
		{"switchboard-ingest", []string{"ingest", "--config", cfg, "--clickhouse", "clickhouse://127.0.0.1:1/none"}, nil},
		{"switchboard-up", []string{"up", "--config", cfg, "--http", upAddr, "--clickhouse", "clickhouse://127.0.0.1:1/none", "--data-dir", t.TempDir()}, ready(upAddr)},
	}
	for i, tc := range cases {
		t.Run(tc.args[0], func(t *testing.T) {
			var stdout, stderr syncbuf.Buffer
			done := make(chan error, 1)
			code := make(chan int, 1)
			args := append(tc.args, "--nats", ns.ClientURL(), "--nats-token", tok)
			go func() { code <- run(args, &stdout, &stderr) }()
			waitForClient(t, ns, tc.client, done)
			if tc.running != nil {
				natstest.CheckFor(t, 60*time.Second, 20*time.Millisecond, tc.running)
			}
			tok = fmt.Sprintf("token-%d", i+1)
			next := tok
			ns.Reconfigure(t, func(o *server.Options) { o.Authorization = next })
			select {
			case c := <-code:
				if c != exitFail || !strings.Contains(stderr.String(), "closed for good") ||
					!strings.Contains(strings.ToLower(stderr.String()), "authorization violation") {
					t.Fatalf("exit %d, stderr %q", c, stderr.String())
				}
				if strings.Contains(stderr.String(), "token-") {
					t.Fatalf("token in the message: %q", stderr.String())
				}
			case <-time.After(60 * time.Second):
				t.Fatalf("%s still running after its connection was closed for good", tc.args[0])
			}
		})
	}
}

// Credentials come from flags or SWITCHBOARD_NATS_* (a flag wins); -h
// never shows a secret from the environment; conflicting or incomplete
// ones are usage errors.
func TestNATSAuthFlagsAndEnv(t *testing.T) {
	env := map[string]string{
		"SWITCHBOARD_NATS_CREDS": "/c", "SWITCHBOARD_NATS_NKEY": "/n", "SWITCHBOARD_NATS_USER": "env-user",
		"SWITCHBOARD_NATS_PASSWORD": "env-password", "SWITCHBOARD_NATS_TOKEN": "env-token",
		"SWITCHBOARD_NATS_TLS_CA": "/ca", "SWITCHBOARD_NATS_TLS_CERT": "/cert", "SWITCHBOARD_NATS_TLS_KEY": "/key",
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	fs := newFlags("t", &bytes.Buffer{})
	var c commonFlags
	c.register(fs, false, false)
	if err := parseFlags(fs, []string{"--nats-token", "flag-token", "--data-dir", t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	c.natsAuth.resolve(fs)
	got := c.natsAuth
	want := natsAuthFlags{creds: "/c", nkey: "/n", user: "env-user", password: "env-password", token: "flag-token",
		tlsCA: "/ca", tlsCert: "/cert", tlsKey: "/key"}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}

	var help bytes.Buffer
	fs = newFlags("t", &help)
	(&commonFlags{}).register(fs, false, false)
	fs.PrintDefaults()
	for _, name := range []string{"nats-creds", "nats-nkey", "nats-user", "nats-password", "nats-token", "nats-tls-ca", "nats-tls-cert", "nats-tls-key"} {
		if !strings.Contains(help.String(), "-"+name) {
			t.Errorf("no --%s in -h", name)
		}
	}
	if strings.Contains(help.String(), "env-password") || strings.Contains(help.String(), "env-token") {
		t.Fatalf("-h shows a secret: %s", help.String())
	}

	for k := range env {
		t.Setenv(k, "")
	}
	for _, args := range [][]string{
		{"dlq", "list", "--nats-token", "a", "--nats-user", "u", "--nats-password", "p"},
		{"dlq", "list", "--nats-user", "u"},
		{"dlq", "list", "--nats-tls-cert", "/x"},
		{"dlq", "list", "--nats-creds", "/nonexistent.creds"},
		{"up", "--nats-listen", "0.0.0.0:-1", "--nats-no-auth", "--config", mockConfig(t), "--data-dir", t.TempDir()},
		{"up", "--nats-token", "x", "--config", mockConfig(t), "--data-dir", t.TempDir()},
	} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != exitUsage {
			t.Errorf("%v: exit %d, want %d: %s", args, code, exitUsage, errOut.String())
		}
		if args[0] == "up" && args[3] == "--nats-no-auth" && !strings.Contains(errOut.String(), "only allowed on a loopback address") {
			t.Errorf("no-auth off loopback: %s", errOut.String())
		}
	}
}

// The token and URL under --data-dir are used only when none is given, and
// the token only for a server on a loopback address.
func TestDataDirTokenOnlyForLocalServers(t *testing.T) {
	for _, k := range []string{"SWITCHBOARD_NATS", "SWITCHBOARD_NATS_TOKEN", "SWITCHBOARD_NATS_USER", "SWITCHBOARD_NATS_PASSWORD",
		"SWITCHBOARD_NATS_CREDS", "SWITCHBOARD_NATS_NKEY"} {
		t.Setenv(k, "")
	}
	dataDir := t.TempDir()
	token, err := natsconn.EnsureToken(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := natsconn.WriteURL(dataDir, "nats://127.0.0.1:4999"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args           []string
		url, token, us string
	}{
		{nil, "nats://127.0.0.1:4999", token, ""},
		{[]string{"--nats", "nats://127.0.0.1:5000"}, "nats://127.0.0.1:5000", token, ""},
		{[]string{"--nats", "nats://nats.example.com:4222"}, "nats://nats.example.com:4222", "", ""},
		{[]string{"--nats-user", "u", "--nats-password", "p"}, "nats://127.0.0.1:4999", "", "u"},
		{[]string{"--nats", "nats://other@127.0.0.1:5000"}, "nats://other@127.0.0.1:5000", "", ""},
	}
	for _, tc := range cases {
		fs := newFlags("t", &bytes.Buffer{})
		var c commonFlags
		c.register(fs, false, false)
		if err := parseFlags(fs, append([]string{"--data-dir", dataDir}, tc.args...)); err != nil {
			t.Fatal(err)
		}
		o, err := c.natsOptions(fs, "t")
		if err != nil || o.URL != tc.url || o.Token != tc.token || o.User != tc.us {
			t.Errorf("%v: url %q token set %v user %q (%v)", tc.args, o.URL, o.Token != "", o.User, err)
		}
	}
}

// The variables reach a real connection: a token, a user/password and an
// nkey seed file, each against a server requiring it.
func TestNATSAuthEnvConnects(t *testing.T) {
	user, _ := nkeys.CreateUser()
	pub, _ := user.PublicKey()
	seed, _ := user.Seed()
	seedFile := filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	nkeyOpt, err := nats.NkeyOptionFromSeed(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name      string
		configure func(*server.Options)
		client    nats.Option
		env       map[string]string
	}{
		{"token", func(o *server.Options) { o.Authorization = "env-tok" }, nats.Token("env-tok"), map[string]string{"SWITCHBOARD_NATS_TOKEN": "env-tok"}},
		{"user", func(o *server.Options) { o.Username, o.Password = "u", "pw" }, nats.UserInfo("u", "pw"),
			map[string]string{"SWITCHBOARD_NATS_USER": "u", "SWITCHBOARD_NATS_PASSWORD": "pw"}},
		{"nkey", func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} }, nkeyOpt, map[string]string{"SWITCHBOARD_NATS_NKEY": seedFile}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := natstest.StartWith(t, tc.configure)
			nc, _ := ns.ConnectWith(t, tc.client)
			deadLetter(t, nc)
			var out, errOut bytes.Buffer
			args := []string{"dlq", "list", "--nats", ns.ClientURL(), "--data-dir", t.TempDir()}
			if code := run(args, &out, &errOut); code != exitFail || !strings.Contains(strings.ToLower(errOut.String()), "authorization violation") {
				t.Fatalf("without credentials: exit %d: %s", code, errOut.String())
			}
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			out.Reset()
			errOut.Reset()
			if code := run(args, &out, &errOut); code != exitOK || !strings.Contains(out.String(), "llm.dlq.poison") {
				t.Fatalf("exit %d: %s %s", code, out.String(), errOut.String())
			}
		})
	}
}
