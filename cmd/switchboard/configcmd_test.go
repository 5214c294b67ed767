package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/broker/natsconn"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/internal/syncbuf"
	"github.com/switchboard-llm/switchboard/internal/testenv"
	"github.com/switchboard-llm/switchboard/llm/mock"
	"github.com/switchboard-llm/switchboard/topology"
)

// After `up`, `submit` needs no config file: it reads the cluster's from
// KV sb_config and says so; `config show` prints it and `config push`
// replaces it (validated first).
func TestCommandsReadConfigFromCluster(t *testing.T) {
	cfg := mockConfig(t)
	dataDir := t.TempDir()
	startUp(t, cfg, dataDir)

	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.jsonl"), filepath.Join(dir, "out.jsonl")
	line := `{"custom_id":"r1","method":"POST","url":"/v1/chat/completions","body":{"model":"chat","messages":[{"role":"user","content":"hi"}]}}` + "\n"
	if err := os.WriteFile(in, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := runSubmit(ctx, []string{in, "--out", out, "--no-progress", "--data-dir", dataDir}, &stdout, &stderr); err != nil ||
		!strings.Contains(stdout.String(), "1 succeeded") {
		t.Fatalf("submit without --config: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stderr.String(), "config: kv sb_config/switchboard.yaml rev 1") {
		t.Errorf("submit does not say where its config came from: %s", stderr.String())
	}

	var show, showErr bytes.Buffer
	if code := run([]string{"config", "show", "--data-dir", dataDir}, &show, &showErr); code != exitOK || !strings.Contains(show.String(), "name: chat") {
		t.Fatalf("config show: exit %d\n%s\n%s", code, show.String(), showErr.String())
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("providers: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var pushOut, pushErr bytes.Buffer
	if code := run([]string{"config", "push", bad, "--data-dir", dataDir}, &pushOut, &pushErr); code != exitFail || !strings.Contains(pushErr.String(), "providers") {
		t.Fatalf("config push of an invalid file: exit %d\n%s", code, pushErr.String())
	}
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	next := filepath.Join(dir, "next.yaml")
	if err := os.WriteFile(next, append(data, []byte("  - {name: chat2, targets: [{provider: p, model: m}]}\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	pushOut.Reset()
	if code := run([]string{"config", "push", next, "--data-dir", dataDir}, &pushOut, &pushErr); code != exitOK || !strings.Contains(pushOut.String(), "rev 2") {
		t.Fatalf("config push: exit %d\n%s\n%s", code, pushOut.String(), pushErr.String())
	}
	show.Reset()
	if code := run([]string{"config", "show", "--data-dir", dataDir}, &show, &showErr); code != exitOK || !strings.Contains(show.String(), "chat2") {
		t.Fatalf("config show after push: exit %d\n%s", code, show.String())
	}

	// A --config file that differs from the cluster's is refused, naming
	// the difference; the one pushed is accepted.
	var subOut, subErr bytes.Buffer
	code := run([]string{"submit", in, "--out", out, "--no-progress", "--data-dir", dataDir, "--config", cfg}, &subOut, &subErr)
	want := "--config " + cfg + " differs from the cluster's config (kv sb_config/switchboard.yaml rev 2): routes[1]: only there"
	if code != exitFail || !strings.Contains(subErr.String(), want) || !strings.Contains(subErr.String(), "switchboard config push "+cfg) {
		t.Fatalf("submit with a stale --config: exit %d, want %d and %q\n%s", code, exitFail, want, subErr.String())
	}
	subErr.Reset()
	if code := run([]string{"submit", in, "--out", out, "--no-progress", "--data-dir", dataDir, "--config", next}, &subOut, &subErr); code != exitOK ||
		!strings.Contains(subErr.String(), "config: kv sb_config/switchboard.yaml rev 2 (the same as --config "+next+")") {
		t.Fatalf("submit with the pushed --config: exit %d\n%s", code, subErr.String())
	}
}

// A provider added to the cluster's config gets a worker pool in `up`
// without a restart and serves its route; removed, its pool drains.
func TestUpPoolsFollowTheConfig(t *testing.T) {
	cfg := mockConfig(t)
	dataDir := t.TempDir()
	url, upOut, _ := startUp(t, cfg, dataDir)
	addr := upHTTPAddr(t, upOut.String())

	q := testenv.StartMock(t, mock.Options{})
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	added := strings.Replace(string(data), "routes:\n", fmt.Sprintf("  - {name: q, kind: mock, base_url: '%s/v1', timeout: 5s}\nroutes:\n", q.URL()), 1) +
		"  - {name: viaq, targets: [{provider: q, model: m}]}\n"
	next := filepath.Join(t.TempDir(), "next.yaml")
	if err := os.WriteFile(next, []byte(added), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"config", "push", next, "--data-dir", dataDir}, &out, &errOut); code != exitOK {
		t.Fatalf("config push: exit %d\n%s", code, errOut.String())
	}
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		resp, err := http.Post("http://"+addr+"/v1/chat/completions", "application/json",
			strings.NewReader(`{"model":"viaq","messages":[{"role":"user","content":"hi"}]}`))
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Switchboard-Provider") != "q" {
			return fmt.Errorf("route viaq: %d %s", resp.StatusCode, body)
		}
		return nil
	})
	if q.Stats().Succeeded == 0 {
		t.Fatal("the added provider served no call")
	}

	// Removed again: q's pool drains and stops pulling from its lanes.
	out.Reset()
	if code := run([]string{"config", "push", cfg, "--data-dir", dataDir}, &out, &errOut); code != exitOK {
		t.Fatalf("config push: exit %d\n%s", code, errOut.String())
	}
	token, err := natsconn.ReadToken(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, nats.Token(token))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		for _, name := range []string{topology.WorkerConsumer("q"), topology.SlotsConsumer("q")} {
			stream := topology.StreamJobs
			if name == topology.SlotsConsumer("q") {
				stream = topology.StreamSlots
			}
			c, err := js.Consumer(natstest.Context(t), stream, name)
			if err != nil {
				return err
			}
			info, err := c.Info(natstest.Context(t))
			if err != nil {
				return err
			}
			// (A token given back with Nak counts as unacked until it is
			// delivered again, so only the pulls tell.)
			if info.NumWaiting > 0 {
				return fmt.Errorf("%s: %d pulls waiting: q's pool still runs", name, info.NumWaiting)
			}
		}
		return nil
	})
}

// upHTTPAddr finds the API address in up's banner.
func upHTTPAddr(t *testing.T, banner string) string {
	t.Helper()
	m := regexp.MustCompile(`API at http://([^/]+)/v1`).FindStringSubmatch(banner)
	if m == nil {
		t.Fatalf("no API address in %q", banner)
	}
	return m[1]
}

// `worker --all` with no config file serves every provider of the
// cluster's config and follows `config push`: a provider added gets a
// pool and serves its route, a changed concurrency reaches its consumers,
// a removed provider's pool drains.
func TestWorkerAllFollowsTheConfig(t *testing.T) {
	e := newPushEnv(t)
	e.push(map[string]int{"p": 4})
	stderr := e.startWorker("--all")
	e.serves("p")
	if !strings.Contains(stderr.String(), "config: kv sb_config/switchboard.yaml rev 1 (the cluster's)") {
		t.Errorf("worker --all does not say where its config came from:\n%s", stderr.String())
	}

	e.push(map[string]int{"p": 4, "q": 2})
	e.serves("q")

	e.push(map[string]int{"p": 6, "q": 2})
	e.waitConcurrency("p", 6)
	e.serves("p")

	e.push(map[string]int{"p": 6})
	e.waitDrained("q")
	e.serves("p")
}

// `worker --provider p` follows p's settings in the cluster's config: a
// changed concurrency restarts its pool with it; a provider added is not
// its to serve; p removed, its pool drains and the worker waits.
func TestWorkerFollowsItsProvider(t *testing.T) {
	e := newPushEnv(t)
	e.push(map[string]int{"p": 4})
	e.startWorker("--provider", "p")
	e.serves("p")

	e.push(map[string]int{"p": 6, "q": 2})
	e.waitConcurrency("p", 6)
	e.serves("p")
	if _, _, err := e.consumers("q"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("q's consumers: %v, want none (not this worker's provider)", err)
	}

	e.push(map[string]int{"q": 2})
	e.waitDrained("p")
}

// pushEnv is a NATS server, mock providers p and q, and a config made of
// them pushed to KV sb_config by `config push`.
type pushEnv struct {
	t      *testing.T
	js     jetstream.JetStream
	common []string // --nats, --data-dir
	dir    string
	mocks  map[string]*mock.Server
}

func newPushEnv(t *testing.T) *pushEnv {
	ns := natstest.Start(t)
	_, js := ns.Connect(t)
	e := &pushEnv{t: t, js: js, common: []string{"--nats", ns.ClientURL(), "--data-dir", t.TempDir()},
		dir: t.TempDir(), mocks: map[string]*mock.Server{}}
	for _, name := range []string{"p", "q"} {
		e.mocks[name] = testenv.StartMock(t, mock.Options{})
	}
	return e
}

// push stores a config with the given providers (name -> concurrency),
// each with a route via<name>.
func (e *pushEnv) push(providers map[string]int) {
	e.t.Helper()
	var yaml strings.Builder
	yaml.WriteString("providers:\n")
	for _, name := range []string{"p", "q"} {
		if n, ok := providers[name]; ok {
			fmt.Fprintf(&yaml, "  - {name: %s, kind: mock, base_url: '%s/v1', timeout: 5s, concurrency: %d}\n", name, e.mocks[name].URL(), n)
		}
	}
	yaml.WriteString("routes:\n")
	for _, name := range []string{"p", "q"} {
		if _, ok := providers[name]; ok {
			fmt.Fprintf(&yaml, "  - {name: via%s, targets: [{provider: %s, model: m}]}\n", name, name)
		}
	}
	path := filepath.Join(e.dir, "switchboard.yaml")
	if err := os.WriteFile(path, []byte(yaml.String()), 0o600); err != nil {
		e.t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run(append([]string{"config", "push", path}, e.common...), &out, &errOut); code != exitOK {
		e.t.Fatalf("config push: exit %d\n%s", code, errOut.String())
	}
}

// startWorker runs `worker args...` with no config file until the test
// ends, once the first provider's consumers exist, and returns its stderr.
func (e *pushEnv) startWorker(args ...string) *syncbuf.Buffer {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncbuf.Buffer
	done := make(chan error, 1)
	go func() { done <- runWorker(ctx, append(args, e.common...), io.Discard, &stderr) }()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("worker %v: %v\n%s", args, err, stderr.String())
		}
	})
	natstest.CheckFor(e.t, 30*time.Second, 50*time.Millisecond, func() error {
		select {
		case err := <-done:
			e.t.Fatalf("worker %v exited: %v\n%s", args, err, stderr.String())
		default:
		}
		_, _, err := e.consumers("p") // the pool is pulling
		return err
	})
	return &stderr
}

