package pipeline

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestHostile feeds inputs built to hurt a YAML reader: each must give an error quickly.
func TestHostile(t *testing.T) {
	t.Parallel()
	bomb := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	for i := 'b'; i <= 'k'; i++ {
		prev := string(i - 1)
		bomb += string(i) + ": &" + string(i) + " [*" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + "]\n"
	}
	for name, in := range map[string]string{
		"alias bomb":     bomb,
		"deep flow":      "name: " + strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
		"deep block":     "name:\n" + deepBlock(500),
		"self alias":     "a: &a [*a]\n",
		"complex key":    "? [a, b]\n: c\nname: x\nstages: []\n",
		"mapping key":    "{a: 1}: 2\n",
		"huge int":       "name: x\nstages:\n  - name: S\n    actions:\n      - name: A\n        category: Source\n        provider: Git\n        runOrder: 99999999999999999999999999\n",
		"tags":           "name: !!binary aGVsbG8=\nstages: !custom []\n",
		"nul":            "name: \x00\nstages: []\n",
		"only document":  "---\n...\n",
		"scalar":         "just a string",
		"null":           "~",
		"merge scalar":   "<<: 1\nname: x\n",
		"long key":       strings.Repeat("k", 100000) + ": 1\n",
		"many refs":      "name: x\nstages:\n  - name: S\n    actions:\n      - name: A\n        category: Source\n        provider: Git\n        configuration: { repository: \"" + strings.Repeat("#{a.b}", 150) + "\" }\n        outputArtifacts: [A]\n",
		"json array":     "[1, 2, 3]",
		"json nested":    `{"name": "x", "stages": [{"name": "S", "actions": [{"name": "A", "category": "Source", "provider": "Git", "configuration": {"repository": {"a": [1, {"b": null}]}}}]}]}`,
		"anchor on key":  "&k name: x\nstages: []\n",
		"unicode names":  "name: café\nstages: []\n",
		"duplicate flow": "{a: 1, a: 2}",
	} {
		start := time.Now()
		_, err := Parse("hostile.yaml", []byte(in))
		var errs *Errors
		if !errors.As(err, &errs) {
			t.Errorf("%s: error %T %v", name, err, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s: took %v", name, d)
		}
	}
}

func deepBlock(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(strings.Repeat(" ", i+1))
		b.WriteString("- k:\n")
	}
	return b.String()
}

// TestDeepNestingRefusedQuickly: nesting far past the limit is refused from the tokens, before
// the YAML parser, whose cost grows with the square of the depth, sees it.
func TestDeepNestingRefusedQuickly(t *testing.T) {
	t.Parallel()
	for name, doc := range map[string]string{
		"flow":  "name: p\nstages: " + strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000) + "\n",
		"block": "name: p\nstages:\n" + strings.Repeat("- ", 50_000) + "x\n",
	} {
		start := time.Now()
		_, err := Parse("deep.yaml", []byte(doc))
		if err == nil || !strings.Contains(err.Error(), "nested deeper than") {
			t.Errorf("%s: %v; want the nesting refused", name, err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%s: refused after %v", name, took)
		}
	}
}
