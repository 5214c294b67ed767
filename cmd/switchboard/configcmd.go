package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/config/live"
)

// runConfig shares a config through the cluster: `config push FILE`
// validates FILE and stores it in KV sb_config (every running process
// reloads it; commands without --config read it), `config show` prints the
// one stored.
func runConfig(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("config", stderr)
	var c commonFlags
	c.register(fs, false, false)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	sub := fs.Arg(0)
	switch {
	case sub == "push" && fs.NArg() == 2, sub == "show" && fs.NArg() == 1:
	default:
		return fmt.Errorf("%w: want `config push FILE` or `config show`", errUsage)
	}
	var data []byte
	if sub == "push" {
		var err error
		if data, err = os.ReadFile(fs.Arg(1)); err != nil {
			return fmt.Errorf("read config: %w", err)
		}
		if _, err := config.Parse(data); err != nil {
			return fmt.Errorf("%s: %w", fs.Arg(1), err)
		}
	}
	nc, js, err := c.connect(ctx, fs, "switchboard-config")
	if err != nil {
		return err
	}
	defer nc.Close()
	if sub == "show" {
		_, cur, rev, err := live.Load(ctx, js)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "config: kv %s/%s rev %d\n", live.Bucket, live.Key, rev)
		_, err = stdout.Write(cur)
		return err
	}
	rev, wrote, err := live.Publish(ctx, js, data)
	if err != nil {
		return err
	}
	if !wrote {
		fmt.Fprintf(stdout, "kv %s/%s rev %d already holds %s\n", live.Bucket, live.Key, rev, fs.Arg(1))
		return nil
	}
	fmt.Fprintf(stdout, "pushed %s to kv %s/%s rev %d\n", fs.Arg(1), live.Bucket, live.Key, rev)
	return nil
}
