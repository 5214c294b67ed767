package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
}
