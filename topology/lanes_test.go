package topology

import "testing"

func TestSubjects(t *testing.T) {
	cases := []struct{ prio, subj, cons string }{
		{"high", "llm.jobs.p.high", "workers-p-high"},
		{"normal", "llm.jobs.p", "workers-p"},
		{"", "llm.jobs.p", "workers-p"},
		{"low", "llm.jobs.p.low", "workers-p-low"},
	}
	for _, c := range cases {
		if got := JobsLane("p", c.prio); got != c.subj {
			t.Errorf("JobsLane(%q) = %q", c.prio, got)
		}
		if got := LaneConsumer("p", c.prio); got != c.cons {
			t.Errorf("LaneConsumer(%q) = %q", c.prio, got)
		}
		if got := ProviderFromSubject(c.subj); got != "p" {
			t.Errorf("ProviderFromSubject(%q) = %q", c.subj, got)
		}
	}
}
