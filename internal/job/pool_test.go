package job_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/action"
	"github.com/conveyorci/conveyor/internal/action/commands"
	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/internal/artifact/fs"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/job"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/run"
	"github.com/conveyorci/conveyor/internal/store"
	"github.com/conveyorci/conveyor/internal/store/sqlite"
)

// report is one call of the reporter: a job attempt's result and what Complete answered.
type report struct {
	jobID string
	epoch int64
	ev    engine.Event
	log   []byte
	err   error
	// leased are the jobs leased when the result's transaction ended.
	leased []string
}

// reporter stands in for the engine loop: it finishes the job under its epoch in the store,
// as loop.Complete does (refusing a stale or cancelled lease with ErrConflict), and records
// the result.
type reporter struct {
	st      store.Store
	reports chan report
	// follow, when set, runs in the result's transaction before then, as a step of the
	// engine adds the jobs a result lets start.
	follow func(tx store.Tx, jobID string) error
}

func (r *reporter) Complete(ctx context.Context, jobID string, epoch int64, ev engine.Event, log []byte, then func(store.Tx) error) error {
	var leased []string
	err := r.st.Update(ctx, func(tx store.Tx) error {
		if err := tx.FinishJob(ctx, jobID, epoch, ev.At); err != nil {
			return err
		}
		if r.follow != nil {
			if err := r.follow(tx, jobID); err != nil {
				return err
			}
		}
		if then == nil {
			return nil
		}
		if err := then(tx); err != nil {
			return err
		}
		js, err := tx.Jobs(ctx, store.JobLeased)
		for _, j := range js {
			leased = append(leased, j.ID)
		}
		return err
	})
	r.reports <- report{jobID: jobID, epoch: epoch, ev: ev, log: log, err: err, leased: leased}
	return err
}

// output is a job's whole log: the chunks the pool appended to the store while it ran and
// the rest it handed over with the result. teed reports whether the Tee saw the same lines.
func (b *bundle) output(t *testing.T, r report) (log string, teed bool) {
	t.Helper()
	var chunks []store.LogChunk
	if err := b.st.View(t.Context(), func(rd store.Reader) error {
		var err error
		chunks, err = rd.Log(t.Context(), r.jobID, 0, 0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, c := range chunks {
		sb.Write(c.Data)
	}
	sb.Write(r.log)
	b.teeMu.Lock()
	defer b.teeMu.Unlock()
	return sb.String(), strings.Join(b.tee[r.jobID], "\n") == strings.TrimSuffix(sb.String(), "\n")
}

// bundle is what a pool test works with: a real SQLite store, a real artifact store on disk,
// the pool, and what it reported and logged.
type bundle struct {
	st      *sqlite.Store
	art     *artifact.Store
	rep     *reporter
	teeMu   sync.Mutex
	tee     map[string][]string
	pool    *job.Pool
	workDir string
}

func setup(t *testing.T, opts job.Options) *bundle {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(t.Context(), filepath.Join(dir, "conveyor.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	blobs, err := fs.New(filepath.Join(dir, "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	b := &bundle{
		st:      st,
		art:     artifact.New(blobs, artifact.Options{TempDir: t.TempDir()}),
		rep:     &reporter{st: st, reports: make(chan report, 16)},
		tee:     map[string][]string{},
		workDir: filepath.Join(dir, "work"),
	}
	if opts.Providers == nil {
		cmds := &commands.Provider{}
		opts.Providers = map[string]action.Provider{"Build/Commands": cmds, "Test/Commands": cmds, "Deploy/Commands": cmds}
	}
	opts.WorkDir, opts.Artifacts = b.workDir, b.art
	opts.Tee = func(id string, line []byte) {
		b.teeMu.Lock()
		defer b.teeMu.Unlock()
		b.tee[id] = append(b.tee[id], string(line))
	}
	opts.Workers = 2
	b.pool = job.NewPool(st, b.rep, opts)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.pool.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("pool.Run: %v", err)
		}
		// A stopped pool leaves no spare workspace behind.
		if entries, err := os.ReadDir(b.workDir); err == nil {
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), "ws-") && !strings.Contains(e.Name(), ".") {
					if sub, _ := os.ReadDir(filepath.Join(b.workDir, e.Name())); len(sub) == 0 {
						t.Errorf("spare workspace %s left after the pool stopped", e.Name())
					}
				}
			}
		}
	})
	return b
}

