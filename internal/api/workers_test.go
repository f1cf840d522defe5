package api_test

import (
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/api"
)

const gpuPipeline = `name: train
stages:
  - name: Train
    actions:
      - name: Model
        category: Build
        provider: Commands
        runOn: [gpu]
        configuration:
          commands: ["echo trained"]
      - name: Eval
        category: Build
        provider: Commands
        runOn: [gpu]
        configuration:
          commands: ["echo evaluated"]
`

// waitingView is what TestWorkerWaiting reads of an execution.
type waitingView struct {
	Stages []struct {
		Actions []struct {
			Status     string `json:"status"`
			WaitingFor string `json:"waitingFor"`
			Waiting    string `json:"waiting"`
		} `json:"actions"`
	} `json:"stages"`
}

// TestWorkerWaiting: an action with runOn [gpu] whose job waited a while says why no worker
// takes it, from the workers registry (the server's own pool and a remote worker without
// gpu poll; one with gpu that runs another provider; then a matching one that is busy), and
// says nothing once a matching worker polled and took it. GET /api/v1/workers lists them.
func TestWorkerWaiting(t *testing.T) {
	t.Parallel()
	var ahead atomic.Int64 // how far the API's clock is ahead of the engine's
	b := setup(t, func(o *api.Options) {
		o.Now = func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
	})
	workerToken := b.newToken("admin", "worker", 201)
	w := &bundle{t: t, url: b.url, token: workerToken}
	poll := func(name string, labels, providers []string, want int) answer {
		t.Helper()
		return w.call("POST", "/api/v1/worker/lease", map[string]any{"worker": name, "labels": labels,
			"providers": providers, "slots": 1, "version": "test"}, want)
	}
	// action reads the first action of the execution that waits for a worker ("" when none does).
	action := func(id string) (waitingFor, waiting string) {
		t.Helper()
		var v waitingView
		b.call("GET", "/api/v1/executions/"+id, nil, 200).decode(t, &v)
		for _, a := range v.Stages[0].Actions {
			if a.WaitingFor != "" {
				return a.WaitingFor, a.Waiting
			}
		}
		return "", ""
	}

	b.put("train", gpuPipeline, 201)
	e := b.start("train", nil, 201)
	poll("linux-1", []string{"linux"}, nil, 204) // no gpu: it takes nothing
	if wf, why := action(e.ID); wf != "a worker offering the labels gpu" || why != "" {
		t.Fatalf("just queued: waitingFor %q, waiting %q; want the labels and no reason yet", wf, why)
	}
	ahead.Store(int64(10 * time.Second)) // the job has waited 10 s
	if _, why := action(e.ID); why != "no live worker offers labels [gpu]" {
		t.Fatalf("waiting %q, want no live worker offers labels [gpu]", why)
	}
	var state struct {
		Stages []struct {
			Actions []struct {
				Queued  bool   `json:"queued"`
				Waiting string `json:"waiting"`
			} `json:"actions"`
		} `json:"stages"`
	}
	b.call("GET", "/api/v1/pipelines/train/state", nil, 200).decode(t, &state)
	if a := state.Stages[0].Actions[0]; !a.Queued || a.Waiting != "no live worker offers labels [gpu]" {
		t.Fatalf("pipeline state: %+v, want queued with the reason", a)
	}

	poll("gpu-deploy", []string{"gpu"}, []string{"Deploy/Commands"}, 204)
	if _, why := action(e.ID); why != "no live worker with labels [gpu] runs provider Build/Commands" {
		t.Fatalf("waiting %q, want the provider named", why)
	}

	// A matching worker with one slot polls: it takes one job, which no longer waits; the
	// other waits for it, busy.
	var job struct{ ID string }
	poll("gpu-1", []string{"gpu", "linux"}, []string{"Build/Commands"}, 200).decode(t, &job)
	var v waitingView
	b.call("GET", "/api/v1/executions/"+e.ID, nil, 200).decode(t, &v)
	var reasons []string
	for _, a := range v.Stages[0].Actions {
		reasons = append(reasons, a.Waiting)
	}
	slices.Sort(reasons)
	if !slices.Equal(reasons, []string{"", "the one matching worker is busy"}) {
		t.Fatalf("one job leased: reasons %q, want none for it and busy for the other", reasons)
	}
	// It polls again (a slot free): it takes the other, and nothing waits.
	poll("gpu-1", []string{"gpu", "linux"}, []string{"Build/Commands"}, 200)
	if wf, why := action(e.ID); wf != "" || why != "" {
		t.Fatalf("both leased: waitingFor %q, waiting %q; want neither", wf, why)
	}

	var list struct {
		Workers []struct {
			Name      string   `json:"name"`
			Labels    []string `json:"labels"`
			Providers []string `json:"providers"`
			Version   string   `json:"version"`
			Slots     int      `json:"slots"`
			Running   int      `json:"running"`
			Live      bool     `json:"live"`
		} `json:"workers"`
	}
	b.call("GET", "/api/v1/workers", nil, 200).decode(t, &list)
	var names []string
	for _, wk := range list.Workers {
		names = append(names, wk.Name)
		if !wk.Live {
			t.Errorf("worker %s: not live", wk.Name)
		}
		if slices.Equal(wk.Labels, []string{"gpu", "linux"}) &&
			(wk.Running != 2 || wk.Slots != 1 || wk.Version != "test" || !slices.Equal(wk.Providers, []string{"Build/Commands"})) {
			t.Errorf("gpu-1: %+v, want 2 running (it said 1 slot), version test, Build/Commands", wk)
		}
	}
	// The three remote workers (named after their token) and the server's pool.
	if len(names) != 4 || !slices.ContainsFunc(names, func(n string) bool { return len(n) > 6 && n[:6] == "local-" }) {
		t.Errorf("workers %v, want the three remote ones and the server's pool", names)
	}
}
