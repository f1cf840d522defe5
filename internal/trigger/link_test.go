package trigger

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/action/source/git"
	"github.com/conveyorci/conveyor/internal/audit"
	"github.com/conveyorci/conveyor/internal/engine/loop"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/store"
)

const linkedFile = `name: linked
stages:
  - name: Build
    actions:
      - name: Make
        category: Build
        provider: Commands
        configuration: { commands: ["make %s"] }
`

func (b *bundle) linker(every time.Duration, log *audit.Log) *Linker {
	return NewLinker(LinkOptions{Options: Options{Loop: b.eng.Loop, Store: b.eng.Store, Owner: "test", Reload: 20 * time.Millisecond},
		Mirror: &git.Mirror{Dir: filepath.Join(b.t.TempDir(), "clones")}, Every: every, Audit: log})
}

func (b *bundle) latest(name string) (*pipeline.Pipeline, int) {
	b.t.Helper()
	var pv *store.PipelineVersion
	if err := b.eng.Store.View(b.t.Context(), func(r store.Reader) error {
		var err error
		pv, err = r.PipelineVersion(b.t.Context(), name, 0)
		return err
	}); err != nil {
		b.t.Fatal(err)
	}
	p := new(pipeline.Pipeline)
	if err := json.Unmarshal(pv.Definition, p); err != nil {
		b.t.Fatal(err)
	}
	return p, pv.Version
}

// TestLinkSync: linking reads the file at the branch head and registers it with the commit;
// a commit that leaves the file as it is makes no version, one that changes it does; an
// invalid file, a missing one, or one naming another pipeline registers nothing and says why.
func TestLinkSync(t *testing.T) {
	t.Parallel()
	b := setup(t)
	repo, _ := newRepo(t)
	c1 := commit(t, repo, ".conveyor/pipeline.yaml", strings.Replace(linkedFile, "%s", "one", 1))
	k := b.linker(time.Minute, nil)
	link := pipeline.Link{Repository: repo, Branch: "main"}

	res, err := k.Sync(t.Context(), "linked", link)
	if err != nil || res.Invalid != nil || res.Version != 1 || res.Commit != c1 || res.Branch != "main" {
		t.Fatalf("first sync: %+v, %v", res, err)
	}
	p, v := b.latest("linked")
	if p.Link == nil || p.Link.Commit != c1 || p.Link.Path != pipeline.DefaultLinkPath || v != 1 {
		t.Fatalf("version %d link %+v", v, p.Link)
	}

	c2 := commit(t, repo, "README.md", "unrelated\n")
	if res, err = k.Sync(t.Context(), "linked", link); err != nil || res.Version != 0 || res.Commit != c2 {
		t.Fatalf("a commit leaving the file alone: %+v, %v; want no version", res, err)
	}
	c3 := commit(t, repo, ".conveyor/pipeline.yaml", strings.Replace(linkedFile, "%s", "two", 1))
	if res, err = k.Sync(t.Context(), "linked", link); err != nil || res.Version != 2 {
		t.Fatalf("a commit changing the file: %+v, %v; want version 2", res, err)
	}
	if p, _ := b.latest("linked"); p.Link.Commit != c3 || !strings.Contains(p.Stages[0].Actions[0].Configuration["commands"].([]any)[0].(string), "two") {
		t.Fatalf("version 2: link %+v, stages %+v", p.Link, p.Stages)
	}

	for _, c := range []struct{ name, content, want string }{
		{"invalid", "name: linked\nstages:\n  - name: Build\n    actions:\n      - name: Make\n        category: Build\n        provider: Comands\n",
			`.conveyor/pipeline.yaml:7:19: unknown provider "Comands"`},
		{"other name", strings.Replace(strings.Replace(linkedFile, "%s", "x", 1), "name: linked", "name: other", 1), `names pipeline "other"`},
	} {
		commit(t, repo, ".conveyor/pipeline.yaml", c.content)
		res, err := k.Sync(t.Context(), "linked", link)
		if err != nil || res.Invalid == nil || !strings.Contains(res.Invalid.Error(), c.want) || res.Version != 0 {
			t.Errorf("%s: %+v, %v; want invalid with %q", c.name, res, err, c.want)
		}
	}
	if _, v := b.latest("linked"); v != 2 {
		t.Errorf("version %d after invalid files; want 2 still", v)
	}
	res, err = k.Sync(t.Context(), "linked", pipeline.Link{Repository: repo, Branch: "main", Path: "nope.yaml"})
	if err != nil || res.Invalid == nil || !strings.Contains(res.Invalid.Error(), "nope.yaml is not in commit") {
		t.Errorf("missing file: %+v, %v", res, err)
	}
	if _, err := k.Sync(t.Context(), "linked", pipeline.Link{Repository: repo, Branch: "gone"}); !errors.Is(err, ErrLinkUnreadable) {
		t.Errorf("missing branch: %v; want ErrLinkUnreadable", err)
	}
}

