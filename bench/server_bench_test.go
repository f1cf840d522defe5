package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/conveyorci/conveyor/internal/api"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/local"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/store"
)

// b5ChildEnv, when set to a data directory, makes the test binary serve it as B5's server
// process and print its figures instead of running tests.
const b5ChildEnv = "CONVEYOR_BENCH_B5"

// benchServer is a server wired as cmd/conveyor/server.go wires it (local.Open, api.New, an
// http.Server on a loopback port), in this process.
type benchServer struct {
	url, token string
	eng        *local.Engine
	stop       func() error
}

func startServer(ctx context.Context, dataDir string) (*benchServer, error) {
	eng, err := local.Open(ctx, local.Options{DataDir: dataDir, Workers: 4})
	if err != nil {
		return nil, err
	}
	token := api.NewToken()
	err = eng.Store.Update(ctx, func(tx store.Tx) error {
		return tx.PutToken(ctx, "admin", api.HashToken(token), time.Now())
	})
	if err != nil {
		eng.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		eng.Close()
		return nil, err
	}
	srv := &http.Server{Handler: api.New(api.Options{Loop: eng.Loop, Store: eng.Store}), ReadHeaderTimeout: 10 * time.Second}
	engCtx, stopEngine := context.WithCancel(context.WithoutCancel(ctx))
	engineDone := make(chan error, 1)
	go func() { engineDone <- eng.Run(engCtx) }()
	go srv.Serve(ln)
	s := &benchServer{url: "http://" + ln.Addr().String(), token: token, eng: eng}
	s.stop = sync.OnceValue(func() error {
		srv.Close()
		stopEngine()
		err := <-engineDone
		if cerr := eng.Close(); err == nil {
			err = cerr
		}
		return err
	})
	return s, nil
}

// call makes one API request and returns the answer's body; any status but want is an error.
func (s *benchServer) call(hc *http.Client, method, path string, body []byte, want int) ([]byte, error) {
	req, err := http.NewRequest(method, s.url+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/yaml")
		if bytes.HasPrefix(body, []byte("{")) {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, data)
	}
	return data, nil
}

// percentile returns the p-th percentile (0 < p ≤ 100) of ds by the nearest-rank method.
func percentile(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	if len(s) == 0 {
		return 0
	}
	slices.Sort(s)
	rank := int(float64(len(s))*p/100+0.999999) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

const b4Starts = 200

// b4Pipeline is one Commands action whose first command writes the shell's clock
// ($EPOCHREALTIME, microseconds, no process started for it) to dir/EXECUTION.
func b4Pipeline(dir string) string {
	file := filepath.Join(dir, `"$CONVEYOR_EXECUTION_ID"`)
	cmd := fmt.Sprintf(`echo $EPOCHREALTIME > %s.tmp && mv %s.tmp %s`, file, file, file)
	b, _ := json.Marshal(cmd)
	return `name: b4
executionMode: PARALLEL
stages:
  - name: Build
    actions:
      - name: Stamp
        category: Build
        provider: Commands
        configuration:
          commands: [` + string(b) + `]
`
}

// epochRealtime parses bash's $EPOCHREALTIME ("SECONDS.MICROSECONDS").
func epochRealtime(s string) (time.Time, error) {
	sec, frac, ok := strings.Cut(strings.TrimSpace(s), ".")
	if !ok {
		sec, frac, ok = strings.Cut(strings.TrimSpace(s), ",") // a locale's decimal comma
	}
	si, err := strconv.ParseInt(sec, 10, 64)
	if err != nil || !ok || len(frac) != 6 {
		return time.Time{}, fmt.Errorf("EPOCHREALTIME %q: want SECONDS.MICROSECONDS", s)
	}
	us, err := strconv.ParseInt(frac, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("EPOCHREALTIME %q: %w", s, err)
	}
	return time.Unix(si, us*1000), nil
}

// waitStamp waits for the stamp file an action writes and returns the time in it. The file
// is polled every 0.5 ms; the figure comes from its content, so the polling does not set the
// measurement's resolution (the stamp's microsecond does), only adds a little load.
func waitStamp(path string, limit time.Duration) (time.Time, error) {
	deadline := time.Now().Add(limit)
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			return epochRealtime(string(b))
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("no stamp %s within %v", path, limit)
		}
		time.Sleep(500 * time.Microsecond)
	}
}

