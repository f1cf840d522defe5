package main

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/api"
	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/internal/testenv"
)

// TestScaleOut is the chaos test of issue 7, bounded: PostgreSQL and MinIO, two servers
// that run no action themselves, three remote workers; 200 executions in flight while one worker
// and one server are killed with SIGKILL and started again. Every execution must succeed,
// every artifact must read back and verify, no action attempt may overlap another attempt
// of the same action, and the audit chain must verify.
func TestScaleOut(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts PostgreSQL, MinIO, two servers and three workers")
	}
	dsn := testenv.Postgres(t)
	bucket := testenv.S3(t)
	access, secret := testenv.S3Credentials()
	key := func() string {
		b := make([]byte, 32)
		rand.Read(b)
		return base64.StdEncoding.EncodeToString(b)
	}
	const admin = "cvy_scale_out_admin_token"
	env := []string{"AWS_ACCESS_KEY_ID=" + access, "AWS_SECRET_ACCESS_KEY=" + secret,
		"CONVEYOR_MASTER_KEY=k1:" + key(), "CONVEYOR_AUDIT_KEY=" + key(), "CONVEYOR_ADMIN_TOKEN=" + admin}
	// Replicas share the store, the artifacts and the keys; each has its own data directory,
	// where the approval key (job tokens derive from it) must be the same too.
	approval := make([]byte, 32)
	rand.Read(approval)
	root := t.TempDir()
	dirs := []string{filepath.Join(root, "server1"), filepath.Join(root, "server2")}
	for _, d := range dirs {
		os.MkdirAll(d, 0o700)
		os.WriteFile(filepath.Join(d, api.ApprovalKeyFile), approval, 0o600)
	}
	args := []string{"--store", dsn, "--artifacts", bucket, "--workers", "0", "--worker-lease", "3s", "--no-triggers", "--sandbox", "off"}
	servers := []*serverProc{runServerArgs(t, dirs[0], args, env...), runServerArgs(t, dirs[1], args, env...)}
	urls := servers[0].url + "," + servers[1].url

	var tok struct{ Token string }
	httpCall(t, "POST", servers[0].url+"/api/v1/tokens", admin, "application/json",
		[]byte(`{"user":"admin","scope":"worker","description":"scale-out test"}`), 201, &tok)
	runs := filepath.Join(root, "runs")
	os.MkdirAll(runs, 0o755)
	startWorker := func(name string) *proc {
		return start(t, "", "worker", "--server", urls, "--token", tok.Token, "--name", name, "--concurrency", "4",
			"--work-dir", filepath.Join(root, name), "--sandbox", "off")
	}
	workers := []*proc{startWorker("w1"), startWorker("w2"), startWorker("w3")}

	// Each attempt writes when it started and ended: attempts of one action must not overlap.
	record := `f=` + runs + `/$CONVEYOR_EXECUTION_ID.$CONVEYOR_STAGE.$CONVEYOR_ATTEMPT.$$; date +%s%N > $f; `
	pipe := `name: scale
executionMode: PARALLEL
stages:
  - name: Build
    actions:
      - name: Make
        category: Build
        provider: Commands
        outputArtifacts: [{name: out, files: ["out/**"]}]
        configuration:
          commands:
            - ` + record + `mkdir out && echo "$CONVEYOR_EXECUTION_ID" > out/id && sleep 0.3; date +%s%N >> $f
  - name: Test
    actions:
      - name: Check
        category: Test
        provider: Commands
        inputArtifacts: [out]
        configuration:
          commands:
            - ` + record + `test "$(cat out/id)" = "$CONVEYOR_EXECUTION_ID" && sleep 0.2; date +%s%N >> $f
`
	httpCall(t, "PUT", servers[0].url+"/api/v1/pipelines/scale", admin, "application/yaml", []byte(pipe), 201, nil)

	const n = 200
	ids := make([]string, n)
	for i := range n {
		var e struct{ ID string }
		httpCall(t, "POST", servers[i%2].url+"/api/v1/pipelines/scale/executions", admin, "application/json", []byte(`{}`), 201, &e)
		ids[i] = e.ID
	}

	// Mid-run: kill a worker and a server, then start them again.
	waitFor(t, 30*time.Second, "some actions to finish", func() bool {
		entries, _ := os.ReadDir(runs)
		return len(entries) >= n/4
	})
	workers[0].cmd.Process.Signal(syscall.SIGKILL)
	servers[1].cmd.Process.Signal(syscall.SIGKILL)
	<-servers[1].done
	time.Sleep(500 * time.Millisecond)
	servers[1] = runServerArgs(t, dirs[1], args, env...)
	workers[0] = startWorker("w1-again")

	statuses := map[string]string{}
	waitFor(t, 3*time.Minute, "every execution to finish", func() bool {
		done := 0
		for _, id := range ids {
			var e struct{ Status string }
			httpCall(t, "GET", servers[1].url+"/api/v1/executions/"+id, admin, "", nil, 200, &e)
			statuses[id] = e.Status
			if e.Status == "Succeeded" || e.Status == "Failed" || e.Status == "Stopped" || e.Status == "Cancelled" {
				done++
			}
		}
		return done == n
	})
	for _, id := range ids {
		if statuses[id] != "Succeeded" {
			var e map[string]any
			httpCall(t, "GET", servers[0].url+"/api/v1/executions/"+id, admin, "", nil, 200, &e)
			t.Errorf("execution %s: %s: %v", id, statuses[id], e["stages"])
		}
	}

	// Every artifact reads back through either server, verifies against its digest, and
	// holds what its execution wrote.
	for i, id := range ids {
		var e struct{ Artifacts map[string]artifact.Ref }
		httpCall(t, "GET", servers[i%2].url+"/api/v1/executions/"+id, admin, "", nil, 200, &e)
		req, _ := http.NewRequest("GET", servers[(i+1)%2].url+"/api/v1/executions/"+id+"/artifacts/out", nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("download artifact of %s: %v %v", id, err, resp)
		}
		dir := filepath.Join(t.TempDir(), "out")
		err = artifact.Extract(t.Context(), resp.Body, e.Artifacts["out"], dir)
		resp.Body.Close()
		if err != nil {
			t.Errorf("artifact of %s: %v", id, err)
			continue
		}
		if got := readFile(t, filepath.Join(dir, "out", "id")); strings.TrimSpace(got) != id {
			t.Errorf("artifact of %s holds %q", id, got)
		}
	}

	// No two attempts of one action ran at the same time.
	type span struct{ start, end int64 }
	spans := map[string][]span{}
	entries, _ := os.ReadDir(runs)
	for _, e := range entries {
		parts := strings.Split(e.Name(), ".")
		b, _ := os.ReadFile(filepath.Join(runs, e.Name()))
		lines := strings.Fields(string(b))
		s := span{end: -1}
		s.start, _ = strconv.ParseInt(lines[0], 10, 64)
		if len(lines) > 1 {
			s.end, _ = strconv.ParseInt(lines[1], 10, 64)
		}
		key := parts[0] + "." + parts[1]
		spans[key] = append(spans[key], s)
	}
	retried := 0
	for key, ss := range spans {
		if len(ss) > 1 {
			retried++
		}
		sort.Slice(ss, func(i, j int) bool { return ss[i].start < ss[j].start })
		for i := 1; i < len(ss); i++ {
			if prev := ss[i-1]; prev.end >= 0 && ss[i].start < prev.end {
				t.Errorf("%s: an attempt started at %d while another ran until %d", key, ss[i].start, prev.end)
			}
		}
	}

	// The killed worker was busy (4 slots, dozens of actions queued): what it ran was lost
	// and run again elsewhere.
	if retried == 0 {
		t.Errorf("no action ran twice: the kills hit nothing")
	}

	var verify struct {
		OK      bool
		Entries int
	}
	httpCall(t, "GET", servers[0].url+"/api/v1/audit/verify", admin, "", nil, 200, &verify)
	if !verify.OK || verify.Entries == 0 {
		t.Errorf("audit verify: %+v", verify)
	}
	t.Logf("%d executions on 2 servers and 3 workers, one of each killed: %d actions lost and run again", n, retried)
	for _, w := range workers[1:] {
		w.signal(syscall.SIGTERM)
		if code := w.wait(30 * time.Second); code != 0 {
			t.Errorf("worker exit after SIGTERM: %d\n%s", code, w.out.String())
		}
	}
}

