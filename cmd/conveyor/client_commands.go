package main

// The client commands: they talk to a conveyor server through pkg/client.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/conveyorci/conveyor/pkg/client"
)

// defaultServer is where the client commands look for a server without --server or
// CONVEYOR_SERVER.
const defaultServer = "http://127.0.0.1:8080"

// callTimeout bounds one API call of a client command.
const callTimeout = 30 * time.Second

// watchInterval is how often `start --watch` polls the execution when the event stream fails.
const watchInterval = 500 * time.Millisecond

// remote holds the flags every client command shares.
type remote struct {
	server, token, output string
}

// clientCommands returns the commands that talk to a server.
func clientCommands() []*cobra.Command {
	r := &remote{}
	cmds := []*cobra.Command{
		r.pipelineCmd(), r.startCmd(), r.statusCmd(), r.executionsCmd(), r.logsCmd(), r.reportsCmd(),
		r.stopCmd(), r.retryCmd(), r.decideCmd(true), r.decideCmd(false), r.allowCmd(), r.transitionCmd(),
		r.rollbackCmd(),
	}
	for _, c := range cmds {
		r.flags(c.PersistentFlags())
	}
	return append(cmds, artifactCmd()) // its own flags: -o is the file it writes
}

// flags registers the flags every command talking to a server shares: --server, --token
// and --output.
func (r *remote) flags(f *pflag.FlagSet) {
	f.StringVar(&r.server, "server", "", "URL of the conveyor server (default $CONVEYOR_SERVER, else "+defaultServer+")")
	// The token's default is read when the command runs, so that --help never prints it.
	f.StringVar(&r.token, "token", "", "API token (default $CONVEYOR_TOKEN)")
	f.StringVarP(&r.output, "output", "o", "table", "output format: table or json")
}

// client checks the shared flags and returns a client of the server.
func (r *remote) client() (*client.Client, error) {
	if r.output != "table" && r.output != "json" {
		return nil, usageErr("--output %q: use table or json", r.output)
	}
	r.server = cmp.Or(r.server, os.Getenv("CONVEYOR_SERVER"), defaultServer)
	r.token = cmp.Or(r.token, os.Getenv("CONVEYOR_TOKEN"))
	c, err := client.New(r.server, r.token, client.WithUserAgent("conveyor-cli"))
	if err != nil {
		return nil, usageErr("--server: %v", err)
	}
	return c, nil
}

// call runs fn with a client of the server and a context that bounds one API call (callCtx).
func (r *remote) call(fn func(ctx context.Context, cl *client.Client) error) error {
	cl, err := r.client()
	if err != nil {
		return err
	}
	ctx, cancel := callCtx()
	defer cancel()
	return fn(ctx, cl)
}

// ctx bounds one API call; Ctrl-C cancels it.
func callCtx() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	return ctx, func() { cancel(); stop() }
}

// json prints v as indented JSON, for --output json.
func (r *remote) json(c *cobra.Command, v any) error {
	enc := json.NewEncoder(c.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// notFound says what to do when a call answers 404.
type notFound func(msg string) string

func noPipeline(name string) notFound {
	return func(string) string { return fmt.Sprintf("no pipeline %s: see `conveyor pipeline list`", name) }
}

func noExecution(id string) notFound {
	return func(msg string) string {
		return fmt.Sprintf("%s (execution %s): see `conveyor executions PIPELINE` for the ids", msg, id)
	}
}

// explain turns an error of the client into one that says what to do, with its exit status.
func explain(verb string, err error, nf notFound) error {
	var ue *client.UnreachableError
	if errors.As(err, &ue) {
		return &exitError{code: 1, err: err}
	}
	var ae *client.Error
	if !errors.As(err, &ae) {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%s: the server did not answer within %v: %w", verb, callTimeout, err)
		}
		return fmt.Errorf("%s: %w", verb, err)
	}
	msg := ae.Message
	if msg == "" {
		msg = ae.Code
	}
	switch {
	case ae.Status == 401:
		why := "the server printed an admin token on its first start"
		if strings.Contains(msg, "expired") || strings.Contains(msg, "revoked") {
			why = msg // and what to do
		}
		return &exitError{code: 1, err: fmt.Errorf("the server refused the token: pass --token or set CONVEYOR_TOKEN (%s)", why)}
	case ae.Status == 404 && nf != nil:
		return &exitError{code: 1, err: errors.New(nf(msg))}
	case ae.Status == 400:
		return &exitError{code: 2, err: fmt.Errorf("%s: %s", verb, msg)}
	case ae.Status == 409:
		return &exitError{code: 1, err: fmt.Errorf("%s: refused: %s", verb, msg)}
	}
	return &exitError{code: 1, err: fmt.Errorf("%s: %s", verb, msg)}
}

// splitAction splits STAGE.ACTION.
func splitAction(ref string) (stage, action string, err error) {
	stage, action, ok := strings.Cut(ref, ".")
	if !ok || stage == "" || action == "" {
		return "", "", usageErr("%q: name the action as STAGE.ACTION, e.g. Approve.ReleaseGate", ref)
	}
	return stage, action, nil
}

func (r *remote) pipelineCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pipeline",
		Short: "Apply, list, show, delete and link the pipelines of a server",
		Example: `  conveyor pipeline apply -f pipeline.yaml --start
  conveyor pipeline list
  conveyor pipeline get webapp --version 2
  conveyor pipeline delete webapp
  conveyor pipeline link webapp --repository https://github.com/acme/webapp.git`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(r.applyCmd(), r.listCmd(), r.getCmd(), r.deleteCmd(), r.linkCmd(), r.unlinkCmd())
	return cmd
}

