package batch_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-llm/switchboard/broker/batch"
	"github.com/switchboard-llm/switchboard/internal/testenv"
	"github.com/switchboard-llm/switchboard/llm/mock"
)

const input = `{"custom_id":"r1","method":"POST","url":"/v1/chat/completions","body":{"model":"chat","messages":[{"role":"user","content":"one"}]}}
{"custom_id":"r2","method":"POST","url":"/v1/chat/completions","body":{"model":"chat","messages":[{"role":"user","content":"two"}]}}
this is not json
{"custom_id":"r1","method":"POST","url":"/v1/chat/completions","body":{"model":"chat","messages":[{"role":"user","content":"dup"}]}}
{"custom_id":"r3","method":"POST","url":"/v1/completions","body":{"model":"chat","prompt":"x"}}
{"custom_id":"r4","method":"POST","url":"/v1/chat/completions","body":{"model":"nope","messages":[{"role":"user","content":"four"}]}}
{"custom_id":"r5","method":"POST","url":"/v1/chat/completions","body":{"model":"a/a-model","messages":[{"role":"user","content":"five"}]}}
{"custom_id":"r6","method":"POST","url":"/v1/embeddings","body":{"model":"chat","input":["six","seven"]}}
`

func readOutput(t *testing.T, path string) map[string]batch.OutputLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]batch.OutputLine{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line batch.OutputLine
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("bad output line %q: %v", sc.Text(), err)
		}
		if _, dup := out[line.CustomID]; dup {
			t.Fatalf("custom_id %s answered twice", line.CustomID)
		}
		out[line.CustomID] = line
	}
	return out
}

func TestBatchRunsResumesAndNeverSendsALineTwice(t *testing.T) {
	env := testenv.Start(t, []testenv.Provider{{Name: "a"}})
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	out := filepath.Join(dir, "out.jsonl")
	if err := os.WriteFile(in, []byte(input), 0o644); err != nil {
		t.Fatal(err)
	}

	// First run: no workers yet, so it is interrupted with every valid line
	// queued durably.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	sum, err := batch.Run(ctx, env.Client, env.JS, batch.Options{Input: in, Output: out})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("first run: err = %v", err)
	}
	if sum.Total != 8 || sum.Invalid != 3 {
		t.Fatalf("first run summary = %+v", sum)
	}

	// Second run with workers: resumes, answers every line once.
	env.StartPools(t)
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sum, err = batch.Run(ctx, env.Client, env.JS, batch.Options{Input: in, Output: out})
	if err != nil {
		t.Fatal(err)
	}
	// r4 (unknown route) is answered by whichever run saw its failed Result.
	if sum.Succeeded != 4 || sum.Invalid != 3 || sum.Failed+sum.Resumed != 1 {
		t.Errorf("second run summary = %+v, want 4 succeeded, 3 invalid, r4 failed now or earlier", sum)
	}
	lines := readOutput(t, out)
	if len(lines) != 8 {
		t.Fatalf("output has %d lines, want 8: %v", len(lines), lines)
	}
	// An embeddings line: OpenAI's embeddings list, one vector per input.
	if l := lines["r6"]; l.Response == nil || l.Response.StatusCode != 200 || l.Error != nil {
		t.Errorf("r6: %+v", l)
	} else {
		var body struct {
			Object string
			Data   []struct{ Embedding []float64 }
		}
		_ = json.Unmarshal(l.Response.Body, &body)
		if body.Object != "list" || len(body.Data) != 2 || len(body.Data[1].Embedding) != mock.DefaultDimensions {
			t.Errorf("r6 body = %s", l.Response.Body)
		}
	}
	for _, id := range []string{"r1", "r2", "r5"} {
		l := lines[id]
		if l.Response == nil || l.Response.StatusCode != 200 || l.Error != nil {
			t.Errorf("%s: %+v", id, l)
			continue
		}
		var body struct {
			Choices []struct {
				Message struct{ Content string }
			}
		}
		_ = json.Unmarshal(l.Response.Body, &body)
		if len(body.Choices) != 1 || !strings.HasPrefix(body.Choices[0].Message.Content, "mock reply to:") {
			t.Errorf("%s body = %s", id, l.Response.Body)
		}
	}
	if l := lines["line-3"]; l.Error == nil || !strings.Contains(l.Error.Message, "line 3: invalid JSON") {
		t.Errorf("line 3: %+v", l.Error)
	}
	if l := lines["line-4"]; l.Error == nil || !strings.Contains(l.Error.Message, `duplicate custom_id "r1"`) {
		t.Errorf("line 4: %+v", l.Error)
	}
	if l := lines["r3"]; l.Error == nil || !strings.Contains(l.Error.Message, "only /v1/chat/completions and /v1/embeddings") {
		t.Errorf("r3: %+v", l.Error)
	}
	if l := lines["r4"]; l.Error == nil || l.Response.StatusCode != 400 || !strings.Contains(l.Error.Message, `unknown route "nope"`) ||
		!strings.Contains(l.Error.Message, "--route") {
		t.Errorf("r4: %+v %+v", l.Error, l.Response)
	}
	if got := env.Mocks["a"].Stats().Requests; got != 4 {
		t.Errorf("provider saw %d calls, want 4 (each valid line once)", got)
	}

	// Third run: everything answered, nothing sent again.
	before, _ := os.ReadFile(out)
	sum, err = batch.Run(ctx, env.Client, env.JS, batch.Options{Input: in, Output: out})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(out)
	if string(before) != string(after) || env.Mocks["a"].Stats().Requests != 4 {
		t.Errorf("re-run changed the output or resent lines (calls=%d)", env.Mocks["a"].Stats().Requests)
	}
	if sum.Resumed != 5 {
		t.Errorf("resumed = %d, want 5", sum.Resumed)
	}
}
