package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/dustin/go-humanize"
	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/conveyorci/conveyor/internal/action/shell"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/local"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/secret"
)

// load reads and validates a pipeline file; an invalid file is exit status 2.
func load(path string) (*pipeline.Pipeline, error) {
	p, err := pipeline.Load(path)
	if err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	return p, nil
}

func validateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check pipeline files and print every problem as file:line:col",
		Long: `Check pipeline files (YAML, or the same structure in JSON). Prints "ok" for a valid
file, or every problem as file:line:col: message, with a hint where one helps, and exits 2.`,
		Example: `  conveyor validate pipeline.yaml
  conveyor validate pipelines/*.yaml`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			var bad []string
			for _, f := range args {
				if _, err := pipeline.Load(f); err != nil {
					fmt.Fprintln(c.OutOrStdout(), err)
					bad = append(bad, f)
					continue
				}
				if len(args) > 1 {
					fmt.Fprintf(c.OutOrStdout(), "%s: ok\n", f)
				} else {
					fmt.Fprintln(c.OutOrStdout(), "ok")
				}
			}
			if len(bad) > 0 {
				return &exitError{code: 2}
			}
			return nil
		},
	}
}

func schemaCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of the pipeline file (for editors)",
		Long: `Print the JSON Schema of the pipeline file. Point your editor at it for completion
and checking, e.g. with the YAML language server: # yaml-language-server: $schema=conveyor.schema.json`,
		Example: `  conveyor schema > conveyor.schema.json`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			_, err := c.OutOrStdout().Write(pipeline.Schema())
			return err
		},
	}
}