// serves submits one job to route via<name> and checks the provider
// answered it.
func (e *pushEnv) serves(name string) {
	e.t.Helper()
	in, out := filepath.Join(e.dir, "in.jsonl"), filepath.Join(e.dir, "out.jsonl")
	_ = os.Remove(out + ".state")
	_ = os.Remove(out)
	line := `{"custom_id":"r1","method":"POST","url":"/v1/chat/completions","body":{"model":"via` + name + `","messages":[{"role":"user","content":"hi"}]}}` + "\n"
	if err := os.WriteFile(in, []byte(line), 0o600); err != nil {
		e.t.Fatal(err)
	}
	before := e.mocks[name].Stats().Succeeded
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := runSubmit(ctx, append([]string{in, "--out", out, "--no-progress"}, e.common...), &stdout, &stderr); err != nil ||
		!strings.Contains(stdout.String(), "1 succeeded") {
		e.t.Fatalf("submit to via%s: %v\n%s\n%s", name, err, stdout.String(), stderr.String())
	}
	if e.mocks[name].Stats().Succeeded == before {
		e.t.Fatalf("provider %s served no call", name)
	}
}

// consumers returns the normal lane's and the tokens' consumer of name.
func (e *pushEnv) consumers(name string) (lane, slots *jetstream.ConsumerInfo, err error) {
	ctx := natstest.Context(e.t)
	c, err := e.js.Consumer(ctx, topology.StreamJobs, topology.WorkerConsumer(name))
	if err != nil {
		return nil, nil, err
	}
	if lane, err = c.Info(ctx); err != nil {
		return nil, nil, err
	}
	if c, err = e.js.Consumer(ctx, topology.StreamSlots, topology.SlotsConsumer(name)); err != nil {
		return nil, nil, err
	}
	slots, err = c.Info(ctx)
	return lane, slots, err
}