// add queues a job for an action attempt of execution e1.
func (b *bundle) add(t *testing.T, spec engine.JobSpec) *store.Job {
	t.Helper()
	spec.ExecutionID, spec.Pipeline, spec.Attempt = "e1", "webapp", 1
	spec.ID = engine.JobID(spec.ExecutionID, spec.Stage, spec.Action, spec.Attempt)
	j := &store.Job{ID: spec.ID, ExecutionID: spec.ExecutionID, Pipeline: spec.Pipeline,
		Provider: spec.Category + "/" + spec.Provider, Spec: spec, State: store.JobQueued,
		CreatedAt: time.Now(), UpdatedAt: time.Now()}
	if err := b.st.Update(t.Context(), func(tx store.Tx) error {
		_, err := tx.AddJob(t.Context(), j)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return j
}

func (b *bundle) job(t *testing.T, id string) *store.Job {
	t.Helper()
	var j *store.Job
	if err := b.st.View(t.Context(), func(r store.Reader) (err error) {
		j, err = r.Job(t.Context(), id)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return j
}

// result waits for the next reported result.
func (b *bundle) result(t *testing.T) report {
	t.Helper()
	select {
	case r := <-b.rep.reports:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("timed out waiting for a job result")
		return report{}
	}
}

// running waits until the job's process group is recorded in the store, and returns it.
func (b *bundle) running(t *testing.T, id string) int {
	t.Helper()
	var pgid int
	eventually(t, "job "+id+" to record its process group", func() bool {
		pgid = b.job(t, id).Pgid
		return pgid > 0
	})
	return pgid
}

// save stores the files as an artifact.
func (b *bundle) save(t *testing.T, files map[string]string) artifact.Ref {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ref, err := b.art.Save(t.Context(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// restored returns the files of an artifact by path.
func (b *bundle) restored(t *testing.T, ref artifact.Ref) map[string]string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "restored")
	if err := b.art.Restore(t.Context(), ref, dir); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		content, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		files[filepath.ToSlash(rel)] = string(content)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// groupAlive reports whether a live (not zombie) process is in process group pgid.
func groupAlive(t *testing.T, pgid int) bool {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]) // state, ppid, pgrp, ...
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" && f[0] != "X" {
			return true
		}
	}
	return false
}

func commandsSpec(stage, act string, cmds ...string) engine.JobSpec {
	return engine.JobSpec{Stage: stage, Action: act, Category: "Build", Provider: "Commands",
		Configuration: map[string]any{"commands": cmds}, Timeout: time.Hour}
}

func TestPoolRunsJobEndToEnd(t *testing.T) {
	t.Parallel()
	b := setup(t, job.Options{})
	source := b.save(t, map[string]string{"main.go": "package main\n", "sub/a.txt": "a\n"})
	config := b.save(t, map[string]string{"config.yaml": "env: staging\n"})

	spec := commandsSpec("Build", "Compile",
		"test -f main.go && test -f sub/a.txt",
		"test ! -e config.yaml", // only the first input is at the root
		`test "$(cd "$CONVEYOR_SRC_DIR_SourceOutput" && pwd -P)" = "$(pwd -P)"`,
		`cat "$CONVEYOR_SRC_DIR_ConfigOutput/config.yaml"`,
		`echo "workspace: $PWD"`,
		"mkdir -p dist/bin && echo built > dist/bin/app && echo 'all good' > report.txt",
		"VERSION=1.2.$((1 + 2))")
	spec.Configuration["outputVariables"] = []string{"VERSION"}
	spec.Inputs = []engine.NamedArtifact{{Name: "SourceOutput", Ref: source}, {Name: "ConfigOutput", Ref: config}}
	spec.Outputs = []engine.OutputSpec{{Name: "BuildOutput", Files: []string{"dist/**"}}, {Name: "Report", Files: []string{"report.txt"}}}
	j := b.add(t, spec)

	r := b.result(t)
	log, teed := b.output(t, r)
	if r.ev.Type != engine.EvActionSucceeded {
		t.Fatalf("result: %s %s %s\nlog:\n%s", r.ev.Type, r.ev.Failure, r.ev.Message, log)
	}
	if r.jobID != j.ID || r.epoch != 1 || r.err != nil {
		t.Errorf("reported job %s epoch %d (Complete: %v), want %s epoch 1", r.jobID, r.epoch, r.err, j.ID)
	}
	if ev := r.ev; ev.ExecutionID != "e1" || ev.Pipeline != "webapp" || ev.Stage != "Build" || ev.Action != "Compile" || ev.Attempt != 1 || ev.At.IsZero() {
		t.Errorf("result addressed to %s %s %s.%s attempt %d at %v", ev.ExecutionID, ev.Pipeline, ev.Stage, ev.Action, ev.Attempt, ev.At)
	}
	if want := map[string]string{"VERSION": "1.2.3"}; !maps.Equal(r.ev.Outputs, want) {
		t.Errorf("output variables: %v, want %v", r.ev.Outputs, want)
	}
	if got, want := b.restored(t, r.ev.Artifacts["BuildOutput"]), map[string]string{"dist/bin/app": "built\n"}; !maps.Equal(got, want) {
		t.Errorf("BuildOutput holds %v, want %v", got, want)
	}
	if got, want := b.restored(t, r.ev.Artifacts["Report"]), map[string]string{"report.txt": "all good\n"}; !maps.Equal(got, want) {
		t.Errorf("Report holds %v, want %v", got, want)
	}
	if !strings.Contains(log, "env: staging\n") || !teed {
		t.Errorf("log (all teed line by line: %v) lacks the commands' output:\n%s", teed, log)
	}
	var ws string
	for line := range strings.Lines(log) {
		if rest, ok := strings.CutPrefix(line, "workspace: "); ok {
			ws = strings.TrimSuffix(rest, "\n")
		}
	}
	if !strings.HasPrefix(ws, b.workDir+string(filepath.Separator)) {
		t.Fatalf("workspace %q is not under the work directory %s", ws, b.workDir)
	}
	// The janitor removes workspaces off the action's path: wait for it, with a deadline.
	// What may stay are the empty spare workspaces made ahead for the next jobs.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		_, err := os.Stat(ws)
		left := leftovers(t, b.workDir)
		if errors.Is(err, os.ErrNotExist) && len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("workspace %s left behind (%v); the work directory holds %v besides empty spares", ws, err, left)
			break
		}
	}
	if got := b.job(t, j.ID); got.State != store.JobDone || got.Pgid <= 0 {
		t.Errorf("job row: %s, pgid %d; want done with its process group recorded", got.State, got.Pgid)
	}
}

