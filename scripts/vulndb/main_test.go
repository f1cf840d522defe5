package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSemverCompare(t *testing.T) {
	// Ordered ascending; equal neighbours are marked by the same group.
	ordered := [][]string{
		{"bad", "v1.2.3.4", "v01.2.3", "v1.2.3-01"}, // invalid: all equal, below any valid version
		{"v0.0.0-20220101000000-abcdefabcdef"},
		{"v0.0.0"},
		{"v0.3.5"},
		{"v0.3.7"},
		{"v0.10.0"},
		{"v1", "v1.0", "v1.0.0", "v1.0.0+build.1"},
		{"v1.0.1-alpha"},
		{"v1.0.1-alpha.1"},
		{"v1.0.1-alpha.beta"},
		{"v1.0.1-beta"},
		{"v1.0.1-beta.2"},
		{"v1.0.1-beta.11"},
		{"v1.0.1-rc.1"},
		{"v1.0.1"},
		{"v1.11.0-alpha.0.0.20260225185322-738bad662b20"},
		{"v1.11.0"},
		{"v9.11.0+incompatible"},
	}
	for i, gi := range ordered {
		for j, gj := range ordered {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = +1
			}
			for _, v := range gi {
				for _, w := range gj {
					if got := semverCompare(v, w); got != want {
						t.Errorf("semverCompare(%q, %q) = %d, want %d", v, w, got, want)
					}
				}
			}
		}
	}
}