func (r *remote) linkCmd() *cobra.Command {
	var link client.Link
	cmd := &cobra.Command{
		Use:   "link NAME --repository URL",
		Short: "Make a pipeline's definition follow a file in a repository (pipeline as code)",
		Long: `Read the pipeline file at the head of a branch of a repository now, make it the pipeline's
newest version, and from then on follow it: each commit that changes the file makes a new
version tied to that commit. A commit that makes the file invalid is refused (the last good
version keeps running) and reported in the audit log and, when the pipeline reports commit
statuses, as a failed status on that commit. While linked, the pipeline cannot be applied
from a file (conveyor pipeline unlink NAME first).`,
		Example: `  conveyor pipeline link webapp --repository https://github.com/acme/webapp.git
  conveyor pipeline link webapp --repository https://git.example.com/acme/webapp.git \
      --branch release --path ci/pipeline.yaml --token-secret GIT_TOKEN`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if link.Repository == "" {
				return usageErr("--repository is required: the URL of the repository holding the pipeline file")
			}
			return r.call(func(ctx context.Context, cl *client.Client) error {
				res, err := cl.LinkPipeline(ctx, args[0], link)
				if err != nil {
					return explain("link pipeline "+args[0], err, noPipeline(args[0]))
				}
				if r.output == "json" {
					return r.json(c, res)
				}
				what := "unchanged"
				if res.Changed {
					what = "new version"
				}
				fmt.Fprintf(c.OutOrStdout(), "pipeline %s follows %s on branch %s of %s: version %d (%s), from commit %s\n",
					res.Name, res.Path, res.Branch, link.Repository, res.Version, what, res.Commit)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&link.Repository, "repository", "", "URL (or path) of the repository holding the pipeline file")
	cmd.Flags().StringVar(&link.Branch, "branch", "", "the branch to follow (default: the repository's default branch)")
	cmd.Flags().StringVar(&link.Path, "path", "", "the pipeline file in the repository (default .conveyor/pipeline.yaml)")
	cmd.Flags().StringVar(&link.Token, "token-secret", "", "the name of a secret of the pipeline holding an access token for HTTPS")
	return cmd
}

func (r *remote) unlinkCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "unlink NAME",
		Short:   "Stop a pipeline following a file in a repository (its definition stays as it is)",
		Example: `  conveyor pipeline unlink webapp`,
		Args:    cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return r.call(func(ctx context.Context, cl *client.Client) error {
				v, err := cl.UnlinkPipeline(ctx, args[0])
				if err != nil {
					return explain("unlink pipeline "+args[0], err, noPipeline(args[0]))
				}
				if r.output == "json" {
					return r.json(c, map[string]any{"name": args[0], "version": v})
				}
				fmt.Fprintf(c.OutOrStdout(), "pipeline %s no longer follows a file: version %d\n", args[0], v)
				return nil
			})
		},
	}
}