func TestPoolMissingProviderIsAnError(t *testing.T) {
	t.Parallel()
	b := setup(t, job.Options{Providers: map[string]action.Provider{}})
	spec := commandsSpec("Deploy", "Ship", "true")
	spec.Category, spec.Provider = "Deploy", "Nope"
	j := b.add(t, spec)
	r := b.result(t)
	if r.jobID != j.ID || r.ev.Type != engine.EvActionFailed || r.ev.Failure != string(action.Errored) ||
		!strings.Contains(r.ev.Message, "no provider Deploy/Nope") {
		t.Errorf("result of %s: %s %q %q; want failed with \"error\" naming the provider", r.jobID, r.ev.Type, r.ev.Failure, r.ev.Message)
	}
}

func TestPoolOutputGlobsMatchingNothingFail(t *testing.T) {
	t.Parallel()
	b := setup(t, job.Options{})
	spec := commandsSpec("Build", "Compile", "echo hi > README")
	spec.Outputs = []engine.OutputSpec{{Name: "BuildOutput", Files: []string{"dist/**", "*.bin"}}}
	b.add(t, spec)
	r := b.result(t)
	want := "output artifact BuildOutput: no file in the workspace matches dist/**, *.bin"
	if r.ev.Type != engine.EvActionFailed || r.ev.Failure != string(action.Failed) || r.ev.Message != want {
		t.Errorf("result: %s %q %q; want failed %q %q", r.ev.Type, r.ev.Failure, r.ev.Message, action.Failed, want)
	}
}

