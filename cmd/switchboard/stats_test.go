package main

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
)

// stats without a reachable ClickHouse says which one it tried, where that
// address came from, and what to do.
func TestStatsWithoutClickHouseSaysWhatToDo(t *testing.T) {
	t.Setenv("SWITCHBOARD_CLICKHOUSE", "")
	dir := t.TempDir()
	if err := os.WriteFile(managedDSNFile(dir), []byte("clickhouse://127.0.0.1:1/default\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--clickhouse", "clickhouse://user:hunter2@127.0.0.1:1/x"}, []string{"127.0.0.1:1/x (--clickhouse)", "connection refused"}},
		{[]string{"--data-dir", dir}, []string{"127.0.0.1:1/default", "recorded in " + managedDSNFile(dir)}},
	} {
		err := runStats(context.Background(), tc.args, io.Discard, io.Discard)
		if err == nil {
			t.Fatalf("stats %v: no error", tc.args)
		}
		msg := err.Error()
		for _, want := range append(tc.want, "did not answer", "start `switchboard up`", "--clickhouse clickhouse://host:9000/db") {
			if !strings.Contains(msg, want) {
				t.Errorf("stats %v: %q does not say %q", tc.args, msg, want)
			}
		}
		if strings.Contains(msg, "hunter2") {
			t.Errorf("the error shows the password: %s", msg)
		}
	}
}