func (r *remote) applyCmd() *cobra.Command {
	var (
		file  string
		start bool
	)
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Create a pipeline, or a new version of it, from a pipeline file",
		Long: `Send a pipeline file (YAML or JSON) to the server: a new pipeline, or a new version of
the pipeline of that name (the same file again keeps the same version). The server checks it
and every mistake is printed as FILE:line:col: message, with exit status 2.`,
		Example: `  conveyor pipeline apply -f pipeline.yaml
  conveyor pipeline apply -f pipeline.yaml --start     # and start an execution of it`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if file == "" {
				return usageErr("pipeline apply: give the pipeline file with -f FILE")
			}
			cl, err := r.client()
			if err != nil {
				return err
			}
			data, err := os.ReadFile(file)
			if err != nil {
				return usageErr("read pipeline file: %v", err)
			}
			name, err := pipelineName(file, data)
			if err != nil {
				return err
			}
			ctype := "application/yaml"
			if strings.EqualFold(filepath.Ext(file), ".json") {
				ctype = "application/json"
			}
			ctx, cancel := callCtx()
			defer cancel()
			res, err := cl.ApplyPipeline(ctx, name, data, ctype, start)
			if err != nil {
				var ae *client.Error
				if errors.As(err, &ae) && ae.Code == client.CodeInvalidPipeline {
					return invalidFile(c, file, ae)
				}
				return explain("apply "+file, err, nil)
			}
			if r.output == "json" {
				return r.json(c, res)
			}
			what := "version"
			if res.Created {
				what = "created, version"
			}
			fmt.Fprintf(c.OutOrStdout(), "pipeline %s %s %d\n", res.Name, what, res.Version)
			if res.Execution != nil {
				fmt.Fprintf(c.OutOrStdout(), "started execution %s: follow it with `conveyor status %s`\n", res.Execution.ID, res.Name)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the pipeline file (YAML or JSON)")
	cmd.Flags().BoolVar(&start, "start", false, "also start an execution of the version applied")
	return cmd
}

// pipelineName reads the name a pipeline file declares. A file that cannot be read as YAML
// is checked here, to print its mistakes the way `conveyor validate` does.
func pipelineName(file string, data []byte) (string, error) {
	var doc struct {
		Name string `yaml:"name"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil || doc.Name == "" {
		p, lerr := load(file)
		if lerr != nil {
			return "", lerr
		}
		return p.Name, nil
	}
	return doc.Name, nil
}

// invalidFile prints the server's findings about a pipeline file as FILE:line:col and exits 2.
func invalidFile(c *cobra.Command, file string, ae *client.Error) error {
	if len(ae.Details) == 0 {
		return &exitError{code: 2, err: fmt.Errorf("%s: %s", file, ae.Message)}
	}
	for _, d := range ae.Details {
		fmt.Fprintf(c.ErrOrStderr(), "%s:%s\n", file, fileDetail(d))
	}
	return &exitError{code: 2}
}

func fileDetail(d client.Detail) string {
	s := d.String()
	if d.Line == 0 {
		s = " " + s
	}
	return s
}

func (r *remote) listCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List the pipelines of the server, with their latest version",
		Example: `  conveyor pipeline list --server https://ci.example.com`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return r.call(func(ctx context.Context, cl *client.Client) error {
				list, err := cl.Pipelines(ctx)
				if err != nil {
					return explain("list pipelines", err, nil)
				}
				if r.output == "json" {
					return r.json(c, map[string]any{"pipelines": list})
				}
				if len(list) == 0 {
					fmt.Fprintln(c.OutOrStdout(), "no pipelines yet: add one with `conveyor pipeline apply -f pipeline.yaml`")
					return nil
				}
				tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tVERSION\tUPDATED")
				for _, p := range list {
					fmt.Fprintf(tw, "%s\t%d\t%s\n", p.Name, p.Version, when(p.CreatedAt))
				}
				return tw.Flush()
			})
		},
	}
}

