package main

import (
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/conveyorci/conveyor/internal/graph"
)

func graphCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "graph FILE",
		Short: "Draw a pipeline's flow: stages, actions, and which artifact and variable goes where",
		Long: `Draw a pipeline's flow for docs and reviews: its stages in order, the actions of each
grouped by runOrder (actions with the same runOrder run in parallel), an edge for each
artifact from the action that produces it to each action that takes it, and an edge for
output variables from the action that owns the namespace to each action that references
#{Namespace.Name}. Approvals are drawn apart (a hexagon).

Formats: mermaid (a flowchart for Markdown: GitHub, GitLab and most wikis render it),
dot (Graphviz: conveyor graph --format dot FILE | dot -Tsvg > flow.svg), text.

Exit status: 0, or 2 for bad usage or an invalid pipeline file (reported as validate does).`,
		Example: `  conveyor graph pipeline.yaml
  conveyor graph --format dot pipeline.yaml | dot -Tsvg > flow.svg
  conveyor graph --format text pipeline.yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if !slices.Contains(graph.Formats, format) {
				return usageErr("--format %q: use %s", format, strings.Join(graph.Formats, ", "))
			}
			p, err := load(args[0])
			if err != nil {
				return err
			}
			return graph.Write(c.OutOrStdout(), format, graph.Build(p))
		},
	}
	cmd.Flags().StringVar(&format, "format", "mermaid", "output format: "+strings.Join(graph.Formats, ", "))
	return cmd
}
