package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// serverProc is a `conveyor server` process started by a test.
type serverProc struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	url    string
	done   chan error
}

var (
	serverURLRE   = regexp.MustCompile(`listening on (https?://127\.0\.0\.1:[1-9][0-9]*)`)
	serverTokenRE = regexp.MustCompile(`admin token \(shown once\): (cvy_[A-Za-z0-9_-]+)`)
)

// runServer starts `conveyor server --listen 127.0.0.1:0 --data-dir dir` and waits for the
// address it prints.
func runServer(t testing.TB, dir string, env ...string) *serverProc {
	t.Helper()
	return runServerArgs(t, dir, nil, env...)
}

// runServerArgs is runServer with more arguments for the server.
func runServerArgs(t testing.TB, dir string, args []string, env ...string) *serverProc {
	t.Helper()
	p := &serverProc{stderr: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(conveyorBin, append([]string{"server", "--listen", "127.0.0.1:0", "--data-dir", dir}, args...)...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start server: %v", err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	deadline := time.After(30 * time.Second)
	for {
		if m := serverURLRE.FindStringSubmatch(p.stderr.String()); m != nil {
			p.url = m[1]
			return p
		}
		select {
		case err := <-p.done:
			t.Fatalf("server exited (%v) before listening:\n%s", err, p.stderr)
		case <-deadline:
			t.Fatalf("server did not print its address:\n%s", p.stderr)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM and returns the exit status.
func (p *serverProc) stop(t *testing.T) int {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("signal server: %v", err)
	}
	select {
	case err := <-p.done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatalf("wait for server: %v", err)
		}
		return 0
	case <-time.After(60 * time.Second):
		t.Fatalf("server did not stop after SIGTERM:\n%s", p.stderr)
	}
	return -1
}

func httpCall(t testing.TB, method, url, token, contentType string, body []byte, want int, out any) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, url, resp.StatusCode, want, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, url, data, err)
		}
	}
}

func TestServer(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	srv := runServer(t, dir)
	m := serverTokenRE.FindStringSubmatch(srv.stderr.String())
	if m == nil {
		t.Fatalf("no admin token printed:\n%s", srv.stderr)
	}
	token := m[1]

	// A second server on the same data directory is refused.
	code, out := conveyor(t, "server", "--listen", "127.0.0.1:0", "--data-dir", dir)
	if code != 2 || !strings.Contains(out, "another conveyor process uses") {
		t.Fatalf("second server: exit %d:\n%s", code, out)
	}

	httpCall(t, "GET", srv.url+"/readyz", "", "", nil, 200, nil)
	httpCall(t, "GET", srv.url+"/api/v1/pipelines", "", "", nil, 401, nil)
	pipe := `name: hello
stages:
  - name: Build
    actions:
      - name: Say
        category: Build
        provider: Commands
        configuration:
          commands: ["echo hello from the server"]
`
	httpCall(t, "PUT", srv.url+"/api/v1/pipelines/hello", token, "application/yaml", []byte(pipe), 201, nil)
	var exec struct {
		ID     string
		Status string
	}
	httpCall(t, "POST", srv.url+"/api/v1/pipelines/hello/executions", token, "application/json", []byte(`{}`), 201, &exec)
	deadline := time.Now().Add(30 * time.Second)
	for exec.Status != "Succeeded" {
		if time.Now().After(deadline) || exec.Status == "Failed" {
			t.Fatalf("execution %s: %s\n%s", exec.ID, exec.Status, srv.stderr)
		}
		time.Sleep(20 * time.Millisecond)
		httpCall(t, "GET", srv.url+"/api/v1/executions/"+exec.ID, token, "", nil, 200, &exec)
	}
	if code := srv.stop(t); code != 0 {
		t.Fatalf("exit after SIGTERM: %d\n%s", code, srv.stderr)
	}
	if !strings.Contains(srv.stderr.String(), "draining") {
		t.Errorf("no drain logged:\n%s", srv.stderr)
	}

	// A restart on the same data directory keeps the token (not shown again) and the history.
	again := runServer(t, dir)
	if serverTokenRE.MatchString(again.stderr.String()) {
		t.Errorf("admin token shown again on restart:\n%s", again.stderr)
	}
	var got struct {
		ID     string
		Status string
	}
	httpCall(t, "GET", again.url+"/api/v1/executions/"+exec.ID, token, "", nil, 200, &got)
	if got.ID != exec.ID || got.Status != "Succeeded" {
		t.Fatalf("after restart: %+v", got)
	}
	if code := again.stop(t); code != 0 {
		t.Fatalf("exit of the restarted server: %d\n%s", code, again.stderr)
	}

	// CONVEYOR_ADMIN_TOKEN replaces the admin token.
	env := runServer(t, dir, "CONVEYOR_ADMIN_TOKEN=cvy_from_the_environment")
	httpCall(t, "GET", env.url+"/api/v1/pipelines", "cvy_from_the_environment", "", nil, 200, nil)
	httpCall(t, "GET", env.url+"/api/v1/pipelines", token, "", nil, 401, nil)
	if code := env.stop(t); code != 0 {
		t.Fatalf("exit: %d\n%s", code, env.stderr)
	}
}

// TestServerApplyAtStart: --apply stores a pipeline when the server starts and --start starts
// it; an invalid file stops the server before it starts (exit 2), and --start needs --apply.
func TestServerApplyAtStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := writeFile(t, dir, "pipeline.yaml", `name: boot
stages:
  - name: Build
    actions:
      - name: Make
        category: Build
        provider: Commands
        configuration: { commands: ["echo made"] }
`)
	p := runServerArgs(t, filepath.Join(dir, "data"), []string{"--apply", file, "--start"}, "CONVEYOR_ADMIN_TOKEN=cvy_test")
	var list struct {
		Executions []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"executions"`
	}
	waitFor(t, 60*time.Second, "the execution started by --start to succeed", func() bool {
		httpCall(t, "GET", p.url+"/api/v1/pipelines/boot/executions", "cvy_test", "", nil, http.StatusOK, &list)
		return len(list.Executions) == 1 && list.Executions[0].Status == "Succeeded"
	})
	if !strings.Contains(p.stderr.String(), "pipeline boot applied, version 1") {
		t.Errorf("the server did not say it applied the pipeline:\n%s", p.stderr)
	}
	if code := p.stop(t); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}

	bad := writeFile(t, dir, "bad.yaml", "name: bad\nstages: []\n")
	code, out := conveyor(t, "server", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "other"), "--apply", bad)
	wantExit(t, code, 2, out)
	if !strings.Contains(out, "bad.yaml:") {
		t.Errorf("the invalid file is not named:\n%s", out)
	}
	code, out = conveyor(t, "server", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "other"), "--start")
	wantExit(t, code, 2, out)
}
