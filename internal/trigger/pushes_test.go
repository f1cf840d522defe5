package trigger

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/pipeline"
)

// TestPushes decides pushes whose payload listed no files: git diff on a bare clone of a
// real repository (fetched over file://, as from a remote) applies the filePaths filter.
func TestPushes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	dir, first := newRepo(t)
	docs := commit(t, dir, "docs/guide.md", "guide\n")
	src := commit(t, dir, "src/main.go", "package main\n")
	repo := "file://" + dir
	b.apply(`name: app
stages:
  - name: Source
    actions:
      - name: Checkout
        category: Source
        provider: Git
        configuration: { repository: "` + repo + `" }
        outputArtifacts: [Src]
`)
	type decided struct {
		e       *engine.Execution
		started bool
		err     error
	}
	done := make(chan decided, 4)
	s := NewPushes(PushesOptions{Options: Options{Loop: b.eng.Loop, Store: b.eng.Store}, Dir: t.TempDir(),
		Done: func(_ Push, e *engine.Execution, started bool, err error) { done <- decided{e, started, err} }})
	run(t, s.Run)
	filter := &pipeline.Filter{Include: []string{"src/**"}}
	push := func(from, to string) decided {
		t.Helper()
		p := Push{Cause: Cause{Pipeline: "app", Trigger: engine.Trigger{Type: "Webhook"},
			Sources: map[string]engine.SourceOverride{"Source.Checkout": {Revision: to}}, Key: "git:app:Source.Checkout:" + to},
			Repository: repo, Ref: "refs/heads/main", From: from, To: to,
			Match: func(files []string) bool { return MatchAny(filter, files) }}
		if err := s.Enqueue(p); err != nil {
			t.Fatal(err)
		}
		return <-done
	}
	if d := push(first, docs); d.started || d.err != nil {
		t.Errorf("a push of docs only: started %v, %v", d.started, d.err)
	}
	d := push(docs, src)
	if !d.started || d.err != nil || d.e.Sources["Source.Checkout"].Revision != src {
		t.Fatalf("a push of src: %+v", d)
	}
	if again := push(docs, src); again.started || again.e == nil || again.e.ID != d.e.ID {
		t.Errorf("the same push again: %+v, want execution %s", again, d.e.ID)
	}
	// Both commits in one push: one file passes.
	if both := push(first, src); both.e == nil || both.e.ID != d.e.ID {
		t.Errorf("first..src: %+v, want execution %s (the same commit)", both, d.e.ID)
	}
	if n := len(b.executions("app")); n != 1 {
		t.Errorf("%d executions, want 1", n)
	}
	// A commit the repository does not have: files unknown, the push starts rather than
	// being missed.
	missing := "0123456789abcdef0123456789abcdef01234567"
	if d := push(src, missing); d.err != nil || !d.started {
		t.Errorf("unknown commit: %+v", d)
	}
}

// TestPushesCredentials decides a push to a private repository (git http-backend behind
// HTTP Basic authentication): the bare clone is fetched with the source's token, read from
// the pipeline's secrets, so its filePaths filter applies (a push of docs only starts
// nothing; without the token the files would be unknown and it would start).
func TestPushesCredentials(t *testing.T) {
	t.Parallel()
	b := setup(t)
	dir, first := newRepo(t)
	docs := commit(t, dir, "docs/guide.md", "guide\n")
	src := commit(t, dir, "src/main.go", "package main\n")
	repo := servePrivate(t, dir, func() string { return "t0ken-value" })
	b.apply(`name: app
secrets: [GIT_TOKEN]
stages:
  - name: Source
    actions:
      - name: Checkout
        category: Source
        provider: Git
        configuration: { repository: "` + repo + `", username: ci-bot, token: { secret: GIT_TOKEN } }
        outputArtifacts: [Src]
`)
	var reads atomic.Int64
	secrets := func(ctx context.Context, pipeline string, names []string) (map[string]string, error) {
		reads.Add(1)
		return map[string]string{"GIT_TOKEN": "t0ken-value"}, nil
	}
	type decided struct {
		started bool
		err     error
	}
	done := make(chan decided, 2)
	s := NewPushes(PushesOptions{Options: Options{Loop: b.eng.Loop, Store: b.eng.Store, Secrets: secrets}, Dir: t.TempDir(),
		Done: func(_ Push, _ *engine.Execution, started bool, err error) { done <- decided{started, err} }})
	run(t, s.Run)
	filter := &pipeline.Filter{Include: []string{"src/**"}}
	push := func(from, to string) decided {
		t.Helper()
		p := Push{Cause: Cause{Pipeline: "app", Trigger: engine.Trigger{Type: "Webhook"},
			Sources: map[string]engine.SourceOverride{"Source.Checkout": {Revision: to}}, Key: "git:app:Source.Checkout:" + to},
			Repository: repo, Ref: "refs/heads/main", From: from, To: to,
			Match: func(files []string) bool { return MatchAny(filter, files) }}
		if err := s.Enqueue(p); err != nil {
			t.Fatal(err)
		}
		return <-done
	}
	if d := push(first, docs); d.started || d.err != nil {
		t.Errorf("a push of docs only to the private repository: started %v, %v", d.started, d.err)
	}
	if d := push(docs, src); !d.started || d.err != nil {
		t.Errorf("a push of src: started %v, %v", d.started, d.err)
	}
	if n := reads.Load(); n != 1 {
		t.Errorf("secrets read %d times for two pushes, want once (kept)", n)
	}
}