// TestEventsAcrossServers: with two servers on one PostgreSQL, the live stream of one hears
// the executions the other changes (through the store's notifications), each state once.
func TestEventsAcrossServers(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts PostgreSQL and two servers")
	}
	dsn := testenv.Postgres(t)
	key := make([]byte, 32)
	rand.Read(key)
	const admin = "cvy_events_across_servers_admin"
	env := []string{"CONVEYOR_MASTER_KEY=k1:" + base64.StdEncoding.EncodeToString(key), "CONVEYOR_ADMIN_TOKEN=" + admin}
	approval := make([]byte, 32)
	rand.Read(approval)
	var servers []*serverProc
	for _, name := range []string{"a", "b"} {
		dir := filepath.Join(t.TempDir(), name)
		os.MkdirAll(dir, 0o700)
		os.WriteFile(filepath.Join(dir, api.ApprovalKeyFile), approval, 0o600)
		// Server b runs no action: everything it streams was applied by a.
		workers := map[string]string{"a": "2", "b": "0"}[name]
		servers = append(servers, runServerArgs(t, dir, []string{"--store", dsn, "--workers", workers, "--no-triggers", "--sandbox", "off"}, env...))
	}
	httpCall(t, "PUT", servers[0].url+"/api/v1/pipelines/across", admin, "application/yaml", []byte(`name: across
stages:
  - name: Build
    actions:
      - name: Say
        category: Build
        provider: Commands
        configuration: { commands: ["echo hello"] }
  - name: Ship
    actions:
      - name: Say
        category: Deploy
        provider: Commands
        configuration: { commands: ["echo shipped"] }
`), 201, nil)

	req, _ := http.NewRequest("GET", servers[1].url+"/api/v1/events?pipeline=across", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("events on server b: %v %v", err, resp)
	}
	defer resp.Body.Close()
	var e struct{ ID string }
	httpCall(t, "POST", servers[0].url+"/api/v1/pipelines/across/executions", admin, "application/json", []byte(`{}`), 201, &e)

	got := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
				got <- line
			} else if sc.Text() == "event: pipeline" {
				got <- "pipeline"
			}
		}
		close(got)
	}()
	ids := map[string]bool{}
	deadline := time.After(30 * time.Second)
