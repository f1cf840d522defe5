package storetest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/store"
)

func testPipelineVersions(t *testing.T, s store.Store) {
	c := t.Context()
	view(t, s, func(r store.Reader) error {
		_, err := r.PipelineVersion(c, "webapp", 0)
		wantErr(t, "latest of unknown pipeline", err, store.ErrNotFound)
		_, err = r.PipelineVersion(c, "webapp", 1)
		wantErr(t, "version 1 of unknown pipeline", err, store.ErrNotFound)
		return nil
	})

	defA, defB := []byte(`{"name":"webapp","stages":[]}`), []byte(`{"name":"webapp","stages":[{}]}`)
	steps := []struct {
		name string
		def  []byte
		now  int
		want int
	}{
		{"webapp", defA, 1, 1},
		{"webapp", defA, 2, 1}, // same definition: no new version
		{"webapp", defB, 3, 2},
		{"webapp", defB, 4, 2},
		{"webapp", defA, 5, 3}, // differs from the latest, even if equal to an older one
		{"other", defA, 6, 1},  // versions are per pipeline
	}
	for _, st := range steps {
		update(t, s, func(tx store.Tx) error {
			v, err := tx.PutPipelineVersion(c, st.name, st.def, at(st.now))
			if err != nil {
				return err
			}
			if v != st.want {
				t.Errorf("put %s %s at %d: version %d, want %d", st.name, st.def, st.now, v, st.want)
			}
			return nil
		})
	}

	view(t, s, func(r store.Reader) error {
		for _, w := range []store.PipelineVersion{
			{Name: "webapp", Version: 1, Definition: defA, CreatedAt: at(1)},
			{Name: "webapp", Version: 2, Definition: defB, CreatedAt: at(3)},
			{Name: "webapp", Version: 3, Definition: defA, CreatedAt: at(5)},
			{Name: "other", Version: 1, Definition: defA, CreatedAt: at(6)},
		} {
			got, err := r.PipelineVersion(c, w.Name, w.Version)
			if err != nil {
				t.Fatalf("get %s version %d: %v", w.Name, w.Version, err)
			}
			equal(t, fmt.Sprintf("%s version %d", w.Name, w.Version), *got, w)
		}
		latest, err := r.PipelineVersion(c, "webapp", 0)
		if err != nil {
			t.Fatalf("get latest: %v", err)
		}
		equal(t, "latest webapp", *latest, store.PipelineVersion{Name: "webapp", Version: 3, Definition: defA, CreatedAt: at(5)})
		_, err = r.PipelineVersion(c, "webapp", 4)
		wantErr(t, "version past the latest", err, store.ErrNotFound)
		return nil
	})
}

// newExecution returns a minimal execution created at at(n).
func newExecution(id, pipe string, n int) *engine.Execution {
	return &engine.Execution{
		ID: id, Pipeline: pipe, PipelineVersion: 1, Mode: pipeline.Superseded,
		Status: engine.ExecInProgress, Trigger: engine.Trigger{Type: "API"},
		Stages:    []engine.Stage{{Name: "Source", Actions: []engine.Action{{Name: "Checkout", RunOrder: 1}}}},
		CreatedAt: at(n), UpdatedAt: at(n),
	}
}

