package api

import (
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/engine/loop"
	"github.com/conveyorci/conveyor/internal/report"
	"github.com/conveyorci/conveyor/internal/store"
)

// pipelineState is GetPipelineState's answer.
type pipelineState struct {
	Pipeline string       `json:"pipeline"`
	Version  int          `json:"version"`
	Stages   []stageState `json:"stages"`
}

type stageState struct {
	Name              string          `json:"name"`
	Transition        transitionState `json:"transition"`
	LatestExecution   *execRef        `json:"latestExecution"`
	InboundExecutions []string        `json:"inboundExecutions"`
	Actions           []actionState   `json:"actions"`
}

type execRef struct {
	ID     string             `json:"id"`
	Status engine.StageStatus `json:"status"`
}

type actionState struct {
	Name        string              `json:"name"`
	Status      engine.ActionStatus `json:"status"`
	Attempt     int                 `json:"attempt"`
	StartedAt   *time.Time          `json:"startedAt"`
	FinishedAt  *time.Time          `json:"finishedAt"`
	Summary     string              `json:"summary"`
	ExternalURL string              `json:"externalUrl"`
	Message     string              `json:"message"`
	// Tests sums the action's test reports, when it has any.
	Tests *report.Totals `json:"tests,omitempty"`
	// Token identifies the attempt of an approval waiting for a decision (see approvalToken).
	Token string `json:"token,omitempty"`
	// The decision on an approval: by whom, when, from where, with what comment.
	Approved    *bool      `json:"approved,omitempty"`
	DecidedBy   string     `json:"decidedBy,omitempty"`
	DecidedAt   *time.Time `json:"decidedAt,omitempty"`
	DecidedFrom string     `json:"decidedFrom,omitempty"`
	Comment     string     `json:"comment,omitempty"`
	// Queued: the action's job waits in the queue for a worker; Waiting says why none takes
	// it, once it has waited a while (workerWaits).
	Queued  bool   `json:"queued,omitempty"`
	Waiting string `json:"waiting,omitempty"`
}

// stateScanFirst and stateScanMax are how many executions one read of the history takes
// while looking for the latest execution of each stage: few at first (the newest executions
// usually hold every stage, and decoding an execution costs more than the rest of the
// request), twice as many each time after, up to stateScanMax.
const (
	stateScanFirst = 8
	stateScanMax   = 100
)

func handlePipelineState(l *loop.Loop, st store.Store, key []byte, now func() time.Time) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		ctx := r.Context()
		p, err := l.Pipeline(ctx, name, 0)
		if err != nil {
			fail(w, err)
			return
		}
		ans := pipelineState{Pipeline: name, Stages: make([]stageState, len(p.Stages))}
		latest := make([]*engine.Execution, len(p.Stages)) // the execution each stage shows
		type actionRef struct{ stage, action int }
		jobs := map[string]actionRef{} // the jobs of actions in progress, which may be queued
		err = st.View(ctx, func(rd store.Reader) error {
			pv, err := rd.PipelineVersion(ctx, name, 0)
			if err != nil {
				return err
			}
			ans.Version = pv.Version
			locks, err := rd.StageLocks(ctx, name)
			if err != nil {
				return err
			}
			missing := len(p.Stages)
			for i, s := range p.Stages {
				ans.Stages[i] = stageState{Name: s.Name, Transition: transition(locks[s.Name]),
					InboundExecutions: []string{}, Actions: []actionState{}}
				if lk := locks[s.Name]; lk != nil && len(lk.Waiting) > 0 {
					ans.Stages[i].InboundExecutions = slices.Clone(lk.Waiting)
				}
			}
			// Newest first: the first execution found in a stage (past waiting) is its latest.
			f := store.ExecutionFilter{Pipeline: name, Limit: stateScanFirst}
			for missing > 0 {
				page, err := rd.Executions(ctx, f)
				if err != nil {
					return err
				}
				for _, e := range page {
					for i := range ans.Stages {
						s := &ans.Stages[i]
						if s.LatestExecution != nil {
							continue
						}
						j := slices.IndexFunc(e.Stages, func(es engine.Stage) bool { return es.Name == s.Name })
						if j < 0 || e.Stages[j].Status == engine.StageNotStarted || e.Stages[j].Status == engine.StageWaiting {
							continue
						}
						es := &e.Stages[j]
						s.LatestExecution = &execRef{ID: e.ID, Status: es.Status}
						latest[i] = e
						for _, a := range es.Actions {
							if a.Status == engine.ActionInProgress && a.JobID != "" && a.WaitingFor == "" && !e.Status.Terminal() {
								jobs[a.JobID] = actionRef{i, len(s.Actions)}
							}
							s.Actions = append(s.Actions, actionState{Name: a.Name, Status: a.Status, Attempt: a.Attempt,
								StartedAt: timePtr(a.StartedAt), FinishedAt: timePtr(a.FinishedAt),
								Summary: a.Summary, ExternalURL: a.ExternalURL, Message: a.Message, Tests: testTotals(a.Reports)})
						}
						missing--
					}
				}
				if len(page) < f.Limit {
					break
				}
				f.BeforeSeq = page[len(page)-1].Seq
				f.Limit = min(2*f.Limit, stateScanMax)
			}
			queued, why, err := workerWaits(ctx, rd, now(), slices.Sorted(maps.Keys(jobs)))
			for id := range queued {
				a := &ans.Stages[jobs[id].stage].Actions[jobs[id].action]
				a.Queued, a.Waiting = true, why[id]
			}
			return err
		})
		if err != nil {
			fail(w, err)
			return
		}
		if err := showApprovals(ctx, l, key, &ans, latest); err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, ans)
	}
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// testTotals sums reports; nil when there are none.
func testTotals(reports []report.Report) *report.Totals {
	if len(reports) == 0 {
		return nil
	}
	t := report.Sum(reports)
	return &t
}