wait:
	for {
		select {
		case id, ok := <-got:
			if !ok {
				t.Fatalf("stream ended; events %v", ids)
			}
			if id == "pipeline" {
				continue
			}
			if !strings.HasPrefix(id, e.ID+"@") {
				t.Fatalf("event %s: not of execution %s", id, e.ID)
			}
			if ids[id] {
				t.Fatalf("state %s sent twice", id)
			}
			ids[id] = true
			var x struct{ Status string }
			httpCall(t, "GET", servers[1].url+"/api/v1/executions/"+e.ID, admin, "", nil, 200, &x)
			if x.Status == "Succeeded" && len(ids) >= 2 {
				break wait // the start and the end reached b's stream
			}
		case <-deadline:
			t.Fatalf("server b's stream heard %d states of an execution server a ran", len(ids))
		}
	}

	// A transition disabled through server a reaches the pipeline's stream on server b.
	httpCall(t, "PUT", servers[0].url+"/api/v1/pipelines/across/stages/Ship/transition", admin, "application/json",
		[]byte(`{"enabled": false, "reason": "freeze"}`), 200, nil)
	for {
		select {
		case ev, ok := <-got:
			if !ok {
				t.Fatal("stream ended before the transition's pipeline event")
			}
			if ev == "pipeline" {
				return
			}
		case <-time.After(15 * time.Second):
			t.Fatal("server b's stream of the pipeline heard nothing of the transition disabled through server a")
		}
	}
}