func TestLatestFixed(t *testing.T) {
	// Cases from x/vulndb's osvutils.TestLatestFixed.
	tests := []struct {
		name   string
		ranges string
		want   string
	}{
		{"empty", `[]`, ""},
		{"no fix", `[{"type":"SEMVER","events":[{"introduced":"0"}]}]`, ""},
		{"no latest fix", `[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.0.4"},{"introduced":"1.1.2"}]}]`, ""},
		{"unsorted no latest fix", `[{"type":"SEMVER","events":[{"fixed":"1.0.4"},{"introduced":"0"},{"introduced":"1.1.2"},{"introduced":"1.5.0"},{"fixed":"1.1.4"}]}]`, ""},
		{"unsorted with fix", `[{"type":"SEMVER","events":[{"fixed":"1.0.0"},{"introduced":"0"},{"fixed":"0.1.0"},{"introduced":"0.5.0"}]}]`, "1.0.0"},
		{"multiple ranges", `[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"0.1.0"}]},{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"0.2.0"}]}]`, "0.2.0"},
		{"pseudoversion", `[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"0.0.0-20220824120805-4b6e5c587895"},{"introduced":"0.0.0-20230824120805-4b6e5c587895"},{"fixed":"0.0.0-20230825120805-4b6e5c587895"}]}]`, "0.0.0-20230825120805-4b6e5c587895"},
		{"not semver", `[{"type":"GIT","events":[{"introduced":"0"},{"fixed":"abc"}]}]`, ""},
	}
	for _, tt := range tests {
		var ranges []osvRange
		if err := json.Unmarshal([]byte(tt.ranges), &ranges); err != nil {
			t.Fatal(err)
		}
		if got := latestFixed(ranges); got != tt.want {
			t.Errorf("%s: latestFixed = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestPseudoVersionTime(t *testing.T) {
	got, err := pseudoVersionTime("/root/go/pkg/mod/golang.org/x/vulndb@v0.0.0-20261105234957-e22db6528018/")
	if want := time.Date(2026, 11, 5, 23, 49, 57, 0, time.UTC); err != nil || !got.Equal(want) {
		t.Errorf("pseudoVersionTime = %v, %v; want %v", got, err, want)
	}
	if _, err := pseudoVersionTime("/some/checkout/vulndb"); err == nil {
		t.Error("pseudoVersionTime of a plain directory: no error")
	}
}

func TestBuild(t *testing.T) {
	mod := t.TempDir()
	osvDir := filepath.Join(mod, "data", "osv")
	if err := os.MkdirAll(osvDir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"GO-2021-0113.json": `{"schema_version":"1.3.1","id":"GO-2021-0113","modified":"0001-01-01T00:00:00Z","published":"2021-10-06T17:51:21Z",
  "aliases":["CVE-2021-38561"],"summary":"s","affected":[{"package":{"name":"golang.org/x/text","ecosystem":"Go"},
  "ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"0.3.7"}]}]}],"database_specific":{"url":"u"}}`,
		"GO-2023-1497.json": `{"id":"GO-2023-1497","modified":"2023-05-01T00:00:00Z","published":"2023-01-01T00:00:00Z","affected":[
  {"package":{"name":"example.com/m"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.3.4"}]}]},
  {"package":{"name":"example.com/m"},"ranges":[{"type":"SEMVER","events":[{"introduced":"1.4.0"},{"fixed":"1.4.2"}]}]},
  {"package":{"name":"golang.org/x/text"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"}]}]},
  {"package":{"name":"golang.org/x/text"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0.9.0"},{"fixed":"0.9.1"}]}]}]}`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(osvDir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	snapshot := time.Date(2024, 2, 3, 4, 5, 6, 0, time.UTC)
	db, err := load(osvDir, snapshot)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "db")
	if err := os.MkdirAll(filepath.Join(out, "stale"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := db.writeAtomically(out, true); err != nil {
		t.Fatal(err)
	}
	read := func(name string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	want := map[string]string{
		"index/db.json": `{"modified":"2024-02-03T04:05:06Z"}`,
		"index/modules.json": `[{"path":"example.com/m","vulns":[` +
			`{"id":"GO-2023-1497","modified":"2023-05-01T00:00:00Z","fixed":"1.4.2"}]},` +
			`{"path":"golang.org/x/text","vulns":[` +
			`{"id":"GO-2021-0113","modified":"2024-02-03T04:05:06Z","fixed":"0.3.7"},` +
			`{"id":"GO-2023-1497","modified":"2023-05-01T00:00:00Z"}]}]`,
		"index/vulns.json": `[{"id":"GO-2021-0113","modified":"2024-02-03T04:05:06Z","aliases":["CVE-2021-38561"]},` +
			`{"id":"GO-2023-1497","modified":"2023-05-01T00:00:00Z"}]`,
		"ID/GO-2021-0113.json": `{"schema_version":"1.3.1","id":"GO-2021-0113","modified":"2024-02-03T04:05:06Z","published":"2021-10-06T17:51:21Z",` +
			`"aliases":["CVE-2021-38561"],"summary":"s","affected":[{"package":{"name":"golang.org/x/text","ecosystem":"Go"},` +
			`"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"0.3.7"}]}]}],"database_specific":{"url":"u"}}`,
	}
	for name, w := range want {
		if got := read(name); got != w {
			t.Errorf("%s:\n got %s\nwant %s", name, got, w)
		}
	}
	for _, name := range []string{"index/modules.json.gz", "ID/GO-2023-1497.json.gz"} {
		if _, err := os.Stat(filepath.Join(out, name)); err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "stale")); !os.IsNotExist(err) {
		t.Errorf("the old output directory was not replaced: %v", err)
	}
}

func TestLoadRejects(t *testing.T) {
	for name, body := range map[string]string{
		"GO-2021-0001.json": `{"id":"GO-2021-0002","modified":"2021-01-01T00:00:00Z","affected":[{"package":{"name":"m"}}]}`,
		"GO-2021-0003.json": `{"id":"GO-2021-0003","modified":"2021-01-01T00:00:00Z","affected":[{"package":{"name":"m"},"ranges":[{"type":"SEMVER","events":[{"fixed":"v1.2"}]}]}]}`,
		"GO-2021-0004.json": `{"id":"GO-2021-0004","modified":"yesterday","affected":[{"package":{"name":"m"}}]}`,
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := load(dir, time.Now()); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := load(t.TempDir(), time.Now()); err == nil {
		t.Error("empty directory: no error")
	}
}
