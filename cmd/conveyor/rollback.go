package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/conveyorci/conveyor/pkg/client"
)

func (r *remote) rollbackCmd() *cobra.Command {
	var (
		to    string
		watch bool
	)
	cmd := &cobra.Command{
		Use:   "rollback PIPELINE STAGE",
		Short: "Roll a stage back to an earlier execution that succeeded in it",
		Long: `Roll a stage back (CodePipeline's RollbackStage): start a new execution of type Rollback
that runs only STAGE again, with the artifacts and variables of an earlier execution that
succeeded in it. Without --to, the target is the newest execution that succeeded in STAGE
before the one that entered it last (on the pipeline's current version, not itself a
rollback); the command says which it chose. The server refuses the source stage, and a target
that did not succeed in the stage, is a rollback or ran on an earlier pipeline version.
With --watch, follow the rollback until it ends; the exit status is then 0 when it succeeded.`,
		Example: `  conveyor rollback webapp Deploy
  conveyor rollback webapp Deploy --to 0193a0b2-… --watch`,
		Args: cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := r.client()
			if err != nil {
				return err
			}
			name, stage := args[0], args[1]
			ctx, cancel := callCtx()
			defer cancel()
			if to == "" {
				if to, err = previousSuccess(ctx, cl, name, stage); err != nil {
					return err
				}
				if r.output != "json" {
					fmt.Fprintf(c.OutOrStdout(), "rolling %s back to execution %s, the latest that succeeded in it before the current one\n", stage, to)
				}
			}
			e, err := cl.RollbackStage(ctx, name, stage, to)
			if err != nil {
				return explain("roll back "+stage, err, func(msg string) string {
					return fmt.Sprintf("%s: see `conveyor status %s` and `conveyor executions %s`", msg, name, name)
				})
			}
			cancel()
			if !watch {
				return r.printExecution(c, e, "started rollback %s of stage %s to execution %s: follow it with `conveyor status %s`", e.ID, stage, to, name)
			}
			if r.output != "json" {
				fmt.Fprintf(c.OutOrStdout(), "Rollback %s of stage %s to execution %s\n", e.ID, stage, to)
			}
			if e, err = r.watch(c, cl, e); err != nil {
				return err
			}
			if e.Status != client.ExecSucceeded {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&to, "to", "", "the execution to roll back to (default: the latest that succeeded in the stage before the current one)")
	f.BoolVar(&watch, "watch", false, "follow the rollback until it ends; exit 0 if it succeeded, 1 otherwise")
	return cmd
}

// previousSuccess finds the newest execution of the pipeline's current version, not a
// rollback, that succeeded in stage and is older than the execution that entered it last.
func previousSuccess(ctx context.Context, cl *client.Client, name, stage string) (string, error) {
	st, err := cl.PipelineState(ctx, name)
	if err != nil {
		return "", explain("read the state of "+name, err, noPipeline(name))
	}
	current := ""
	found := false
	for _, s := range st.Stages {
		if s.Name == stage {
			found = true
			if s.LatestExecution != nil {
				current = s.LatestExecution.ID
			}
		}
	}
	if !found {
		return "", &exitError{code: 1, err: fmt.Errorf("pipeline %s has no stage %s: see `conveyor status %s`", name, stage, name)}
	}
	var currentSeq int64
	opts := client.ListOptions{Limit: 500}
	for {
		page, err := cl.Executions(ctx, name, opts)
		if err != nil {
			return "", explain("list executions of "+name, err, noPipeline(name))
		}
		for _, e := range page.Executions {
			if e.ID == current {
				currentSeq = e.Seq
				continue
			}
			if current != "" && (currentSeq == 0 || e.Seq > currentSeq) {
				continue // newer than the current one, or the current one not seen yet
			}
			if e.Type != "Rollback" && e.PipelineVersion == st.Version && stageSucceeded(&e, stage) {
				return e.ID, nil
			}
		}
		if page.NextCursor == "" {
			break
		}
		opts.Cursor = page.NextCursor
	}
	return "", &exitError{code: 1, err: fmt.Errorf("no execution of %s (version %d) succeeded in stage %s before the current one: name one with --to", name, st.Version, stage)}
}

func stageSucceeded(e *client.Execution, stage string) bool {
	for _, s := range e.Stages {
		if s.Name == stage {
			return s.Status == "Succeeded"
		}
	}
	return false
}
