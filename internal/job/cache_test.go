package job_test

import (
	"slices"
	"testing"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/job"
	"github.com/conveyorci/conveyor/internal/store"
)

func TestCacheScopes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		branch, def string
		want        []string
	}{
		{"", "", []string{"default"}},
		{"main", "main", []string{"main", "default"}},
		{"feature/x", "main", []string{"feature/x", "main", "default"}},
		{"feature/x", "", []string{"feature/x", "default"}},
		{"", "main", []string{"default", "main"}},
	} {
		got := job.CacheScopes(&store.Job{Pipeline: "p", Spec: engine.JobSpec{Branch: tc.branch, DefaultBranch: tc.def}})
		if !slices.Equal(got, tc.want) {
			t.Errorf("branch %q, default %q: scopes %q, want %q", tc.branch, tc.def, got, tc.want)
		}
	}
}
