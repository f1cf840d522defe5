package graph

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/conveyorci/conveyor/internal/pipeline"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var inputs = map[string]string{
	"webapp":   "../../examples/webapp/pipeline.yaml",
	"parallel": "testdata/parallel.yaml",
}

// TestGraphGolden: each format of each input is testdata/NAME.FORMAT.
func TestGraphGolden(t *testing.T) {
	t.Parallel()
	for name, file := range inputs {
		p, err := pipeline.Load(file)
		if err != nil {
			t.Fatal(err)
		}
		g := Build(p)
		for _, format := range Formats {
			t.Run(name+"."+format, func(t *testing.T) {
				var b bytes.Buffer
				if err := Write(&b, format, g); err != nil {
					t.Fatal(err)
				}
				golden := filepath.Join("testdata", name+"."+format)
				if *update {
					if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatal(err)
				}
				if b.String() != string(want) {
					t.Errorf("output differs from %s (go test -update rewrites it):\n%s", golden, b.String())
				}
			})
		}
	}
}

func TestGraphEdges(t *testing.T) {
	t.Parallel()
	p, err := pipeline.Load("testdata/parallel.yaml")
	if err != nil {
		t.Fatal(err)
	}
	g := Build(p)
	build := g.Stages[1]
	if len(build.Groups) != 2 || build.Groups[0].RunOrder != 1 || len(build.Groups[0].Actions) != 2 || len(build.Groups[1].Actions) != 2 {
		t.Fatalf("Build groups: %+v", build.Groups)
	}
	want := map[Edge]bool{
		{From: "s0a0", To: "s1a0", Kind: Artifact, Label: "AppSource"}:                   true,
		{From: "s0a0", To: "s1a0", Kind: Variable, Label: "#{SourceVariables.CommitId}"}: true,
		{From: "s1a1", To: "s1a3", Kind: Artifact, Label: "DocsSite"}:                    true,
		{From: "s1a0", To: "s3a0", Kind: Variable, Label: "#{BuildVariables.VERSION}"}:   true,
		{From: "s1a0", To: "s4a0", Kind: Artifact, Label: "AppBinary"}:                   true,
	}
	for _, e := range g.Edges {
		delete(want, e)
		if strings.Contains(e.Label, "variables.") {
			t.Errorf("edge for a pipeline variable: %+v", e)
		}
	}
	for e := range want {
		t.Errorf("missing edge %+v", e)
	}
}

// mermaidLine is every line Mermaid writes; labels are quoted and hold no quote, no raw # and no
// line break.
var (
	label       = `"(?:[^"#<>]|#(?:35|quot|lt|gt);|<br/>)*"`
	mermaidLine = regexp.MustCompile(`^(flowchart LR` +
		`|  subgraph s\d+\[` + label + `\]` +
		`|    subgraph s\d+r\d+\[` + label + `\]` +
		`|    direction TB` +
		`|\s+s\d+a\d+(\[` + label + `\]|\{\{` + label + `\}\})` +
		`|    s\d+r\d+ ~~~ s\d+r\d+` +
		`|\s+end` +
		`|  s\d+ ==> s\d+` +
		`|  s\d+a\d+ (-->|-\.->)\|` + label + `\| s\d+a\d+` +
		`|  classDef approval [a-z:#0-9,-]+` +
		`|  class s\d+a\d+(,s\d+a\d+)* approval)$`)
)

// TestGraphMermaidSyntax checks the Mermaid output line by line against the flowchart syntax
// it uses, and subgraph/end nesting. With CONVEYOR_MERMAID_CHECK set to a command that parses
// Mermaid files with Mermaid's own parser (exit 0 when all are valid), it runs that too.
func TestGraphMermaidSyntax(t *testing.T) {
	t.Parallel()
	var files []string
	for name := range inputs {
		file := filepath.Join("testdata", name+".mermaid")
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		depth := 0
		for i, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
			if !mermaidLine.MatchString(line) {
				t.Errorf("%s:%d: not in the flowchart syntax: %q", file, i+1, line)
			}
			switch strings.TrimSpace(line) {
			case "end":
				depth--
			default:
				if strings.HasPrefix(strings.TrimSpace(line), "subgraph ") {
					depth++
				}
			}
			if depth < 0 {
				t.Fatalf("%s:%d: end without subgraph", file, i+1)
			}
		}
		if depth != 0 {
			t.Errorf("%s: %d subgraphs not closed", file, depth)
		}
		abs, _ := filepath.Abs(file)
		files = append(files, abs)
	}
	if cmd := os.Getenv("CONVEYOR_MERMAID_CHECK"); cmd != "" {
		out, err := exec.Command("sh", append([]string{"-c", cmd + ` "$@"`, "sh"}, files...)...).CombinedOutput()
		if err != nil {
			t.Errorf("%s: %v\n%s", cmd, err, out)
		}
		t.Logf("%s", out)
	}
}

func TestGraphLabelEscaping(t *testing.T) {
	t.Parallel()
	if got, want := mermaidLabel(`say "#{a.b}" <x>`, "c"), `"say #quot;#35;{a.b}#quot; #lt;x#gt;<br/>c"`; got != want {
		t.Errorf("mermaidLabel = %s, want %s", got, want)
	}
	if got, want := dotQuote("a \"b\"\\\nc"), `"a \"b\"\\\nc"`; got != want {
		t.Errorf("dotQuote = %s, want %s", got, want)
	}
}
