package main

import (
	"strings"
	"testing"
)

// TestScaleOutUsage: the flags of the scale-out commands refuse bad values with exit status
// 2 and a message naming the flag and what it wants, before anything starts.
func TestScaleOutUsage(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"worker"}, "no worker token: pass --token or set CONVEYOR_TOKEN"},
		{[]string{"worker", "--token", "x", "--concurrency", "0"}, "--concurrency 0: want 1 or more"},
		{[]string{"worker", "--token", "x", "--labels", "linux,has space"}, "--labels"},
		{[]string{"worker", "--token", "x", "--server", "ftp://ci"}, "want http(s)://HOST[:PORT]"},
		{[]string{"server", "--workers", "-1"}, "--workers -1: want 0"},
		{[]string{"server", "--labels", "a/b"}, "a label is letters, digits and . @ - _"},
		{[]string{"server", "--external-url", "ci.example.com"}, "--external-url \"ci.example.com\": want http(s)://"},
		{[]string{"server", "--worker-lease", "100ms"}, "--worker-lease 100ms: want 1s or more"},
		{[]string{"server", "--cache-max-size", "lots"}, "give a size such as 500MB or 10GiB"},
		{[]string{"server", "--cache-max-age", "a week"}, "use a Go duration such as 90s, 30m or 2h, or days such as 7d"},
	} {
		dir := "--data-dir" // nothing may be written where a real one lives
		if c.args[0] == "worker" {
			dir = "--work-dir"
		}
		code, out := conveyor(t, append(c.args, dir, t.TempDir())...)
		if code != 2 || !strings.Contains(out, c.want) {
			t.Errorf("conveyor %s: exit %d, want 2 with %q:\n%s", strings.Join(c.args, " "), code, c.want, out)
		}
	}
}