// fullExecution returns an execution with every field set, times in another zone than UTC.
func fullExecution(id string) *engine.Execution {
	zone := time.FixedZone("UTC+2", 2*3600)
	ts := func(n int) time.Time { return at(n).In(zone) }
	ref := func(b byte) artifact.Ref {
		return artifact.Ref{Digest: "sha256:" + strings.Repeat(string(rune('a'+b)), 64), Size: 10240 * int64(b+1), Files: int(b) + 3}
	}
	return &engine.Execution{
		ID: id, Pipeline: "webapp", PipelineVersion: 7, Mode: pipeline.Queued,
		Status: engine.ExecInProgress, Type: "Rollback",
		Trigger:   engine.Trigger{Type: "Webhook", Detail: "push by ada"},
		Variables: map[string]string{"DEPLOY_ENV": "prod", "EMPTY": ""},
		Sources: map[string]engine.SourceOverride{
			"Source.Checkout": {Revision: "0123456789abcdef0123456789abcdef01234567"},
			"Source.Tools":    {Dir: "/srv/tools"},
		},
		Stages: []engine.Stage{
			{
				Name: "Source", Status: engine.StageSucceeded, Attempt: 1,
				EnteredAt: ts(1), FinishedAt: ts(2),
				Actions: []engine.Action{{
					Name: "Checkout", RunOrder: 1, Status: engine.ActionSucceeded, Attempt: 1,
					JobID:         id + "/Source/Checkout/1",
					Configuration: map[string]any{"repository": "https://git.example.com/w.git", "depth": float64(1), "tags": true},
					Environment:   map[string]string{"GIT_TRACE": "0"},
					Outputs:       map[string]string{"CommitId": "0123456"},
					Summary:       "fetched 0123456", ExternalURL: "https://git.example.com/w/commit/0123456",
					StartedAt: ts(1), FinishedAt: ts(2),
				}},
			},
			{
				Name: "Build", Status: engine.StageInProgress, Attempt: 2, EnteredAt: ts(3),
				Actions: []engine.Action{
					{
						Name: "Compile", RunOrder: 1, Status: engine.ActionFailed, Attempt: 2,
						JobID:         id + "/Build/Compile/2",
						Configuration: map[string]any{"commands": []any{"make", "make test"}, "nested": map[string]any{"k": "v"}},
						Failure:       "failed", Message: "exit status 2",
						StartedAt: ts(3), FinishedAt: ts(4),
					},
					{Name: "Approve", RunOrder: 2, Status: engine.ActionInProgress, Attempt: 1, StartedAt: ts(5)},
				},
			},
			{Name: "Deploy", Actions: []engine.Action{{Name: "Release", RunOrder: 1}}},
		},
		Outputs:    map[string]map[string]string{"SourceVariables": {"CommitId": "0123456", "BranchName": "main"}},
		Artifacts:  map[string]artifact.Ref{"SourceOutput": ref(0), "BuildOutput": ref(1)},
		Stop:       &engine.StopRequest{Mode: engine.Abandon, Reason: "wrong branch"},
		Message:    "stopping",
		CreatedAt:  ts(0),
		UpdatedAt:  ts(5),
		FinishedAt: ts(6),
	}
}

func testCreateExecutionAssignsSeq(t *testing.T, s store.Store) {
	c := t.Context()
	order := []struct {
		id, pipe string
		want     int64
	}{
		{"a1", "a", 1}, {"b1", "b", 1}, {"a2", "a", 2}, {"a3", "a", 3}, {"b2", "b", 2},
	}
	for i, o := range order {
		e := newExecution(o.id, o.pipe, i)
		update(t, s, func(tx store.Tx) error { return tx.CreateExecution(c, e) })
		if e.Seq != o.want {
			t.Errorf("create %s: Seq %d, want %d", o.id, e.Seq, o.want)
		}
	}
	// Several in one transaction: each sees the one before.
	var e4, e5 *engine.Execution
	update(t, s, func(tx store.Tx) error {
		e4, e5 = newExecution("a4", "a", 10), newExecution("a5", "a", 11)
		if err := tx.CreateExecution(c, e4); err != nil {
			return err
		}
		return tx.CreateExecution(c, e5)
	})
	if e4.Seq != 4 || e5.Seq != 5 {
		t.Errorf("two in one transaction: Seq %d and %d, want 4 and 5", e4.Seq, e5.Seq)
	}
	view(t, s, func(r store.Reader) error {
		for _, o := range order {
			e, err := r.Execution(c, o.id)
			if err != nil {
				t.Fatalf("get %s: %v", o.id, err)
			}
			if e.Seq != o.want {
				t.Errorf("get %s: Seq %d, want %d", o.id, e.Seq, o.want)
			}
		}
		return nil
	})
}

func testCreateExecutionDuplicate(t *testing.T, s store.Store) {
	c := t.Context()
	first := newExecution("x", "a", 1)
	update(t, s, func(tx store.Tx) error { return tx.CreateExecution(c, first) })

	dup := newExecution("x", "a", 2)
	dup.Message = "the second one"
	err := s.Update(c, func(tx store.Tx) error { return tx.CreateExecution(c, dup) })
	wantErr(t, "create with an id in use", err, store.ErrConflict)
	// Even in another pipeline.
	other := newExecution("x", "b", 3)
	err = s.Update(c, func(tx store.Tx) error { return tx.CreateExecution(c, other) })
	wantErr(t, "create with an id in use in another pipeline", err, store.ErrConflict)

	view(t, s, func(r store.Reader) error {
		got, err := r.Execution(c, "x")
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		equal(t, "execution after a refused duplicate", got, first)
		return nil
	})
}