func TestPoolCancelKillsJob(t *testing.T) {
	t.Parallel()
	b := setup(t, job.Options{})
	j := b.add(t, commandsSpec("Build", "Compile", "sleep 30"))
	pgid := b.running(t, j.ID) // SetJobProcess recorded the group while the job runs
	if !groupAlive(t, pgid) {
		t.Fatalf("process group %d recorded but not running", pgid)
	}
	leaderStart, err := run.StartTime(pgid)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.job(t, j.ID); got.State != store.JobLeased || got.PStart != leaderStart {
		t.Errorf("running job row: %s, start time %d; want leased with the leader's start time %d", got.State, got.PStart, leaderStart)
	}
	b.pool.Cancel("e1/Build/Other/1") // not run here: nothing happens
	start := time.Now()
	b.pool.Cancel(j.ID)
	b.pool.Cancel(j.ID) // idempotent
	r := b.result(t)
	if took := time.Since(start); took >= run.DefaultGrace {
		t.Errorf("cancel took %v: the process did not stop on SIGTERM", took)
	}
	if r.ev.Type != engine.EvActionFailed || r.ev.Failure != string(action.Stopped) {
		t.Errorf("result: %s %q %q; want failed %q", r.ev.Type, r.ev.Failure, r.ev.Message, action.Stopped)
	}
	// Killed members may take a moment to die; the group must be gone, not merely signalled.
	eventually(t, "the job's process group to be gone", func() bool { return !groupAlive(t, pgid) })
}

func TestPoolHeartbeatNoticesCancelledJob(t *testing.T) {
	t.Parallel()
	b := setup(t, job.Options{Lease: 300 * time.Millisecond}) // a heartbeat every 100 ms
	j := b.add(t, commandsSpec("Build", "Compile", "sleep 30"))
	pgid := b.running(t, j.ID)
	start := time.Now()
	if err := b.st.Update(t.Context(), func(tx store.Tx) error { return tx.CancelJob(t.Context(), j.ID, time.Now()) }); err != nil {
		t.Fatal(err)
	}
	r := b.result(t)
	if took := time.Since(start); took >= run.DefaultGrace {
		t.Errorf("the cancellation took %v to stop the job", took)
	}
	if r.ev.Type != engine.EvActionFailed || r.ev.Failure != string(action.Stopped) {
		t.Errorf("result: %s %q %q; want failed %q", r.ev.Type, r.ev.Failure, r.ev.Message, action.Stopped)
	}
	if !errors.Is(r.err, store.ErrConflict) {
		t.Errorf("the result of a cancelled job was accepted: %v", r.err)
	}
	// Killed members may take a moment to die; the group must be gone, not merely signalled.
	eventually(t, "the job's process group to be gone", func() bool { return !groupAlive(t, pgid) })
	if got := b.job(t, j.ID).State; got != store.JobCancelled {
		t.Errorf("job: %s, want cancelled", got)
	}
}

// startedLate is a provider whose process starts just as its job is cancelled: it reports the
// process only once the context is done.
type startedLate struct{ running chan struct{} }

func (p startedLate) Run(ctx context.Context, _ *action.Job, ws *action.Workspace) (*action.Result, error) {
	close(p.running)
	<-ctx.Done()
	ws.Started(4242, 7)
	return nil, &action.Error{Kind: action.Stopped, Message: "stopped"}
}

