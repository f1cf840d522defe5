package shell

import (
	"context"
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/action"
	"github.com/conveyorci/conveyor/internal/run"
)

func TestQuoteRoundTrip(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "plain", "it's", `a "b" $c \d`, "line\nbreak", "'''"} {
		out, err := exec.Command("sh", "-c", "printf %s "+Quote(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("Quote(%q) read back by sh as %q (%v)", s, out, err)
		}
	}
}

func TestEchoAndBrief(t *testing.T) {
	t.Parallel()
	if got := Echo("[2/3] ", "make\nmake test  \n"); got != "[2/3] $ make\n[2/3] > make test" {
		t.Errorf("Echo = %q", got)
	}
	if got := Brief("  go test ./...\nmore"); got != "go test ./... …" {
		t.Errorf("Brief = %q", got)
	}
	if got := Brief(strings.Repeat("x", 200)); len([]rune(got)) != 122 || !strings.HasSuffix(got, " …") {
		t.Errorf("Brief of a long line = %q", got)
	}
	env := []string{"A=1", "HOME=/root", "B=2"}
	if got := SetEnv(env, "HOME", "/h"); !slices.Equal(got, []string{"A=1", "B=2", "HOME=/h"}) || env[1] != "HOME=/root" {
		t.Errorf("SetEnv = %v (input now %v)", got, env)
	}
}

func TestBrief(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"go test ./...":          "go test ./...",
		"  make  \n":             "make",
		"a\nb":                   "a …",
		strings.Repeat("x", 130): strings.Repeat("x", 120) + " …",
	} {
		if got := Brief(in); got != want {
			t.Errorf("Brief(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRunErrorKinds(t *testing.T) {
	t.Parallel()
	live := context.Background()
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for name, c := range map[string]struct {
		ctx, runCtx context.Context
		err         error
		want        action.Failure
	}{
		"not started": {live, live, &run.StartError{Name: "bash", Err: errors.New("no such file")}, action.Errored},
		"stopped":     {done, done, errors.New("signal: killed"), action.Stopped},
		"timed out":   {live, done, errors.New("signal: killed"), action.TimedOut},
		"other":       {live, live, errors.New("wait: broken"), action.Errored},
	} {
		var ae *action.Error
		if err := RunError(c.ctx, c.runCtx, c.err, "run commands", " during command 1 of 1: make", time.Minute); !errors.As(err, &ae) || ae.Kind != c.want {
			t.Errorf("%s: %v, want kind %s", name, err, c.want)
		}
	}
}

func TestCheckEnvAndVars(t *testing.T) {
	t.Parallel()
	for _, bad := range []map[string]string{{"": "x"}, {"A=B": "x"}, {"A": "x\x00y"}} {
		if CheckEnv(bad) == nil {
			t.Errorf("CheckEnv(%q) accepted", bad)
		}
	}
	if err := CheckEnv(map[string]string{"DEPLOY_ENV": "prod"}); err != nil {
		t.Error(err)
	}
	ws := &action.Workspace{Dir: "/w", Inputs: map[string]string{"Src": "/w", "lib-x": "/w.in/lib-x"}}
	vars := ConveyorVars(&action.Job{ExecutionID: "e", Pipeline: "p", Stage: "S", Action: "A", Attempt: 2}, ws)
	for _, want := range []string{"CONVEYOR_ATTEMPT=2", "CONVEYOR_SRC_DIR=/w", "CONVEYOR_SRC_DIR_lib_x=/w.in/lib-x"} {
		if !slices.Contains(vars, want) {
			t.Errorf("ConveyorVars lacks %s: %v", want, vars)
		}
	}
	if got := Writable(ws, "/s", "/h"); !slices.Equal(got, []string{"/w", "/s", "/h", "/w.in/lib-x"}) {
		t.Errorf("Writable = %v", got)
	}
}
