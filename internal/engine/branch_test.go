package engine

import (
	"testing"

	"github.com/conveyorci/conveyor/internal/pipeline"
)

// A job carries the branch of its execution's source revision and the branch the source
// follows by default: they scope the action's caches (internal/job, CacheScopes).
func TestJobBranches(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                 string
		configured, branch   string
		wantBranch, wantDflt string
	}{
		{"configured branch", "main", "feature/x", "feature/x", "main"},
		{"the remote's default branch", "", "trunk", "trunk", "trunk"},
		{"no branch published", "", "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := groups(pipeline.Superseded)
			if tc.configured != "" {
				p.Stages[0].Actions[0].Configuration = map[string]any{"branch": tc.configured}
			}
			w := newWorld(t, p)
			w.start("A")
			if j := w.queuedJob("A", "Source.Checkout"); j.Branch != "" || j.DefaultBranch != "" {
				t.Errorf("source job: branch %q, default %q", j.Branch, j.DefaultBranch)
			}
			w.succeed("A", "Source.Checkout", outputs("CommitId=c1", "BranchName="+tc.branch), produced("SourceOutput"))
			j := w.queuedJob("A", "Build.Compile")
			if j.Branch != tc.wantBranch || j.DefaultBranch != tc.wantDflt {
				t.Errorf("build job: branch %q, default %q; want %q, %q", j.Branch, j.DefaultBranch, tc.wantBranch, tc.wantDflt)
			}
		})
	}
}
