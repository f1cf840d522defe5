package storetest

import (
	"testing"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/store"
)

func testPipelinesList(t *testing.T, s store.Store) {
	c := t.Context()
	view(t, s, func(r store.Reader) error {
		list, err := r.Pipelines(c)
		if err != nil || len(list) != 0 {
			t.Fatalf("pipelines of an empty store: %v, %v", list, err)
		}
		vs, err := r.PipelineVersions(c, "webapp")
		if err != nil || len(vs) != 0 {
			t.Fatalf("versions of an unknown pipeline: %v, %v", vs, err)
		}
		return nil
	})
	update(t, s, func(tx store.Tx) error {
		for i, p := range []struct {
			name string
			def  string
		}{{"webapp", "a"}, {"webapp", "b"}, {"api", "a"}, {"webapp", "c"}} {
			if _, err := tx.PutPipelineVersion(c, p.name, []byte(p.def), at(i)); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(r store.Reader) error {
		list, err := r.Pipelines(c)
		if err != nil {
			t.Fatalf("pipelines: %v", err)
		}
		var got []store.PipelineVersion
		for _, pv := range list {
			got = append(got, *pv)
		}
		equal(t, "pipelines", got, []store.PipelineVersion{
			{Name: "api", Version: 1, CreatedAt: at(2)},
			{Name: "webapp", Version: 3, CreatedAt: at(3)},
		})
		vs, err := r.PipelineVersions(c, "webapp")
		if err != nil {
			t.Fatalf("versions: %v", err)
		}
		got = nil
		for _, pv := range vs {
			got = append(got, *pv)
		}
		equal(t, "versions", got, []store.PipelineVersion{
			{Name: "webapp", Version: 1, CreatedAt: at(0)},
			{Name: "webapp", Version: 2, CreatedAt: at(1)},
			{Name: "webapp", Version: 3, CreatedAt: at(3)},
		})
		return nil
	})
}

func testDeletePipeline(t *testing.T, s store.Store) {
	c := t.Context()
	update(t, s, func(tx store.Tx) error {
		wantErr(t, "delete unknown pipeline", tx.DeletePipeline(c, "webapp"), store.ErrNotFound)
		for _, name := range []string{"webapp", "other"} {
			for _, def := range []string{"a", "b"} {
				if _, err := tx.PutPipelineVersion(c, name, []byte(def), at(1)); err != nil {
					return err
				}
			}
			for i := range 3 {
				e := newExecution(name+"-"+string(rune('a'+i)), name, i)
				e.Status = engine.ExecSucceeded
				if err := tx.CreateExecution(c, e); err != nil {
					return err
				}
			}
			if err := tx.PutStageLock(c, &engine.StageLock{Pipeline: name, Stage: "Build", Disabled: true}); err != nil {
				return err
			}
			if _, err := tx.AddJob(c, &store.Job{ID: name + "-a/Build/Compile/1", ExecutionID: name + "-a", Pipeline: name,
				Provider: "Build/Commands", State: store.JobDone, CreatedAt: at(1), UpdatedAt: at(1)}); err != nil {
				return err
			}
			if _, err := tx.AppendLog(c, name+"-a/Build/Compile/1", []byte("hello\n"), at(1)); err != nil {
				return err
			}
		}
		return nil
	})
	update(t, s, func(tx store.Tx) error { return tx.DeletePipeline(c, "webapp") })
	view(t, s, func(r store.Reader) error {
		_, err := r.PipelineVersion(c, "webapp", 0)
		wantErr(t, "latest version after delete", err, store.ErrNotFound)
		_, err = r.Execution(c, "webapp-a")
		wantErr(t, "execution after delete", err, store.ErrNotFound)
		if es, err := r.Executions(c, store.ExecutionFilter{Pipeline: "webapp"}); err != nil || len(es) != 0 {
			t.Fatalf("executions after delete: %d, %v", len(es), err)
		}
		if l, err := r.StageLocks(c, "webapp"); err != nil || len(l) != 0 {
			t.Fatalf("stage locks after delete: %v, %v", l, err)
		}
		_, err = r.Job(c, "webapp-a/Build/Compile/1")
		wantErr(t, "job after delete", err, store.ErrNotFound)
		if chunks, err := r.Log(c, "webapp-a/Build/Compile/1", 0, 0); err != nil || len(chunks) != 0 {
			t.Fatalf("log after delete: %v, %v", chunks, err)
		}
		// The other pipeline is untouched.
		if pv, err := r.PipelineVersion(c, "other", 0); err != nil || pv.Version != 2 {
			t.Fatalf("other pipeline: %v, %v", pv, err)
		}
		if es, err := r.Executions(c, store.ExecutionFilter{Pipeline: "other"}); err != nil || len(es) != 3 {
			t.Fatalf("other executions: %d, %v", len(es), err)
		}
		if l, err := r.StageLocks(c, "other"); err != nil || len(l) != 1 {
			t.Fatalf("other stage locks: %v, %v", l, err)
		}
		if chunks, err := r.Log(c, "other-a/Build/Compile/1", 0, 0); err != nil || len(chunks) != 1 {
			t.Fatalf("other log: %v, %v", chunks, err)
		}
		return nil
	})
	// A deleted pipeline starts again at version 1, with executions numbered from 1.
	update(t, s, func(tx store.Tx) error {
		v, err := tx.PutPipelineVersion(c, "webapp", []byte("z"), at(9))
		if err != nil || v != 1 {
			t.Fatalf("put after delete: version %d, %v", v, err)
		}
		e := newExecution("webapp-new", "webapp", 9)
		if err := tx.CreateExecution(c, e); err != nil {
			return err
		}
		if e.Seq != 1 {
			t.Fatalf("seq after delete: %d, want 1", e.Seq)
		}
		return nil
	})
}

func testEventByKey(t *testing.T, s store.Store) {
	c := t.Context()
	view(t, s, func(r store.Reader) error {
		_, err := r.EventByKey(c, "start:webapp:tok")
		wantErr(t, "unknown key", err, store.ErrNotFound)
		return nil
	})
	ev := engine.Event{Type: engine.EvStart, ExecutionID: "e1", Pipeline: "webapp", At: at(1)}
	update(t, s, func(tx store.Tx) error {
		_, err := tx.AddEvent(c, &store.Event{Key: "start:webapp:tok", Event: ev, CreatedAt: at(1)})
		return err
	})
	view(t, s, func(r store.Reader) error {
		got, err := r.EventByKey(c, "start:webapp:tok")
		if err != nil {
			t.Fatalf("event by key: %v", err)
		}
		if got.Key != "start:webapp:tok" || got.Event.ExecutionID != "e1" || got.Seq == 0 {
			t.Fatalf("event by key: %+v", got)
		}
		sameTime(t, "created", got.CreatedAt, at(1))
		return nil
	})
}
