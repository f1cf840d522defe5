package trigger

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/local"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/store"
)

// bundle is a test's engine (its loop is not run: executions are created, not carried out).
type bundle struct {
	t   *testing.T
	eng *local.Engine
}

func setup(t *testing.T) *bundle {
	t.Helper()
	eng, err := local.Open(t.Context(), local.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return &bundle{t: t, eng: eng}
}

func (b *bundle) apply(yaml string) {
	b.t.Helper()
	p, err := pipeline.Parse("p.yaml", []byte(yaml))
	if err != nil {
		b.t.Fatal(err)
	}
	if _, err := b.eng.Loop.Register(b.t.Context(), p); err != nil {
		b.t.Fatal(err)
	}
}

func (b *bundle) executions(name string) []*engine.Execution {
	b.t.Helper()
	var list []*engine.Execution
	if err := b.eng.Store.View(b.t.Context(), func(r store.Reader) error {
		var err error
		list, err = r.Executions(b.t.Context(), store.ExecutionFilter{Pipeline: name})
		return err
	}); err != nil {
		b.t.Fatal(err)
	}
	return list
}

func (b *bundle) state(key string) string {
	b.t.Helper()
	var l *store.TriggerLease
	err := b.eng.Store.View(b.t.Context(), func(r store.Reader) error {
		var err error
		l, err = r.TriggerLease(b.t.Context(), key)
		return err
	})
	if err != nil {
		return ""
	}
	return l.State
}

// eventually fails the test unless cond holds within 10 s (polled, no fixed sleep).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// run runs fn in the background until the test ends (or the returned stop is called).
func run(t *testing.T, fn func(ctx context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("service: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// gitCmd runs git in dir and returns its trimmed output.
func gitCmd(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(cmd.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes file in the repository at dir and commits it, returning the commit id.
func commit(t *testing.T, dir, file, content string) string {
	t.Helper()
	writeFile(t, dir+"/"+file, content)
	gitCmd(t, dir, "add", "-A")
	gitCmd(t, dir, "commit", "-q", "-m", "change "+file)
	return gitCmd(t, dir, "rev-parse", "HEAD")
}

func newRepo(t *testing.T) (dir, first string) {
	t.Helper()
	dir = t.TempDir()
	gitCmd(t, dir, "init", "-q", "-b", "main")
	return dir, commit(t, dir, "README.md", "hello\n")
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
