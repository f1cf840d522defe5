package local_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/audit"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/local"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/store"
)

const secretsPipeline = `name: secrets
secrets: [deploy-key, missing-one]
stages:
  - name: Build
    actions:
      - name: Show
        category: Build
        provider: Commands
        environment:
          TOKEN: { secret: deploy-key }
        configuration:
          commands: ['test -n "$TOKEN"']
  - name: Deploy
    actions:
      - name: Ship
        category: Deploy
        provider: Commands
        environment:
          TOKEN: { secret: missing-one }
        configuration:
          commands: ["true"]
`

// TestSecretUseIsAudited runs a pipeline whose actions take secrets and checks that each
// use is in the audit log, by the worker, with the job and the secret's name but never its
// value, and a lookup that fails too.
func TestSecretUseIsAudited(t *testing.T) {
	t.Parallel()
	const value = "s3cret-value-never-logged"
	key := bytes.Repeat([]byte{9}, audit.KeySize)
	log, err := audit.New(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	eng, err := local.Open(ctx, local.Options{DataDir: t.TempDir(), Workers: 1, Secrets: local.Secrets{"deploy-key": value}, Audit: log})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("engine: %v", err)
		}
	}()
	p, err := pipeline.Parse("pipeline.yaml", []byte(secretsPipeline))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Loop.Register(ctx, p); err != nil {
		t.Fatal(err)
	}
	updates, unsubscribe := eng.Loop.Subscribe()
	defer unsubscribe()
	if _, err := eng.Loop.Start(ctx, "start:e1", "secrets", "e1", engine.StartRequest{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(30 * time.Second)
	for e := (*engine.Execution)(nil); e == nil || !e.Status.Terminal(); {
		select {
		case e = <-updates:
		case <-deadline:
			t.Fatalf("execution did not finish; last state %+v", e)
		}
		if e.Status == engine.ExecSucceeded {
			t.Fatalf("execution succeeded although action Ship takes a secret without a value")
		}
	}

	var records []audit.Record
	err = eng.Store.View(ctx, func(r store.Reader) error {
		if records, err = audit.List(ctx, r, store.AuditFilter{Ascending: true}); err != nil {
			return err
		}
		_, err := audit.Verify(ctx, r, key)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(records) != 2 {
		t.Fatalf("audit entries: %d, want 2 (one per action taking a secret): %+v", len(records), records)
	}
	for i, want := range []struct{ action, secret, outcome string }{
		{"Show", "deploy-key", audit.OK},
		{"Ship", "missing-one", "error: "},
	} {
		r := records[i]
		job := engine.JobID("e1", map[string]string{"Show": "Build", "Ship": "Deploy"}[want.action], want.action, 1)
		if r.Action != "secret.use" || !strings.HasPrefix(r.Actor, "worker:") || r.Target != "pipeline/secrets/execution/e1" ||
			!strings.HasPrefix(r.Outcome, want.outcome) {
			t.Errorf("entry %d: %s by %s on %s: %s", i, r.Action, r.Actor, r.Target, r.Outcome)
		}
		for _, s := range []string{`"job":"` + job + `"`, `"action":"` + want.action + `"`, `"secrets":["` + want.secret + `"]`} {
			if !strings.Contains(string(r.Details), s) {
				t.Errorf("entry %d details %s lack %s", i, r.Details, s)
			}
		}
	}
	for _, r := range records {
		if strings.Contains(string(r.Details)+r.Outcome, value) {
			t.Errorf("entry %d shows the secret's value: %s %s", r.Seq, r.Outcome, r.Details)
		}
	}
}
