package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/conveyorci/conveyor/internal/action"
	"github.com/conveyorci/conveyor/internal/api"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/job"
	"github.com/conveyorci/conveyor/internal/job/remote"
	"github.com/conveyorci/conveyor/internal/local"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/store"
	"github.com/conveyorci/conveyor/internal/testenv"
)

// The scale-out budgets of issue 7: B8 (remote workers), B9 (a deep queue drained), B10
// (PostgreSQL against SQLite). docs/benchmarks.md records their figures.

// sleeper is an action provider that succeeds after a fixed time without using the CPU: an
// action whose work happens elsewhere (a remote build, a deploy waiting on an API).
type sleeper time.Duration

func (s sleeper) Run(ctx context.Context, _ *action.Job, _ *action.Workspace) (*action.Result, error) {
	t := time.NewTimer(time.Duration(s))
	defer t.Stop()
	select {
	case <-t.C:
		return &action.Result{}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// onePipeline is a one-stage, one-action pipeline in PARALLEL mode: each execution is one
// job, and every started execution's job is queued at once.
func onePipeline(name string) string {
	return `name: ` + name + `
executionMode: PARALLEL
stages:
  - name: Build
    actions:
      - name: Noop
        category: Build
        provider: Commands
        configuration: { commands: ["true"] }
`
}

// queueExecutions starts n executions of the registered pipeline p, parallel at a time, and
// returns once the store holds a queued job for each (the start transaction queues it).
func queueExecutions(ctx context.Context, eng *local.Engine, p *pipeline.Pipeline, version, n, parallel int) error {
	ids := make(chan string, n)
	for range n {
		ids <- uuid.Must(uuid.NewV7()).String()
	}
	close(ids)
	errs := make(chan error, parallel)
	var wg sync.WaitGroup
	for range parallel {
		wg.Go(func() {
			for id := range ids {
				req := engine.StartRequest{PipelineVersion: version, Trigger: engine.Trigger{Type: "Bench"}}
				if _, err := eng.Loop.Start(ctx, "start:"+id, p.Name, id, req); err != nil {
					errs <- fmt.Errorf("start execution: %w", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		var queued []*store.Job
		err := eng.Store.View(ctx, func(r store.Reader) error {
			var err error
			queued, err = r.Jobs(ctx, store.JobQueued)
			return err
		})
		if err != nil {
			return err
		}
		if len(queued) >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d jobs queued after a minute", len(queued), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// drained is how a batch of executions ended.
type drained struct {
	last     time.Time // the latest FinishedAt
	statuses string    // the final statuses, counted
}

// waitEnded waits until n executions of the pipeline have ended (updates is a Subscribe taken
// before they could end) and checks that every one succeeded. The updates show the states as
// they commit; a slow reader may miss some, so the store, read only when the updates pause
// (reading it is not free), has the last word.
func waitEnded(ctx context.Context, eng *local.Engine, name string, n int, updates <-chan *engine.Execution, limit time.Duration) (drained, error) {
	done := make(map[string]bool, n)
	deadline := time.After(limit)
	const quiet = 200 * time.Millisecond
	pause := time.NewTimer(quiet)
	defer pause.Stop()
	for len(done) < n {
		select {
		case e := <-updates:
			if e.Pipeline == name && e.Status.Terminal() {
				done[e.ID] = true
			}
			pause.Reset(quiet)
			continue
		case <-pause.C:
		case <-deadline:
			return drained{}, fmt.Errorf("only %d of %d executions ended within %v", len(done), n, limit)
		}
		pause.Reset(quiet)
		execs, err := executions(ctx, eng.Store, name)
		if err != nil {
			return drained{}, err
		}
		for _, e := range execs {
			if e.Status.Terminal() {
				done[e.ID] = true
			}
		}
	}
	execs, err := executions(ctx, eng.Store, name)
	if err != nil {
		return drained{}, err
	}
	var d drained
	counts := map[engine.ExecutionStatus]int{}
	for _, e := range execs {
		counts[e.Status]++
		if e.FinishedAt.After(d.last) {
			d.last = e.FinishedAt
		}
		if e.Status != engine.ExecSucceeded {
			return d, fmt.Errorf("execution %s %s: %s", e.ID, e.Status, e.Message)
		}
	}
	d.statuses = fmt.Sprint(counts)
	return d, nil
}

// runEngine runs eng's loop (and in-process workers, if any) until the returned stop.
func runEngine(ctx context.Context, eng *local.Engine) (stop func() error) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	return sync.OnceValue(func() error {
		cancel()
		err := <-done
		if cerr := eng.Close(); err == nil {
			err = cerr
		}
		return err
	})
}

// ---- B8 ----

const (
	// b8Actions is how many executions (one action each) every B8 measurement drains.
	b8Actions = 400
	// b8Concurrency is each worker's --concurrency.
	b8Concurrency = 4
)

// b8Server is a server with no in-process workers (local.Open with Workers: -1) behind the
// real API on a loopback port, with a worker token: what `conveyor server --workers 0` is.
type b8Server struct {
	eng         *local.Engine
	url         string
	workerToken string
	conns       atomic.Int64 // TCP connections accepted
	stop        func() error
}

func startB8Server(ctx context.Context, dataDir string) (*b8Server, error) {
	eng, err := local.Open(ctx, local.Options{DataDir: dataDir, Workers: -1})
	if err != nil {
		return nil, err
	}
	s := &b8Server{eng: eng, workerToken: api.NewToken()}
	now := time.Now()
	err = eng.Store.Update(ctx, func(tx store.Tx) error {
		if err := tx.PutToken(ctx, "admin", api.HashToken(api.NewToken()), now); err != nil {
			return err
		}
		return tx.CreateToken(ctx, &store.Token{ID: "b8", User: "admin", Hash: api.HashToken(s.workerToken),
			Scope: store.ScopeWorker, CreatedAt: now})
	})
	if err != nil {
		eng.Close()
		return nil, fmt.Errorf("create tokens: %w", err)
	}
	h := api.New(api.Options{Loop: eng.Loop, Store: eng.Store, Artifacts: eng.Artifacts, JobSecrets: eng.Secrets})
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	srv.Start()
	s.url = srv.URL
	stopEngine := runEngine(ctx, eng)
	s.stop = sync.OnceValue(func() error {
		srv.CloseClientConnections()
		srv.Close()
		return stopEngine()
	})
	return s, nil
}

// b8Figures is one B8 measurement: n workers draining b8Actions queued actions.
type b8Figures struct {
	rate     float64 // actions per second
	busy     float64 // CPU time of the process (server and workers) ÷ wall time: cores in use
	cpuMs    float64 // CPU time per action
	connsPer float64 // TCP connections the server accepted per action
}

// b8Run queues b8Actions one-action executions on a fresh server, then starts n worker pools,
// each as `conveyor worker --concurrency 4` builds it (a remote.Backend with an HTTP client
// of its own, job.NewPoolWith), and measures until the last execution ends.
func b8Run(b *testing.B, n int, provider action.Provider) b8Figures {
	b.Helper()
	ctx := b.Context()
	srv, err := startB8Server(ctx, filepath.Join(b.TempDir(), "data"))
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := srv.stop(); err != nil {
			b.Error(err)
		}
	}()
	p, err := pipeline.Parse("b8.yaml", []byte(onePipeline("b8")))
	if err != nil {
		b.Fatal(err)
	}
	version, err := srv.eng.Loop.Register(ctx, p)
	if err != nil {
		b.Fatal(err)
	}
	if err := queueExecutions(ctx, srv.eng, p, version, b8Actions, 32); err != nil {
		b.Fatal(err)
	}
	updates, unsubscribe := srv.eng.Loop.Subscribe()
	defer unsubscribe()

	pools := make([]*job.Pool, n)
	for i := range pools {
		// Its own transport, as each worker process has: http.DefaultTransport's settings,
		// no connections shared with the other pools.
		hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
		be, err := remote.New(srv.url, srv.workerToken, remote.Options{Client: hc, TempDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		pools[i] = job.NewPoolWith(be, job.Options{ID: "b8-worker-" + strconv.Itoa(i), Workers: b8Concurrency,
			WorkDir: b.TempDir(), Providers: map[string]action.Provider{"Build/Commands": provider}})
	}
	conns0 := srv.conns.Load()
	cpu0, err := processCPU()
	if err != nil {
		b.Fatal(err)
	}
	poolCtx, stopPools := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	begin := time.Now()
	for _, pool := range pools {
		wg.Go(func() {
			if err := pool.Run(poolCtx); err != nil {
				b.Error(err)
			}
		})
	}
	d, err := waitEnded(ctx, srv.eng, "b8", b8Actions, updates, 5*time.Minute)
	stopPools()
	wg.Wait()
	if err != nil {
		b.Fatal(err)
	}
	cpu1, err := processCPU()
	if err != nil {
		b.Fatal(err)
	}
	wall := d.last.Sub(begin)
	return b8Figures{
		rate:     b8Actions / wall.Seconds(),
		busy:     float64(cpu1-cpu0) / float64(time.Since(begin)),
		cpuMs:    ms(cpu1-cpu0) / b8Actions,
		connsPer: float64(srv.conns.Load()-conns0) / b8Actions,
	}
}

// BenchmarkB8RemoteWorkers is budget B8: the throughput of actions through remote workers,
// with 1, 2 and 4 workers (target: ≥ 3.5× at 4 workers vs 1).
//
// One server with no in-process workers (local.Open with Workers: -1, SQLite), behind the
// real API on a loopback TCP port; 400 one-action executions (PARALLEL mode) are queued
// first, then 1, 2 or 4 worker pools start, each built as `conveyor worker --concurrency 4`
// builds it (its own remote.Backend and HTTP transport: a worker process's equivalent, in this
// process), and the time runs until the last execution ends (its FinishedAt). A fresh server
// for each measurement.
//
// Two workloads, because on a machine with few cores they answer different questions:
//
//   - noop: the action returns at once, in process. Every action is pure protocol and engine
//     work (lease, complete, the engine's step, the next lease) on the server, and the workers'
//     own share, all in this one process: the throughput is bounded by the CPU, and adding
//     workers cannot scale it past the cores there are. It shows the protocol's cost per
//     action and would show scaling only where the server has idle cores.
//   - sleep50ms: the action waits 50 ms without using the CPU (an action whose work happens
//     elsewhere). Workers' actions overlap, so the ideal rate is workers × 4 / 50 ms (80/s per
//     worker): this shows whether the server and protocol let workers scale, which is what
//     the target is about, as long as the server's CPU per action stays below 50 ms ÷ 16.
//
// Figures per workers count (1w, 2w, 4w): actions/s; cores-busy, the process's CPU time
// (server and workers) ÷ wall time: near the machine's core count means CPU-bound;
// cpu-ms/action; conns/action, TCP connections the server accepted per action (connection
// churn); and ratio-4w-vs-1w of the actions/s.
func BenchmarkB8RemoteWorkers(b *testing.B) {
	for _, w := range []struct {
		name     string
		provider action.Provider
	}{{"noop", noop{}}, {"sleep50ms", sleeper(50 * time.Millisecond)}} {
		b.Run(w.name, func(b *testing.B) {
			figs := map[int]b8Figures{}
			for b.Loop() {
				for _, n := range []int{1, 2, 4} {
					figs[n] = b8Run(b, n, w.provider)
				}
			}
			for _, n := range []int{1, 2, 4} {
				f := figs[n]
				b.Logf("%s, %d workers × %d: %.1f actions/s, %.2f cores busy, %.2f CPU-ms/action, %.2f connections/action",
					w.name, n, b8Concurrency, f.rate, f.busy, f.cpuMs, f.connsPer)
				b.ReportMetric(f.rate, fmt.Sprintf("actions/s-%dw", n))
				b.ReportMetric(f.busy, fmt.Sprintf("cores-busy-%dw", n))
				b.ReportMetric(f.cpuMs, fmt.Sprintf("cpu-ms/action-%dw", n))
				b.ReportMetric(f.connsPer, fmt.Sprintf("conns/action-%dw", n))
			}
			b.ReportMetric(figs[4].rate/figs[1].rate, "ratio-4w-vs-1w")
			b.ReportMetric(float64(runtime.GOMAXPROCS(0)), "gomaxprocs")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// ---- B9 ----

// b9ChildEnv, when set, makes the test binary run one B9 drain (its value: b9Config as JSON)
// and print its figures instead of running tests: a process of its own gives a clean peak RSS.
const b9ChildEnv = "CONVEYOR_BENCH_B9"

const (
	b9Executions = 10_000
	b9Workers    = 8
)

type b9Config struct {
	Store string `json:"store"` // "" for SQLite in Dir, else a postgres:// URL
	Dir   string `json:"dir"`
}

// b9Figures is what a B9 process reports.
type b9Figures struct {
	QueueSeconds float64 `json:"queueSeconds"` // starting the 10,000 executions
	DrainSeconds float64 `json:"drainSeconds"` // from the workers' start to the last execution's end
	IdleMB       float64 `json:"idleMB"`       // VmHWM with the engine open and idle
	QueuedMB     float64 `json:"queuedMB"`     // VmHWM once the 10,000 are queued
	PeakMB       float64 `json:"peakMB"`       // VmHWM once they have all ended
	RSSMB        float64 `json:"rssMB"`        // VmRSS then
	CPUMs        float64 `json:"cpuMs"`        // CPU time of the process per execution, draining
	Statuses     string  `json:"statuses"`
}

// BenchmarkB9Drain is budget B9: 10,000 queued executions drained, the time it takes and the
// server's RSS, on SQLite and (where a PostgreSQL server can be had: testenv) on PostgreSQL.
//
// PARALLEL mode, a one-action pipeline whose action is an in-process no-op: the 10,000 are
// started first (32 API-equivalent calls at a time, straight on the engine loop) with no
// worker running, so 10,000 jobs wait in the job queue; then 8 in-process workers start and
// the time runs until the last execution ends. PARALLEL rather than QUEUED: QUEUED runs one
// execution at a time per stage, which would measure one execution's latency 10,000 times;
// PARALLEL puts the whole depth in the job queue and the execution table, where leasing and
// memory could degrade with it.
//
// Each drain runs in a process of its own (the test binary started again), so that its peak
// RSS is its own: VmHWM of /proc/self/status, the kernel's high-water mark of the resident
// set, which counts what the Go runtime's own figures do not (SQLite's page cache, C and
// stack memory, the heap's garbage before a collection). The process is the server and its
// workers together. With PostgreSQL the database's own memory and CPU are in its server's
// processes, not counted here: the two stores' memory figures are not like for like.
//
// Figures: drain-s, execs/s (10,000 ÷ drain-s), queue-s (starting the 10,000), peak-MB
// (VmHWM at the end), queued-MB (VmHWM once the 10,000 are queued), idle-MB (VmHWM with the
// engine open, before any), rss-MB (VmRSS at the end) and cpu-ms/exec while draining.
func BenchmarkB9Drain(b *testing.B) {
	for _, st := range []string{"sqlite", "postgres"} {
		b.Run(st, func(b *testing.B) {
			var f b9Figures
			for b.Loop() {
				cfg := b9Config{Dir: b.TempDir()}
				if st == "postgres" {
					cfg.Store = testenv.Postgres(b)
				}
				f = b9Run(b, cfg)
			}
			b.Logf("%s: %d executions drained in %.2fs (queued in %.2fs), peak %.1f MB, %s",
				st, b9Executions, f.DrainSeconds, f.QueueSeconds, f.PeakMB, f.Statuses)
			b.ReportMetric(f.DrainSeconds, "drain-s")
			b.ReportMetric(b9Executions/f.DrainSeconds, "execs/s")
			b.ReportMetric(f.QueueSeconds, "queue-s")
			b.ReportMetric(f.PeakMB, "peak-MB")
			b.ReportMetric(f.QueuedMB, "queued-MB")
			b.ReportMetric(f.IdleMB, "idle-MB")
			b.ReportMetric(f.RSSMB, "rss-MB")
			b.ReportMetric(f.CPUMs, "cpu-ms/exec")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// b9Run runs one drain in a child process and returns its figures.
func b9Run(b *testing.B, cfg b9Config) b9Figures {
	b.Helper()
	raw, _ := json.Marshal(cfg)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), b9ChildEnv+"="+string(raw), "TMPDIR="+cfg.Dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("B9 drain: %v\n%s", err, stderr.String())
	}
	var f b9Figures
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &f); err != nil {
		b.Fatalf("B9 drain printed %q: %v", out, err)
	}
	return f
}

// b9Child is the drain process.
func b9Child(raw string) error {
	var cfg b9Config
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		return fmt.Errorf("%s: %w", b9ChildEnv, err)
	}
	ctx := context.Background()
	providers := map[string]action.Provider{"Build/Commands": noop{}}
	eng, err := local.Open(ctx, local.Options{DataDir: filepath.Join(cfg.Dir, "data"), Store: cfg.Store, Workers: -1, Providers: providers})
	if err != nil {
		return err
	}
	stopEngine := runEngine(ctx, eng)
	defer stopEngine()
	p, err := pipeline.Parse("b9.yaml", []byte(onePipeline("b9")))
	if err != nil {
		return err
	}
	version, err := eng.Loop.Register(ctx, p)
	if err != nil {
		return err
	}
	var f b9Figures
	if f.IdleMB, err = vmHWM(); err != nil {
		return err
	}
	begin := time.Now()
	if err := queueExecutions(ctx, eng, p, version, b9Executions, 32); err != nil {
		return err
	}
	f.QueueSeconds = time.Since(begin).Seconds()
	if f.QueuedMB, err = vmHWM(); err != nil {
		return err
	}

	updates, unsubscribe := eng.Loop.Subscribe()
	defer unsubscribe()
	pool := job.NewPool(eng.Store, eng.Loop, job.Options{Workers: b9Workers, WorkDir: filepath.Join(cfg.Dir, "work"),
		Providers: providers, Artifacts: eng.Artifacts})
	cpu0, err := processCPU()
	if err != nil {
		return err
	}
	poolCtx, stopPool := context.WithCancel(ctx)
	poolDone := make(chan error, 1)
	begin = time.Now()
	go func() { poolDone <- pool.Run(poolCtx) }()
	d, err := waitEnded(ctx, eng, "b9", b9Executions, updates, 20*time.Minute)
	stopPool()
	if perr := <-poolDone; err == nil {
		err = perr
	}
	if err != nil {
		return err
	}
	cpu1, err := processCPU()
	if err != nil {
		return err
	}
	f.DrainSeconds = d.last.Sub(begin).Seconds()
	f.CPUMs = ms(cpu1-cpu0) / b9Executions
	f.Statuses = d.statuses
	if f.PeakMB, err = vmHWM(); err != nil {
		return err
	}
	if f.RSSMB, err = procStatusMB("VmRSS:"); err != nil {
		return err
	}
	if err := stopEngine(); err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	return json.NewEncoder(os.Stdout).Encode(f)
}

// ---- B10 ----

const (
	// b10Executions is how many executions B10 runs on each store, one after the other.
	b10Executions = 60
	// b10Commits is how many single-row write transactions the commit baseline makes.
	b10Commits = 200
)

// b10Pipeline is three stages of one no-op action each.
const b10Pipeline = `name: b10
executionMode: PARALLEL
stages:
  - name: Build
    actions:
      - name: Compile
        category: Build
        provider: Commands
        configuration: { commands: ["true"] }
  - name: Test
    actions:
      - name: Check
        category: Test
        provider: Commands
        configuration: { commands: ["true"] }
  - name: Deploy
    actions:
      - name: Release
        category: Deploy
        provider: Commands
        configuration: { commands: ["true"] }
`

// b10Engine is one store's engine, running, with B10's pipeline registered.
type b10Engine struct {
	name    string
	eng     *local.Engine
	stop    func() error
	updates <-chan *engine.Execution
	version int
	p       *pipeline.Pipeline
	// measurements: per execution, wall and CPU time; per commit, wall time
	wall, cpu, commit []time.Duration
}

func openB10(ctx context.Context, name, dir, storeURL string) (*b10Engine, error) {
	providers := map[string]action.Provider{"Build/Commands": noop{}, "Test/Commands": noop{}, "Deploy/Commands": noop{}}
	eng, err := local.Open(ctx, local.Options{DataDir: dir, Store: storeURL, Workers: 4, Providers: providers})
	if err != nil {
		return nil, fmt.Errorf("open %s engine: %w", name, err)
	}
	stop := runEngine(ctx, eng)
	e := &b10Engine{name: name, eng: eng, stop: stop}
	if e.p, err = pipeline.Parse("b10.yaml", []byte(b10Pipeline)); err != nil {
		e.stop()
		return nil, err
	}
	if e.version, err = eng.Loop.Register(ctx, e.p); err != nil {
		e.stop()
		return nil, err
	}
	updates, unsubscribe := eng.Loop.Subscribe()
	e.updates, e.stop = updates, sync.OnceValue(func() error {
		unsubscribe()
		return stop()
	})
	return e, nil
}

// runOne starts one execution and waits for its end; it returns the wall and CPU time.
func (e *b10Engine) runOne(ctx context.Context) (wall, cpu time.Duration, err error) {
	id := uuid.Must(uuid.NewV7()).String()
	cpu0, err := processCPU()
	if err != nil {
		return 0, 0, err
	}
	begin := time.Now()
	req := engine.StartRequest{PipelineVersion: e.version, Trigger: engine.Trigger{Type: "Bench"}}
	if _, err := e.eng.Loop.Start(ctx, "start:"+id, e.p.Name, id, req); err != nil {
		return 0, 0, fmt.Errorf("%s: start: %w", e.name, err)
	}
	deadline := time.After(time.Minute)
	poll := time.NewTicker(100 * time.Millisecond) // in case an update was dropped
	defer poll.Stop()
	var last *engine.Execution
	for last == nil || !last.Status.Terminal() {
		select {
		case u := <-e.updates:
			if u.ID == id {
				last = u
			}
		case <-poll.C:
			if last, err = e.eng.Loop.Execution(ctx, id); err != nil {
				return 0, 0, err
			}
		case <-deadline:
			return 0, 0, fmt.Errorf("%s: execution %s not ended within a minute", e.name, id)
		}
	}
	wall = time.Since(begin)
	cpu1, err := processCPU()
	if err != nil {
		return 0, 0, err
	}
	if last.Status != engine.ExecSucceeded {
		return 0, 0, fmt.Errorf("%s: execution %s %s: %s", e.name, id, last.Status, last.Message)
	}
	return wall, cpu1 - cpu0, nil
}

// commitLatency makes one write transaction of one row (a timer a day away, which nothing
// will fire during the benchmark) and returns how long it took.
func (e *b10Engine) commitLatency(ctx context.Context, i int) (time.Duration, error) {
	far := time.Now().Add(24 * time.Hour)
	begin := time.Now()
	err := e.eng.Store.Update(ctx, func(tx store.Tx) error {
		return tx.AddTimer(ctx, &engine.Timer{ID: "b10-baseline-" + strconv.Itoa(i), Due: far, Event: engine.Event{Type: engine.EvTimeout}})
	})
	return time.Since(begin), err
}

// BenchmarkB10StoreOverhead is budget B10: the same pipeline on SQLite and on PostgreSQL,
// and the ratio of the orchestrator's overhead per action between them.
//
// Two engines in this process (local.Open, 4 in-process workers each): one on an SQLite
// data directory, one on a fresh PostgreSQL database (testenv: skipped without a server
// unless CONVEYOR_TEST_REQUIRE asks for it). Each runs 60 executions of a 3-stage pipeline
// (Build → Test → Deploy, one in-process no-op action each: the time is all the engine's and
// the store's), one after the other, alternating between the stores so that the machine's
// load drifts over both alike, after 5 unmeasured ones each. An execution's time runs from
// the start call to its terminal state reaching a subscriber.
//
// Figures per store: ms/action (the median execution's time ÷ 3: with no-op actions, all of
// it overhead: the start, 3 stage transitions, 3 leases and completions, the end),
// cpu-ms/action (this process's CPU time, median; with PostgreSQL the database server's CPU
// is in its own processes, not counted), and baseline-commit-ms, the median time of one
// single-row write transaction on the same store, 200 times: the floor each engine step
// stands on. ratio-pg-vs-sqlite is the ms/action ratio; commit-ratio-pg-vs-sqlite the
// baseline's.
func BenchmarkB10StoreOverhead(b *testing.B) {
	ctx := b.Context()
	pgURL := testenv.Postgres(b)
	sq, err := openB10(ctx, "sqlite", filepath.Join(b.TempDir(), "sqlite"), "")
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := sq.stop(); err != nil {
			b.Error(err)
		}
	}()
	pg, err := openB10(ctx, "postgres", filepath.Join(b.TempDir(), "postgres"), pgURL)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := pg.stop(); err != nil {
			b.Error(err)
		}
	}()
	engines := []*b10Engine{sq, pg}
	for range 5 { // warm up: statements, connections, the page cache
		for _, e := range engines {
			if _, _, err := e.runOne(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	for b.Loop() {
		for _, e := range engines {
			e.wall, e.cpu, e.commit = e.wall[:0], e.cpu[:0], e.commit[:0]
		}
		for range b10Executions {
			for _, e := range engines {
				w, c, err := e.runOne(ctx)
				if err != nil {
					b.Fatal(err)
				}
				e.wall, e.cpu = append(e.wall, w), append(e.cpu, c)
			}
		}
		for i := range b10Commits {
			for _, e := range engines {
				d, err := e.commitLatency(ctx, i)
				if err != nil {
					b.Fatal(err)
				}
				e.commit = append(e.commit, d)
			}
		}
	}
	for _, e := range engines {
		b.Logf("%s: %.2f ms/action (median execution %.1f ms, p90 %.1f ms), commit %.3f ms",
			e.name, ms(median(e.wall))/3, ms(median(e.wall)), ms(percentile(e.wall, 90)), ms(median(e.commit)))
		b.ReportMetric(ms(median(e.wall))/3, "ms/action-"+e.name)
		b.ReportMetric(ms(median(e.cpu))/3, "cpu-ms/action-"+e.name)
		b.ReportMetric(ms(median(e.commit)), "baseline-commit-ms-"+e.name)
	}
	b.ReportMetric(float64(median(pg.wall))/float64(median(sq.wall)), "ratio-pg-vs-sqlite")
	b.ReportMetric(float64(median(pg.commit))/float64(median(sq.commit)), "commit-ratio-pg-vs-sqlite")
	b.ReportMetric(0, "ns/op")
}