// TestLinkerRun: the service follows the linked branch by itself: a change makes a version
// (audited), and an invalid commit is recorded once in the audit log and reported for the
// commit status, while the last good version stays.
func TestLinkerRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	repo, _ := newRepo(t)
	commit(t, repo, "ci/p.yaml", strings.Replace(linkedFile, "%s", "one", 1)+
		"commitStatus: { forge: github, token: { secret: TOKEN }, apiUrl: \"http://127.0.0.1:1\" }\nsecrets: [TOKEN]\n")
	log, err := audit.New(make([]byte, 32), nil)
	if err != nil {
		t.Fatal(err)
	}
	k := b.linker(20*time.Millisecond, log)
	if res, err := k.Sync(t.Context(), "linked", pipeline.Link{Repository: repo, Path: "ci/p.yaml"}); err != nil || res.Version != 1 {
		t.Fatalf("link: %+v, %v", res, err)
	}
	run(t, k.Run)

	c2 := commit(t, repo, "ci/p.yaml", strings.Replace(linkedFile, "%s", "two", 1)+
		"commitStatus: { forge: github, token: { secret: TOKEN }, apiUrl: \"http://127.0.0.1:1\" }\nsecrets: [TOKEN]\n")
	eventually(t, "version 2 from the new commit", func() bool { _, v := b.latest("linked"); return v == 2 })
	eventually(t, "the commit recorded as checked", func() bool { return b.state("link:linked") == c2 })

	bad := commit(t, repo, "ci/p.yaml", "name: linked\nstages: []\n")
	eventually(t, "the invalid commit recorded as checked", func() bool { return b.state("link:linked") == bad })
	if p, v := b.latest("linked"); v != 2 || p.Link.Commit != c2 {
		t.Fatalf("after an invalid commit: version %d at %s; want 2 at %s", v, p.Link.Commit, c2)
	}
	var entries []*store.AuditEntry
	var outbox []*store.OutboxMessage
	if err := b.eng.Store.View(t.Context(), func(r store.Reader) error {
		var err error
		if entries, err = r.AuditEntries(t.Context(), store.AuditFilter{Limit: 100}); err != nil {
			return err
		}
		outbox, err = r.PendingOutbox(t.Context(), 100)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var puts, invalid int
	for _, e := range entries {
		switch e.Action {
		case "pipeline.put":
			puts++
		case "pipeline.link.invalid":
			invalid++
			if !strings.Contains(string(e.Details), bad) || !strings.Contains(string(e.Details), "ci/p.yaml") {
				t.Errorf("invalid entry details %s", e.Details)
			}
		}
	}
	if puts != 1 || invalid != 1 {
		t.Errorf("audit: %d pipeline.put, %d pipeline.link.invalid; want 1 each", puts, invalid)
	}
	var reports int
	for _, m := range outbox {
		var r loop.Report
		if m.Kind == loop.KindReport && json.Unmarshal(m.Payload, &r) == nil && r.Event == loop.ReportDefinition {
			reports++
			if r.Commit != bad || r.Target != loop.TargetCommitStatus || !strings.Contains(r.Message, "stages") {
				t.Errorf("definition report %+v", r)
			}
		}
	}
	if reports != 1 {
		t.Errorf("%d definition reports in the outbox; want 1", reports)
	}
}

// TestLinkerSlowLink: a link whose repository does not answer holds neither the checks of the
// other links nor the renewal of the leases: the links are checked as the poller's sources
// are, each on its own (runDuties).
func TestLinkerSlowLink(t *testing.T) {
	t.Parallel()
	b := setup(t)
	slow, _ := newRepo(t)
	fast, _ := newRepo(t)
	commit(t, slow, "ci/p.yaml", strings.Replace(strings.Replace(linkedFile, "%s", "one", 1), "name: linked", "name: slow", 1))
	commit(t, fast, "ci/p.yaml", strings.Replace(linkedFile, "%s", "one", 1))
	k := b.linker(20*time.Millisecond, nil)
	for name, repo := range map[string]string{"slow": slow, "linked": fast} {
		if res, err := k.Sync(t.Context(), name, pipeline.Link{Repository: repo, Path: "ci/p.yaml"}); err != nil || res.Version != 1 {
			t.Fatalf("link %s: %+v, %v", name, res, err)
		}
	}
	remote := &git.Remote{}
	hanging := make(chan struct{})
	var once sync.Once
	opts := k.opts
	opts.Head = func(ctx context.Context, repository, dir, branch string, creds git.Credentials) (string, string, error) {
		if repository == slow {
			once.Do(func() { close(hanging) })
			<-ctx.Done() // a server that never answers
			return "", "", ctx.Err()
		}
		return remote.Head(ctx, repository, dir, branch, creds)
	}
	run(t, NewLinker(opts).Run)
	<-hanging

	c2 := commit(t, fast, "ci/p.yaml", strings.Replace(linkedFile, "%s", "two", 1))
	eventually(t, "version 2 of the fast link while the slow one hangs", func() bool {
		p, v := b.latest("linked")
		return v == 2 && p.Link.Commit == c2
	})
}

// TestLinkTokenRotated: a link whose token is refused reads it again at the next try, so a
// token rotated after the refusal is taken at once, not when the kept value expires.
func TestLinkTokenRotated(t *testing.T) {
	t.Parallel()
	b := setup(t)
	repo, _ := newRepo(t)
	commit(t, repo, "ci/p.yaml", strings.Replace(linkedFile, "%s", "one", 1)+"secrets: [TOKEN]\n")
	var mu sync.Mutex
	stored, valid := "old", "new" // the secret store's value, and what the forge takes
	remote := &git.Remote{}
	k := NewLinker(LinkOptions{Options: Options{Loop: b.eng.Loop, Store: b.eng.Store, Owner: "test",
		Secrets: func(_ context.Context, _ string, names []string) (map[string]string, error) {
			mu.Lock()
			defer mu.Unlock()
			return map[string]string{"TOKEN": stored}, nil
		}},
		Mirror: &git.Mirror{Dir: filepath.Join(t.TempDir(), "clones")},
		Head: func(ctx context.Context, repository, dir, branch string, creds git.Credentials) (string, string, error) {
			mu.Lock()
			ok := creds.Token == valid
			mu.Unlock()
			if !ok {
				return "", "", errors.New("authentication failed")
			}
			return remote.Head(ctx, repository, dir, branch, git.Credentials{}) // a local repository takes none
		}})
	link := pipeline.Link{Repository: repo, Path: "ci/p.yaml", Token: "TOKEN"}
	if _, err := k.Sync(t.Context(), "linked", link); !errors.Is(err, ErrLinkUnreadable) {
		t.Fatalf("with the old token: %v; want ErrLinkUnreadable", err)
	}
	mu.Lock()
	stored = "new"
	mu.Unlock()
	if res, err := k.Sync(t.Context(), "linked", link); err != nil || res.Version != 1 {
		t.Fatalf("after the rotation: %+v, %v", res, err)
	}
}