func testExecutionRoundTrip(t *testing.T, s store.Store) {
	c := t.Context()
	e := fullExecution("e1")
	update(t, s, func(tx store.Tx) error { return tx.CreateExecution(c, e) })
	if e.Seq != 1 {
		t.Fatalf("Seq %d, want 1", e.Seq)
	}
	want := fullExecution("e1")
	want.Seq = 1
	view(t, s, func(r store.Reader) error {
		got, err := r.Execution(c, "e1")
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		equal(t, "created execution", got, want)
		return nil
	})

	// Put changes everything but the identity; the document and the indexed columns follow.
	want.Status = engine.ExecFailed
	want.Stages[1].Status = engine.StageFailed
	want.Stages[1].Actions[1] = engine.Action{Name: "Approve", RunOrder: 2, Status: engine.ActionAbandoned, Attempt: 1}
	want.Artifacts["TestReport"] = artifact.Ref{Digest: "sha256:" + strings.Repeat("f", 64), Size: 20480, Files: 1}
	want.Outputs["BuildVariables"] = map[string]string{"Version": "1.2.3"}
	want.Stop = nil
	want.Message = "stage Build failed"
	want.UpdatedAt = at(9)
	want.FinishedAt = at(9)
	put := *want
	update(t, s, func(tx store.Tx) error { return tx.PutExecution(c, &put) })
	view(t, s, func(r store.Reader) error {
		got, err := r.Execution(c, "e1")
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		equal(t, "updated execution", got, want)
		list, err := r.Executions(c, store.ExecutionFilter{Statuses: []engine.ExecutionStatus{engine.ExecFailed}})
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		if len(list) != 1 || list[0].ID != "e1" {
			t.Fatalf("list Failed after put: %d executions, want e1", len(list))
		}
		list, err = r.Executions(c, store.ExecutionFilter{Statuses: []engine.ExecutionStatus{engine.ExecInProgress}})
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		if len(list) != 0 {
			t.Fatalf("list InProgress after put: %d executions, want none", len(list))
		}
		return nil
	})
}

func testExecutionNotFound(t *testing.T, s store.Store) {
	c := t.Context()
	view(t, s, func(r store.Reader) error {
		_, err := r.Execution(c, "nope")
		wantErr(t, "get unknown execution", err, store.ErrNotFound)
		return nil
	})
	err := s.Update(c, func(tx store.Tx) error { return tx.PutExecution(c, newExecution("nope", "a", 1)) })
	wantErr(t, "put unknown execution", err, store.ErrNotFound)
	view(t, s, func(r store.Reader) error {
		_, err := r.Execution(c, "nope")
		wantErr(t, "get execution after a refused put", err, store.ErrNotFound)
		return nil
	})
}

// seedExecutions creates, interleaved in time, executions a1..a5 of pipeline a (even seqs
// Succeeded, odd Failed) and b1..b3 of pipeline b (InProgress).
func seedExecutions(t *testing.T, s store.Store) {
	c := t.Context()
	order := []string{"a1", "b1", "a2", "a3", "b2", "a4", "b3", "a5"}
	update(t, s, func(tx store.Tx) error {
		for i, id := range order {
			e := newExecution(id, id[:1], i)
			if id[0] == 'a' {
				e.Status = engine.ExecFailed
				if (id[1]-'0')%2 == 0 {
					e.Status = engine.ExecSucceeded
				}
			}
			if err := tx.CreateExecution(c, e); err != nil {
				return err
			}
		}
		return nil
	})
}

func ids(es []*engine.Execution) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

