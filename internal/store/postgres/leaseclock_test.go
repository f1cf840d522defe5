package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/engine/loop"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/store"
)

// TestSkewedServerKeepsLiveLease: leases are judged by the database's clock. Two servers
// share the database; the second's clock runs an hour ahead and its engine loop sweeps
// expired leases. A job leased for an hour through the first stays leased, while one whose
// lease did end (by the database's clock) is failed over by the skewed server's sweep: the
// sweep ran and judged the live lease too.
func TestSkewedServerKeepsLiveLease(t *testing.T) {
	t.Parallel()
	a, b := servers(t)
	skewed := func() time.Time { return time.Now().Add(time.Hour) }
	p := &pipeline.Pipeline{Name: "skew", Stages: []pipeline.Stage{{Name: "Build", Actions: []pipeline.Action{
		{Name: "Live", Category: pipeline.Build, Provider: "Commands", Configuration: map[string]any{"commands": []any{"true"}}},
		{Name: "Lost", Category: pipeline.Build, Provider: "Commands", Configuration: map[string]any{"commands": []any{"true"}}},
	}}}}
	la := loop.New(a, loop.Options{})
	lb := loop.New(b, loop.Options{Now: skewed, LeaseCheck: 5 * time.Millisecond})
	for _, l := range []*loop.Loop{la, lb} {
		if _, err := l.Register(t.Context(), p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := la.Start(t.Context(), "start:e1", "skew", "e1", engine.StartRequest{Trigger: engine.Trigger{Type: "API"}}); err != nil {
		t.Fatal(err)
	}
	live, lost := engine.JobID("e1", "Build", "Live", 1), engine.JobID("e1", "Build", "Lost", 1)
	var leasedLive *store.Job
	update(t, a, func(tx store.Tx) error {
		for range 2 {
			j, err := tx.LeaseJob(t.Context(), store.Leaser{Worker: "w"}, time.Minute)
			if err != nil {
				return err
			}
			if j == nil {
				t.Fatalf("no job to lease")
			}
			ttl := time.Duration(0) // Lost: its lease ends at once
			if j.ID == live {
				ttl, leasedLive = time.Hour, j
			}
			if _, err := tx.Heartbeat(t.Context(), j.ID, j.Epoch, ttl); err != nil {
				return err
			}
		}
		return nil
	})
	if leasedLive == nil {
		t.Fatalf("job %s was not leased", live)
	}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- lb.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var j *store.Job
		err := b.View(t.Context(), func(r store.Reader) (err error) {
			j, err = r.Job(t.Context(), lost)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if j.State != store.JobLeased {
			break // the skewed server's sweep failed it over
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ended lease of %s was not failed over", lost)
		}
		time.Sleep(5 * time.Millisecond)
	}
	var j *store.Job
	if err := a.View(t.Context(), func(r store.Reader) (err error) {
		j, err = r.Job(t.Context(), live)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if j.State != store.JobLeased || j.Epoch != leasedLive.Epoch {
		t.Fatalf("the live lease of %s, swept by a server an hour ahead: %s epoch %d, want still leased (epoch %d)",
			live, j.State, j.Epoch, leasedLive.Epoch)
	}
}
