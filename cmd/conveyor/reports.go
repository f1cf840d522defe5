package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/conveyorci/conveyor/internal/report"
	"github.com/conveyorci/conveyor/pkg/client"
)

// maxCasesShown is how many failed cases of an action the end of a watch lists.
const maxCasesShown = 5

func (r *remote) reportsCmd() *cobra.Command {
	var text bool
	cmd := &cobra.Command{
		Use:   "reports EXECUTION [STAGE.ACTION]",
		Short: "List the test reports of an execution's actions and their failed cases",
		Long: `List the test reports (the reports of Commands actions) of an execution, or of one of its
actions: the totals of each report, then each failed or errored case with its message.`,
		Example: `  conveyor reports 0193a0b2-…
  conveyor reports 0193a0b2-… Test.Unit --text`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := r.client()
			if err != nil {
				return err
			}
			var stage, action string
			if len(args) == 2 {
				if stage, action, err = splitAction(args[1]); err != nil {
					return err
				}
			}
			ctx, cancel := callCtx()
			defer cancel()
			e, err := cl.Execution(ctx, args[0])
			if err != nil {
				return explain("reports of "+args[0], err, noExecution(args[0]))
			}
			type actionReports struct {
				Stage   string              `json:"stage"`
				Action  string              `json:"action"`
				Reports []client.TestReport `json:"reports"`
			}
			var found []actionReports
			seen := false
			for _, st := range e.Stages {
				for _, a := range st.Actions {
					if action != "" && (st.Name != stage || a.Name != action) {
						continue
					}
					seen = true
					if len(a.Reports) > 0 {
						found = append(found, actionReports{st.Name, a.Name, a.Reports})
					}
				}
			}
			if action != "" && !seen {
				return fmt.Errorf("reports of %s: execution %s has no action %s", args[1], e.ID, args[1])
			}
			if r.output == "json" {
				return r.json(c, found)
			}
			out := c.OutOrStdout()
			if len(found) == 0 {
				fmt.Fprintln(out, "no test reports: declare them in a Commands action's configuration, reports: { NAME: { files: [GLOB] } }")
				return nil
			}
			for _, ar := range found {
				for _, rep := range ar.Reports {
					writeReport(out, ar.Stage+"."+ar.Action, rep, text)
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&text, "text", false, "print the first lines of each failure's details too")
	return cmd
}

// writeReport prints one report: its totals, its failed cases, and the files that did not parse.
func writeReport(out io.Writer, action string, rep client.TestReport, text bool) {
	files := "1 file"
	if rep.Files != 1 {
		files = fmt.Sprintf("%d files", rep.Files)
	}
	fmt.Fprintf(out, "%s %s (%s, %s): %s in %s\n", action, rep.Name, rep.Format, files, rep.TestTotals, rep.Duration)
	for _, c := range rep.Failures {
		fmt.Fprintf(out, "  ✗ %s\n", report.CaseLine(report.Case(c)))
		if text && c.Text != "" {
			for line := range strings.SplitSeq(c.Text, "\n") {
				fmt.Fprintf(out, "      %s\n", line)
			}
		}
	}
	if rep.Omitted > 0 {
		fmt.Fprintf(out, "  … %d more failed (not kept)\n", rep.Omitted)
	}
	for _, e := range rep.Errors {
		fmt.Fprintf(out, "  ! %s\n", e)
	}
}

// writeTests prints, after a watch's table, the test totals and first failed cases of each
// action that has reports.
func writeTests(out io.Writer, e *client.Execution) {
	for _, st := range e.Stages {
		for _, a := range st.Actions {
			if len(a.Reports) == 0 {
				continue
			}
			ref := st.Name + "." + a.Name
			fmt.Fprintln(out)
			if more := report.WriteSummary(out, "", ref, engineReports(a.Reports), maxCasesShown); more > 0 {
				fmt.Fprintf(out, "  … %d more: `conveyor reports %s %s`\n", more, e.ID, ref)
			}
		}
	}
}

// engineReports converts the API's reports to the parser's, to print them the same way
// `conveyor run` does.
func engineReports(in []client.TestReport) []report.Report {
	out := make([]report.Report, len(in))
	for i, r := range in {
		out[i] = report.Report{Name: r.Name, Format: r.Format, Files: r.Files, Errors: r.Errors,
			Totals: report.Totals(r.TestTotals), Omitted: r.Omitted}
		for _, c := range r.Failures {
			out[i].Failures = append(out[i].Failures, report.Case(c))
		}
	}
	return out
}
