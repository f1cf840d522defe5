// Package job runs jobs: a pool of workers that lease action attempts, hold each lease with
// heartbeats, prepare a fresh workspace with the input artifacts, hand the job to its
// provider, store the output artifacts and report the result. The pool of a server works on
// the store directly (NewPool); `conveyor worker` runs the same pool against a server over
// HTTP (NewPoolWith and package job/remote): one protocol, two transports (Backend).
package job

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/conveyorci/conveyor/internal/action"
	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/report"
	"github.com/conveyorci/conveyor/internal/secret"
	"github.com/conveyorci/conveyor/internal/store"
	"github.com/google/uuid"
)

// Reporter takes the result of a job attempt, with the last chunk of its log. Complete must
// refuse (with an error wrapping store.ErrConflict) a result whose lease epoch is stale, and
// run then (when not nil) in the transaction that records the result: the pool leases its
// next job there.
type Reporter interface {
	Complete(ctx context.Context, jobID string, epoch int64, ev engine.Event, log []byte, then func(tx store.Tx) error) error
}

// Options configure a Pool.
type Options struct {
	// ID names the pool's workers in leases (default "local-" and a random suffix).
	ID string
	// Workers is how many jobs run at once (default 4).
	Workers int
	// WorkDir holds one fresh workspace per attempt, removed when it ends.
	WorkDir string
	// Providers by "Category/Provider" (e.g. "Build/Commands").
	Providers map[string]action.Provider
	// Labels are what this pool's workers offer to actions' runOn.
	Labels []string
	// Artifacts stores the artifacts of NewPool's jobs (NewPoolWith: the Backend does).
	Artifacts *artifact.Store
	// Tee, when set, also receives every job's output, line by line, as it comes.
	Tee func(jobID string, line []byte)
	// MaxLog caps each job's log (default 16 MiB); what comes after is dropped, with a note.
	MaxLog int64
	// Lease is how long a lease lasts without a heartbeat (default 30 s); heartbeats come
	// every third of it.
	Lease time.Duration
	// Secrets gives NewPool's jobs the values of the secrets they take (nil: a job that takes
	// one fails). With NewPoolWith the Backend does.
	Secrets SecretSource
	// Processes, when set, records the process groups of the actions (ProcessLog) instead of
	// the Backend's Started: what a process that owns its data directory uses to kill what a
	// crash left running.
	Processes *ProcessLog
	// PipelineDir returns the directory a pipeline's relative paths are relative to.
	PipelineDir func(pipeline string) string
	Logger      *slog.Logger
	Now         func() time.Time
	// Version is the build the workers registry shows for this pool (default: BuildVersion).
	Version string
}

// BuildVersion returns this binary's version as Go's build information has it: the module
// version, else the VCS revision (with "+dirty" for modified sources), else "devel".
func BuildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value[:min(len(s.Value), 12)]
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev == "" {
		return "devel"
	}
	return rev + dirty
}

// SecretSource returns the values of the named secrets as pipeline may use them. A missing
// secret is an error that names it and says how to set it. It is called once per job that
// takes secrets, when the job starts, with a context that carries the job (JobOf), and must
// be safe for concurrent use.
type SecretSource interface {
	Secrets(ctx context.Context, pipeline string, names []string) (map[string]string, error)
}

type jobKey struct{}

// WithJob returns ctx carrying j, for the SecretSource (a server answering a remote
// worker's request for its job's secrets).
func WithJob(ctx context.Context, j *store.Job) context.Context {
	return context.WithValue(ctx, jobKey{}, j)
}

// JobOf returns the job a SecretSource is asked secrets for (ok false for a context the
// pool did not make): who uses the secrets, for the audit log.
func JobOf(ctx context.Context) (j *store.Job, ok bool) {
	j, ok = ctx.Value(jobKey{}).(*store.Job)
	return j, ok
}