func (r *remote) getCmd() *cobra.Command {
	var version int
	cmd := &cobra.Command{
		Use:   "get NAME",
		Short: "Print a pipeline's declaration (YAML, or JSON with -o json)",
		Example: `  conveyor pipeline get webapp
  conveyor pipeline get webapp --version 2 -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return r.call(func(ctx context.Context, cl *client.Client) error {
				p, err := cl.Pipeline(ctx, args[0], version)
				if err != nil {
					nf := noPipeline(args[0])
					if version > 0 {
						nf = func(string) string {
							return fmt.Sprintf("pipeline %s has no version %d: see `conveyor pipeline list`", args[0], version)
						}
					}
					return explain("get pipeline "+args[0], err, nf)
				}
				if r.output == "json" {
					return r.json(c, p)
				}
				y, err := yaml.JSONToYAML(p.Declaration)
				if err != nil {
					return fmt.Errorf("render pipeline %s as YAML: %w", args[0], err)
				}
				fmt.Fprintf(c.OutOrStdout(), "# pipeline %s, version %d, applied %s\n", p.Name, p.Version, when(p.CreatedAt))
				_, err = c.OutOrStdout().Write(y)
				return err
			})
		},
	}
	cmd.Flags().IntVar(&version, "version", 0, "the version to print (default: the latest)")
	return cmd
}

func (r *remote) deleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "delete NAME",
		Short:   "Delete a pipeline (refused while one of its executions runs)",
		Example: `  conveyor pipeline delete webapp`,
		Args:    cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return r.call(func(ctx context.Context, cl *client.Client) error {
				if err := cl.DeletePipeline(ctx, args[0]); err != nil {
					var ae *client.Error
					if errors.As(err, &ae) && ae.Status == 409 {
						return fmt.Errorf("delete pipeline %s: refused: %s (stop its executions first: `conveyor executions %s --status InProgress`, then `conveyor stop ID`)", args[0], ae.Message, args[0])
					}
					return explain("delete pipeline "+args[0], err, noPipeline(args[0]))
				}
				if r.output == "json" {
					return r.json(c, map[string]any{"deleted": args[0]})
				}
				fmt.Fprintf(c.OutOrStdout(), "pipeline %s deleted\n", args[0])
				return nil
			})
		},
	}
}

func (r *remote) startCmd() *cobra.Command {
	var (
		vars, revisions []string
		watch           bool
		token           string
	)
	cmd := &cobra.Command{
		Use:   "start NAME",
		Short: "Start an execution of a pipeline on the server",
		Long: `Start an execution of the latest version of a pipeline. With --watch, follow it stage by
stage and action by action until it ends; the exit status is then 0 when it succeeded and 1
otherwise. Ctrl-C stops watching, not the execution (stop it with conveyor stop).`,
		Example: `  conveyor start webapp
  conveyor start webapp --var DEPLOY_ENV=prod --revision Checkout=v1.2.0 --watch`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := r.client()
			if err != nil {
				return err
			}
			name := args[0]
			in := client.StartInput{ClientRequestToken: token}
			for _, v := range vars {
				k, val, ok := strings.Cut(v, "=")
				if !ok || k == "" {
					return usageErr("--var %q: write it as NAME=VALUE", v)
				}
				if in.Variables == nil {
					in.Variables = map[string]string{}
				}
				in.Variables[k] = val
			}
			ctx, cancel := callCtx()
			defer cancel()
			for _, rv := range revisions {
				ref, sha, ok := strings.Cut(rv, "=")
				if !ok || ref == "" || sha == "" {
					return usageErr("--revision %q: write it as ACTION=REVISION, e.g. --revision Source.Checkout=v1.2.0", rv)
				}
				if !strings.Contains(ref, ".") {
					if ref, err = qualifyAction(ctx, cl, name, ref); err != nil {
						return err
					}
				}
				if in.SourceRevisions == nil {
					in.SourceRevisions = map[string]string{}
				}
				in.SourceRevisions[ref] = sha
			}
			e, err := cl.StartExecution(ctx, name, in)
			if err != nil {
				return explain("start "+name, err, noPipeline(name))
			}
			cancel()
			if !watch {
				if r.output == "json" {
					return r.json(c, e)
				}
				fmt.Fprintf(c.OutOrStdout(), "started execution %s of %s (version %d): follow it with `conveyor status %s`\n", e.ID, name, e.PipelineVersion, name)
				return nil
			}
			if r.output != "json" {
				fmt.Fprintf(c.OutOrStdout(), "Execution %s of %s (version %d)\n", e.ID, name, e.PipelineVersion)
			}
			e, err = r.watch(c, cl, e)
			if err != nil {
				return err
			}
			if e.Status != client.ExecSucceeded {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&vars, "var", nil, "set a pipeline variable: NAME=VALUE (repeatable)")
	f.StringArrayVar(&revisions, "revision", nil, "pin what a source action fetches: ACTION=SHA or tag, ACTION as Stage.Action or Action (repeatable)")
	f.BoolVar(&watch, "watch", false, "follow the execution until it ends; exit 0 if it succeeded, 1 otherwise")
	f.StringVar(&token, "client-request-token", "", "make the start idempotent: the same token starts one execution only")
	return cmd
}

// qualifyAction turns an action name into Stage.Action, from the pipeline's declaration.
func qualifyAction(ctx context.Context, cl *client.Client, pipeline, action string) (string, error) {
	p, err := cl.Pipeline(ctx, pipeline, 0)
	if err != nil {
		return "", explain("read pipeline "+pipeline, err, noPipeline(pipeline))
	}
	var decl struct {
		Stages []struct {
			Name    string `json:"name"`
			Actions []struct {
				Name string `json:"name"`
			} `json:"actions"`
		} `json:"stages"`
	}
	if err := json.Unmarshal(p.Declaration, &decl); err != nil {
		return "", fmt.Errorf("read pipeline %s: %w", pipeline, err)
	}
	var found []string
	for _, s := range decl.Stages {
		for _, a := range s.Actions {
			if a.Name == action {
				found = append(found, s.Name+"."+a.Name)
			}
		}
	}
	switch len(found) {
	case 0:
		return "", usageErr("--revision %s: pipeline %s has no action %s", action, pipeline, action)
	case 1:
		return found[0], nil
	}
	return "", usageErr("--revision %s: several actions have that name (%s): write it as Stage.Action", action, strings.Join(found, ", "))
}

// watch follows an execution until it ends, printing what changed: through the server's
// event stream, and by polling when the stream fails. Ctrl-C stops watching.
func (r *remote) watch(c *cobra.Command, cl *client.Client, e *client.Execution) (*client.Execution, error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	out := c.OutOrStdout()
	shown := map[string]string{}
	e = r.watchEvents(ctx, out, cl, e, shown)
	tick := time.NewTicker(watchInterval)
	defer tick.Stop()
	failures := 0
	for {
		if r.output != "json" {
			progress(out, e, shown)
		}
		if e.Status.Terminal() {
			break
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(c.ErrOrStderr(), "stopped watching; execution %s goes on: `conveyor status %s`, or stop it with `conveyor stop %s`\n", e.ID, e.Pipeline, e.ID)
			return nil, &exitError{code: 130}
		case <-tick.C:
		}
		callCtx, cancel := context.WithTimeout(ctx, callTimeout)
		next, err := cl.Execution(callCtx, e.ID)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				continue
			}
			// A server restarting is not the end of the execution: try again for a while.
			var ue *client.UnreachableError
			if errors.As(err, &ue) && failures < 20 {
				failures++
				continue
			}
			return nil, explain("watch execution "+e.ID, err, noExecution(e.ID))
		}
		failures = 0
		e = next
	}
	if r.output == "json" {
		return e, r.json(c, e)
	}
	summary(out, e)
	return e, nil
}

// watchEvents follows an execution through the server's event stream, printing what
// changed, until it ends, and returns the latest state it saw: when the stream cannot be
// opened or breaks, the caller polls on from there.
func (r *remote) watchEvents(ctx context.Context, out io.Writer, cl *client.Client, e *client.Execution, shown map[string]string) *client.Execution {
	s, err := cl.Events(ctx, e.Pipeline)
	if err != nil {
		return e
	}
	defer s.Close()
	// The stream is open: read once what happened before it.
	callCtx, cancel := context.WithTimeout(ctx, callTimeout)
	cur, err := cl.Execution(callCtx, e.ID)
	cancel()
	if err == nil {
		e = cur
	}
	for {
		if r.output != "json" {
			progress(out, e, shown)
		}
		if e.Status.Terminal() {
			return e
		}
		next, err := s.Next()
		if err != nil {
			return e
		}
		// States committed before the read above may still come: keep the newest.
		if next.ID == e.ID && !next.UpdatedAt.Before(e.UpdatedAt) {
			e = next
		}
	}
}

// progress prints a line per stage entered and per action started or finished since shown.
func progress(out io.Writer, e *client.Execution, shown map[string]string) {
	if h := e.Hold; h != nil && h.Decision == nil && shown["hold"] == "" {
		shown["hold"] = "waiting"
		fmt.Fprintf(out, " ? %s\n   `conveyor allow %s` lets it run, `conveyor allow %s --refuse` stops it\n", h.Reason, e.ID, e.ID)
	}
	for _, st := range e.Stages {
		if st.Status != "" && shown[st.Name] != st.Status+fmt.Sprint(st.Attempt) {
			prev := shown[st.Name]
			shown[st.Name] = st.Status + fmt.Sprint(st.Attempt)
			switch {
			case st.Status == client.StatusWaiting:
				fmt.Fprintf(out, "== %s: waiting (another execution holds the stage, or its transition is disabled)\n", st.Name)
			case st.Status == client.StatusInProgress || prev == "":
				fmt.Fprintf(out, "== %s\n", st.Name)
			}
		}
		for _, a := range st.Actions {
			key := st.Name + "." + a.Name
			state := a.Status + fmt.Sprint(a.Attempt)
			if a.Status == "" || shown[key] == state {
				continue
			}
			shown[key] = state
			attempt := ""
			if a.Attempt > 1 {
				attempt = fmt.Sprintf(" (attempt %d)", a.Attempt)
			}
			switch a.Status {
			case client.StatusInProgress:
				switch {
				case a.ExternalID != "" && a.JobID == "": // Invoke/Pipeline: the engine runs it
					fmt.Fprintf(out, "   %-28s started%s%s\n", a.Name, attempt, suffix(a.Summary))
				case a.JobID == "":
					fmt.Fprintf(out, " ? %-28s waits for approval%s%s: `conveyor approve %s %s` or `conveyor reject %s %s`\n",
						a.Name, attempt, suffix(a.Summary), e.ID, key, e.ID, key)
				default:
					fmt.Fprintf(out, "   %-28s started%s\n", a.Name, attempt)
				}
			case client.StatusSucceeded:
				fmt.Fprintf(out, " ✓ %-28s succeeded in %s%s%s\n", a.Name, took(a.StartedAt, a.FinishedAt), attempt, suffix(a.Summary))
			default:
				fmt.Fprintf(out, " ✗ %-28s %s in %s%s: %s\n", a.Name, strings.ToLower(a.Status), took(a.StartedAt, a.FinishedAt), attempt, a.Message)
				if a.JobID != "" {
					fmt.Fprintf(out, "   its output: `conveyor logs %s %s`\n", e.ID, key)
				}
			}
		}
	}
}

func suffix(summary string) string {
	if summary == "" {
		return ""
	}
	return " — " + summary
}

// summary prints the table at the end of a watch.
func summary(out io.Writer, e *client.Execution) {
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tACTION\tSTATUS\tDURATION\tATTEMPT")
	for _, st := range e.Stages {
		for _, a := range st.Actions {
			status, dur := a.Status, ""
			if status == "" {
				status = "-"
			}
			if !a.FinishedAt.IsZero() {
				dur = took(a.StartedAt, a.FinishedAt)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", st.Name, a.Name, status, dur, a.Attempt)
		}
	}
	tw.Flush()
	writeTests(out, e)
	fmt.Fprintf(out, "\nExecution %s %s in %s", e.ID, e.Status, took(e.CreatedAt, e.FinishedAt))
	if e.Message != "" {
		fmt.Fprintf(out, ": %s", e.Message)
	}
	fmt.Fprintln(out)
}

func (r *remote) statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status NAME",
		Short: "Draw a pipeline's stages with their latest execution and action statuses",
		Long: `Draw the stages of a pipeline from top to bottom: each stage's latest execution and its
actions' statuses, a disabled transition (executions wait before it) and the executions waiting
to enter a stage.`,
		Example: `  conveyor status webapp
  conveyor status webapp -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return r.call(func(ctx context.Context, cl *client.Client) error {
				st, err := cl.PipelineState(ctx, args[0])
				if err != nil {
					return explain("status of "+args[0], err, noPipeline(args[0]))
				}
				if r.output == "json" {
					return r.json(c, st)
				}
				drawState(c.OutOrStdout(), st)
				return nil
			})
		},
	}
}

