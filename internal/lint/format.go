package lint

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
)

// Formats are the output formats of WriteFindings.
var Formats = []string{"text", "json", "sarif"}

// WriteFindings writes findings in format (one of Formats).
func WriteFindings(w io.Writer, format string, findings []Finding) error {
	switch format {
	case "text":
		return WriteText(w, findings)
	case "json":
		return WriteJSON(w, findings)
	case "sarif":
		return WriteSARIF(w, findings)
	}
	return fmt.Errorf("unknown format %q: use %s", format, strings.Join(Formats, ", "))
}

// WriteText writes one warning per paragraph, "file:line:col: warning: message [rule]" then why
// and fix, and a count at the end.
func WriteText(w io.Writer, findings []Finding) error {
	var b strings.Builder
	for _, f := range findings {
		fmt.Fprintf(&b, "%s:%d:%d: warning: %s [%s]\n", f.File, f.Line, f.Col, f.Message, f.Rule)
		fmt.Fprintf(&b, "    why: %s\n    fix: %s\n", f.Why, f.Fix)
	}
	switch len(findings) {
	case 0:
		b.WriteString("no warnings\n")
	case 1:
		b.WriteString("1 warning\n")
	default:
		fmt.Fprintf(&b, "%d warnings\n", len(findings))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// JSONReport is what WriteJSON writes.
type JSONReport struct {
	Warnings []Finding `json:"warnings"`
}

// WriteJSON writes {"warnings": [...]}, an empty list when there are none.
func WriteJSON(w io.Writer, findings []Finding) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(JSONReport{Warnings: append([]Finding{}, findings...)})
}

// SARIF 2.1.0, the subset code-scanning tools read (GitHub code scanning among them): a run
// with the tool's rules, and results with a rule, a level, a message and a location.
type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool       sarifTool     `json:"tool"`
	ColumnKind string        `json:"columnKind"`
	Results    []sarifResult `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifRule struct {
	ID                   string       `json:"id"`
	Name                 string       `json:"name"`
	ShortDescription     sarifText    `json:"shortDescription"`
	FullDescription      sarifText    `json:"fullDescription"`
	Help                 sarifText    `json:"help"`
	DefaultConfiguration sarifDefault `json:"defaultConfiguration"`
}

type sarifDefault struct {
	Level string `json:"level"`
}

type sarifResult struct {
	RuleID    string          `json:"ruleId"`
	RuleIndex int             `json:"ruleIndex"`
	Level     string          `json:"level"`
	Message   sarifText       `json:"message"`
	Locations []sarifLocation `json:"locations"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysical `json:"physicalLocation"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           sarifRegion   `json:"region"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	StartLine   int `json:"startLine"`
	StartColumn int `json:"startColumn,omitempty"`
}

const (
	sarifSchema  = "https://json.schemastore.org/sarif-2.1.0.json"
	sarifVersion = "2.1.0"
	toolURI      = "https://github.com/conveyorci/conveyor/blob/main/docs/pipeline.md#conveyor-lint"
)

// WriteSARIF writes a SARIF 2.1.0 log of one run: every rule, and the findings as results whose
// locations are the files' paths as given (with / separators) and their line and column.
func WriteSARIF(w io.Writer, findings []Finding) error {
	rules := Rules()
	run := sarifRun{
		Tool:       sarifTool{Driver: sarifDriver{Name: "conveyor lint", InformationURI: toolURI}},
		ColumnKind: "unicodeCodePoints",
		Results:    []sarifResult{},
	}
	for _, r := range rules {
		run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, sarifRule{
			ID: r.ID, Name: ruleName(r.ID),
			ShortDescription:     sarifText{r.Summary},
			FullDescription:      sarifText{"Why it matters: " + r.Why + "."},
			Help:                 sarifText{"How to fix it: " + r.Fix + "."},
			DefaultConfiguration: sarifDefault{Level: "warning"},
		})
	}
	for _, f := range findings {
		idx := slices.IndexFunc(rules, func(r Rule) bool { return r.ID == f.Rule })
		run.Results = append(run.Results, sarifResult{
			RuleID: f.Rule, RuleIndex: idx, Level: "warning",
			Message: sarifText{f.Message + ". Fix: " + f.Fix + "."},
			Locations: []sarifLocation{{PhysicalLocation: sarifPhysical{
				ArtifactLocation: sarifArtifact{URI: filepath.ToSlash(f.File)},
				Region:           sarifRegion{StartLine: max(f.Line, 1), StartColumn: f.Col},
			}}},
		})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(sarifLog{Schema: sarifSchema, Version: sarifVersion, Runs: []sarifRun{run}})
}

// ruleName is a rule id in PascalCase, as SARIF's rule names are written: NoApprovalBeforeProd.
func ruleName(id string) string {
	var b strings.Builder
	for _, part := range strings.Split(id, "-") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}