// BenchmarkB4StartLatency is budget B4: how long from an API call starting an execution to
// its first action's process running, through a real server (wired as `conveyor server`
// wires it, in this process, on a loopback TCP port) on a real SQLite data directory.
//
// 200 executions are started one after the other with POST /api/v1/pipelines/b4/executions;
// each one's only action is a Commands action whose first command writes the shell's clock
// ($EPOCHREALTIME, a bash variable: no process is started to read it) to a file. The latency
// is that clock minus the clock just before the POST was sent: it includes the request, the
// start transaction, the engine loop, the lease by a worker, the workspace, and the start of
// bash. Resolution: the microsecond (both clocks are CLOCK_REALTIME on one machine).
//
// Figures: median-ms and p99-ms (target: median < 20 ms); post-ms, the median round trip of
// the POST alone (the answer comes once the execution is committed); baselines in the same
// run: baseline-healthz-ms, the median round trip of GET /healthz, and baseline-bash-ms, the
// median time from starting `bash --noprofile --norc -c 'echo $EPOCHREALTIME'` from Go to its
// command running: the part of the latency that is the shell's.
func BenchmarkB4StartLatency(b *testing.B) {
	ctx := b.Context()
	dir := b.TempDir()
	stamps := filepath.Join(dir, "stamps")
	if err := os.Mkdir(stamps, 0o755); err != nil {
		b.Fatal(err)
	}
	srv, err := startServer(ctx, filepath.Join(dir, "data"))
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := srv.stop(); err != nil {
			b.Error(err)
		}
	}()
	hc := &http.Client{}
	if _, err := srv.call(hc, "PUT", "/api/v1/pipelines/b4", []byte(b4Pipeline(stamps)), http.StatusCreated); err != nil {
		b.Fatal(err)
	}
	startOne := func() (latency, post time.Duration) {
		begin := time.Now()
		body, err := srv.call(hc, "POST", "/api/v1/pipelines/b4/executions", []byte(`{}`), http.StatusCreated)
		if err != nil {
			b.Fatal(err)
		}
		post = time.Since(begin)
		var e struct{ ID string }
		if err := json.Unmarshal(body, &e); err != nil {
			b.Fatal(err)
		}
		stamp, err := waitStamp(filepath.Join(stamps, e.ID), time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		return stamp.Sub(begin), post
	}
	for range 10 { // warm up: page cache, connections, the store's statements
		startOne()
	}

	var lat, posts []time.Duration
	for b.Loop() {
		lat, posts = lat[:0], posts[:0]
		for range b4Starts {
			l, p := startOne()
			lat, posts = append(lat, l), append(posts, p)
		}
	}
	var health, shell []time.Duration
	for range b4Starts {
		begin := time.Now()
		if _, err := srv.call(hc, "GET", "/healthz", nil, http.StatusOK); err != nil {
			b.Fatal(err)
		}
		health = append(health, time.Since(begin))
	}
	for range 50 {
		begin := time.Now()
		out, err := exec.Command("bash", "--noprofile", "--norc", "-c", "echo $EPOCHREALTIME").Output()
		if err != nil {
			b.Fatal(err)
		}
		stamp, err := epochRealtime(string(out))
		if err != nil {
			b.Fatal(err)
		}
		shell = append(shell, stamp.Sub(begin))
	}
	b.ReportMetric(ms(percentile(lat, 50)), "median-ms")
	b.ReportMetric(ms(percentile(lat, 99)), "p99-ms")
	b.ReportMetric(ms(percentile(posts, 50)), "post-ms")
	b.ReportMetric(ms(percentile(health, 50)), "baseline-healthz-ms")
	b.ReportMetric(ms(percentile(shell, 50)), "baseline-bash-ms")
	b.ReportMetric(0, "ns/op")
}

// b5Pipeline is the pipeline of B5's history: Build → Test → Deploy, one Commands action each.
const b5Pipeline = `name: b5
executionMode: PARALLEL
stages:
  - name: Build
    actions:
      - name: Compile
        category: Build
        provider: Commands
        configuration: { commands: ["make build"] }
  - name: Test
    actions:
      - name: Unit
        category: Test
        provider: Commands
        configuration: { commands: ["make test"] }
  - name: Deploy
    actions:
      - name: Release
        category: Deploy
        provider: Commands
        configuration: { commands: ["make deploy"] }
`