// mark is the one-character sign of a status.
func mark(status string) string {
	switch status {
	case client.StatusSucceeded:
		return "✓"
	case client.StatusFailed, client.StatusAbandoned:
		return "✗"
	case client.StatusInProgress, client.StatusStopping:
		return "▶"
	case client.StatusStopped, client.StatusSuperseded, client.StatusCancelled:
		return "■"
	case client.StatusWaiting:
		return "…"
	case "":
		return "·"
	}
	return "?"
}

// drawState draws the stages top to bottom, joined by their transitions.
func drawState(out io.Writer, st *client.PipelineState) {
	fmt.Fprintf(out, "Pipeline %s (version %d)\n", st.Pipeline, st.Version)
	for i, s := range st.Stages {
		if i > 0 {
			if s.Transition.Enabled {
				fmt.Fprintln(out, "    │")
			} else {
				line := "    ╳  transition disabled"
				if s.Transition.Reason != "" {
					line += ": " + s.Transition.Reason
				}
				if s.Transition.By != "" {
					line += " (by " + s.Transition.By + ")"
				}
				fmt.Fprintln(out, line+fmt.Sprintf(" — enable it: `conveyor transition enable %s %s`", st.Pipeline, s.Name))
			}
			if n := len(s.InboundExecutions); n > 0 {
				fmt.Fprintf(out, "    │  %d waiting: %s\n", n, strings.Join(s.InboundExecutions, ", "))
			}
			fmt.Fprintln(out, "    ▼")
		} else if n := len(s.InboundExecutions); n > 0 {
			fmt.Fprintf(out, "    %d waiting: %s\n", n, strings.Join(s.InboundExecutions, ", "))
		}
		head := "┌─ " + s.Name
		if s.LatestExecution != nil {
			head += fmt.Sprintf("   %s %s  %s", mark(s.LatestExecution.Status), s.LatestExecution.Status, s.LatestExecution.ID)
		} else {
			head += "   · no execution yet"
		}
		fmt.Fprintln(out, head)
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		for _, a := range s.Actions {
			status := a.Status
			if status == "" {
				status = "not started"
			}
			extra := ""
			if a.Attempt > 1 {
				extra = fmt.Sprintf("attempt %d", a.Attempt)
			}
			switch {
			case !a.FinishedAt.IsZero():
				extra = strings.TrimSpace(extra + " " + took(a.StartedAt, a.FinishedAt))
			case !a.StartedAt.IsZero():
				extra = strings.TrimSpace(extra + " running for " + took(a.StartedAt, time.Now()))
			}
			note := a.Summary
			if a.Message != "" {
				note = strings.TrimSpace(note + " " + a.Message)
			}
			if a.Tests != nil {
				note = strings.TrimSpace("tests: " + a.Tests.String() + " " + note)
			}
			fmt.Fprintf(tw, "│  %s %s\t%s\t%s\t%s\n", mark(a.Status), a.Name, status, extra, note)
		}
		tw.Flush()
		fmt.Fprintln(out, "└─")
	}
}

