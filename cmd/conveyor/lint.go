package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/conveyorci/conveyor/internal/lint"
	"github.com/conveyorci/conveyor/internal/pipeline"
)

func lintCmd() *cobra.Command {
	var (
		format string
		strict bool
	)
	cmd := &cobra.Command{
		Use:   "lint FILE...",
		Short: "Warn about the classic mistakes in pipeline files (production without approval, plain secrets, ...)",
		Long: `Warn about the mistakes the CodePipeline guides name, and a few more, in valid pipeline
files: each warning as file:line:col, its rule id, why it matters and how to fix it.

Rules:
` + ruleList() + `
Exit status: 0, with or without warnings, unless --strict: then 1 when there are warnings.
A file that is not valid is reported as validate reports it, and the status is 2.
With --format json or sarif, only the report goes to standard output; invalid files are
reported on standard error.`,
		Example: `  conveyor lint pipeline.yaml
  conveyor lint --strict pipelines/*.yaml                    # fail a CI check on any warning
  conveyor lint --format sarif pipeline.yaml > lint.sarif    # for code scanning (GitHub, GitLab)`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if !slices.Contains(lint.Formats, format) {
				return usageErr("--format %q: use %s", format, strings.Join(lint.Formats, ", "))
			}
			var findings []lint.Finding
			invalid := false
			for _, f := range args {
				p, pos, err := pipeline.LoadWithPositions(f)
				if err != nil {
					invalid = true
					w := c.OutOrStdout()
					if format != "text" {
						w = c.ErrOrStderr()
					}
					fmt.Fprintln(w, err)
					continue
				}
				findings = append(findings, lint.Check(p, pos)...)
			}
			if err := lint.WriteFindings(c.OutOrStdout(), format, findings); err != nil {
				return err
			}
			switch {
			case invalid:
				return &exitError{code: 2}
			case strict && len(findings) > 0:
				return &exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "output format: "+strings.Join(lint.Formats, ", "))
	cmd.Flags().BoolVar(&strict, "strict", false, "exit 1 when there are warnings")
	return cmd
}

func ruleList() string {
	var b strings.Builder
	for _, r := range lint.Rules() {
		fmt.Fprintf(&b, "  %-24s %s\n", r.ID, r.Summary)
	}
	return b.String()
}