// A process reported while the job is being cancelled is still recorded: it may outlive a
// crash, and the next start must find it to kill it.
func TestPoolRecordsProcessStartedWhileCancelled(t *testing.T) {
	t.Parallel()
	p := startedLate{running: make(chan struct{})}
	b := setup(t, job.Options{Providers: map[string]action.Provider{"Build/Late": p}})
	spec := commandsSpec("Build", "Compile", "true")
	spec.Provider = "Late"
	j := b.add(t, spec)
	select {
	case <-p.running:
	case <-time.After(10 * time.Second):
		t.Fatal("the job did not start")
	}
	b.pool.Cancel(j.ID)
	if r := b.result(t); r.ev.Failure != string(action.Stopped) {
		t.Errorf("result: %q %q, want %q", r.ev.Failure, r.ev.Message, action.Stopped)
	}
	if got := b.job(t, j.ID); got.Pgid != 4242 || got.PStart != 7 {
		t.Errorf("recorded process: pgid %d start %d, want 4242 7", got.Pgid, got.PStart)
	}
}

// leftovers lists what dir holds besides empty directories (the spare workspaces).
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range entries {
		if sub, err := os.ReadDir(filepath.Join(dir, e.Name())); !e.IsDir() || err != nil || len(sub) > 0 {
			left = append(left, e.Name())
		}
	}
	return left
}

// TestPoolLeasesNextJobWithResult checks that the job a result lets start is leased in the
// transaction that records the result, so a sequence of actions costs one transaction each.
func TestPoolLeasesNextJobWithResult(t *testing.T) {
	t.Parallel()
	b := setup(t, job.Options{})
	second := commandsSpec("Build", "Second", "true")
	second.ExecutionID, second.Pipeline, second.Attempt = "e1", "webapp", 1
	second.ID = engine.JobID(second.ExecutionID, second.Stage, second.Action, second.Attempt)
	b.rep.follow = func(tx store.Tx, jobID string) error {
		if strings.Contains(jobID, "Second") {
			return nil
		}
		_, err := tx.AddJob(t.Context(), &store.Job{ID: second.ID, ExecutionID: "e1", Pipeline: "webapp",
			Provider: "Build/Commands", Spec: second, State: store.JobQueued, CreatedAt: time.Now(), UpdatedAt: time.Now()})
		return err
	}
	first := b.add(t, commandsSpec("Build", "First", "true"))
	r := b.result(t)
	if r.jobID != first.ID || r.err != nil {
		t.Fatalf("first result: %s (%v); want %s", r.jobID, r.err, first.ID)
	}
	if !slices.Contains(r.leased, second.ID) {
		t.Errorf("jobs leased when the first result committed: %v; want %s among them", r.leased, second.ID)
	}
	if r := b.result(t); r.jobID != second.ID || r.ev.Type != engine.EvActionSucceeded {
		t.Errorf("second result: %s %s %q; want %s succeeded", r.jobID, r.ev.Type, r.ev.Message, second.ID)
	}
}

// secretMap is a SecretSource over fixed values, recording what it was asked.
type secretMap map[string]string

func (m secretMap) Secrets(_ context.Context, pipeline string, names []string) (map[string]string, error) {
	out := map[string]string{}
	for _, n := range names {
		v, ok := m[n]
		if !ok {
			return nil, fmt.Errorf("secret %s is not set for pipeline %s: set it with conveyor secret set %s", n, pipeline, n)
		}
		out[n] = v
	}
	return out, nil
}