func (r *remote) executionsCmd() *cobra.Command {
	var (
		statuses  []string
		limit     int
		cursor    string
		succeeded string
	)
	cmd := &cobra.Command{
		Use:   "executions NAME",
		Short: "List a pipeline's executions, newest first",
		Example: `  conveyor executions webapp
  conveyor executions webapp --status Failed --status Stopped --limit 10
  conveyor executions webapp --succeeded-in-stage Deploy`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := r.client()
			if err != nil {
				return err
			}
			if limit < 0 || limit > 500 {
				return usageErr("--limit %d: give 1 to 500", limit)
			}
			o := client.ListOptions{Limit: limit, Cursor: cursor, SucceededInStage: succeeded}
			for _, s := range statuses {
				o.Statuses = append(o.Statuses, client.ExecutionStatus(s))
			}
			ctx, cancel := callCtx()
			defer cancel()
			page, err := cl.Executions(ctx, args[0], o)
			if err != nil {
				return explain("list executions of "+args[0], err, noPipeline(args[0]))
			}
			if r.output == "json" {
				return r.json(c, page)
			}
			if len(page.Executions) == 0 {
				fmt.Fprintf(c.OutOrStdout(), "no executions: start one with `conveyor start %s`\n", args[0])
				return nil
			}
			tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATUS\tVERSION\tTRIGGER\tSTARTED\tDURATION\tMESSAGE")
			for _, e := range page.Executions {
				dur := ""
				if !e.FinishedAt.IsZero() {
					dur = took(e.CreatedAt, e.FinishedAt)
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", e.ID, e.Status, e.PipelineVersion, e.Trigger.Type, when(e.CreatedAt), dur, e.Message)
			}
			tw.Flush()
			if page.NextCursor != "" {
				more := ""
				for _, s := range statuses {
					more += " --status " + s
				}
				if succeeded != "" {
					more += " --succeeded-in-stage " + succeeded
				}
				fmt.Fprintf(c.OutOrStdout(), "more: conveyor executions %s%s --cursor %s\n", args[0], more, page.NextCursor)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&statuses, "status", nil, "only executions in this status: InProgress, Stopping, Stopped, Succeeded, Failed, Superseded, Cancelled (repeatable)")
	f.StringVar(&succeeded, "succeeded-in-stage", "", "only executions whose stage of this name succeeded")
	f.IntVar(&limit, "limit", 0, "at most this many (default 50, at most 500)")
	f.StringVar(&cursor, "cursor", "", "the page after the one that printed this cursor")
	return cmd
}

func (r *remote) logsCmd() *cobra.Command {
	var attempt int
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs EXECUTION STAGE.ACTION",
		Short: "Print the output of an action of an execution",
		Long: `Print the output of an action of an execution. With -f, follow it as it is written until
the action's latest attempt ends (an action not started yet is waited for).`,
		Example: `  conveyor logs 0193a0b2-… Build.Compile
  conveyor logs 0193a0b2-… Build.Compile -f
  conveyor logs 0193a0b2-… Test.UnitTests --attempt 1`,
		Args: cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := r.client()
			if err != nil {
				return err
			}
			stage, action, err := splitAction(args[1])
			if err != nil {
				return err
			}
			// A log may be long: no call timeout, Ctrl-C only.
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if follow {
				if attempt > 0 {
					return usageErr("--follow follows the latest attempt: drop --attempt")
				}
				return followLog(ctx, cl, args[0], args[1], stage, action, c.OutOrStdout())
			}
			rc, err := cl.ActionLog(ctx, args[0], stage, action, attempt)
			if err != nil {
				return explain("logs of "+args[1], err, noExecution(args[0]))
			}
			defer rc.Close()
			if _, err := io.Copy(c.OutOrStdout(), rc); err != nil {
				return fmt.Errorf("read logs of %s: %w", args[1], err)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&attempt, "attempt", 0, "the attempt (default: the latest)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "follow the output as it is written, until the action ends")
	return cmd
}

// followLog prints an action's output live until its latest attempt ends.
func followLog(ctx context.Context, cl *client.Client, id, ref, stage, action string, out io.Writer) error {
	err := cl.FollowLog(ctx, id, stage, action, out)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return &exitError{code: 130}
	}
	return explain("follow logs of "+ref, err, noExecution(id))
}

// printExecution prints the answer of a command that changed an execution.
func (r *remote) printExecution(c *cobra.Command, e *client.Execution, format string, args ...any) error {
	if r.output == "json" {
		return r.json(c, e)
	}
	fmt.Fprintf(c.OutOrStdout(), format+"\n", args...)
	return nil
}

func (r *remote) stopCmd() *cobra.Command {
	var (
		abandon bool
		reason  string
	)
	cmd := &cobra.Command{
		Use:   "stop EXECUTION",
		Short: "Stop an execution: running actions finish, or are abandoned with --abandon",
		Example: `  conveyor stop 0193a0b2-… --reason "wrong branch"
  conveyor stop 0193a0b2-… --abandon     # kill the running actions`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return r.call(func(ctx context.Context, cl *client.Client) error {
				e, err := cl.StopExecution(ctx, args[0], abandon, reason)
				if err != nil {
					return explain("stop "+args[0], err, noExecution(args[0]))
				}
				return r.printExecution(c, e, "execution %s: %s", e.ID, e.Status)
			})
		},
	}
	cmd.Flags().BoolVar(&abandon, "abandon", false, "kill the running actions instead of letting them finish")
	cmd.Flags().StringVar(&reason, "reason", "", "why, recorded with the execution")
	return cmd
}

func (r *remote) retryCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "retry EXECUTION STAGE",
		Short: "Run a failed or stopped stage of an execution again",
		Long: `Run a failed or stopped stage of an execution again: its failed actions, or all of them
with --all. The server refuses once a newer execution entered the stage.`,
		Example: `  conveyor retry 0193a0b2-… Test
  conveyor retry 0193a0b2-… Deploy --all`,
		Args: cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := r.client()
			if err != nil {
				return err
			}
			mode := client.RetryFailedActions
			if all {
				mode = client.RetryAllActions
			}
			ctx, cancel := callCtx()
			defer cancel()
			e, err := cl.RetryStage(ctx, args[0], args[1], mode)
			if err != nil {
				return explain("retry "+args[1], err, noExecution(args[0]))
			}
			return r.printExecution(c, e, "execution %s: retrying %s (%s)", e.ID, args[1], e.Status)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "run every action of the stage again, not only the failed ones")
	return cmd
}

