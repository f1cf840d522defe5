package lint

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/conveyorci/conveyor/internal/pipeline"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func check(t *testing.T, file string) []Finding {
	t.Helper()
	p, pos, err := pipeline.LoadWithPositions(file)
	if err != nil {
		t.Fatalf("load %s: %v", file, err)
	}
	return Check(p, pos)
}

// TestLintGolden checks each rule on testdata/RULE.yaml: the text output is RULE.golden, and
// every warning is of that rule (the near misses in each file, the negative cases, warn of
// nothing).
func TestLintGolden(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("testdata/*.yaml")
	var covered []string
	for _, file := range files {
		rule := strings.TrimSuffix(filepath.Base(file), ".yaml")
		covered = append(covered, rule)
		t.Run(rule, func(t *testing.T) {
			t.Parallel()
			findings := check(t, file)
			if len(findings) == 0 {
				t.Fatalf("no warning")
			}
			for _, f := range findings {
				if f.Rule != rule {
					t.Errorf("unexpected warning of another rule: %+v", f)
				}
				if f.Line < 1 || f.Col < 1 || f.Why == "" || f.Fix == "" {
					t.Errorf("warning without a position, why or fix: %+v", f)
				}
			}
			var b bytes.Buffer
			if err := WriteText(&b, findings); err != nil {
				t.Fatal(err)
			}
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
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
	for _, r := range Rules() {
		if !slices.Contains(covered, r.ID) {
			t.Errorf("rule %s has no testdata/%s.yaml", r.ID, r.ID)
		}
	}
}

// TestLintExample: the example pipeline's one warning is its Deploy action's missing timeout
// (it runs with the default of an hour).
func TestLintExample(t *testing.T) {
	t.Parallel()
	findings := check(t, "../../examples/webapp/pipeline.yaml")
	if len(findings) != 1 || findings[0].Rule != DeployWithoutTimeout || !strings.Contains(findings[0].Message, "Deploy.Release") {
		t.Fatalf("want only deploy-without-timeout on Deploy.Release, got %+v", findings)
	}
}

func TestLintCleanPipelines(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"testdata/clean/parallel.yaml"} {
		if findings := check(t, file); len(findings) > 0 {
			t.Errorf("%s: want no warnings, got %+v", file, findings)
		}
	}
}

func TestLintWords(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"DeployToProd": "deploy to prod", "api.prod-eu": "api prod eu", "HTTPServer": "http server",
		"DB_PASSWORD": "db password", "apiKey": "api key", "KEYBOARD": "keyboard", "Production2": "production",
	} {
		if got := strings.Join(words(in), " "); got != want {
			t.Errorf("words(%q) = %q, want %q", in, got, want)
		}
	}
	for s, want := range map[string]bool{"prod": true, "DeployProd": true, "delivery": false, "olive": false, "Live": true, "product": false} {
		if mentionsProd(s) != want {
			t.Errorf("mentionsProd(%q) = %v", s, !want)
		}
	}
}

func TestLintSecretKind(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		key, value string
		secret     bool
	}{
		{"X", "AKIAIOSFODNN7EXAMPLE", true},
		{"X", "github_pat_11AAAAAAA0123456789abcdefghij", true},
		{"PASSWORD", "changeme", false}, // short and plain: a placeholder
		{"MONKEY", "q8Zr2LmX4vTp9KwB7nYs3Jd", false},
		{"client_secret", "q8Zr2LmX4vTp9KwB7nYs3Jd", true},
		{"commands", "export TOKEN=$GH_TOKEN", false},
		{"commands", "echo 0123456789abcdef0123456789", false},
		{"TOKEN", "#{variables.TOKEN_VALUE_FROM_ELSEWHERE}", false},
	} {
		if got := secretKind(tc.key, tc.value) != ""; got != tc.secret {
			t.Errorf("secretKind(%q, %q) found a secret: %v, want %v", tc.key, tc.value, got, tc.secret)
		}
	}
}

func allFindings(t *testing.T) []Finding {
	files, _ := filepath.Glob("testdata/*.yaml")
	var all []Finding
	for _, f := range files {
		all = append(all, check(t, f)...)
	}
	return all
}

