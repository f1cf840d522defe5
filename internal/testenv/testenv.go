// Package testenv starts the real servers some tests need (PostgreSQL, an S3-compatible
// server, Chromium) on 127.0.0.1, once per test binary, and hands each test a fresh share of
// them (a database, a bucket).
//
// A test whose server cannot be found skips with a message saying how to provide it, unless
// the environment variable CONVEYOR_TEST_REQUIRE names that server (a comma-separated list,
// or "all"): then it fails. `make test` sets CONVEYOR_TEST_REQUIRE=all, so in CI nothing
// skips silently.
package testenv

import (
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Required reports whether CONVEYOR_TEST_REQUIRE asks for the server called name.
func Required(name string) bool {
	list := strings.Split(os.Getenv("CONVEYOR_TEST_REQUIRE"), ",")
	return slices.Contains(list, "all") || slices.Contains(list, name)
}

// Unavailable ends the test because the server called name cannot be used: a skip that says
// how to provide it, or a failure when the server is required.
func Unavailable(t testing.TB, name, why, howto string) {
	t.Helper()
	if Required(name) {
		t.Fatalf("%s is required (CONVEYOR_TEST_REQUIRE) but unavailable: %s", name, why)
	}
	t.Skipf("%s unavailable: %s; %s", name, why, howto)
}

var (
	stopMu sync.Mutex
	stops  []func()
)

// Main runs the tests of a package that uses this package's servers and stops the servers
// it started once they are done. Such a package calls it from TestMain:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	StopAll()
	os.Exit(code)
}

// atExit registers stop to run when Main ends, after every test of the binary.
func atExit(stop func()) {
	stopMu.Lock()
	defer stopMu.Unlock()
	stops = append(stops, stop)
}

// StopAll stops the servers started so far: for a TestMain that cannot use Main.
func StopAll() {
	stopMu.Lock()
	defer stopMu.Unlock()
	for i := len(stops) - 1; i >= 0; i-- {
		stops[i]()
	}
	stops = nil
}