// Pool is a set of in-process workers.
type Pool struct {
	b    Backend
	opts Options
	log  *slog.Logger
	w    Worker

	mu      sync.Mutex
	running map[string]context.CancelCauseFunc
	drain   chan struct{} // closed by Drain
	drainer sync.Once

	trash  chan string   // workspaces to remove
	spares chan string   // empty workspaces ready for the next jobs
	want   chan struct{} // tells stock the spares ran out
}

// stock makes a spare workspace each time one is wanted (the spares ran out), until ctx is
// done; then it removes the spares left. A directory costs a mkdir, which on some disks takes
// longer than a no-op action: made here, it is off the action's path, and reuse (workspaces
// handed back empty) makes most unnecessary.
func (p *Pool) stock(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	defer func() {
		for {
			select {
			case d := <-p.spares:
				os.Remove(d)
			default:
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.want:
		}
		if len(p.spares) == cap(p.spares) {
			continue
		}
		d, err := os.MkdirTemp(p.opts.WorkDir, "ws-")
		if err != nil {
			p.log.Warn("prepare workspace", "dir", p.opts.WorkDir, "err", err)
			continue
		}
		select {
		case p.spares <- d:
		default:
			os.Remove(d)
		}
	}
}

// wantSpare asks stock for one more spare workspace.
func (p *Pool) wantSpare() {
	select {
	case p.want <- struct{}{}:
	default:
	}
}

// reuse hands a finished workspace back as a spare when the action left it as it was made:
// empty, with its mode, owned by this process's user. Such a directory cannot be told apart
// from a new one, and reusing it saves a mkdir and an rmdir (no-op and tidy actions leave
// their workspace so). It reports whether dir was taken.
func (p *Pool) reuse(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 || !ownedByUs(fi) {
		return false
	}
	if _, err := f.Readdirnames(1); err != io.EOF {
		return false
	}
	select {
	case p.spares <- dir:
		return true
	default:
		return false
	}
}

// ownedByUs reports whether fi belongs to this process's effective user.
func ownedByUs(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}

// workspace returns a fresh, empty workspace: a spare one when one is ready.
func (p *Pool) workspace() (string, error) {
	select {
	case d := <-p.spares:
		if len(p.spares) == 0 {
			p.wantSpare()
		}
		return d, nil
	default:
	}
	p.wantSpare()
	if err := os.MkdirAll(p.opts.WorkDir, 0o755); err != nil {
		return "", err
	}
	return os.MkdirTemp(p.opts.WorkDir, "ws-")
}

// discard hands finished workspaces to the janitor (or removes them at once when it is busy).
func (p *Pool) discard(dirs ...string) {
	for _, d := range dirs {
		select {
		case p.trash <- d:
		default:
			os.RemoveAll(d)
		}
	}
}

// janitor removes finished workspaces until trash is closed.
func (p *Pool) janitor(done chan<- struct{}) {
	defer close(done)
	for d := range p.trash {
		if err := os.RemoveAll(d); err != nil {
			p.log.Warn("remove workspace", "dir", d, "err", err)
		}
	}
}

// NewPool returns a pool of in-process workers taking jobs from st and reporting to rep.
func NewPool(st store.Store, rep Reporter, opts Options) *Pool {
	opts = opts.withDefaults()
	return NewPoolWith(&local{st: st, rep: rep, art: opts.Artifacts, secrets: opts.Secrets,
		lease: opts.Lease, now: opts.Now, wake: st.Notify(store.TopicJobs)}, opts)
}

// NewPoolWith returns a pool taking jobs from b.
func NewPoolWith(b Backend, opts Options) *Pool {
	opts = opts.withDefaults()
	p := &Pool{b: b, opts: opts, log: opts.Logger, running: map[string]context.CancelCauseFunc{}, drain: make(chan struct{})}
	p.w = Worker{ID: opts.ID, Providers: slices.Sorted(maps.Keys(opts.Providers)), Labels: opts.Labels,
		Slots: opts.Workers, Version: opts.Version}
	return p
}

// localPrefix starts the worker ID of in-process pools (IsLocal).
const localPrefix = "local-"

// IsLocal reports whether the job is leased by an in-process pool, not a remote worker.
func IsLocal(j *store.Job) bool { return strings.HasPrefix(j.Worker, localPrefix) }

func (o Options) withDefaults() Options {
	o.Workers = max(o.Workers, 1)
	if o.ID == "" {
		o.ID = localPrefix + uuid.NewString()[:8]
	}
	if o.Lease == 0 {
		o.Lease = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxLog == 0 {
		o.MaxLog = 16 << 20
	}
	if o.PipelineDir == nil {
		o.PipelineDir = func(string) string { return "." }
	}
	if o.Version == "" {
		o.Version = BuildVersion()
	}
	return o
}

// Drain makes Run lease no new job and return once the jobs in progress have ended and
// reported (SIGTERM to a worker). It is idempotent.
func (p *Pool) Drain() { p.drainer.Do(func() { close(p.drain) }) }

func (p *Pool) draining() bool {
	select {
	case <-p.drain:
		return true
	default:
		return false
	}
}

// errCancelled is the cause of a job context cancelled because its action was abandoned or
// its lease lost.
var errCancelled = errors.New("job cancelled")

// Cancel kills the job if this pool runs it (an abandoned action). It is idempotent.
func (p *Pool) Cancel(jobID string) {
	p.mu.Lock()
	cancel := p.running[jobID]
	p.mu.Unlock()
	if cancel != nil {
		cancel(errCancelled)
	}
}

// Run runs jobs until ctx is done, or until Drain and the jobs in progress have ended. One
// fetcher leases a job whenever a worker slot is free and work was signalled (so idle
// workers do not all race for each new job), and each job runs on a goroutine of its own.
// When ctx is done, jobs in progress are stopped (their processes killed) and left leased:
// the next start recovers them as lost, or their leases expire.
func (p *Pool) Run(ctx context.Context) error {
	// The work directory is this pool's alone: whatever is in it was left by a crash.
	if entries, err := os.ReadDir(p.opts.WorkDir); err == nil {
		for _, e := range entries {
			os.RemoveAll(filepath.Join(p.opts.WorkDir, e.Name()))
		}
	}
	if err := os.MkdirAll(p.opts.WorkDir, 0o755); err != nil {
		return fmt.Errorf("create work directory: %w", err)
	}
	p.trash = make(chan string, 256)
	janitorDone := make(chan struct{})
	go p.janitor(janitorDone)
	defer func() {
		close(p.trash)
		<-janitorDone
	}()
	p.spares, p.want = make(chan string, p.opts.Workers), make(chan struct{}, 1)
	p.wantSpare()
	stockCtx, stopStock := context.WithCancel(context.Background())
	stockDone := make(chan struct{})
	go p.stock(stockCtx, stockDone)
	defer func() {
		stopStock()
		<-stockDone
	}()
	wake := p.b.Wake()
	// Leasing stops at Drain: a long poll in progress is given up.
	leaseCtx, stopLeasing := context.WithCancel(ctx)
	defer stopLeasing()
	go func() {
		select {
		case <-p.drain:
			stopLeasing()
		case <-leaseCtx.Done():
		}
	}()
	if r, ok := p.b.(Registrar); ok {
		registered := make(chan struct{})
		go func() {
			defer close(registered)
			p.register(leaseCtx, r)
		}()
		defer func() {
			stopLeasing()
			<-registered
		}()
	}
	slots := make(chan struct{}, p.opts.Workers)
	for range p.opts.Workers {
		slots <- struct{}{}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-leaseCtx.Done():
			return nil
		case <-slots:
		}
		j, err := p.b.Lease(leaseCtx, p.w)
		if err != nil || j == nil {
			slots <- struct{}{}
			if err != nil && leaseCtx.Err() == nil {
				p.log.Error("lease job", "worker", p.w.ID, "err", err)
				sleep(leaseCtx, time.Second)
				continue
			}
			select {
			case <-leaseCtx.Done():
				return nil
			case <-wake:
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The slot runs the jobs leased with each result until none is ready.
			for j != nil {
				j = p.run(ctx, j)
			}
			slots <- struct{}{}
		}()
	}
}

// register keeps the pool in the workers registry while it leases (until ctx is done).
func (p *Pool) register(ctx context.Context, r Registrar) {
	tick := time.NewTicker(store.WorkerPoll)
	defer tick.Stop()
	for {
		if err := r.Register(ctx, p.w); err != nil && ctx.Err() == nil {
			p.log.Warn("register in the workers registry", "worker", p.w.ID, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// run runs one leased job to its end and reports it.
func (p *Pool) run(parent context.Context, j *store.Job) (next *store.Job) {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	p.mu.Lock()
	p.running[j.ID] = cancel
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.running, j.ID)
		p.mu.Unlock()
	}()

	hbDone := make(chan struct{})
	go p.heartbeat(ctx, j, cancel, hbDone)
	defer func() { cancel(nil); <-hbDone }()

	log := newJobLog(p, j)
	ev := p.execute(ctx, j, log)
	rest := log.close()
	if parent.Err() != nil {
		return nil // shutting down: the lease stays, recovery decides
	}
	ev.ExecutionID, ev.Pipeline, ev.Stage, ev.Action, ev.Attempt = j.ExecutionID, j.Pipeline, j.Spec.Stage, j.Spec.Action, j.Spec.Attempt
	ev.At = p.opts.Now()
	// The next job is leased with this result: the action that this one's end lets start
	// is usually that job, and it costs no round trip of its own.
	var w *Worker
	if !p.draining() {
		w = &p.w
	}
	bg := context.WithoutCancel(parent)
	next, err := p.b.Complete(bg, j, ev, rest, w)
	if err != nil && w != nil && !errors.Is(err, store.ErrConflict) {
		// Whatever failed, the result must not be lost for the sake of the next lease.
		next, err = p.b.Complete(bg, j, ev, rest, nil)
	}
	switch {
	case errors.Is(err, store.ErrConflict):
		p.log.Info("result refused: lease lost or job cancelled", "job", j.ID)
		return nil
	case err != nil:
		p.log.Error("report job result", "job", j.ID, "err", err)
		return nil
	}
	return next
}

// heartbeat extends the lease until ctx ends; when the lease cannot be renewed (the job was
// cancelled, or the lease was lost) it cancels the job before the lease runs out.
func (p *Pool) heartbeat(ctx context.Context, j *store.Job, cancel context.CancelCauseFunc, done chan<- struct{}) {
	defer close(done)
	lease := p.opts.Lease
	if lt, ok := p.b.(LeaseTeller); ok {
		lease = cmp.Or(lt.LeaseOf(j), lease)
	}
	every := lease / 3
	t := time.NewTicker(every)
	defer t.Stop()
	renewed := time.Now() // the lease holds until about renewed + Lease
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := p.b.Heartbeat(ctx, j)
		switch {
		case err == nil:
			renewed = time.Now()
		case errors.Is(err, store.ErrConflict):
			cancel(errCancelled)
			return
		case ctx.Err() != nil:
			return
		case time.Since(renewed) >= lease-every:
			// The next heartbeat would come after the lease ran out: whoever takes the job
			// over must not find this attempt still running.
			p.log.Error("lease cannot be renewed: stopping the job before it runs out", "job", j.ID, "err", err)
			cancel(errCancelled)
			return
		default:
			p.log.Warn("heartbeat", "job", j.ID, "err", err)
		}
	}
}

// execute runs the job and returns its result event (without its addressing fields). A job
// that takes secrets gets their values in its environment, and its log and result are
// masked: no value, in any of its encoded forms, leaves the worker.
func (p *Pool) execute(ctx context.Context, j *store.Job, log io.Writer) engine.Event {
	if len(j.Spec.Secrets)+len(j.Spec.ConfigSecrets) == 0 {
		return p.executeWith(ctx, j, log, j.Spec.Environment, j.Spec.Configuration)
	}
	env, config, masker, err := p.secrets(ctx, j)
	if err != nil {
		return engine.Event{Type: engine.EvActionFailed, Failure: string(action.Errored), Message: err.Error()}
	}
	mw := masker.Writer(log)
	ev := p.executeWith(ctx, j, mw, env, config)
	if err := mw.Close(); err != nil {
		p.log.Warn("write job log", "job", j.ID, "err", err)
	}
	ev.Message, ev.Summary, ev.ExternalURL = masker.String(ev.Message), masker.String(ev.Summary), masker.String(ev.ExternalURL)
	for k, v := range ev.Outputs {
		ev.Outputs[k] = masker.String(v)
	}
	for i := range ev.Reports {
		r := &ev.Reports[i]
		for k, c := range r.Failures {
			c.Name, c.Message, c.Text = masker.String(c.Name), masker.String(c.Message), masker.String(c.Text)
			r.Failures[k] = c
		}
		for k, e := range r.Errors {
			r.Errors[k] = masker.String(e)
		}
	}
	return ev
}

// secrets returns the job's environment and configuration with its secrets' values in
// place, and the masker of those values.
func (p *Pool) secrets(ctx context.Context, j *store.Job) (map[string]string, map[string]any, *secret.Masker, error) {
	names := j.Spec.SecretNames()
	values, err := p.b.Secrets(ctx, j, names)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("get secrets %s: %w", strings.Join(names, ", "), err)
	}
	var vals []string
	put := func(refs map[string]string, into func(k, v string)) error {
		for k, name := range refs {
			v, ok := values[name]
			if !ok {
				return fmt.Errorf("get secrets: secret %s has no value", name)
			}
			into(k, v)
			vals = append(vals, v)
		}
		return nil
	}
	env := maps.Clone(j.Spec.Environment)
	if env == nil {
		env = make(map[string]string, len(j.Spec.Secrets))
	}
	config := j.Spec.Configuration
	if len(j.Spec.ConfigSecrets) > 0 {
		config = maps.Clone(config)
	}
	if err := put(j.Spec.Secrets, func(k, v string) { env[k] = v }); err != nil {
		return nil, nil, nil, err
	}
	if err := put(j.Spec.ConfigSecrets, func(k, v string) { config[k] = v }); err != nil {
		return nil, nil, nil, err
	}
	masker, err := secret.NewMasker(vals...)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("get secrets: %w", err)
	}
	return env, config, masker, nil
}

// executeWith prepares the workspace, runs the provider with env and config (secrets in
// place) and stores the outputs.
func (p *Pool) executeWith(ctx context.Context, j *store.Job, log io.Writer, env map[string]string, config map[string]any) engine.Event {
	var reports []report.Report // once the provider ran: a failed action keeps its reports
	fail := func(kind action.Failure, err error) engine.Event {
		return engine.Event{Type: engine.EvActionFailed, Failure: string(kind), Message: err.Error(), Reports: reports}
	}
	prov := p.opts.Providers[j.Provider]
	if prov == nil {
		return fail(action.Errored, fmt.Errorf("no provider %s on this worker", j.Provider))
	}
	// The workspace is one directory, made ahead (see stock); inputs other than the first go
	// beside it. Removing it is left to the janitor, off the action's path.
	root, err := p.workspace()
	if err != nil {
		return fail(action.Errored, fmt.Errorf("create workspace: %w", err))
	}
	inputs, scratch := root+".in", root+".out"
	defer func() {
		if p.reuse(root) {
			p.discard(inputs, scratch)
		} else {
			p.discard(root, inputs, scratch)
		}
	}()
	ws := &action.Workspace{Dir: root, Inputs: map[string]string{}, Scratch: scratch, Cache: jobCache{b: p.b, j: j}}
	for i, in := range j.Spec.Inputs {
		dir := ws.Dir
		if i > 0 {
			dir = filepath.Join(inputs, in.Name)
		}
		if err := p.b.Restore(ctx, j, in, dir); err != nil {
			return fail(action.Errored, fmt.Errorf("fetch input artifact %s: %w", in.Name, err))
		}
		ws.Inputs[in.Name] = dir
	}
	ws.Log = log
	ws.Started = func(pgid int, start uint64) {
		// Recorded even when the job is being cancelled: the process may outlive a crash.
		if err := p.b.Started(context.WithoutCancel(ctx), j, pgid, start); err != nil {
			p.log.Warn("record job process", "job", j.ID, "err", err)
		}
	}
	if p.opts.Processes != nil {
		// A write to a file instead of a transaction, on every action's path (ProcessLog).
		started, done := p.opts.Processes.recorder()
		defer done()
		ws.Started = func(pgid int, start uint64) {
			if err := started(pgid, start); err != nil {
				p.log.Warn("record job process", "job", j.ID, "err", err)
			}
		}
	}
	aj := &action.Job{
		ID: j.ID, ExecutionID: j.ExecutionID, Pipeline: j.Pipeline, Stage: j.Spec.Stage, Action: j.Spec.Action,
		Attempt: j.Spec.Attempt, Category: pipeline.Category(j.Spec.Category), Provider: j.Spec.Provider,
		Configuration: config, Environment: env, Timeout: j.Spec.Timeout,
		PipelineDir: p.opts.PipelineDir(j.Pipeline),
	}
	if s := j.Spec.Source; s != nil {
		aj.SourceDir, aj.SourceRevision, aj.SourceRef = s.Dir, s.Revision, s.Ref
	}
	for _, out := range j.Spec.Outputs {
		aj.Outputs = append(aj.Outputs, out.Name)
	}
	res, err := prov.Run(ctx, aj, ws)
	if res != nil {
		reports = res.Reports
	}
	if err != nil {
		var ae *action.Error
		switch {
		case errors.As(err, &ae):
			return fail(ae.Kind, err)
		case context.Cause(ctx) != nil:
			return fail(action.Stopped, err)
		default:
			return fail(action.Failed, err)
		}
	}
	ev := engine.Event{Type: engine.EvActionSucceeded}
	if res != nil {
		ev.Outputs, ev.Summary, ev.ExternalURL = res.Variables, res.Summary, res.ExternalURL
		ev.Reports = res.Reports
	}
	for _, out := range j.Spec.Outputs {
		dir, files := ws.Dir, out.Files
		if res != nil {
			if staged, ok := res.Artifacts[out.Name]; ok {
				dir, files = staged, nil // the provider chose the files
			}
		}
		ref, err := p.b.Save(ctx, j, out.Name, dir, files)
		if errors.Is(err, artifact.ErrTooLarge) || errors.Is(err, artifact.ErrUnsafe) {
			// What the action produced is the problem, not the system.
			return fail(action.Failed, fmt.Errorf("output artifact %s: %w", out.Name, err))
		}
		if err != nil {
			return fail(action.Errored, fmt.Errorf("store output artifact %s: %w", out.Name, err))
		}
		if ref.Files == 0 && len(out.Files) > 0 {
			// As CodeBuild: declared files that are not there are a mistake, not an empty artifact.
			return fail(action.Failed, fmt.Errorf("output artifact %s: no file in the workspace matches %s", out.Name, strings.Join(out.Files, ", ")))
		}
		if ev.Artifacts == nil {
			ev.Artifacts = map[string]artifact.Ref{}
		}
		ev.Artifacts[out.Name] = ref
	}
	return ev
}
