package pipeline

import (
	"maps"
	"testing"
)

// TestJobSecrets: an action's secret references go to its job, except those the server keeps.
func TestJobSecrets(t *testing.T) {
	t.Parallel()
	ref := func(n string) map[string]any { return map[string]any{"secret": n} }
	cases := []struct {
		a    Action
		want map[string]string
	}{
		{Action{Category: Source, Provider: ProviderGit, Configuration: map[string]any{
			"repository": "https://example.com/r.git", "webhookSecret": ref("hook"), "token": ref("gh")}},
			map[string]string{"token": "gh"}},
		{Action{Category: Source, Provider: ProviderGit, Configuration: map[string]any{"webhookSecret": ref("hook")}}, nil},
		{Action{Category: Build, Provider: "MyCustom", Configuration: map[string]any{"webhookSecret": ref("k"), "n": "x"}},
			map[string]string{"webhookSecret": "k"}}, // not a built-in: nothing is the server's
	}
	for i, c := range cases {
		if got := c.a.JobSecrets(); !maps.Equal(got, c.want) {
			t.Errorf("case %d: JobSecrets() = %v, want %v", i, got, c.want)
		}
	}
}