func testExecutionsList(t *testing.T, s store.Store) {
	c := t.Context()
	view(t, s, func(r store.Reader) error {
		got, err := r.Executions(c, store.ExecutionFilter{})
		if err != nil {
			t.Fatalf("list empty store: %v", err)
		}
		if len(got) != 0 {
			t.Fatalf("list empty store: %v", ids(got))
		}
		return nil
	})
	seedExecutions(t, s)
	cases := []struct {
		name string
		f    store.ExecutionFilter
		want []string
	}{
		{"all, newest first", store.ExecutionFilter{}, []string{"a5", "b3", "a4", "b2", "a3", "a2", "b1", "a1"}},
		{"all, limit", store.ExecutionFilter{Limit: 3}, []string{"a5", "b3", "a4"}},
		{"pipeline", store.ExecutionFilter{Pipeline: "a"}, []string{"a5", "a4", "a3", "a2", "a1"}},
		{"pipeline, limit", store.ExecutionFilter{Pipeline: "b", Limit: 2}, []string{"b3", "b2"}},
		{"unknown pipeline", store.ExecutionFilter{Pipeline: "c"}, []string{}},
		{"updated after", store.ExecutionFilter{UpdatedAfter: at(4)}, []string{"a5", "b3", "a4"}},
		{"pipeline, updated after", store.ExecutionFilter{Pipeline: "b", UpdatedAfter: at(1)}, []string{"b3", "b2"}},
		{"status", store.ExecutionFilter{Statuses: []engine.ExecutionStatus{engine.ExecSucceeded}}, []string{"a4", "a2"}},
		{"statuses", store.ExecutionFilter{Statuses: []engine.ExecutionStatus{engine.ExecSucceeded, engine.ExecInProgress}},
			[]string{"b3", "a4", "b2", "a2", "b1"}},
		{"pipeline and status", store.ExecutionFilter{Pipeline: "a", Statuses: []engine.ExecutionStatus{engine.ExecFailed}},
			[]string{"a5", "a3", "a1"}},
		{"pipeline, status, before", store.ExecutionFilter{Pipeline: "a", Statuses: []engine.ExecutionStatus{engine.ExecFailed}, BeforeSeq: 5},
			[]string{"a3", "a1"}},
		{"before", store.ExecutionFilter{Pipeline: "a", BeforeSeq: 4}, []string{"a3", "a2", "a1"}},
		{"before, limit", store.ExecutionFilter{Pipeline: "a", BeforeSeq: 4, Limit: 2}, []string{"a3", "a2"}},
		{"before the first", store.ExecutionFilter{Pipeline: "a", BeforeSeq: 1}, []string{}},
		{"status nobody has", store.ExecutionFilter{Statuses: []engine.ExecutionStatus{engine.ExecCancelled}}, []string{}},
	}
	view(t, s, func(r store.Reader) error {
		for _, tc := range cases {
			got, err := r.Executions(c, tc.f)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			equal(t, tc.name, ids(got), tc.want)
		}
		return nil
	})
}

func testExecutionsPaging(t *testing.T, s store.Store) {
	c := t.Context()
	const n = 25
	update(t, s, func(tx store.Tx) error {
		for i := range n {
			if err := tx.CreateExecution(c, newExecution(fmt.Sprintf("p%02d", i+1), "p", i)); err != nil {
				return err
			}
		}
		return nil
	})
	var pages [][]string
	var before int64
	view(t, s, func(r store.Reader) error {
		for {
			page, err := r.Executions(c, store.ExecutionFilter{Pipeline: "p", BeforeSeq: before, Limit: 10})
			if err != nil {
				t.Fatalf("page before %d: %v", before, err)
			}
			if len(page) == 0 {
				return nil
			}
			pages = append(pages, ids(page))
			before = page[len(page)-1].Seq
		}
	})
	if len(pages) != 3 || len(pages[0]) != 10 || len(pages[1]) != 10 || len(pages[2]) != 5 {
		t.Fatalf("pages: %v", pages)
	}
	if pages[0][0] != "p25" || pages[1][0] != "p15" || pages[2][4] != "p01" {
		t.Fatalf("pages out of order: %v", pages)
	}
}

