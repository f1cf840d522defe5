package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/conveyorci/conveyor/internal/action"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/local"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/store"
	"github.com/conveyorci/conveyor/internal/store/sqlite"
	"github.com/conveyorci/conveyor/internal/testenv"
)

// childEnv, when set, makes the test binary run one B2 workload (its value names it) and
// print its figures instead of running tests: a process of its own gives a clean peak RSS.
const childEnv = "CONVEYOR_BENCH_B2"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		if err := b2Child(mode); err != nil {
			fmt.Fprintln(os.Stderr, "B2 workload:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if dataDir := os.Getenv(b5ChildEnv); dataDir != "" {
		if err := b5Child(dataDir); err != nil {
			fmt.Fprintln(os.Stderr, "B5 server process:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if cfg := os.Getenv(b9ChildEnv); cfg != "" {
		if err := b9Child(cfg); err != nil {
			fmt.Fprintln(os.Stderr, "B9 drain:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	testenv.StopAll() // the PostgreSQL server B9 and B10 started, if any
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

// conveyorBinary builds cmd/conveyor once per test binary, as users run it (no -race).
func conveyorBinary(b *testing.B) string {
	b.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "conveyor-bench-"); buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "conveyor")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/conveyorci/conveyor/cmd/conveyor").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		b.Fatal(buildErr)
	}
	return binPath
}

// gitRepo makes a one-commit repository for the pipelines' Source action.
func gitRepo(b *testing.B) string {
	b.Helper()
	dir := filepath.Join(b.TempDir(), "repo")
	env := append(os.Environ(), "GIT_AUTHOR_NAME=bench", "GIT_AUTHOR_EMAIL=bench@conveyor.invalid",
		"GIT_COMMITTER_NAME=bench", "GIT_COMMITTER_EMAIL=bench@conveyor.invalid",
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	for _, args := range [][]string{{"init", "-q", "-b", "main", dir}, {"-C", dir, "commit", "-q", "--allow-empty", "-m", "bench"}} {
		cmd := exec.Command("git", args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return dir
}

// b1Pipeline is a Git source, then n no-op actions run one after the other, in stages of at
// most pipeline.MaxActionsPerStage (50, as CodePipeline) actions.
func b1Pipeline(repo string, n int) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, `name: b1
stages:
  - name: Source
    actions:
      - name: Checkout
        category: Source
        provider: Git
        configuration: { repository: %q }
        outputArtifacts: [SourceOutput]
`, repo)
	for i := 1; i <= n; i++ {
		if (i-1)%pipeline.MaxActionsPerStage == 0 {
			fmt.Fprintf(&sb, "  - name: Work%d\n    actions:\n", (i-1)/pipeline.MaxActionsPerStage+1)
		}
		fmt.Fprintf(&sb, `      - name: Noop%d
        category: Build
        provider: Commands
        runOrder: %d
        configuration: { commands: ["true"] }
`, i, i)
	}
	return sb.String()
}

// runConveyor runs `conveyor run file` to its end and returns how long it took, and the CPU
// time (user and system) it and its actions used.
func runConveyor(b *testing.B, bin, file string) (wall, cpu time.Duration) {
	b.Helper()
	cmd := exec.Command(bin, "run", file)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	wall = time.Since(start)
	if err != nil {
		b.Fatalf("conveyor run %s: %v\n%s", file, err, out.String())
	}
	// The rusage of a process includes its children's that it waited for: every action's.
	return wall, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

// forkExec runs a program n times, one after the other, and returns how long it took and the
// CPU time the runs used.
func forkExec(b *testing.B, n int, args ...string) (wall, cpu time.Duration) {
	b.Helper()
	before := childrenCPU(b)
	start := time.Now()
	for range n {
		if err := exec.Command(args[0], args[1:]...).Run(); err != nil {
			b.Fatal(err)
		}
	}
	wall = time.Since(start)
	return wall, childrenCPU(b) - before
}

// childrenCPU is the user and system time of this process's waited-for children so far.
func childrenCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkB1ActionOverhead is budget B1: the cost per action of running 100 sequential no-op
// actions (`commands: [true]`, runOrder 1..100) through `conveyor run`, the real binary,
// against 100 sequential fork+execs of /bin/true in the same run. A stage holds at most 50
// actions, so the 100 are two stages of 50: one stage transition more than the 1-action run,
// spread over the 99 actions of the difference below.
//
// Each iteration measures everything three times (rounds) and reports medians over the rounds.
// Figures:
//
//   - ms/action: the whole run of the 100-action pipeline divided by 100. It includes what
//     every run pays once: starting the process, creating its store, the Git checkout, the
//     summary.
//   - overhead-ms/action: (run of 100 actions − run of 1 action) / 99, which removes that fixed
//     part: what one more action costs, from the previous one ending to this one ending. It
//     includes the action's own work (the shell it starts, which runs `true` as a builtin),
//     so it is compared with the cheapest possible action: one fork+exec.
//   - baseline-ms/exec: one fork+exec of /bin/true from Go (os/exec), waited for.
//   - ratio: overhead-ms/action ÷ baseline-ms/exec. The budget is ≤ 3.
//   - bash-ms/exec: one run of `bash --noprofile --norc -c true`, the shell every Commands
//     action starts: the part of an action's cost that is the shell's, not Conveyor's.
//   - cpu-overhead-ms/action, baseline-cpu-ms/exec, cpu-ratio: the same, in CPU time (user +
//     system, conveyor's and its actions' together), which a busy machine disturbs less than
//     wall time.
func BenchmarkB1ActionOverhead(b *testing.B) {
	bin := conveyorBinary(b)
	repo := gitRepo(b)
	dir := b.TempDir()
	file100, file1 := filepath.Join(dir, "b1-100.yaml"), filepath.Join(dir, "b1-1.yaml")
	for file, n := range map[string]int{file100: 100, file1: 1} {
		if err := os.WriteFile(file, []byte(b1Pipeline(repo, n)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	// Warm up the page cache, the binary and git, untimed.
	bash, err := exec.LookPath("bash")
	if err != nil {
		b.Fatal(err)
	}
	trueArgs, bashArgs := []string{"/bin/true"}, []string{bash, "--noprofile", "--norc", "-c", "true"}
	runConveyor(b, bin, file1)
	forkExec(b, 10, trueArgs...)
	forkExec(b, 10, bashArgs...)

	// Each iteration makes b1Rounds rounds of the four measurements; each figure is the median
	// over the rounds, which a passing disturbance moves less than a single measurement.
	var m b1Rounds
	for b.Loop() {
		for range b1RoundsPerIteration {
			w, c := runConveyor(b, bin, file100)
			m.run100, m.cpu100 = append(m.run100, w), append(m.cpu100, c)
			w, c = runConveyor(b, bin, file1)
			m.run1, m.cpu1 = append(m.run1, w), append(m.cpu1, c)
			w, c = forkExec(b, 100, trueArgs...)
			m.exec100, m.cpuExec100 = append(m.exec100, w), append(m.cpuExec100, c)
			w, _ = forkExec(b, 100, bashArgs...)
			m.bash100 = append(m.bash100, w)
		}
	}
	overhead := ms(median(m.run100)-median(m.run1)) / 99
	baseline := ms(median(m.exec100)) / 100
	b.ReportMetric(ms(median(m.run100))/100, "ms/action")
	b.ReportMetric(overhead, "overhead-ms/action")
	b.ReportMetric(baseline, "baseline-ms/exec")
	b.ReportMetric(overhead/baseline, "ratio")
	b.ReportMetric(ms(median(m.bash100))/100, "bash-ms/exec")
	cpuOverhead, cpuBaseline := ms(median(m.cpu100)-median(m.cpu1))/99, ms(median(m.cpuExec100))/100
	b.ReportMetric(cpuOverhead, "cpu-overhead-ms/action")
	b.ReportMetric(cpuBaseline, "baseline-cpu-ms/exec")
	b.ReportMetric(cpuOverhead/cpuBaseline, "cpu-ratio")
	b.ReportMetric(0, "ns/op") // the sum of different runs: meaningless
}

// b1RoundsPerIteration is how many times an iteration of B1 measures each of its four figures.
const b1RoundsPerIteration = 3

// b1Rounds holds B1's measurements, one per round.
type b1Rounds struct {
	run100, run1, exec100, bash100, cpu100, cpu1, cpuExec100 []time.Duration
}

// median returns the median of ds (the mean of the middle two for an even count).
func median(ds []time.Duration) time.Duration {
	s := slices.Sorted(slices.Values(ds))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// b2Figures is what a B2 workload process reports.
type b2Figures struct {
	Executions int     `json:"executions"`
	Seconds    float64 `json:"seconds"`   // from the first start to the last execution's end
	PeakMB     float64 `json:"peakMB"`    // VmHWM at the end of the workload
	IdleMB     float64 `json:"idleMB"`    // VmHWM with the engine open and idle, before the workload
	Baseline   float64 `json:"baseline"`  // see BenchmarkB2Throughput
	BaseUnit   string  `json:"baseUnit"`  // the metric name of Baseline
	CPUMs      float64 `json:"cpuMs"`     // CPU time (user + system, with child processes) per execution
	BaseCPUMs  float64 `json:"baseCpuMs"` // commands: CPU time of the baseline per execution (2 shells)
	Statuses   string  `json:"statuses"`  // final statuses, counted
	Workers    int     `json:"workers"`
	Procs      int     `json:"gomaxprocs"`
}

const (
	b2Executions = 500
	b2Workers    = 8
)

// b2Pipeline is a 3-stage pipeline in PARALLEL mode: Source, Build (taking the source
// artifact), Test.
const b2Pipeline = `name: b2
executionMode: PARALLEL
stages:
  - name: Source
    actions:
      - name: Checkout
        category: Source
        provider: Git
        configuration: { repository: . }
        outputArtifacts: [SourceOutput]
  - name: Build
    actions:
      - name: Compile
        category: Build
        provider: Commands
        inputArtifacts: [SourceOutput]
        configuration: { commands: ["true"] }
  - name: Test
    actions:
      - name: Check
        category: Test
        provider: Commands
        configuration: { commands: ["true"] }
`

// noop is an action provider that succeeds at once, in process: B2 measures the engine (store
// transactions, leases, workspaces, artifacts, state), not how fast processes start.
type noop struct{}

func (noop) Run(context.Context, *action.Job, *action.Workspace) (*action.Result, error) {
	return &action.Result{}, nil
}

// BenchmarkB2Throughput is budget B2: 500 executions of a 3-stage pipeline (Source → Build →
// Test) in PARALLEL mode, started at once, through the engine on the SQLite store in one
// process (internal/local, as `conveyor run` and a single server use it), until every one has
// ended. Each workload runs in a process of its own, so that its peak RSS is its own.
//
//   - noop: every action is an in-process provider that returns at once: the engine's own
//     throughput. Baseline: the SQLite store alone, concurrent write transactions per second
//     (each inserting one row) on a fresh file, the ceiling every engine step shares.
//   - commands: Build and Test are Commands actions running `true` in bash (the Source stays
//     in-process, to measure the engine and not git). Baseline: the same 1,000 bash runs
//     started directly, 8 at a time, expressed as executions per second (2 runs each): what the
//     machine could do if the engine cost nothing.
//
// Figures: execs/s (targets ≥ 100 on 2 cores), peak-MB (VmHWM; target < 150), the baseline,
// baseline-idle-MB, the peak RSS of the same process with the engine open and idle, and
// cpu-ms/exec, the CPU time (user + system, the shells' included) per execution, which a busy
// machine disturbs less than the rate (commands: with baseline-cpu-ms/exec, the CPU time of
// the baseline's two shells).
func BenchmarkB2Throughput(b *testing.B) {
	for _, mode := range []string{"noop", "commands"} {
		b.Run(mode, func(b *testing.B) {
			var f b2Figures
			for b.Loop() {
				f = b2Run(b, mode)
			}
			b.Logf("%s: %d executions in %.2fs (%s), %d workers, GOMAXPROCS %d, %s %.0f",
				mode, f.Executions, f.Seconds, f.Statuses, f.Workers, f.Procs, f.BaseUnit, f.Baseline)
			b.ReportMetric(float64(f.Executions)/f.Seconds, "execs/s")
			b.ReportMetric(f.PeakMB, "peak-MB")
			b.ReportMetric(f.IdleMB, "baseline-idle-MB")
			b.ReportMetric(f.Baseline, f.BaseUnit)
			b.ReportMetric(f.CPUMs, "cpu-ms/exec")
			if f.BaseCPUMs > 0 {
				b.ReportMetric(f.BaseCPUMs, "baseline-cpu-ms/exec")
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

// b2Run runs one workload in a child process and returns its figures.
func b2Run(b *testing.B, mode string) b2Figures {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, "TMPDIR="+b.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("B2 %s workload: %v\n%s", mode, err, stderr.String())
	}
	var f b2Figures
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &f); err != nil {
		b.Fatalf("B2 %s workload printed %q: %v", mode, out, err)
	}
	return f
}

// b2Child is the workload process.
func b2Child(mode string) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "conveyor-b2-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	providers := map[string]action.Provider{"Source/Git": noop{}}
	switch mode {
	case "noop":
		providers["Build/Commands"], providers["Test/Commands"] = noop{}, noop{}
	case "commands":
		builtin := local.Providers()
		providers["Build/Commands"], providers["Test/Commands"] = builtin["Build/Commands"], builtin["Test/Commands"]
	default:
		return fmt.Errorf("unknown workload %q", mode)
	}
	p, err := pipeline.Parse("b2.yaml", []byte(b2Pipeline))
	if err != nil {
		return err
	}
	eng, err := local.Open(ctx, local.Options{DataDir: filepath.Join(dir, "data"), Workers: b2Workers, Providers: providers,
		PipelineDir: func(string) string { return dir }})
	if err != nil {
		return err
	}
	defer eng.Close()
	runCtx, stop := context.WithCancel(ctx)
	engineDone := make(chan error, 1)
	go func() { engineDone <- eng.Run(runCtx) }()
	stopEngine := sync.OnceValue(func() error {
		stop()
		return <-engineDone
	})
	defer stopEngine()
	version, err := eng.Loop.Register(ctx, p)
	if err != nil {
		return err
	}
	f := b2Figures{Executions: b2Executions, Workers: b2Workers, Procs: runtime.GOMAXPROCS(0)}
	if f.IdleMB, err = vmHWM(); err != nil {
		return err
	}

	updates, unsubscribe := eng.Loop.Subscribe()
	defer unsubscribe()
	ids := make([]string, b2Executions)
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7()).String()
	}
	cpuBefore, err := processCPU()
	if err != nil {
		return err
	}
	begin := time.Now()
	startErr := make(chan error, 1)
	go func() {
		// As many API calls at once as there are executions: group commit batches them.
		var wg sync.WaitGroup
		var once sync.Once
		for _, id := range ids {
			wg.Go(func() {
				req := engine.StartRequest{PipelineVersion: version, Trigger: engine.Trigger{Type: "Bench"}}
				if _, err := eng.Loop.Start(ctx, "start:"+id, p.Name, id, req); err != nil {
					once.Do(func() { startErr <- err })
				}
			})
		}
		wg.Wait()
		close(startErr)
	}()

	// Subscribe shows the states as they commit; a slow reader may miss some, so the store,
	// read only when the updates pause (reading it is not free), has the last word.
	done := map[string]bool{}
	deadline := time.After(10 * time.Minute)
	const quiet = 200 * time.Millisecond
	pause := time.NewTimer(quiet)
	for len(done) < b2Executions {
		select {
		case e := <-updates:
			if e.Status.Terminal() {
				done[e.ID] = true
			}
			pause.Reset(quiet)
			continue
		case err, ok := <-startErr:
			if ok && err != nil {
				return fmt.Errorf("start execution: %w", err)
			}
			startErr = nil
			continue
		case <-pause.C:
		case <-deadline:
			return fmt.Errorf("only %d of %d executions ended within 10 minutes", len(done), b2Executions)
		}
		pause.Reset(quiet)
		execs, err := executions(ctx, eng.Store, p.Name)
		if err != nil {
			return err
		}
		for _, e := range execs {
			if e.Status.Terminal() {
				done[e.ID] = true
			}
		}
	}
	if f.PeakMB, err = vmHWM(); err != nil {
		return err
	}
	cpuAfter, err := processCPU()
	if err != nil {
		return err
	}
	f.CPUMs = ms(cpuAfter-cpuBefore) / b2Executions
	execs, err := executions(ctx, eng.Store, p.Name)
	if err != nil {
		return err
	}
	var last time.Time
	counts := map[engine.ExecutionStatus]int{}
	for _, e := range execs {
		counts[e.Status]++
		if e.FinishedAt.After(last) {
			last = e.FinishedAt
		}
	}
	f.Seconds = last.Sub(begin).Seconds()
	f.Statuses = fmt.Sprint(counts)
	if counts[engine.ExecSucceeded] != b2Executions {
		for _, e := range execs {
			if e.Status != engine.ExecSucceeded {
				return fmt.Errorf("execution %s %s: %s (statuses: %v)", e.ID, e.Status, e.Message, counts)
			}
		}
	}
	if err := stopEngine(); err != nil {
		return fmt.Errorf("engine: %w", err)
	}

	switch mode {
	case "noop":
		f.BaseUnit = "baseline-store-tx/s"
		f.Baseline, err = storeTxRate(ctx, filepath.Join(dir, "baseline.db"), 5000)
	case "commands":
		f.BaseUnit = "baseline-execs/s"
		var runs float64
		var before, after time.Duration
		if before, err = processCPU(); err != nil {
			return err
		}
		runs, err = bashRate(2*b2Executions, b2Workers)
		f.Baseline = runs / 2
		if after, err = processCPU(); err != nil {
			return err
		}
		f.BaseCPUMs = ms(after-before) / b2Executions
	}
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(f)
}

func executions(ctx context.Context, st store.Store, name string) ([]*engine.Execution, error) {
	var execs []*engine.Execution
	err := st.View(ctx, func(r store.Reader) error {
		var err error
		execs, err = r.Executions(ctx, store.ExecutionFilter{Pipeline: name})
		return err
	})
	return execs, err
}

// storeTxRate makes n write transactions, each inserting one timer row, from as many
// goroutines at once, on a fresh SQLite store, and returns the transactions per second.
func storeTxRate(ctx context.Context, path string, n int) (float64, error) {
	s, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		return 0, err
	}
	defer s.Close()
	far := time.Now().Add(24 * time.Hour)
	begin := time.Now()
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs <- s.Update(ctx, func(tx store.Tx) error {
				return tx.AddTimer(ctx, &engine.Timer{ID: "baseline-" + strconv.Itoa(i), Due: far, Event: engine.Event{Type: engine.EvTimeout}})
			})
		})
	}
	wg.Wait()
	took := time.Since(begin)
	close(errs)
	for err := range errs {
		if err != nil {
			return 0, err
		}
	}
	return float64(n) / took.Seconds(), nil
}

// bashRate runs `bash --noprofile --norc -c true` n times, parallel at a time, and returns
// the runs per second.
func bashRate(n, parallel int) (float64, error) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		return 0, err
	}
	begin := time.Now()
	jobs := make(chan struct{}, n)
	for range n {
		jobs <- struct{}{}
	}
	close(jobs)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range parallel {
		wg.Go(func() {
			for range jobs {
				errs <- exec.Command(bash, "--noprofile", "--norc", "-c", "true").Run()
			}
		})
	}
	wg.Wait()
	took := time.Since(begin)
	close(errs)
	for err := range errs {
		if err != nil {
			return 0, err
		}
	}
	return float64(n) / took.Seconds(), nil
}

// processCPU is the user and system time of this process and its waited-for children so far.
func processCPU() (time.Duration, error) {
	var self, children syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &self); err != nil {
		return 0, err
	}
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children); err != nil {
		return 0, err
	}
	return time.Duration(self.Utime.Nano() + self.Stime.Nano() + children.Utime.Nano() + children.Stime.Nano()), nil
}

// vmHWM is this process's peak resident set size, in MB (2^20 bytes).
func vmHWM() (float64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return kb / 1024, err
		}
	}
	return 0, errors.New("no VmHWM in /proc/self/status")
}
