package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/report"
	"github.com/conveyorci/conveyor/internal/store"
	"github.com/conveyorci/conveyor/internal/store/storetest"
)

// openAt opens the store at path and closes it at the end of the test.
func openAt(t testing.TB, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), path, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func openTemp(t testing.TB, opts Options) *Store {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "conveyor.db"), opts)
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t, Options{}) })
}

// TestConformanceOneReader runs the suite with a single read connection, to catch code that
// needs two at once (it would wait forever).
func TestConformanceOneReader(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t, Options{MaxReaders: 1}) })
}

func TestConformanceSynchronousFull(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t, Options{Synchronous: "full"}) })
}

func execution(id, pipeline string, n int) *engine.Execution {
	ts := time.Date(2026, 11, 26, 10, 0, n, 0, time.UTC)
	return &engine.Execution{
		ID: id, Pipeline: pipeline, PipelineVersion: 1, Status: engine.ExecInProgress,
		Trigger: engine.Trigger{Type: "API"}, CreatedAt: ts, UpdatedAt: ts,
		Stages: []engine.Stage{{Name: "Build", Actions: []engine.Action{{Name: "Compile", RunOrder: 1}}}},
	}
}

func TestReopen(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "conveyor.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(ctx, func(tx store.Tx) error {
		if err := tx.CreateExecution(ctx, execution("e1", "a", 1)); err != nil {
			return err
		}
		_, err := tx.AddJob(ctx, &store.Job{ID: "j1", ExecutionID: "e1", Pipeline: "a", Provider: "Build/Commands"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}

	// Reopening applies no migration again and finds the data.
	s = openAt(t, path, Options{})
	err = s.View(ctx, func(r store.Reader) error {
		e, err := r.Execution(ctx, "e1")
		if err != nil {
			return err
		}
		if e.Seq != 1 {
			return fmt.Errorf("seq %d", e.Seq)
		}
		_, err = r.Job(ctx, "j1")
		return err
	})
	if err != nil {
		t.Fatalf("after reopen: %v", err)
	}
	// The next Seq follows the stored ones.
	e2 := execution("e2", "a", 2)
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.CreateExecution(ctx, e2) }); err != nil {
		t.Fatal(err)
	}
	if e2.Seq != 2 {
		t.Fatalf("seq after reopen %d, want 2", e2.Seq)
	}

	db, err := sql.Open("sqlite", path+"?_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var applied, files int
	var mode string
	entries, err := migrations.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".sql") {
			files++
		}
	}
	if err := db.QueryRow(`SELECT count(*) FROM goose_db_version WHERE version_id > 0`).Scan(&applied); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if applied != files || mode != "wal" {
		t.Fatalf("%d migrations recorded, journal mode %s; want each of the %d once, wal", applied, mode, files)
	}
}

func TestOpenOptions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		path string
		opts Options
	}{
		{filepath.Join(dir, "a.db"), Options{Synchronous: "OFF"}},
		{filepath.Join(dir, "b.db"), Options{MaxReaders: -1}},
		{filepath.Join(dir, "c.db?mode=memory"), Options{}},
		{"", Options{}},
		{filepath.Join(dir, "missing", "d.db"), Options{}},
	} {
		if s, err := Open(t.Context(), tc.path, tc.opts); err == nil {
			s.Close()
			t.Errorf("open %q with %+v: no error", tc.path, tc.opts)
		}
	}
}

