package pipeline

import "testing"

func TestCheckCron(t *testing.T) {
	t.Parallel()
	for expr, ok := range map[string]bool{
		"0 3 * * *":                   true,
		"*/15 9-17 * JAN-DEC mon-fri": true,
		"0,30 0 1,15 * 0":             true,
		"0 0 * * 7":                   true,
		"@daily":                      true,
		"@Hourly":                     true,
		"0 3 * *":                     false,
		"60 * * * *":                  false,
		"* 24 * * *":                  false,
		"* * 0 * *":                   false,
		"* * * 13 *":                  false,
		"5-1 * * * *":                 false,
		"*/0 * * * *":                 false,
		"a * * * *":                   false,
		"@reboot":                     false,
		"":                            false,
	} {
		if err := checkCron(expr); (err == nil) != ok {
			t.Errorf("checkCron(%q) = %v, want ok %v", expr, err, ok)
		}
	}
}

func TestClosest(t *testing.T) {
	t.Parallel()
	candidates := []string{"repository", "branch", "revision", "depth", "keepGitMetadata"}
	for in, want := range map[string]string{
		"brnach":          "branch",
		"Branch":          "branch",
		"repo":            "repository",
		"keepgitmetadata": "keepGitMetadata",
		"zzz":             "",
		"de":              "",
	} {
		if got := closest(in, candidates); got != want {
			t.Errorf("closest(%q) = %q, want %q", in, got, want)
		}
	}
}
