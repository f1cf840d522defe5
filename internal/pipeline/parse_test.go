package pipeline

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

func TestLoadUnreadable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, path := range []string{filepath.Join(dir, "missing.yaml"), dir} {
		_, err := Load(path)
		var errs *Errors
		if err == nil || errors.As(err, &errs) || !strings.Contains(err.Error(), path) {
			t.Errorf("Load(%s) = %v; want a plain error naming the file", path, err)
		}
	}
}

func TestLoadTooLarge(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "big.yaml")
	data := []byte("name: big\n# " + strings.Repeat("x", MaxFileSize) + "\n")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	want := path + ": file is larger than the 1048576-byte limit of a pipeline file (hint: move long scripts into files in the repository)"
	if err == nil || err.Error() != want {
		t.Errorf("Load = %v\nwant %s", err, want)
	}
}

// TestRoundTrip checks that a parsed pipeline, written as JSON, parses back to an equal one, so
// that the API and the store can hand pipelines around as JSON.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, file := range inputs(t, "valid") {
		p, err := Load(file)
		if err != nil {
			t.Fatal(err)
		}
		data, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse(file+".json", data)
		if err != nil {
			t.Fatalf("%s: %v\n%s", file, err, data)
		}
		if !reflect.DeepEqual(p, back) {
			t.Errorf("%s: round trip through JSON differs:\n%+v\n%+v", file, p, back)
		}
		yamlData, err := yaml.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		back, err = Parse(file+".yaml", yamlData)
		if err != nil {
			t.Fatalf("%s: %v\n%s", file, err, yamlData)
		}
		if !reflect.DeepEqual(p, back) {
			t.Errorf("%s: round trip through YAML differs:\n%+v\n%+v", file, p, back)
		}
		var decoded Pipeline
		if err := json.Unmarshal(data, &decoded); err != nil {
			t.Fatal(err)
		}
		for si, st := range p.Stages {
			for ai, a := range st.Actions {
				d := decoded.Stages[si].Actions[ai]
				if !reflect.DeepEqual(a.Environment, d.Environment) || !reflect.DeepEqual(a.SecretEnvironment, d.SecretEnvironment) || a.Timeout != d.Timeout {
					t.Errorf("%s: json.Unmarshal of %s.%s differs: %+v", file, st.Name, a.Name, d)
				}
			}
		}
	}
}

func TestWithProviders(t *testing.T) {
	t.Parallel()
	specs := append(BuiltinProviders(), ProviderSpec{
		Categories:             []Category{Invoke},
		Provider:               "Notifier",
		Properties:             []Property{{Name: "url", Type: TypeString, Required: true}, {Name: "method", Type: TypeString, Allowed: []string{"GET", "POST"}}},
		AdditionalProperties:   true,
		InputArtifacts:         ArtifactCount{0, 1},
		DynamicOutputVariables: true,
	})
	src := `
name: custom
stages:
  - name: Source
    actions:
      - name: Checkout
        category: Source
        provider: Git
        configuration: { repository: . }
        outputArtifacts: [Src]
  - name: Notify
    actions:
      - name: Call
        category: Invoke
        provider: Notifier
        namespace: Hook
        version: "3"
        configuration:
          url: "https://example.com/#{variables.X}"
          method: POST
          extra: { nested: [1, "two #{codepipeline.PipelineExecutionId}"] }
      - name: After
        category: Build
        provider: Commands
        runOrder: 2
        configuration: { commands: ["echo #{Hook.anything}"] }
variables: [{ name: X }]
`
	p, err := Parse("custom.yaml", []byte(src), WithProviders(specs))
	if err != nil {
		t.Fatal(err)
	}
	cfg := p.Stages[1].Actions[0].Configuration
	want := map[string]any{"url": "https://example.com/#{variables.X}", "method": "POST",
		"extra": map[string]any{"nested": []any{1, "two #{codepipeline.PipelineExecutionId}"}}}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("configuration = %#v", cfg)
	}
	// Without the option, Invoke has no provider.
	if _, err := Parse("custom.yaml", []byte(src)); err == nil || !strings.Contains(err.Error(), `unknown provider "Notifier" for category Invoke`) {
		t.Errorf("Parse without the provider: %v", err)
	}
	bad := strings.Replace(src, "method: POST", "method: PUT\n          url2: x", 1)
	bad = strings.Replace(bad, "https://example.com/#{variables.X}", "#{variables.Y}", 1)
	_, err = Parse("custom.yaml", []byte(bad), WithProviders(specs))
	if err == nil || !strings.Contains(err.Error(), `method "PUT" is not one of the allowed values`) || !strings.Contains(err.Error(), "#{variables.Y} names no pipeline variable") {
		t.Errorf("Parse of bad custom configuration: %v", err)
	}
}

// TestEncodings checks that a byte-order mark and CRLF line ends change nothing.
func TestEncodings(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"testdata/valid/design.yaml", "testdata/valid/full.yaml"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		want, err := Parse(file, data)
		if err != nil {
			t.Fatal(err)
		}
		for name, variant := range map[string][]byte{
			"bom":  append([]byte("\xef\xbb\xbf"), data...),
			"crlf": []byte(strings.ReplaceAll(string(data), "\n", "\r\n")),
		} {
			got, err := Parse(file, variant)
			if err != nil {
				t.Errorf("%s %s: %v", file, name, err)
			} else if !reflect.DeepEqual(got, want) {
				t.Errorf("%s %s: pipeline differs:\n%+v\n%+v", file, name, got, want)
			}
		}
	}
}

// TestErrorsSorted checks that diagnostics come sorted by position and render one per line.
func TestErrorsSorted(t *testing.T) {
	t.Parallel()
	_, err := Load("testdata/invalid/unknown-fields.yaml")
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error %T", err)
	}
	for i := 1; i < len(errs.Diagnostics); i++ {
		a, b := errs.Diagnostics[i-1], errs.Diagnostics[i]
		if a.Line > b.Line || a.Line == b.Line && a.Col > b.Col {
			t.Errorf("diagnostics out of order: %v before %v", a, b)
		}
	}
	if n := strings.Count(err.Error(), "\n"); n != len(errs.Diagnostics)-1 {
		t.Errorf("%d lines for %d diagnostics", n+1, len(errs.Diagnostics))
	}
}