// TestLoad: many writers and readers at once never see "database is locked" or any error.
func TestLoad(t *testing.T) {
	t.Parallel()
	const writers, perWriter, readers = 16, 500, 4
	if testing.Short() {
		t.Skip("load test")
	}
	s := openTemp(t, Options{})
	ctx := t.Context()
	began := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, writers+readers)
	for w := range writers {
		wg.Go(func() {
			id := fmt.Sprintf("e%d", w)
			if err := s.Update(ctx, func(tx store.Tx) error {
				return tx.CreateExecution(ctx, execution(id, fmt.Sprintf("p%d", w%4), w))
			}); err != nil {
				errs <- err
				return
			}
			for i := range perWriter {
				err := s.Update(ctx, func(tx store.Tx) error {
					e, err := tx.Execution(ctx, id)
					if err != nil {
						return err
					}
					e.Message = strconv.Itoa(i)
					if err := tx.PutExecution(ctx, e); err != nil {
						return err
					}
					if i%10 == 0 {
						_, err = tx.AddJob(ctx, &store.Job{ID: fmt.Sprintf("%s/%d", id, i), ExecutionID: id, Pipeline: e.Pipeline, Provider: "Build/Commands"})
					}
					return err
				})
				if err != nil {
					errs <- fmt.Errorf("update %s %d: %w", id, i, err)
					return
				}
			}
		})
	}
	done := make(chan struct{})
	var rg sync.WaitGroup
	for range readers {
		rg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				err := s.View(ctx, func(r store.Reader) error {
					if _, err := r.Executions(ctx, store.ExecutionFilter{Pipeline: "p1", Limit: 10}); err != nil {
						return err
					}
					_, err := r.Job(ctx, "e1/0")
					if errors.Is(err, store.ErrNotFound) {
						err = nil
					}
					return err
				})
				if err != nil {
					errs <- fmt.Errorf("view: %w", err)
					return
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d updates in %v", writers*perWriter, time.Since(began))
	close(done)
	rg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	err := s.View(ctx, func(r store.Reader) error {
		for w := range writers {
			e, err := r.Execution(ctx, fmt.Sprintf("e%d", w))
			if err != nil {
				return err
			}
			if e.Message != strconv.Itoa(perWriter-1) {
				return fmt.Errorf("e%d: message %q", w, e.Message)
			}
		}
		jobs, err := r.Jobs(ctx)
		if err != nil {
			return err
		}
		if len(jobs) != writers*perWriter/10 {
			return fmt.Errorf("%d jobs, want %d", len(jobs), writers*perWriter/10)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPanic: a panicking function is rolled back and its panic re-raised in its caller;
// functions batched with it commit.
func TestPanic(t *testing.T) {
	t.Parallel()
	s := openTemp(t, Options{})
	ctx := t.Context()
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 20 {
		wg.Go(func() {
			<-start
			defer func() {
				p := recover()
				if (p != nil) != (i == 7) {
					t.Errorf("update %d: panic %v", i, p)
				}
			}()
			err := s.Update(ctx, func(tx store.Tx) error {
				if err := tx.CreateExecution(ctx, execution(fmt.Sprint(i), "a", i)); err != nil {
					return err
				}
				if i == 7 {
					panic("seven")
				}
				return nil
			})
			if err != nil {
				t.Errorf("update %d: %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	err := s.View(ctx, func(r store.Reader) error {
		es, err := r.Executions(ctx, store.ExecutionFilter{})
		if err != nil {
			return err
		}
		if len(es) != 19 {
			return fmt.Errorf("%d executions, want 19", len(es))
		}
		_, err = r.Execution(ctx, "7")
		if !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("execution of the panicking update: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestTxAfterUpdate: a Tx kept beyond its function is refused rather than writing into
// another caller's transaction.
func TestTxAfterUpdate(t *testing.T) {
	t.Parallel()
	s := openTemp(t, Options{})
	ctx := t.Context()
	var kept store.Tx
	var keptR store.Reader
	if err := s.Update(ctx, func(tx store.Tx) error { kept = tx; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.View(ctx, func(r store.Reader) error { keptR = r; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := kept.CreateExecution(ctx, execution("e1", "a", 1)); !errors.Is(err, errTxDone) {
		t.Fatalf("write after the update: %v", err)
	}
	if _, err := keptR.Execution(ctx, "e1"); !errors.Is(err, errTxDone) {
		t.Fatalf("read after the view: %v", err)
	}
}

// TestNotifyAfterRollback: work rolled back wakes nobody.
func TestNotifyAfterRollback(t *testing.T) {
	t.Parallel()
	s := openTemp(t, Options{})
	ctx := t.Context()
	jobs := s.Notify(store.TopicJobs)
	err := s.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.AddJob(ctx, &store.Job{ID: "j1", Provider: "Build/Commands"}); err != nil {
			return err
		}
		return errors.New("no")
	})
	if err == nil {
		t.Fatal("no error")
	}
	select {
	case <-jobs:
		t.Fatal("notified of a rolled-back job")
	default:
	}
}

// TestSecondProcess: another process writing the same file is waited for (busy_timeout),
// not failed with "database is locked".
func TestSecondProcess(t *testing.T) {
	if path := os.Getenv("CONVEYOR_STORE_HELPER"); path != "" {
		helperProcess(t, path)
		return
	}
	if testing.Short() {
		t.Skip("spawns a process")
	}
	t.Parallel()
	path := filepath.Join(t.TempDir(), "conveyor.db")
	s := openAt(t, path, Options{})
	ctx := t.Context()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestSecondProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "CONVEYOR_STORE_HELPER="+path)
	out := make(chan error, 1)
	var output []byte
	go func() {
		var err error
		output, err = cmd.CombinedOutput()
		out <- err
	}()
	for i := range 300 {
		if err := s.Update(ctx, func(tx store.Tx) error {
			return tx.CreateExecution(ctx, execution(fmt.Sprintf("parent-%d", i), "parent", i))
		}); err != nil {
			t.Fatalf("parent update %d: %v", i, err)
		}
	}
	if err := <-out; err != nil {
		t.Fatalf("helper: %v\n%s", err, output)
	}
	err := s.View(ctx, func(r store.Reader) error {
		for _, p := range []string{"parent", "child"} {
			es, err := r.Executions(ctx, store.ExecutionFilter{Pipeline: p})
			if err != nil {
				return err
			}
			if len(es) != 300 {
				return fmt.Errorf("%s: %d executions, want 300", p, len(es))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func helperProcess(t *testing.T, path string) {
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for i := range 300 {
		if err := s.Update(ctx, func(tx store.Tx) error {
			return tx.CreateExecution(ctx, execution(fmt.Sprintf("child-%d", i), "child", i))
		}); err != nil {
			t.Fatalf("child update %d: %v", i, err)
		}
	}
}

// TestEmptyValues: empty byte slices and zero times are stored and read back.
func TestEmptyValues(t *testing.T) {
	t.Parallel()
	s := openTemp(t, Options{})
	ctx := t.Context()
	err := s.Update(ctx, func(tx store.Tx) error {
		for range 2 {
			if v, err := tx.PutPipelineVersion(ctx, "p", nil, time.Time{}); err != nil || v != 1 {
				return fmt.Errorf("put empty definition: %d, %v", v, err)
			}
		}
		if err := tx.AddOutbox(ctx, &store.OutboxMessage{Key: "k", Kind: "x"}); err != nil {
			return err
		}
		msgs, err := tx.PendingOutbox(ctx, 1)
		if err != nil {
			return err
		}
		if len(msgs) != 1 || len(msgs[0].Payload) != 0 || !msgs[0].CreatedAt.IsZero() {
			return fmt.Errorf("outbox: %+v", msgs)
		}
		pv, err := tx.PipelineVersion(ctx, "p", 0)
		if err != nil {
			return err
		}
		if len(pv.Definition) != 0 || !pv.CreatedAt.IsZero() {
			return fmt.Errorf("pipeline version: %+v", pv)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSameActionCoversAllFields fails when engine.Action gains a field: sameAction must then
// compare it, or a step that changes only that field would not be written.
func TestSameActionCoversAllFields(t *testing.T) {
	compared := []string{"Name", "RunOrder", "Status", "Attempt", "LostRetries", "JobID", "Configuration",
		"Environment", "Outputs", "Summary", "ExternalURL", "ExternalID", "Continuations", "Reports", "Decision", "Approvals", "ApprovalToken", "Failure", "Message",
		"WaitingFor", "StartedAt", "FinishedAt"}
	var fields []string
	for f := range reflect.TypeFor[engine.Action]().Fields() {
		fields = append(fields, f.Name)
	}
	if !slices.Equal(fields, compared) {
		t.Errorf("engine.Action has fields %v; sameAction compares %v: update it", fields, compared)
	}
	// Each field, changed alone, makes the actions differ.
	base := engine.Action{Name: "a", Configuration: map[string]any{"k": "v"}, Environment: map[string]string{"E": "1"},
		Outputs: map[string]string{"O": "1"}, Decision: &engine.Decision{By: "ann"}}
	for i := range reflect.TypeFor[engine.Action]().NumField() {
		changed := base
		v := reflect.ValueOf(&changed).Elem().Field(i)
		switch v.Kind() {
		case reflect.String:
			v.SetString(v.String() + "x")
		case reflect.Int:
			v.SetInt(v.Int() + 1)
		case reflect.Map:
			if v.Type().Elem().Kind() == reflect.String {
				v.Set(reflect.ValueOf(map[string]string{"changed": "1"}))
			} else {
				v.Set(reflect.ValueOf(map[string]any{"changed": 1}))
			}
		case reflect.Pointer:
			v.Set(reflect.ValueOf(&engine.Decision{By: "bob"}))
		case reflect.Slice:
			if v.Type() == reflect.TypeFor[[]report.Report]() {
				v.Set(reflect.ValueOf([]report.Report{{Name: "unit"}}))
				break
			}
			v.Set(reflect.ValueOf([]engine.Decision{{By: "bob"}}))
		case reflect.Struct: // time.Time
			v.Set(reflect.ValueOf(time.Unix(1, 0)))
		default:
			t.Fatalf("field %s: kind %s not covered by this test", reflect.TypeFor[engine.Action]().Field(i).Name, v.Kind())
		}
		if sameAction(&base, &changed) {
			t.Errorf("changing %s alone leaves the actions the same", reflect.TypeFor[engine.Action]().Field(i).Name)
		}
	}
	copied := base
	copied.Configuration = map[string]any{"k": "v"}
	if !sameAction(&base, &copied) {
		t.Error("equal configurations in different maps compare different")
	}
}

// wideExecution has stages stages of n actions each.
func wideExecution(id string, stages, n int) *engine.Execution {
	e := execution(id, "wide", 1)
	e.Stages = nil
	for i := range stages {
		st := engine.Stage{Name: fmt.Sprintf("S%d", i)}
		for j := range n {
			st.Actions = append(st.Actions, engine.Action{Name: fmt.Sprintf("A%d", j), RunOrder: j + 1})
		}
		e.Stages = append(e.Stages, st)
	}
	return e
}

// TestActionRowsFollowSteps changes actions one at a time, as steps do (each write knows
// the state it replaces from the cache), then reads the execution back from a store with
// an empty cache: every change must have reached its row.
func TestActionRowsFollowSteps(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "conveyor.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := wideExecution("e1", 3, 5)
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.CreateExecution(ctx, want) }); err != nil {
		t.Fatal(err)
	}
	for k := range 15 {
		i, j := k%3, (k*2)%5
		err := s.Update(ctx, func(tx store.Tx) error {
			e, err := tx.Execution(ctx, "e1")
			if err != nil {
				return err
			}
			a := &e.Stages[i].Actions[j]
			a.Status, a.Attempt = engine.ActionSucceeded, a.Attempt+1
			a.Outputs = map[string]string{"K": strconv.Itoa(k)}
			e.Stages[i].Status = engine.StageInProgress
			if k%4 == 0 { // two writes in one transaction: the second diffs against the first
				if err := tx.PutExecution(ctx, e); err != nil {
					return err
				}
				e = e.Clone()
				e.Stages[i].Actions[j].Message = fmt.Sprintf("second write %d", k)
			}
			want = e.Clone()
			return tx.PutExecution(ctx, e)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path, Options{})
	err = s.View(ctx, func(r store.Reader) error {
		got, err := r.Execution(ctx, "e1")
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("read back from a fresh store:\n got %+v\nwant %+v", got.Stages, want.Stages)
		}
		list, err := r.Executions(ctx, store.ExecutionFilter{Pipeline: "wide"})
		if err != nil {
			return err
		}
		if len(list) != 1 || !reflect.DeepEqual(list[0], want) {
			t.Errorf("listed: %+v; want the same execution", list)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestMigrationSplitsActions stores an execution as migration 00006 finds one (its actions
// inside its document), runs that migration's Up statements again (goose itself will not
// re-apply an old version once later ones exist), and reads the actions back from rows.
func TestMigrationSplitsActions(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "conveyor.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := wideExecution("e1", 2, 3)
	want.Stages[1].Actions[2].Status = engine.ActionFailed
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.CreateExecution(ctx, want) }); err != nil {
		t.Fatal(err)
	}
	want.Seq = 1
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	full, err := encode("execution", want)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DROP TABLE execution_actions`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE executions SET doc = ? WHERE id = 'e1'`, full); err != nil {
		t.Fatal(err)
	}
	text, err := migrations.ReadFile("migrations/00006_execution_actions.sql")
	if err != nil {
		t.Fatal(err)
	}
	up, _, _ := strings.Cut(string(text), "-- +goose Down")
	_, up, _ = strings.Cut(up, "-- +goose Up")
	for stmt := range strings.SplitSeq(up, ";") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("migration 00006: %v\n%s", err, stmt)
		}
	}
	db.Close()

	s = openAt(t, path, Options{})
	err = s.View(ctx, func(r store.Reader) error {
		got, err := r.Execution(ctx, "e1")
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("after the migration:\n got %+v\nwant %+v", got.Stages, want.Stages)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