func (r *remote) decideCmd(approve bool) *cobra.Command {
	var comment, token string
	verb, past := "approve", "approved"
	if !approve {
		verb, past = "reject", "rejected"
	}
	cmd := &cobra.Command{
		Use:     verb + " EXECUTION STAGE.ACTION",
		Short:   strings.ToUpper(verb[:1]) + verb[1:] + " an approval action that waits for a decision",
		Example: fmt.Sprintf(`  conveyor %s 0193a0b2-… Approve.ReleaseGate --comment "looks good"`, verb),
		Args:    cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := r.client()
			if err != nil {
				return err
			}
			stage, action, err := splitAction(args[1])
			if err != nil {
				return err
			}
			ctx, cancel := callCtx()
			defer cancel()
			e, err := cl.DecideApprovalWith(ctx, args[0], stage, action, client.ApprovalDecision{Approved: approve, Comment: comment, Token: token})
			if err != nil {
				return explain(verb+" "+args[1], err, noExecution(args[0]))
			}
			return r.printExecution(c, e, "%s %s of execution %s", past, args[1], e.ID)
		},
	}
	cmd.Flags().StringVar(&comment, "comment", "", "a comment recorded with the decision")
	// Not --token: that is the API token, a persistent flag of every client command.
	cmd.Flags().StringVar(&token, "approval-token", "", "the approval token shown in the pipeline state: decide only if it still names the waiting attempt")
	return cmd
}