// b5Execution is a finished execution as the engine records one: 90 in 100 succeed, 8 fail
// at Test (Deploy never starts), 2 are stopped in Build.
func b5Execution(version int, at time.Time, i int) *engine.Execution {
	e := &engine.Execution{
		ID: uuid.Must(uuid.NewV7()).String(), Pipeline: "b5", PipelineVersion: version,
		Mode: pipeline.Parallel, Status: engine.ExecSucceeded, Type: "Standard",
		Trigger:   engine.Trigger{Type: "API", Detail: "admin"},
		Outputs:   map[string]map[string]string{"BuildVariables": {"VERSION": "1.2." + strconv.Itoa(i)}},
		CreatedAt: at, UpdatedAt: at.Add(90 * time.Second), FinishedAt: at.Add(90 * time.Second),
	}
	stop := -1 // the index of the stage the execution ends in, when it does not succeed
	switch i % 50 {
	case 7, 19, 31, 43:
		e.Status, stop = engine.ExecFailed, 1
		e.Message = "stage Test failed: Unit: exit status 1"
	case 23:
		e.Status, stop = engine.ExecStopped, 0
		e.Message = "stopped by admin"
	}
	for si, name := range []string{"Build", "Test", "Deploy"} {
		action := map[string]string{"Build": "Compile", "Test": "Unit", "Deploy": "Release"}[name]
		st := engine.Stage{Name: name, Actions: []engine.Action{{Name: action, RunOrder: 1}}}
		a := &st.Actions[0]
		if stop >= 0 && si > stop {
			e.Stages = append(e.Stages, st)
			continue
		}
		begin := at.Add(time.Duration(si) * 30 * time.Second)
		st.Status, st.Attempt, st.EnteredAt, st.FinishedAt = engine.StageSucceeded, 1, begin, begin.Add(30*time.Second)
		a.Status, a.Attempt, a.JobID = engine.ActionSucceeded, 1, e.ID+"/"+name+"/"+action+"/1"
		a.Configuration = map[string]any{"commands": []any{"make " + strings.ToLower(name)}}
		a.Summary = "exit status 0"
		a.StartedAt, a.FinishedAt = begin, begin.Add(30*time.Second)
		if si == stop {
			switch e.Status {
			case engine.ExecFailed:
				st.Status, a.Status, a.Failure, a.Message, a.Summary = engine.StageFailed, engine.ActionFailed, "failed", "exit status 1", "exit status 1"
			case engine.ExecStopped:
				st.Status, a.Status, a.Failure, a.Message = engine.StageStopped, engine.ActionFailed, "stopped", "stopped by admin"
			}
		}
		e.Stages = append(e.Stages, st)
	}
	return e
}