// testExecutionsSucceededInStage checks the SucceededInStage filter, alone and with
// statuses and paging: a page holds up to Limit matching executions, however many others
// lie between them.
func testExecutionsSucceededInStage(t *testing.T, s store.Store) {
	c := t.Context()
	const n = 30
	// q01..q30: Build succeeded in every third one (q03, q06, ...); Deploy succeeded in
	// q06, q12, ...; the execution succeeded when both did. r01 (another pipeline) succeeded
	// in Build too.
	update(t, s, func(tx store.Tx) error {
		for i := 1; i <= n; i++ {
			e := newExecution(fmt.Sprintf("q%02d", i), "q", i)
			build, deploy := engine.StageFailed, engine.StageStatus("")
			if i%3 == 0 {
				build = engine.StageSucceeded
				deploy = engine.StageFailed
				e.Status = engine.ExecFailed
			}
			if i%6 == 0 {
				deploy = engine.StageSucceeded
				e.Status = engine.ExecSucceeded
			}
			e.Stages = []engine.Stage{
				{Name: "Source", Status: engine.StageSucceeded},
				{Name: "Build", Status: build},
				{Name: "Deploy", Status: deploy},
			}
			if err := tx.CreateExecution(c, e); err != nil {
				return err
			}
		}
		r := newExecution("r01", "r", 0)
		r.Stages = []engine.Stage{{Name: "Build", Status: engine.StageSucceeded}}
		return tx.CreateExecution(c, r)
	})
	view(t, s, func(r store.Reader) error {
		got, err := r.Executions(c, store.ExecutionFilter{Pipeline: "q", SucceededInStage: "Deploy"})
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "deploy", ids(got), []string{"q30", "q24", "q18", "q12", "q06"})
		got, err = r.Executions(c, store.ExecutionFilter{Pipeline: "q", SucceededInStage: "Build",
			Statuses: []engine.ExecutionStatus{engine.ExecFailed}, Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "build, failed, limit", ids(got), []string{"q27", "q21", "q15"})
		got, err = r.Executions(c, store.ExecutionFilter{SucceededInStage: "Build", Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "build, every pipeline", ids(got), []string{"q30", "q27"})
		got, err = r.Executions(c, store.ExecutionFilter{Pipeline: "q", SucceededInStage: "Nope"})
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "unknown stage", ids(got), []string{})
		got, err = r.Executions(c, store.ExecutionFilter{Pipeline: "q", SucceededInStage: "build"})
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "stage names are case-sensitive", ids(got), []string{})

		// Paging: 4 per page over the 10 matching executions.
		var pages [][]string
		var before int64
		for {
			page, err := r.Executions(c, store.ExecutionFilter{Pipeline: "q", SucceededInStage: "Build", BeforeSeq: before, Limit: 4})
			if err != nil {
				t.Fatalf("page before %d: %v", before, err)
			}
			if len(page) == 0 {
				break
			}
			pages = append(pages, ids(page))
			before = page[len(page)-1].Seq
		}
		want := [][]string{{"q30", "q27", "q24", "q21"}, {"q18", "q15", "q12", "q09"}, {"q06", "q03"}}
		if fmt.Sprint(pages) != fmt.Sprint(want) {
			t.Fatalf("pages: got %v, want %v", pages, want)
		}
		return nil
	})
}

func testStageLocks(t *testing.T, s store.Store) {
	c := t.Context()
	view(t, s, func(r store.Reader) error {
		locks, err := r.StageLocks(c, "webapp")
		if err != nil {
			t.Fatalf("locks of unknown pipeline: %v", err)
		}
		if len(locks) != 0 {
			t.Fatalf("locks of unknown pipeline: %v", locks)
		}
		return nil
	})
	build := &engine.StageLock{Pipeline: "webapp", Stage: "Build", Holder: "e2", Waiting: []string{"e3", "e4"}, LastEntered: "e2"}
	deploy := &engine.StageLock{Pipeline: "webapp", Stage: "Deploy", Disabled: true, DisabledReason: "freeze", DisabledBy: "ada"}
	otherBuild := &engine.StageLock{Pipeline: "other", Stage: "Build", Holder: "o1"}
	update(t, s, func(tx store.Tx) error {
		for _, l := range []*engine.StageLock{build, deploy, otherBuild} {
			if err := tx.PutStageLock(c, l); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(r store.Reader) error {
		locks, err := r.StageLocks(c, "webapp")
		if err != nil {
			t.Fatalf("locks: %v", err)
		}
		equal(t, "webapp locks", locks, map[string]*engine.StageLock{"Build": build, "Deploy": deploy})
		return nil
	})
	// Replace one.
	build2 := &engine.StageLock{Pipeline: "webapp", Stage: "Build", Waiting: []string{"e4"}, LastEntered: "e3"}
	update(t, s, func(tx store.Tx) error { return tx.PutStageLock(c, build2) })
	view(t, s, func(r store.Reader) error {
		locks, err := r.StageLocks(c, "webapp")
		if err != nil {
			t.Fatalf("locks: %v", err)
		}
		equal(t, "webapp locks after replace", locks, map[string]*engine.StageLock{"Build": build2, "Deploy": deploy})
		locks, err = r.StageLocks(c, "other")
		if err != nil {
			t.Fatalf("locks: %v", err)
		}
		equal(t, "other locks", locks, map[string]*engine.StageLock{"Build": otherBuild})
		return nil
	})
}
