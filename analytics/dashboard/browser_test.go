package dashboard_test

import (
	"context"

	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// chromium finds Debian's chromium (or another Chromium-based browser). It
// fails the test under CI=true when none is installed, else skips it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed (apt-get install -y chromium); CI=true requires it")
	}
	t.Skip("chromium not installed (apt-get install -y chromium)")
	return ""
}

// headless runs the browser on url and returns its stdout.
func headless(t *testing.T, bin, url string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
		"--no-first-run", "--user-data-dir=" + t.TempDir(), "--virtual-time-budget=4000"}
	cmd := exec.CommandContext(ctx, bin, append(append(base, args...), url)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", bin, args, err, stderr.String())
	}
	return out
}

// artifactDir is where screenshots go: $SWITCHBOARD_ARTIFACTS, else a
// fixed directory under the temp dir (kept after the test).
func artifactDir(t *testing.T) string {
	dir := os.Getenv("SWITCHBOARD_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "switchboard-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// byID returns the text and data-value of the element with id in dom.
func byID(t *testing.T, dom, id string) (text, value string) {
	t.Helper()
	m := regexp.MustCompile(`id="` + regexp.QuoteMeta(id) + `"(?: data-value="([^"]*)")?>([^<]*)<`).FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("no element #%s in the rendered page", id)
	}
	return m[2], m[1]
}

// testBrowser loads the dashboard in headless Chromium after the stack's
// traffic and checks that what the page shows equals ClickHouse.
func testBrowser(t *testing.T, s *stack) {
	bin := chromium(t)
	dom := string(headless(t, bin, s.url+"/", "--dump-dom"))
	if !regexp.MustCompile(`<body data-loaded="[1-9]`).MatchString(dom) {
		t.Fatalf("the page's script did not finish a refresh:\n%.2000s", dom)
	}
	if !strings.Contains(dom, `id="banner" class="banner" hidden=""`) {
		t.Errorf("the analytics banner shows: %s", regexp.MustCompile(`id="banner"[^>]*>[^<]*`).FindString(dom))
	}
	ints := map[string]string{
		"kpi-requests":  "SELECT count() FROM completions FINAL",
		"kpi-succeeded": "SELECT count() FROM completions FINAL WHERE status = 'succeeded'",
		"kpi-failed":    "SELECT count() FROM completions FINAL WHERE status = 'failed'",
		"kpi-fallbacks": "SELECT sum(fallback) FROM completions FINAL",
		"kpi-attempts":  "SELECT count() FROM attempts FINAL",
		"q-dlq":         "", // live: the doomed jobs' dead letters
	}
	for id, query := range ints {
		want := uint64(doomedJobs)
		if query != "" {
			want = s.count(t, query)
		}
		if text, _ := byID(t, dom, id); text != strconv.FormatUint(want, 10) {
			t.Errorf("#%s shows %q, ClickHouse says %d", id, text, want)
		}
	}
	text, value := byID(t, dom, "kpi-cost")
	cost, _ := strconv.ParseFloat(value, 64)
	if want := s.sum(t, "SELECT sum(ifNull(cost_usd, 0)) FROM completions FINAL"); math.Abs(cost-want) > 1e-12 || !strings.HasPrefix(text, "$0.00") {
		t.Errorf("#kpi-cost shows %q (%v), ClickHouse says %v", text, cost, want)
	}
	for _, pm := range []string{"alpha/alpha-model", "beta/beta-model", "gamma/gamma-model"} {
		m := regexp.MustCompile(`<tr data-key="` + pm + `">.*?data-col="calls">([^<]*)<`).FindStringSubmatch(dom)
		want := s.count(t, "SELECT count() FROM attempts FINAL WHERE concat(provider, '/', model) = ?", pm)
		if m == nil || m[1] != strconv.FormatUint(want, 10) {
			t.Errorf("providers table, %s: %v, ClickHouse says %d calls", pm, m, want)
		}
	}
	// The request log lists every job with each of its attempts.
	for id, n := range s.jobs {
		row := regexp.MustCompile(`<tr class="job" data-job="` + id + `">.*?data-col="attempts">(\d+)<`).FindStringSubmatch(dom)
		if row == nil || row[1] != strconv.Itoa(n) {
			t.Errorf("request log row of %s: %v, want %d attempts", id, row, n)
			continue
		}
		detail := regexp.MustCompile(`data-detail="` + id + `"[^>]*>(.*?)<div class="timings">`).FindStringSubmatch(dom)
		if detail == nil {
			t.Errorf("no attempts detail for %s", id)
			continue
		}
		rows := regexp.MustCompile(`<tr class="attempt">.*?</tr>`).FindAllString(detail[1], -1)
		want := s.count(t, "SELECT count() FROM attempts FINAL WHERE job_id = ?", id)
		if len(rows) != n || uint64(n) != want {
			t.Errorf("job %s lists %d attempts, caller told %d, ClickHouse has %d", id, len(rows), n, want)
		}
		for _, r := range rows {
			if !strings.Contains(r, "alpha/alpha-model") && !strings.Contains(r, "beta/beta-model") && !strings.Contains(r, "gamma/gamma-model") {
				t.Errorf("attempt row of %s names no provider/model: %s", id, r)
			}
		}
	}
	dir := artifactDir(t)
	for _, size := range []string{"1280,2700", "390,4600"} {
		path := filepath.Join(dir, "dashboard-"+strings.SplitN(size, ",", 2)[0]+".png")
		headless(t, bin, s.url+"/", "--window-size="+size, "--screenshot="+path)
		st, err := os.Stat(path)
		if err != nil || st.Size() < 10_000 {
			t.Fatalf("screenshot %s: %v (size %d)", path, err, sizeOf(st))
		}
		t.Logf("screenshot: %s", path)
	}
}

func sizeOf(st os.FileInfo) int64 {
	if st == nil {
		return 0
	}
	return st.Size()
}