// b5Fill adds finished executions of b5 to the data directory's store until it holds total,
// in transactions of 1,000, and returns how many it holds.
func b5Fill(ctx context.Context, dataDir string, have, total int) error {
	eng, err := local.Open(ctx, local.Options{DataDir: dataDir, Workers: 4})
	if err != nil {
		return err
	}
	defer eng.Close()
	p, err := pipeline.Parse("b5.yaml", []byte(b5Pipeline))
	if err != nil {
		return err
	}
	version, err := eng.Loop.Register(ctx, p)
	if err != nil {
		return err
	}
	// A year of history, one execution every few minutes, the newest now.
	step := 365 * 24 * time.Hour / time.Duration(total)
	first := time.Now().Add(-time.Duration(total) * step)
	for n := have; n < total; {
		err := eng.Store.Update(ctx, func(tx store.Tx) error {
			for k := 0; k < 1000 && n+k < total; k++ {
				if err := tx.CreateExecution(ctx, b5Execution(version, first.Add(time.Duration(n+k)*step), n+k)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("fill the history: %w", err)
		}
		n = min(n+1000, total)
	}
	return nil
}

// b5Figures is what a B5 server process reports.
type b5Figures struct {
	StateP50, StateP99 float64 // ms, GET /api/v1/pipelines/b5/state
	ListP50, ListP99   float64 // ms, GET /api/v1/pipelines/b5/executions?limit=50
	HealthP50          float64 // ms, GET /healthz
	RSSMB, HWMMB       float64 // VmRSS and VmHWM at the end
	IdleRSSMB          float64 // VmRSS once the server is open, before the requests
}

// b5Requests is how many times a B5 server process makes each request.
const b5Requests = 300

// b5Child serves dataDir as a server process and measures it.
func b5Child(dataDir string) error {
	ctx := context.Background()
	srv, err := startServer(ctx, dataDir)
	if err != nil {
		return err
	}
	defer srv.stop()
	var f b5Figures
	if f.IdleRSSMB, err = procStatusMB("VmRSS:"); err != nil {
		return err
	}
	hc := &http.Client{}
	measure := func(path string) ([]time.Duration, error) {
		var ds []time.Duration
		for i := range b5Requests + 20 {
			begin := time.Now()
			if _, err := srv.call(hc, "GET", path, nil, http.StatusOK); err != nil {
				return nil, err
			}
			if i >= 20 { // the first ones warm up
				ds = append(ds, time.Since(begin))
			}
		}
		return ds, nil
	}
	state, err := measure("/api/v1/pipelines/b5/state")
	if err != nil {
		return err
	}
	list, err := measure("/api/v1/pipelines/b5/executions?limit=50")
	if err != nil {
		return err
	}
	health, err := measure("/healthz")
	if err != nil {
		return err
	}
	f.StateP50, f.StateP99 = ms(percentile(state, 50)), ms(percentile(state, 99))
	f.ListP50, f.ListP99 = ms(percentile(list, 50)), ms(percentile(list, 99))
	f.HealthP50 = ms(percentile(health, 50))
	if f.RSSMB, err = procStatusMB("VmRSS:"); err != nil {
		return err
	}
	if f.HWMMB, err = procStatusMB("VmHWM:"); err != nil {
		return err
	}
	if err := srv.stop(); err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(f)
}

// procStatusMB reads a "kB" field of /proc/self/status, in MB (2^20 bytes).
func procStatusMB(field string) (float64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/self/status", field)
}

// BenchmarkB5History is budget B5: with 100,000 executions in a pipeline's history, GET
// pipeline state and GET list executions (?limit=50) answer with p99 < 50 ms, and the
// server's RSS does not grow with the history.
//
// The history is written straight into the store (CreateExecution, 1,000 per transaction):
// finished executions of a 3-stage pipeline (Build → Test → Deploy) as the engine records
// them, 90% Succeeded, 8% Failed at Test, 2% Stopped in Build. At 10,000 and at 100,000
// executions, a server process of its own (the test binary started again, wired as
// `conveyor server` is) opens the data directory and makes each request 300 times, one after
// the other, over loopback HTTP, after 20 unmeasured ones.
//
// Figures, per size (10k, 100k): state-p50-ms, state-p99-ms, list-p50-ms, list-p99-ms; rss-MB
// (VmRSS after the requests), hwm-MB (VmHWM), idle-rss-MB (VmRSS once open, before any
// request); baseline-healthz-ms, the median round trip of GET /healthz in the same process;
// and rss-growth-MB, rss-MB at 100k − rss-MB at 10k.
func BenchmarkB5History(b *testing.B) {
	ctx := b.Context()
	var small, large b5Figures
	for b.Loop() {
		dataDir := filepath.Join(b.TempDir(), "data")
		if err := b5Fill(ctx, dataDir, 0, 10_000); err != nil {
			b.Fatal(err)
		}
		small = b5Run(b, dataDir)
		if err := b5Fill(ctx, dataDir, 10_000, 100_000); err != nil {
			b.Fatal(err)
		}
		large = b5Run(b, dataDir)
	}
	for _, s := range []struct {
		name string
		f    b5Figures
	}{{"10k", small}, {"100k", large}} {
		b.ReportMetric(s.f.StateP50, "state-p50-ms-"+s.name)
		b.ReportMetric(s.f.StateP99, "state-p99-ms-"+s.name)
		b.ReportMetric(s.f.ListP50, "list-p50-ms-"+s.name)
		b.ReportMetric(s.f.ListP99, "list-p99-ms-"+s.name)
		b.ReportMetric(s.f.RSSMB, "rss-MB-"+s.name)
		b.ReportMetric(s.f.HWMMB, "hwm-MB-"+s.name)
		b.ReportMetric(s.f.IdleRSSMB, "idle-rss-MB-"+s.name)
		b.ReportMetric(s.f.HealthP50, "baseline-healthz-ms-"+s.name)
	}
	b.ReportMetric(large.RSSMB-small.RSSMB, "rss-growth-MB")
	b.ReportMetric(0, "ns/op")
}

// b5Run serves dataDir in a child process and returns its figures.
func b5Run(b *testing.B, dataDir string) b5Figures {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), b5ChildEnv+"="+dataDir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("B5 server process: %v\n%s", err, stderr.String())
	}
	var f b5Figures
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &f); err != nil {
		b.Fatalf("B5 server process printed %q: %v", out, err)
	}
	return f
}
