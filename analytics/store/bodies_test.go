package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/switchboard-llm/switchboard/analytics/store"
	"github.com/switchboard-llm/switchboard/schemas"
)

// Completions keep the request and response bodies of analytics.log_bodies;
// a database from before version 4 gets the columns (its rows empty), and
// migrating again changes nothing.
func TestCompletionBodies(t *testing.T) {
	db := preV3DB(t)
	ctx := context.Background()
	if err := db.Conn.Exec(ctx, "INSERT INTO completions (event_id, job_id, ts, status) SELECT generateUUIDv4(), 'old', now(), 'succeeded'"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Migrate(ctx, db.Conn); err != nil {
		t.Fatal(err)
	}
	if applied, err := store.Migrate(ctx, db.Conn); err != nil || len(applied) != 0 {
		t.Fatalf("second migrate applied %v (%v)", applied, err)
	}
	ts := time.Now().UTC().Truncate(time.Second)
	with := &schemas.Event{V: 1, Kind: schemas.EventCompletion, EventID: uuid.New(), JobID: "with", TS: ts, Status: "succeeded",
		RequestBody: `{"messages":[{"role":"user","content":"héllo"}]}`, ResponseBody: `{"choices":[]}`}
	without := &schemas.Event{V: 1, Kind: schemas.EventCompletion, EventID: uuid.New(), JobID: "without", TS: ts, Status: "succeeded"}
	if _, err := store.Insert(ctx, db.Conn, schemas.EventCompletion, []*schemas.Event{with, without}); err != nil {
		t.Fatal(err)
	}
	got := map[string][2]string{}
	rows, err := db.Conn.Query(ctx, "SELECT job_id, request_body, response_body FROM completions")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, req, resp string
		if err := rows.Scan(&id, &req, &resp); err != nil {
			t.Fatal(err)
		}
		got[id] = [2]string{req, resp}
	}
	want := map[string][2]string{"old": {}, "without": {}, "with": {with.RequestBody, with.ResponseBody}}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("%s: bodies %q, want %q", id, got[id], w)
		}
	}
}
