package jsonpath_test

import (
	"os"
	"slices"
	"testing"

	"github.com/conveyorci/conveyor/internal/jsonpath"
)

func TestEval(t *testing.T) {
	t.Parallel()
	doc, err := jsonpath.Decode([]byte(`{"ref":"refs/heads/main","after":"abc","n":12.50,"ok":true,"none":null,
		"commits":[{"id":"c1","added":["a.go"]},{"id":"c2","added":["b.go","docs/x.md"]}],
		"head_commit":{"id":"c2"},"odd key":{"a.b":1},"list":[[1,2],[3]]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"$", []string{`{"after":"abc","commits":[{"added":["a.go"],"id":"c1"},{"added":["b.go","docs/x.md"],"id":"c2"}],"head_commit":{"id":"c2"},"list":[[1,2],[3]],"n":12.50,"none":null,"odd key":{"a.b":1},"ok":true,"ref":"refs/heads/main"}`}},
		{"$.ref", []string{"refs/heads/main"}},
		{"$['ref']", []string{"refs/heads/main"}},
		{`$["head_commit"].id`, []string{"c2"}},
		{"$.n", []string{"12.50"}},
		{"$.ok", []string{"true"}},
		{"$.none", []string{"null"}},
		{"$.commits[0].id", []string{"c1"}},
		{"$.commits[-1].id", []string{"c2"}},
		{"$.commits[*].id", []string{"c1", "c2"}},
		{"$.commits[*].added[*]", []string{"a.go", "b.go", "docs/x.md"}},
		{"$.commits.*.id", []string{"c1", "c2"}},
		{"$.head_commit.*", []string{"c2"}},
		{"$['odd key']['a.b']", []string{"1"}},
		{"$.list[0][1]", []string{"2"}},
		{"$.missing", nil},
		{"$.commits[9].id", nil},
		{"$.ref[0]", nil},
		{"$.commits.id", nil},
	} {
		p, err := jsonpath.Compile(tc.path)
		if err != nil {
			t.Errorf("Compile(%q): %v", tc.path, err)
			continue
		}
		if got := p.Strings(doc); !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
			t.Errorf("%s = %q, want %q", tc.path, got, tc.want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "ref", "$.", "$..ref", "$[", "$[0", "$[?(@.a)]", "$[1:2]", "$['a]", `$["a\"b"]`, "$.a b", "$[abc]",
		"$" + string(make([]byte, jsonpath.MaxLen)), "$.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a"} {
		if _, err := jsonpath.Compile(bad); err == nil {
			t.Errorf("Compile(%q) succeeded", bad)
		}
	}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "{", `{"a":1} {"b":2}`, "ref=main"} {
		if _, err := jsonpath.Decode([]byte(bad)); err == nil {
			t.Errorf("Decode(%q) succeeded", bad)
		}
	}
}

// FuzzJSONPath: no path and no document make Compile or Eval panic, and a compiled path
// compiles again to the same results.
func FuzzJSONPath(f *testing.F) {
	f.Add("$.commits[*].added[0]", []byte(`{"commits":[{"added":["a"]}]}`))
	f.Add("$['a']['b'][-1]", []byte(`{"a":{"b":[1,2,3]}}`))
	f.Add("$.*.*[*]", []byte(`[[1],{"x":[2]}]`))
	if b, err := os.ReadFile("../webhook/testdata/github/push.branch.json"); err == nil {
		f.Add("$.head_commit.modified[*]", b)
	}
	f.Fuzz(func(t *testing.T, path string, data []byte) {
		p, err := jsonpath.Compile(path)
		if err != nil {
			return
		}
		if p.String() != path {
			t.Fatalf("String() = %q, want %q", p.String(), path)
		}
		doc, err := jsonpath.Decode(data)
		if err != nil {
			return
		}
		got := p.Strings(doc)
		if len(got) > len(data)+1 {
			t.Fatalf("%d values from a %d-byte document", len(got), len(data))
		}
	})
}