// waitConcurrency waits until name's consumers cap at n.
func (e *pushEnv) waitConcurrency(name string, n int) {
	e.t.Helper()
	natstest.CheckFor(e.t, 30*time.Second, 100*time.Millisecond, func() error {
		lane, slots, err := e.consumers(name)
		if err != nil {
			return err
		}
		if lane.Config.MaxAckPending != n || slots.Config.MaxAckPending != n {
			return fmt.Errorf("%s's consumers: max ack pending %d (lane) and %d (tokens), want %d after the push", name, lane.Config.MaxAckPending, slots.Config.MaxAckPending, n)
		}
		return nil
	})
}

// waitDrained waits until nothing pulls from name's consumers.
func (e *pushEnv) waitDrained(name string) {
	e.t.Helper()
	natstest.CheckFor(e.t, 30*time.Second, 100*time.Millisecond, func() error {
		lane, slots, err := e.consumers(name)
		if err != nil {
			return err
		}
		// (A token given back with Nak counts as unacked until it is
		// delivered again, so only the pulls tell.)
		if lane.NumWaiting > 0 || slots.NumWaiting > 0 {
			return fmt.Errorf("%s: %d and %d pulls waiting: its pool still runs", name, lane.NumWaiting, slots.NumWaiting)
		}
		return nil
	})
}

// `up` is a publisher of the config: SIGHUP rereads its file and stores it
// in KV sb_config, so the processes reading the cluster's config follow.
func TestUpSIGHUPPublishesTheFile(t *testing.T) {
	cfg := mockConfig(t)
	dataDir := t.TempDir()
	startUp(t, cfg, dataDir)
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, append(data, []byte("  - {name: chat2, targets: [{provider: p, model: m}]}\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		var show, showErr bytes.Buffer
		if code := run([]string{"config", "show", "--data-dir", dataDir}, &show, &showErr); code != exitOK {
			return fmt.Errorf("config show: exit %d: %s", code, showErr.String())
		}
		if !strings.Contains(show.String(), "chat2") || !strings.Contains(showErr.String(), "rev 2") {
			return fmt.Errorf("kv sb_config does not hold the reloaded file: %s\n%s", showErr.String(), show.String())
		}
		return nil
	})
}
