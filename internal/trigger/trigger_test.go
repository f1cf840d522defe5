package trigger

import (
	"testing"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/local"
	"github.com/conveyorci/conveyor/internal/pipeline"
)

func TestMatch(t *testing.T) {
	t.Parallel()
	f := &pipeline.Filter{Include: []string{"main", "release/**"}, Exclude: []string{"release/old-*"}}
	for value, want := range map[string]bool{
		"main": true, "release/1.2": true, "release/2/hotfix": true, "release/old-1": false,
		"feature/x": false, "mainline": false, "": false,
	} {
		if got := Match(f, value); got != want {
			t.Errorf("Match(%q) = %v, want %v", value, got, want)
		}
	}
	if !Match(nil, "anything") || !Match(&pipeline.Filter{Exclude: []string{"tmp/*"}}, "src/a.go") {
		t.Error("no include patterns must pass what no exclude catches")
	}
	paths := &pipeline.Filter{Include: []string{"src/**/*.go", "go.mod"}, Exclude: []string{"**/*_test.go"}}
	for _, c := range []struct {
		files []string
		want  bool
	}{
		{[]string{"README.md", "src/a/b.go"}, true},
		{[]string{"src/a/b_test.go"}, false},
		{[]string{"go.mod"}, true},
		{[]string{"docs/x.md"}, false},
		{nil, false},
	} {
		if got := MatchAny(paths, c.files); got != c.want {
			t.Errorf("MatchAny(%v) = %v, want %v", c.files, got, c.want)
		}
	}
	if !Glob("**", "a/b/c") || !Glob("a/**/c", "a/c") || Glob("a/[", "a/[") {
		t.Error("Glob: ** spans zero or more elements; a malformed pattern matches nothing")
	}
}

// TestStartOncePerKey: the same cause reported twice starts one execution, pinned to its
// revision; another key starts another.
func TestStartOncePerKey(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	eng, err := local.Open(ctx, local.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	p, err := pipeline.Parse("p.yaml", []byte(`name: app
stages:
  - name: Source
    actions:
      - { name: Checkout, category: Source, provider: Git, configuration: { repository: . }, outputArtifacts: [Src] }
  - name: Build
    actions:
      - { name: Make, category: Build, provider: Commands, inputArtifacts: [Src], configuration: { commands: ["true"] } }
`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Loop.Register(ctx, p); err != nil {
		t.Fatal(err)
	}
	c := Cause{Pipeline: "app", Trigger: engine.Trigger{Type: "Webhook", Detail: "push by ada to main"},
		Sources: map[string]engine.SourceOverride{"Source.Checkout": {Revision: "0123456789abcdef0123456789abcdef01234567"}},
		Key:     "git:app:Source.Checkout:0123456789abcdef0123456789abcdef01234567"}
	first, started, err := Start(ctx, eng.Loop, c)
	if err != nil || !started {
		t.Fatalf("first Start: started %v, %v", started, err)
	}
	if got := first.Sources["Source.Checkout"].Revision; got != "0123456789abcdef0123456789abcdef01234567" || first.Trigger.Type != "Webhook" {
		t.Errorf("execution pinned to %q, trigger %+v", got, first.Trigger)
	}
	again, started, err := Start(ctx, eng.Loop, c)
	if err != nil || started || again.ID != first.ID {
		t.Errorf("same key again: started %v, execution %s (first %s), %v; want the first, not started", started, again.ID, first.ID, err)
	}
	c.Key += "-other"
	other, started, err := Start(ctx, eng.Loop, c)
	if err != nil || !started || other.ID == first.ID {
		t.Errorf("another key: started %v, %v", started, err)
	}
}
