package pipeline

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"90s", 90 * time.Second, false},
		{"1h30m", 90 * time.Minute, false},
		{"7d", 7 * 24 * time.Hour, false},
		{"0d", 0, false},
		{" 2h ", 2 * time.Hour, false},
		{"1.5d", 0, true},
		{"-1d", 0, true},
		{"d", 0, true},
		{"soon", 0, true},
		{"", 0, true},
		{"30", 0, true},
	} {
		got, err := ParseDuration(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestDurationString(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		time.Hour:                  "1h",
		90 * time.Minute:           "1h30m",
		5 * time.Minute:            "5m",
		90 * time.Second:           "1m30s",
		72 * time.Hour:             "3d",
		25 * time.Hour:             "25h",
		1500 * time.Millisecond:    "1.5s",
		0:                          "0s",
		time.Hour + 30*time.Second: "1h0m30s",
	} {
		if got := Duration(d).String(); got != want {
			t.Errorf("Duration(%v).String() = %q, want %q", d, got, want)
		}
		back, err := ParseDuration(Duration(d).String())
		if err != nil || back != d {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", Duration(d).String(), back, err, d)
		}
	}
}

func testPipeline(t *testing.T) *Pipeline {
	t.Helper()
	p, err := Load("testdata/valid/design.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFindAction(t *testing.T) {
	t.Parallel()
	p := testPipeline(t)
	p.Stages[3].Actions = append(p.Stages[3].Actions, Action{Name: "Compile"}) // Compile in two stages
	for _, tc := range []struct {
		ref          string
		stage, index int
		err          string
	}{
		{"Build.Compile", 1, 0, ""},
		{"Deploy.Compile", 3, 1, ""},
		{"UnitTests", 1, 1, ""},
		{"Build.UnitTests", 1, 1, ""},
		{"Compile", -1, -1, "several stages"},
		{"Nope", -1, -1, "no action"},
		{"Build.Nope", -1, -1, "no action"},
		{"", -1, -1, "no action"},
	} {
		si, ai, err := p.FindAction(tc.ref)
		if si != tc.stage || ai != tc.index || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("FindAction(%q) = %d, %d, %v; want %d, %d, error containing %q", tc.ref, si, ai, err, tc.stage, tc.index, tc.err)
		}
	}
}

func TestLookups(t *testing.T) {
	t.Parallel()
	p := testPipeline(t)
	if si, ai, ok := p.Producer("BuildOutput"); !ok || si != 1 || ai != 0 {
		t.Errorf("Producer(BuildOutput) = %d, %d, %v", si, ai, ok)
	}
	if _, _, ok := p.Producer("Nope"); ok {
		t.Error("Producer(Nope) found something")
	}
	if si, ai, ok := p.NamespaceOwner("SourceVariables"); !ok || si != 0 || ai != 0 {
		t.Errorf("NamespaceOwner(SourceVariables) = %d, %d, %v", si, ai, ok)
	}
	if _, _, ok := p.NamespaceOwner(""); ok {
		t.Error(`NamespaceOwner("") found something`)
	}
	if i := p.StageIndex("Deploy"); i != 3 {
		t.Errorf("StageIndex(Deploy) = %d", i)
	}
	a := &p.Stages[2].Actions[0]
	if a.EffectiveTimeout() != 72*time.Hour || a.EffectiveRunOrder() != 1 || p.Mode() != Superseded {
		t.Errorf("defaults: timeout %v, runOrder %d, mode %s", a.EffectiveTimeout(), a.EffectiveRunOrder(), p.Mode())
	}
}

// TestActionFileFields guards the file form of Action against a field added to one only.
func TestActionFileFields(t *testing.T) {
	t.Parallel()
	file := reflect.TypeFor[actionFile[any]]()
	for f := range reflect.TypeFor[Action]().Fields() {
		if f.Name == "SecretEnvironment" {
			continue // written inside environment
		}
		ff, ok := file.FieldByName(f.Name)
		if !ok || ff.Tag != f.Tag && f.Name != "Environment" {
			t.Errorf("actionFile does not carry Action.%s as it is", f.Name)
		}
	}
}
