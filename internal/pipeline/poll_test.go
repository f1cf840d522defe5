package pipeline

import (
	"strings"
	"testing"
	"time"
)

func TestPollInterval(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		value string // "" leaves it out
		want  time.Duration
		err   string
	}{
		{"", DefaultPollInterval, ""},
		{"0", 0, ""},
		{"5s", 5 * time.Second, ""},
		{"2m30s", 150 * time.Second, ""},
		{"4s", 0, "shorter than the minimum"},
		{"soon", 0, "is not a duration"},
		{"1d", 0, "is not a duration"},
	} {
		cfg := "{ repository: . }"
		if tc.value != "" {
			cfg = "{ repository: ., pollInterval: \"" + tc.value + "\" }"
		}
		p, err := Parse("p.yaml", []byte(`name: app
stages:
  - name: Source
    actions:
      - { name: Checkout, category: Source, provider: Git, configuration: `+cfg+`, outputArtifacts: [Src] }
  - name: Build
    actions:
      - { name: Make, category: Build, provider: Commands, inputArtifacts: [Src], configuration: { commands: ["true"] } }
`))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("pollInterval %q: error %v, want one saying %q", tc.value, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("pollInterval %q: %v", tc.value, err)
		}
		if got := p.Stages[0].Actions[0].PollInterval(); got != tc.want {
			t.Errorf("pollInterval %q: %v, want %v", tc.value, got, tc.want)
		}
	}
}
