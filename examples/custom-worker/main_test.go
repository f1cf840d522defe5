package main

// The example worker against a real server: the API handlers over a real engine (an SQLite
// store, in-process workers for the built-in providers), served on 127.0.0.1.

import (
	"context"
	"io"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/api"
	"github.com/conveyorci/conveyor/internal/local"
	"github.com/conveyorci/conveyor/internal/store"
	"github.com/conveyorci/conveyor/pkg/client"
)

const adminToken = "cvy_example-admin-token"

// serve starts a server and returns its URL and an admin client of it.
func serve(t *testing.T) (string, *client.Client) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e, err := local.Open(ctx, local.Options{DataDir: t.TempDir(), Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Store.Update(ctx, func(tx store.Tx) error {
		return tx.PutToken(ctx, "admin", api.HashToken(adminToken), time.Now())
	}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	srv := httptest.NewServer(api.New(api.Options{Loop: e.Loop, Store: e.Store, Artifacts: e.Artifacts}))
	t.Cleanup(func() {
		srv.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("engine: %v", err)
		}
		e.Close()
	})
	c, err := client.New(srv.URL, adminToken)
	if err != nil {
		t.Fatal(err)
	}
	return srv.URL, c
}

func TestExamplePipelineSucceeds(t *testing.T) {
	url, c := serve(t)
	ctx := context.Background()
	if _, _, err := c.PutActionType(ctx, client.CustomActionType{Category: "Deploy", Provider: "Echo",
		Properties: []client.ActionTypeProperty{{Name: "message", Required: true}}}); err != nil {
		t.Fatal(err)
	}
	tok, err := c.CreateToken(ctx, client.NewToken{User: "admin", Scope: client.ScopeWorker})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- run(wctx, url, tok.Secret, io.Discard) }()
	defer func() {
		stop()
		if err := <-ran; err != nil {
			t.Errorf("worker: %v", err)
		}
	}()

	file, err := os.ReadFile("pipeline.yaml")
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.ApplyPipeline(ctx, "echo-demo", file, "", true)
	if err != nil {
		t.Fatal(err)
	}
	var e *client.Execution
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if e, err = c.Execution(ctx, res.Execution.ID); err != nil {
			t.Fatal(err)
		}
		if e.Status != "InProgress" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the execution is still %s after a minute", e.Status)
		}
	}
	if e.Status != "Succeeded" {
		t.Fatalf("execution %s: %s", e.Status, e.Message)
	}
	a := e.Stages[0].Actions[0]
	if a.Summary != "echoed: hello from a custom worker" || a.ExternalID != "echo-"+e.ID {
		t.Fatalf("echo action: %+v", a)
	}
}

func TestRunNeedsAToken(t *testing.T) {
	if err := run(context.Background(), "http://127.0.0.1:1", "", io.Discard); err == nil {
		t.Fatal("no error without a token")
	}
}
