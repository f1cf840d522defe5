package main

import (
	"net/http"
	"path/filepath"
	"testing"
	"time"
)

// TestServerUpstreamTrigger: through the built binary, a success of pipeline up starts
// pipeline down (pipelineSucceeded trigger) once; applying the pipelines starts nothing.
func TestServerUpstreamTrigger(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	up := writeFile(t, dir, "up.yaml", `name: up
stages:
  - name: Build
    actions:
      - { name: Make, category: Build, provider: Commands, configuration: { commands: ["echo up"] } }
`)
	down := writeFile(t, dir, "down.yaml", `name: down
triggers:
  - upstream: { pipeline: up }
stages:
  - name: Deploy
    actions:
      - { name: Ship, category: Deploy, provider: Commands, configuration: { commands: ["echo down"] } }
`)
	p := runServerArgs(t, filepath.Join(dir, "data"), []string{"--sandbox", "off", "--apply", up, "--apply", down}, "CONVEYOR_ADMIN_TOKEN=cvy_test")
	type list struct {
		Executions []struct {
			ID      string `json:"id"`
			Status  string `json:"status"`
			Trigger struct {
				Type   string `json:"type"`
				Detail string `json:"detail"`
			} `json:"trigger"`
		} `json:"executions"`
	}
	executions := func(name string) list {
		var l list
		httpCall(t, "GET", p.url+"/api/v1/pipelines/"+name+"/executions", "cvy_test", "", nil, http.StatusOK, &l)
		return l
	}
	waitFor(t, 30*time.Second, "the pipelines to be applied", func() bool {
		var pl struct {
			Pipelines []any `json:"pipelines"`
		}
		httpCall(t, "GET", p.url+"/api/v1/pipelines", "cvy_test", "", nil, http.StatusOK, &pl)
		return len(pl.Pipelines) == 2
	})
	if n := len(executions("down").Executions); n != 0 {
		t.Fatalf("down: %d executions before up ran", n)
	}
	var started struct {
		ID string `json:"id"`
	}
	httpCall(t, "POST", p.url+"/api/v1/pipelines/up/executions", "cvy_test", "application/json", []byte(`{}`), 201, &started)
	var l list
	waitFor(t, 60*time.Second, "down to run after up", func() bool {
		l = executions("down")
		return len(l.Executions) == 1 && l.Executions[0].Status == "Succeeded"
	})
	if tr := l.Executions[0].Trigger; tr.Type != "PipelineSucceeded" || tr.Detail != "up execution "+started.ID+" succeeded" {
		t.Errorf("down's trigger: %+v", tr)
	}
	if code := p.stop(t); code != 0 {
		t.Errorf("exit %d after SIGTERM:\n%s", code, p.stderr)
	}
}
