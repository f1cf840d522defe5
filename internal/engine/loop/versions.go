package loop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/store"
)

// latestVersion returns the pipeline's newest stored version, or nil when it has none.
func latestVersion(ctx context.Context, tx store.Tx, name string) (*store.PipelineVersion, error) {
	pv, err := tx.PipelineVersion(ctx, name, 0)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load latest version of pipeline %s: %w", name, err)
	}
	return pv, nil
}

// cancelRemoved sends Cancel, through the inbox, to every execution waiting before a stage
// that version (just stored, p) removed from the previous version prev. It runs in the
// transaction that stored the version, so an execution that starts waiting after it runs on
// an older version that still has the stage, and goes on to its end there. The keys name the
// execution, the stage and the version, so a replay adds nothing twice.
func (l *Loop) cancelRemoved(ctx context.Context, tx store.Tx, prev *store.PipelineVersion, p *pipeline.Pipeline, version int) error {
	if prev == nil || prev.Version == version {
		return nil // the first version, or the same declaration again
	}
	old := new(pipeline.Pipeline)
	if err := json.Unmarshal(prev.Definition, old); err != nil {
		return fmt.Errorf("decode pipeline %s version %d: %w", prev.Name, prev.Version, err)
	}
	var removed []string
	for _, st := range old.Stages {
		if p.StageIndex(st.Name) < 0 {
			removed = append(removed, st.Name)
		}
	}
	if len(removed) == 0 {
		return nil
	}
	locks, err := tx.StageLocks(ctx, p.Name)
	if err != nil {
		return fmt.Errorf("load stage locks of %s: %w", p.Name, err)
	}
	now := l.now()
	for _, stage := range removed {
		lk := locks[stage]
		if lk == nil {
			continue
		}
		for _, id := range slices.Clone(lk.Waiting) {
			ev := engine.Event{Type: engine.EvCancel, ExecutionID: id, Pipeline: p.Name, Stage: stage, At: now,
				Reason: fmt.Sprintf("stage %s is not in version %d of pipeline %s", stage, version, p.Name)}
			key := fmt.Sprintf("cancel:%s:%s:v%d", id, stage, version)
			if _, err := tx.AddEvent(ctx, &store.Event{Key: key, Event: ev, CreatedAt: now}); err != nil {
				return fmt.Errorf("cancel execution %s waiting before removed stage %s: %w", id, stage, err)
			}
		}
	}
	return nil
}

// cancelLateWaiter sends Cancel to an execution that a step left waiting before a stage that a
// newer version than its own removed: it reached the stage after that version was stored, so
// cancelRemoved did not see it. Only steps that leave an execution waiting read the latest
// version.
func (l *Loop) cancelLateWaiter(ctx context.Context, tx store.Tx, res *engine.Result) error {
	e := res.Execution
	if e == nil || !res.Changed || e.Status != engine.ExecInProgress {
		return nil
	}
	i := slices.IndexFunc(e.Stages, func(st engine.Stage) bool { return st.Status == engine.StageWaiting })
	if i < 0 {
		return nil
	}
	pv, err := tx.PipelineVersion(ctx, e.Pipeline, 0)
	if err != nil {
		return fmt.Errorf("load latest version of pipeline %s: %w", e.Pipeline, err)
	}
	if pv.Version == e.PipelineVersion {
		return nil
	}
	latest, err := l.pipeline(ctx, tx, e.Pipeline, pv.Version)
	if err != nil {
		return err
	}
	stage := e.Stages[i].Name
	if latest.StageIndex(stage) >= 0 {
		return nil
	}
	now := l.now()
	ev := engine.Event{Type: engine.EvCancel, ExecutionID: e.ID, Pipeline: e.Pipeline, Stage: stage, At: now,
		Reason: fmt.Sprintf("stage %s is not in version %d of pipeline %s", stage, pv.Version, e.Pipeline)}
	key := fmt.Sprintf("cancel:%s:%s:v%d", e.ID, stage, pv.Version)
	if _, err := tx.AddEvent(ctx, &store.Event{Key: key, Event: ev, CreatedAt: now}); err != nil {
		return fmt.Errorf("cancel execution %s waiting before removed stage %s: %w", e.ID, stage, err)
	}
	return nil
}