// TestPoolSecrets checks that a job gets the values of the secrets it takes in its
// environment, and that neither its log nor its result shows them, in any encoded form.
func TestPoolSecrets(t *testing.T) {
	t.Parallel()
	const value = "hunter2-correct-horse"
	b := setup(t, job.Options{Secrets: secretMap{"deploy-key": value}})
	spec := commandsSpec("Deploy", "Ship",
		`test "$API_TOKEN" = 'hunter2-correct-horse' && echo "the token is right"`,
		`echo "raw: $API_TOKEN"`,
		`printf '%s' "x$API_TOKEN" | base64`,
		`printf '%s' "$API_TOKEN" | od -An -c | tr -d ' \n'; echo`, // one byte at a time: not a form the masker knows
		`LEAK="$API_TOKEN"`)
	spec.Configuration["outputVariables"] = []string{"LEAK"}
	spec.Secrets = map[string]string{"API_TOKEN": "deploy-key"}
	b.add(t, spec)
	r := b.result(t)
	if r.ev.Type != engine.EvActionSucceeded {
		t.Fatalf("result %s %q; want success", r.ev.Type, r.ev.Message)
	}
	log, _ := b.output(t, r)
	if !strings.Contains(log, "the token is right") || !strings.Contains(log, "raw: ***") {
		t.Errorf("log lacks the commands' output, masked:\n%s", log)
	}
	b64 := base64.StdEncoding.EncodeToString([]byte("x" + value))
	for _, leak := range []string{value, b64[4 : len(b64)-4]} {
		if strings.Contains(log, leak) {
			t.Errorf("log shows %q:\n%s", leak, log)
		}
	}
	if got := r.ev.Outputs["LEAK"]; got != "***" {
		t.Errorf("output variable LEAK = %q, want it masked", got)
	}

	// A secret the source does not have fails the job with an error that names it.
	spec = commandsSpec("Deploy", "Other", "true")
	spec.Secrets = map[string]string{"X": "missing-one"}
	b.add(t, spec)
	r = b.result(t)
	if r.ev.Type != engine.EvActionFailed || r.ev.Failure != string(action.Errored) || !strings.Contains(r.ev.Message, "missing-one") {
		t.Errorf("missing secret: %s %q %q; want an error naming it", r.ev.Type, r.ev.Failure, r.ev.Message)
	}
}

// configEcho is a provider that reports its configuration's "token" in its summary and log.
type configEcho struct{}

func (configEcho) Run(_ context.Context, j *action.Job, ws *action.Workspace) (*action.Result, error) {
	tok, _ := j.Configuration["token"].(string)
	fmt.Fprintf(ws.Log, "using %s\n", tok)
	return &action.Result{Summary: "token " + tok, Variables: map[string]string{"Plain": fmt.Sprint(j.Configuration["region"])}}, nil
}

// TestPoolConfigSecrets: a configuration property that references a secret reaches the
// provider as the secret's value, masked in everything that leaves the worker, and the
// stored job keeps the reference only.
func TestPoolConfigSecrets(t *testing.T) {
	t.Parallel()
	const value = "s3cr3t-access-key-value"
	b := setup(t, job.Options{Secrets: secretMap{"upload-key": value},
		Providers: map[string]action.Provider{"Deploy/Upload": configEcho{}}})
	spec := commandsSpec("Deploy", "Upload", "true")
	spec.Category, spec.Provider = "Deploy", "Upload"
	spec.Configuration = map[string]any{"token": map[string]any{"secret": "upload-key"}, "region": "eu-1"}
	spec.ConfigSecrets = map[string]string{"token": "upload-key"}
	b.add(t, spec)
	r := b.result(t)
	if r.ev.Type != engine.EvActionSucceeded {
		t.Fatalf("result %s %q; want success", r.ev.Type, r.ev.Message)
	}
	log, _ := b.output(t, r)
	if r.ev.Summary != "token ***" || !strings.Contains(log, "using ***") || strings.Contains(log, value) {
		t.Errorf("summary %q, log %q: want the value used and masked", r.ev.Summary, log)
	}
	if r.ev.Outputs["Plain"] != "eu-1" {
		t.Errorf("outputs %v: the other properties must stay as they are", r.ev.Outputs)
	}
	if got := pipeline.SecretName(spec.Configuration["token"]); got != "upload-key" {
		t.Errorf("the job's configuration now holds %v: the value must not be written back", spec.Configuration["token"])
	}
}