func runCmd() *cobra.Command {
	var (
		vars, sources, approve, secrets   []string
		logs, durable                     bool
		dataDir, maxArtifact, secretsFile string
		workers                           int
	)
	cmd := &cobra.Command{
		Use:   "run FILE",
		Short: "Run a pipeline here and now, with zero infrastructure",
		Long: `Run a pipeline to its end in this process: an embedded store and artifacts on disk in a
temporary directory (or --data-dir, where an execution interrupted by a crash is resumed by
the next run), live progress stage by stage and action by action, a summary at the end.

Exit status: 0 when the execution succeeded, 1 when it failed, 2 for bad usage or an
invalid pipeline file.

Ctrl-C stops the execution as StopPipelineExecution does: the first lets in-progress
actions finish and starts nothing new; a second abandons them (their processes are killed).

Actions are named as Stage.Action, or Action where that name is unique.`,
		Example: `  conveyor run pipeline.yaml
  conveyor run pipeline.yaml --source Checkout=.       # test your working tree, uncommitted changes included
  conveyor run pipeline.yaml --var DEPLOY_ENV=prod --approve all --logs
  DEPLOY_KEY=... conveyor run pipeline.yaml --secret DEPLOY_KEY   # masked as *** in all output`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			p, err := load(args[0])
			if err != nil {
				return err
			}
			o := local.RunOptions{Pipeline: p, File: args[0], Logs: logs, DataDir: dataDir, Workers: workers, Durable: durable, Out: c.OutOrStdout()}
			if maxArtifact != "" {
				n, err := humanize.ParseBytes(maxArtifact)
				if err != nil || n == 0 || n > math.MaxInt64 {
					return usageErr("--max-artifact-size %q: give a size such as 500MiB or 2GB", maxArtifact)
				}
				o.MaxArtifactSize = int64(n)
			}
			if o.Variables, err = parseVars(p, vars); err != nil {
				return err
			}
			if o.Sources, err = parseSources(p, sources); err != nil {
				return err
			}
			if o.Secrets, err = parseSecrets(p, secrets, secretsFile, os.LookupEnv); err != nil {
				return err
			}
			if o.ApproveAll, o.Approve, err = parseApprovals(p, approve); err != nil {
				return err
			}
			// A terminal, not any character device: stdin from /dev/null (CI, cron) has nobody to ask.
			if isatty.IsTerminal(os.Stdin.Fd()) {
				o.Prompt = local.TerminalPrompt(os.Stdin, c.OutOrStdout())
			}
			interrupts := make(chan os.Signal, 2)
			signal.Notify(interrupts, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(interrupts)
			o.Interrupts = interrupts
			exec, err := local.Run(context.Background(), o)
			if err != nil {
				if errors.Is(err, local.ErrBusy) {
					return &exitError{code: 2, err: err}
				}
				return err
			}
			if exec.Status != engine.ExecSucceeded {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&vars, "var", nil, "set a pipeline variable: NAME=VALUE (repeatable)")
	f.StringArrayVar(&sources, "source", nil, "run a Git source action on a local working tree as it is: ACTION=DIR (repeatable)")
	f.StringArrayVar(&approve, "approve", nil, "approve an approval action in advance: ACTION, or all (repeatable)")
	f.BoolVar(&logs, "logs", false, "show every action's output as it runs (otherwise only a failed action's)")
	f.StringVar(&dataDir, "data-dir", "", "keep the store here between runs; an interrupted execution is resumed (default: a temporary directory)")
	f.IntVar(&workers, "workers", 4, "how many actions may run at once")
	f.StringVar(&maxArtifact, "max-artifact-size", "", "refuse an artifact larger than this, uncompressed, e.g. 500MiB (default 5GiB)")
	f.BoolVar(&durable, "durable", false, "make every state change survive a power loss, not only a crash (slower)")
	f.StringArrayVar(&secrets, "secret", nil, "give a secret the pipeline lists: NAME (its value from the environment variable NAME, or NAME in upper case with - . @ as _) or NAME=VALUE (repeatable)")
	f.StringVar(&secretsFile, "secrets-file", "", "read secrets from a file of NAME=VALUE lines (# comments and blank lines ignored)")
	return cmd
}

// parseSecrets gathers the values of the pipeline's secrets from --secret and
// --secrets-file (the flags win over the file), and checks that every secret an action takes
// has one.
func parseSecrets(p *pipeline.Pipeline, flags []string, file string, getenv func(string) (string, bool)) (map[string]string, error) {
	out := map[string]string{}
	set := func(where, name, value string) error {
		if !slices.Contains(p.Secrets, name) {
			if len(p.Secrets) == 0 {
				return usageErr("%s: pipeline %s lists no secrets (add them under secrets:)", where, p.Name)
			}
			return usageErr("%s: pipeline %s does not list secret %s; it lists %s", where, p.Name, name, strings.Join(p.Secrets, ", "))
		}
		if err := secret.CheckValue(value); err != nil {
			return usageErr("%s: secret %s: %v", where, name, err)
		}
		out[name] = value
		return nil
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, usageErr("--secrets-file: %v", err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			name, value, ok := strings.Cut(line, "=")
			where := fmt.Sprintf("%s:%d", file, i+1)
			if !ok || strings.TrimSpace(name) == "" {
				return nil, usageErr("%s: write NAME=VALUE", where)
			}
			if err := set(where, strings.TrimSpace(name), value); err != nil {
				return nil, err
			}
		}
	}
	for _, f := range flags {
		name, value, ok := strings.Cut(f, "=")
		if !ok {
			// A secret name may hold '-', '.' or '@', which no shell can export: its variable
			// is then the name in upper case with those written '_' (deploy-key: DEPLOY_KEY).
			v, found := getenv(name)
			envName := strings.ToUpper(shell.InputVariable(name))
			if !found {
				v, found = getenv(envName)
			}
			if !found {
				return nil, usageErr("--secret %s: neither %s nor %s is set in the environment (or give --secret %s=VALUE)", name, name, envName, name)
			}
			value = v
		}
		if err := set("--secret "+name, name, value); err != nil {
			return nil, err
		}
	}
	var missing []string
	for _, st := range p.Stages {
		for _, a := range st.Actions {
			for _, name := range a.SecretEnvironment {
				if _, ok := out[name]; !ok && !slices.Contains(missing, name) {
					missing = append(missing, name)
				}
			}
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, usageErr("actions take secrets with no value: %s; pass each with --secret NAME (from the environment), --secret NAME=VALUE or --secrets-file FILE",
			strings.Join(missing, ", "))
	}
	return out, nil
}

func parseVars(p *pipeline.Pipeline, args []string) (map[string]string, error) {
	out := map[string]string{}
	for _, a := range args {
		name, val, ok := strings.Cut(a, "=")
		if !ok || name == "" {
			return nil, usageErr("--var %q: write it as NAME=VALUE", a)
		}
		if !slices.ContainsFunc(p.Variables, func(v pipeline.Variable) bool { return v.Name == name }) {
			var names []string
			for _, v := range p.Variables {
				names = append(names, v.Name)
			}
			if len(names) == 0 {
				return nil, usageErr("--var %s: pipeline %s declares no variables", name, p.Name)
			}
			return nil, usageErr("--var %s: pipeline %s has no such variable (it has: %s)", name, p.Name, strings.Join(names, ", "))
		}
		out[name] = val
	}
	return out, nil
}

func parseSources(p *pipeline.Pipeline, args []string) (map[string]string, error) {
	out := map[string]string{}
	for _, a := range args {
		ref, dir, ok := strings.Cut(a, "=")
		if !ok || ref == "" || dir == "" {
			return nil, usageErr("--source %q: write it as ACTION=DIR, e.g. --source Checkout=.", a)
		}
		si, ai, err := p.FindAction(ref)
		if err != nil {
			return nil, usageErr("--source: %v", err)
		}
		act := p.Stages[si].Actions[ai]
		if act.Category != pipeline.Source || act.Provider != "Git" {
			return nil, usageErr("--source %s: %s.%s is a %s/%s action; --source takes a Git source action", ref, p.Stages[si].Name, act.Name, act.Category, act.Provider)
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, usageErr("--source %s: %v", ref, err)
		}
		if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
			return nil, usageErr("--source %s: %s is not a directory", ref, dir)
		}
		out[p.Stages[si].Name+"."+act.Name] = abs
	}
	return out, nil
}

func parseApprovals(p *pipeline.Pipeline, args []string) (all bool, refs []string, err error) {
	for _, a := range args {
		if a == "all" {
			all = true
			continue
		}
		si, ai, err := p.FindAction(a)
		if err != nil {
			return false, nil, usageErr("--approve: %v", err)
		}
		act := p.Stages[si].Actions[ai]
		if act.Category != pipeline.Approval {
			return false, nil, usageErr("--approve %s: %s.%s is a %s action, not an approval", a, p.Stages[si].Name, act.Name, act.Category)
		}
		refs = append(refs, p.Stages[si].Name+"."+act.Name)
	}
	return all, refs, nil
}
