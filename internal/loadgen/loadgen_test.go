package loadgen

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-llm/switchboard/internal/testenv"
	"github.com/switchboard-llm/switchboard/llm/mock"
)

func listen(t *testing.T, f mock.Faults) string {
	t.Helper()
	srv := testenv.StartMock(t, mock.Options{Faults: f, Seed: 1})
	return srv.URL() + "/v1/chat/completions"
}

const body = `{"model":"m","messages":[{"role":"user","content":"hi"}]}`

func TestPacedSideBySideCountsEveryRequest(t *testing.T) {
	ok := Target{Name: "ok", URL: listen(t, mock.Faults{}), Body: []byte(body)}
	slow := Target{Name: "slow", URL: listen(t, mock.Faults{Latency: 20 * time.Millisecond}), Body: []byte(body)}
	bad := Target{Name: "bad", URL: listen(t, mock.Faults{ErrorRate: 1, ErrorStatus: 503}), Body: []byte(body)}
	stats, err := Run(context.Background(), Options{Rate: 200, Requests: 40}, ok, slow, bad)
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) != 3 {
		t.Fatalf("%d stats, want 3", len(stats))
	}
	for _, s := range stats[:2] {
		if s.Requests != 40 || s.Errors != 0 || s.P50 <= 0 || s.Max < s.P99 || s.P99 < s.P50 {
			t.Errorf("%s: %+v, want 40 requests, no errors, ordered percentiles", s.Name, s)
		}
	}
	if stats[1].P50 < 20 {
		t.Errorf("slow target p50 %.3f ms, want at least its 20 ms latency", stats[1].P50)
	}
	if a := Diff(stats[0], stats[1]); a.P50 < 10 {
		t.Errorf("added p50 %.3f ms, want about 20", a.P50)
	}
	if b := stats[2]; b.Errors != 40 || !strings.Contains(b.FirstError, "status 503") {
		t.Errorf("failing target: %d errors, first %q; want 40 and the status named", b.Errors, b.FirstError)
	}
}

func TestFlatOut(t *testing.T) {
	ok := Target{Name: "ok", URL: listen(t, mock.Faults{}), Body: []byte(body)}
	stats, err := Run(context.Background(), Options{Requests: 200, Concurrency: 8}, ok)
	if err != nil {
		t.Fatal(err)
	}
	if s := stats[0]; s.Requests != 200 || s.Errors != 0 || s.Throughput <= 0 {
		t.Errorf("%+v, want 200 requests answered", s)
	}
}

func TestValidate(t *testing.T) {
	for _, o := range []Options{{Rate: -1}, {Requests: -1}, {Concurrency: -2}, {Timeout: -time.Second}} {
		if err := o.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", o, err)
		}
	}
}
