package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// chromiumPaths are where Debian's Chromium is found, best first: the binary itself (the
// /usr/bin/chromium wrapper prints a harmless warning on every start).
var chromiumPaths = []string{"/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser"}

// Chromium returns the path of a Chromium executable for a browser test (CONVEYOR_CHROMIUM
// names one elsewhere). Without one the test skips, or fails when CONVEYOR_TEST_REQUIRE asks
// for chromium.
func Chromium(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("CONVEYOR_CHROMIUM"); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			Unavailable(t, "chromium", "CONVEYOR_CHROMIUM="+p+": "+err.Error(), "point CONVEYOR_CHROMIUM at a Chromium executable")
		}
		return p
	}
	for _, p := range chromiumPaths {
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	Unavailable(t, "chromium", "no Chromium executable at "+chromiumPaths[0]+" or "+chromiumPaths[1],
		"apt-get install chromium (scripts/test-deps does)")
	return ""
}