func TestLintJSONRoundTrip(t *testing.T) {
	t.Parallel()
	all := allFindings(t)
	var b bytes.Buffer
	if err := WriteJSON(&b, all); err != nil {
		t.Fatal(err)
	}
	var back JSONReport
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Warnings, all) {
		t.Errorf("JSON does not read back to the findings:\n%s", b.String())
	}
	b.Reset()
	if err := WriteJSON(&b, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"warnings": []`) {
		t.Errorf("no warnings should be an empty list, got %s", b.String())
	}
}

// TestLintSARIF checks the SARIF log against what SARIF 2.1.0 requires and what code-scanning
// tools (GitHub's among them) read: version and $schema, a run with tool.driver.name and its
// rules (id, shortDescription.text), and results with ruleId (a known rule), ruleIndex
// pointing at it, a level, message.text, and a physical location with a uri and a region
// starting at line and column 1 or more.
func TestLintSARIF(t *testing.T) {
	t.Parallel()
	all := allFindings(t)
	var b bytes.Buffer
	if err := WriteSARIF(&b, all); err != nil {
		t.Fatal(err)
	}
	var log struct {
		Schema  string `json:"$schema"`
		Version string `json:"version"`
		Runs    []struct {
			Tool struct {
				Driver struct {
					Name  string `json:"name"`
					Rules []struct {
						ID               string `json:"id"`
						ShortDescription struct {
							Text string `json:"text"`
						} `json:"shortDescription"`
						Help struct {
							Text string `json:"text"`
						} `json:"help"`
					} `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID    *string `json:"ruleId"`
				RuleIndex *int    `json:"ruleIndex"`
				Level     string  `json:"level"`
				Message   struct {
					Text string `json:"text"`
				} `json:"message"`
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct {
							URI string `json:"uri"`
						} `json:"artifactLocation"`
						Region struct {
							StartLine   int `json:"startLine"`
							StartColumn int `json:"startColumn"`
						} `json:"region"`
					} `json:"physicalLocation"`
				} `json:"locations"`
			} `json:"results"`
		} `json:"runs"`
	}
	dec := json.NewDecoder(&b)
	if err := dec.Decode(&log); err != nil {
		t.Fatal(err)
	}
	if log.Version != "2.1.0" || !strings.Contains(log.Schema, "sarif-2.1.0") || len(log.Runs) != 1 {
		t.Fatalf("version %q, $schema %q, %d runs", log.Version, log.Schema, len(log.Runs))
	}
	run := log.Runs[0]
	if run.Tool.Driver.Name == "" || len(run.Tool.Driver.Rules) != len(Rules()) {
		t.Fatalf("driver %q with %d rules", run.Tool.Driver.Name, len(run.Tool.Driver.Rules))
	}
	for _, r := range run.Tool.Driver.Rules {
		if r.ID == "" || r.ShortDescription.Text == "" || r.Help.Text == "" {
			t.Errorf("rule without id, shortDescription or help: %+v", r)
		}
	}
	if len(run.Results) != len(all) {
		t.Fatalf("%d results for %d findings", len(run.Results), len(all))
	}
	for i, res := range run.Results {
		if res.RuleID == nil || res.RuleIndex == nil || *res.RuleIndex < 0 || *res.RuleIndex >= len(run.Tool.Driver.Rules) ||
			run.Tool.Driver.Rules[*res.RuleIndex].ID != *res.RuleID || *res.RuleID != all[i].Rule {
			t.Errorf("result %d: ruleId/ruleIndex do not name its rule %s", i, all[i].Rule)
		}
		if !slices.Contains([]string{"none", "note", "warning", "error"}, res.Level) || res.Message.Text == "" || len(res.Locations) != 1 {
			t.Errorf("result %d: level %q, message %q, %d locations", i, res.Level, res.Message.Text, len(res.Locations))
			continue
		}
		pl := res.Locations[0].PhysicalLocation
		if pl.ArtifactLocation.URI != all[i].File || pl.Region.StartLine != all[i].Line || pl.Region.StartColumn != all[i].Col || pl.Region.StartLine < 1 {
			t.Errorf("result %d: location %+v, want %s:%d:%d", i, pl, all[i].File, all[i].Line, all[i].Col)
		}
	}
}