func (r *remote) allowCmd() *cobra.Command {
	var (
		refuse  bool
		comment string
	)
	cmd := &cobra.Command{
		Use:   "allow EXECUTION",
		Short: "Let an execution held before its first stage run (a pull request from a fork), or stop it with --refuse",
		Long: `The code of a pull request from a fork is anyone's: its execution waits before its first
stage until someone with the approver role on the pipeline allows it (after reading the
change), or refuses it, which stops it. conveyor status shows the executions that wait.`,
		Example: `  conveyor allow 0193a0b2-… --comment "read the diff: only docs"
  conveyor allow 0193a0b2-… --refuse --comment "touches the deploy scripts"`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return r.call(func(ctx context.Context, cl *client.Client) error {
				e, err := cl.AllowExecution(ctx, args[0], !refuse, comment)
				if err != nil {
					return explain("allow "+args[0], err, noExecution(args[0]))
				}
				if refuse {
					return r.printExecution(c, e, "execution %s refused: %s", e.ID, e.Status)
				}
				return r.printExecution(c, e, "execution %s allowed to run: %s", e.ID, e.Status)
			})
		},
	}
	cmd.Flags().BoolVar(&refuse, "refuse", false, "stop the execution instead of letting it run")
	cmd.Flags().StringVar(&comment, "comment", "", "a comment recorded with the decision")
	return cmd
}

func (r *remote) transitionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "transition",
		Short: "Enable or disable the transition into a stage",
		Long: `Disable the transition into a stage to hold executions before it (they wait, and the
newest goes in when it is enabled again); enable it to let them through.`,
		Example: `  conveyor transition disable webapp Deploy --reason "release freeze"
  conveyor transition enable webapp Deploy`,
		Args: cobra.NoArgs,
	}
	for _, enable := range []bool{true, false} {
		var reason string
		verb := "enable"
		if !enable {
			verb = "disable"
		}
		sub := &cobra.Command{
			Use:     verb + " PIPELINE STAGE",
			Short:   strings.ToUpper(verb[:1]) + verb[1:] + " the transition into a stage",
			Example: fmt.Sprintf("  conveyor transition %s webapp Deploy --reason \"release freeze\"", verb),
			Args:    cobra.ExactArgs(2),
			RunE: func(c *cobra.Command, args []string) error {
				cl, err := r.client()
				if err != nil {
					return err
				}
				ctx, cancel := callCtx()
				defer cancel()
				t, err := cl.SetTransition(ctx, args[0], args[1], enable, reason)
				if err != nil {
					return explain(verb+" transition into "+args[1], err, func(msg string) string {
						return fmt.Sprintf("%s: see `conveyor pipeline list` and `conveyor status %s`", msg, args[0])
					})
				}
				if r.output == "json" {
					return r.json(c, t)
				}
				fmt.Fprintf(c.OutOrStdout(), "transition into %s of %s %sd\n", args[1], args[0], verb)
				return nil
			},
		}
		sub.Flags().StringVar(&reason, "reason", "", "why, shown by conveyor status")
		cmd.AddCommand(sub)
	}
	return cmd
}

// when renders a time for a table.
func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// took renders the time between two instants.
func took(from, to time.Time) string {
	if from.IsZero() || to.IsZero() {
		return "-"
	}
	d := to.Sub(from)
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
