package api_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/conveyorci/conveyor/internal/action/source/git"
	"github.com/conveyorci/conveyor/internal/api"
	"github.com/conveyorci/conveyor/internal/trigger"
)

// withLinks gives the API a Linker over its loop and store.
func withLinks(t testing.TB) func(*api.Options) {
	return func(o *api.Options) {
		o.Links = trigger.NewLinker(trigger.LinkOptions{Options: trigger.Options{Loop: o.Loop, Store: o.Store, Owner: "api-test"},
			Mirror: &git.Mirror{Dir: filepath.Join(t.TempDir(), "clones")}, Specs: api.ProviderSpecs(o.Store), Audit: o.Audit})
	}
}

// TestLink: PUT link reads the file at the branch head and makes it the pipeline's version
// (audited); an invalid file is refused with its problems as a put is; a linked pipeline
// cannot be put (409, saying how to change it); DELETE link unlinks it.
func TestLink(t *testing.T) {
	t.Parallel()
	b := setup(t, withAuditLog(t, nil), withLinks(t))
	repo := t.TempDir()
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t",
			"GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	write := func(content string) string {
		os.MkdirAll(filepath.Join(repo, ".conveyor"), 0o755)
		if err := os.WriteFile(filepath.Join(repo, ".conveyor", "pipeline.yaml"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		git("add", "-A")
		git("commit", "-q", "-m", "pipeline")
		return git("rev-parse", "HEAD")
	}
	git("init", "-q", "-b", "main")
	good := `name: web
stages:
  - name: Build
    actions:
      - name: Make
        category: Build
        provider: Commands
        configuration: { commands: ["make"] }
`
	c1 := write(good)
	var ans struct {
		Version        int
		Changed        bool
		Commit, Branch string
	}
	b.call("PUT", "/api/v1/pipelines/web/link", map[string]any{"repository": repo}, 200).decode(t, &ans)
	if ans.Version != 1 || !ans.Changed || ans.Commit != c1 || ans.Branch != "main" {
		t.Fatalf("link: %+v", ans)
	}
	b.call("PUT", "/api/v1/pipelines/web/link", map[string]any{"repository": repo}, 200).decode(t, &ans)
	if ans.Version != 1 || ans.Changed {
		t.Fatalf("link again: %+v; want unchanged version 1", ans)
	}
	e := b.wantError(b.do("PUT", "/api/v1/pipelines/web", "application/yaml", []byte(good)), 409, "conflict")
	if !strings.Contains(e.Error.Message, "conveyor pipeline unlink web") {
		t.Errorf("put of a linked pipeline: %q", e.Error.Message)
	}
	write(strings.Replace(good, "provider: Commands", "provider: Comands", 1))
	e = b.wantError(b.do("PUT", "/api/v1/pipelines/web/link", "application/json", []byte(`{"repository": "`+repo+`"}`)), 400, "invalid_pipeline")
	if len(e.Error.Details) != 1 || e.Error.Details[0].Line != 7 || !strings.Contains(e.Error.Details[0].Message, "Comands") {
		t.Errorf("invalid file: %+v", e)
	}
	b.wantError(b.do("PUT", "/api/v1/pipelines/web/link", "application/json", []byte(`{}`)), 400, "bad_request")
	// A repository or file that cannot be read is the caller's to fix: 400, and nothing changes.
	b.wantError(b.do("PUT", "/api/v1/pipelines/web/link", "application/json", []byte(`{"repository": "`+repo+`", "path": "no/such.yaml"}`)), 400, "invalid_pipeline")
	b.wantError(b.do("PUT", "/api/v1/pipelines/web/link", "application/json", []byte(`{"repository": "`+filepath.Join(repo, "missing")+`"}`)), 400, "bad_request")

	var un struct{ Version int }
	b.call("DELETE", "/api/v1/pipelines/web/link", nil, 200).decode(t, &un)
	if un.Version != 2 {
		t.Errorf("unlink: version %d, want 2", un.Version)
	}
	b.put("web", good, 200) // applied from a file again
	b.wantError(b.do("DELETE", "/api/v1/pipelines/web/link", "", nil), 409, "conflict")

	entries, _ := b.auditLog("")
	var link, unlink bool
	for _, en := range entries {
		link = link || en.Action == "pipeline.link" && en.Details["repository"] == repo
		unlink = unlink || en.Action == "pipeline.unlink" && en.Details["commit"] == c1
	}
	if !link || !unlink {
		t.Errorf("audit: pipeline.link %v, pipeline.unlink %v", link, unlink)
	}
}
