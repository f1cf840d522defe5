package local

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/report"
	"github.com/conveyorci/conveyor/internal/store"
	"github.com/google/uuid"
)

// RunOptions describe one `conveyor run`.
type RunOptions struct {
	Pipeline *pipeline.Pipeline
	// File is the pipeline file; relative paths in the pipeline are relative to its directory.
	File string
	// Variables override pipeline variables.
	Variables map[string]string
	// Sources maps a source action (resolved to "Stage.Action") to a local directory whose
	// working tree it uses as is.
	Sources map[string]string
	// Approve lists the approval actions ("Stage.Action") approved in advance; All approves every one.
	Approve    []string
	ApproveAll bool
	// Logs shows every action's output as it runs (otherwise only a failed action's).
	Logs bool
	// DataDir keeps the store between runs (an interrupted execution is resumed); empty
	// means a temporary directory removed at the end.
	DataDir string
	Workers int
	// Durable and MaxArtifactSize are as in Options.
	Durable         bool
	MaxArtifactSize int64
	Out             io.Writer
	// Prompt, when set, asks a person to decide an approval (stdin is a terminal).
	Prompt func(question string) (answer string, err error)
	// Interrupts receives a value per Ctrl-C: the first stops and waits, the second abandons.
	Interrupts <-chan os.Signal
	// Secrets are the values of the secrets the pipeline's actions take, by name.
	Secrets map[string]string
}

// Secrets is a job.SecretSource of fixed values, the same for every pipeline.
type Secrets map[string]string

// Secrets returns the values of names; one that is missing is an error naming it.
func (s Secrets) Secrets(_ context.Context, _ string, names []string) (map[string]string, error) {
	out := make(map[string]string, len(names))
	for _, n := range names {
		v, ok := s[n]
		if !ok {
			return nil, fmt.Errorf("secret %s has no value: pass it with --secret %s=VALUE, --secret %s (from the environment) or --secrets-file", n, n, n)
		}
		out[n] = v
	}
	return out, nil
}

// runOnLabels returns every label the pipeline's actions ask workers for (runOn).
func runOnLabels(p *pipeline.Pipeline) []string {
	var labels []string
	for _, st := range p.Stages {
		for _, a := range st.Actions {
			labels = append(labels, a.RunOn...)
		}
	}
	slices.Sort(labels)
	return slices.Compact(labels)
}

// Run runs the pipeline to the end and returns the execution's final status.
func Run(ctx context.Context, o RunOptions) (*engine.Execution, error) {
	dataDir := o.DataDir
	if dataDir == "" {
		tmp, err := os.MkdirTemp("", "conveyor-run-")
		if err != nil {
			return nil, fmt.Errorf("create temporary data directory: %w", err)
		}
		defer os.RemoveAll(tmp)
		dataDir = tmp
	}
	pipelineDir, err := filepath.Abs(filepath.Dir(o.File))
	if err != nil {
		return nil, err
	}
	s := &session{o: o, out: o.Out, shown: map[string]string{}}
	eng, err := Open(ctx, Options{
		DataDir: dataDir, Workers: o.Workers, Durable: o.Durable, MaxArtifactSize: o.MaxArtifactSize,
		// conveyor run runs every action here, whatever workers its runOn asks for elsewhere.
		Labels:      runOnLabels(o.Pipeline),
		PipelineDir: func(string) string { return pipelineDir },
		Tee:         s.tee,
		Secrets:     Secrets(o.Secrets),
	})
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	s.eng = eng

	updates, unsubscribe := eng.Loop.Subscribe()
	defer unsubscribe()
	runCtx, stopEngine := context.WithCancel(context.WithoutCancel(ctx))
	engineDone := make(chan error, 1)
	go func() { engineDone <- eng.Run(runCtx) }()
	defer func() {
		stopEngine()
		<-engineDone
	}()

	exec, err := s.startOrResume(ctx)
	if err != nil {
		return nil, err
	}
	s.render(exec)
	interrupts := 0
	for !exec.Status.Terminal() {
		select {
		case e := <-updates:
			if e.ID == exec.ID {
				exec = e
				s.render(exec)
			}
		case <-o.Interrupts:
			interrupts++
			mode, what := engine.StopAndWait, "stopping: in-progress actions finish, nothing new starts (Ctrl-C again to abandon them)"
			if interrupts > 1 {
				mode, what = engine.Abandon, "abandoning in-progress actions"
			}
			fmt.Fprintf(s.out, "\n%s\n", what)
			ev := engine.Event{Type: engine.EvStop, ExecutionID: exec.ID, Stop: &engine.StopRequest{Mode: mode, Reason: "interrupted from the terminal"}}
			if e, err := eng.Loop.Apply(ctx, "stop:"+uuid.NewString(), ev); err == nil && e != nil {
				exec = e
				s.render(exec)
			} else if err != nil && !errors.Is(err, engine.ErrRefused) {
				return nil, err
			}
		case err := <-engineDone:
			return nil, fmt.Errorf("engine stopped: %w", err)
		}
	}
	s.summary(exec)
	return exec, nil
}

type session struct {
	o     RunOptions
	out   io.Writer
	eng   *Engine
	mu    sync.Mutex
	shown map[string]string // what was last printed per stage and action
	names map[string]string // job id → "Stage.Action" for log lines
	asked map[string]bool   // approvals already handled
}

// startOrResume resumes an execution of this pipeline left unfinished in the data
// directory by a crash, or starts a new one.
func (s *session) startOrResume(ctx context.Context) (*engine.Execution, error) {
	p := s.o.Pipeline
	var unfinished []*engine.Execution
	err := s.eng.Store.View(ctx, func(r store.Reader) error {
		var err error
		unfinished, err = r.Executions(ctx, store.ExecutionFilter{Pipeline: p.Name,
			Statuses: []engine.ExecutionStatus{engine.ExecInProgress, engine.ExecStopping}})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("look for interrupted executions: %w", err)
	}
	if len(unfinished) == 0 {
		// The crash may have left nothing unfinished: recovering the lost jobs in Open can
		// end their execution (a lost Deploy fails it). That execution is still the one
		// interrupted, to report rather than silently starting a new one.
		for _, id := range s.eng.Recovered {
			if e, err := s.eng.Loop.Execution(ctx, id); err == nil && e.Pipeline == p.Name {
				unfinished = append(unfinished, e)
				break
			}
		}
	}
	if len(unfinished) > 0 {
		e := unfinished[len(unfinished)-1] // the oldest first: later ones may wait behind it
		fmt.Fprintf(s.out, "Resuming execution %s of %s, interrupted in %s (run again to start a new one)\n", e.ID, p.Name, s.eng.DataDir)
		return e, nil
	}
	version, err := s.eng.Loop.Register(ctx, p)
	if err != nil {
		return nil, err
	}
	req := engine.StartRequest{PipelineVersion: version, Trigger: engine.Trigger{Type: "CLI", Detail: "conveyor run " + s.o.File}, Variables: s.o.Variables}
	for ref, dir := range s.o.Sources {
		if req.Sources == nil {
			req.Sources = map[string]engine.SourceOverride{}
		}
		req.Sources[ref] = engine.SourceOverride{Dir: dir}
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	e, err := s.eng.Loop.Start(ctx, "start:"+id.String(), p.Name, id.String(), req)
	if err != nil {
		return nil, fmt.Errorf("start execution: %w", err)
	}
	fmt.Fprintf(s.out, "Execution %s of %s (%s, data in %s)\n", e.ID, p.Name, p.Mode(), s.eng.DataDir)
	return e, nil
}

// render prints what changed since the last state: a line per stage entered and per action
// started or finished, a failed action's output, and handles approvals.
func (s *session) render(e *engine.Execution) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.names == nil {
		s.names, s.asked = map[string]string{}, map[string]bool{}
	}
	for _, st := range e.Stages {
		if st.Status != engine.StageNotStarted && s.shown[st.Name] != string(st.Status)+fmt.Sprint(st.Attempt) {
			prev := s.shown[st.Name]
			s.shown[st.Name] = string(st.Status) + fmt.Sprint(st.Attempt)
			switch st.Status {
			case engine.StageWaiting:
				fmt.Fprintf(s.out, "== %s: waiting (another execution holds the stage, or its transition is disabled)\n", st.Name)
			case engine.StageInProgress:
				fmt.Fprintf(s.out, "== %s\n", st.Name)
			default:
				if prev == "" {
					fmt.Fprintf(s.out, "== %s\n", st.Name)
				}
			}
		}
		for _, a := range st.Actions {
			key := st.Name + "." + a.Name
			state := string(a.Status) + fmt.Sprint(a.Attempt)
			if a.Status == engine.ActionNotStarted || s.shown[key] == state {
				continue
			}
			s.shown[key] = state
			if a.JobID != "" {
				s.names[a.JobID] = key
			}
			attempt := ""
			if a.Attempt > 1 {
				attempt = fmt.Sprintf(" (attempt %d)", a.Attempt)
			}
			switch a.Status {
			case engine.ActionInProgress:
				fmt.Fprintf(s.out, "   %-28s started%s\n", a.Name, attempt)
				if a.JobID == "" && !s.asked[key+state] {
					s.asked[key+state] = true
					go s.approval(e.ID, st.Name, a)
				}
			case engine.ActionSucceeded:
				fmt.Fprintf(s.out, " ✓ %-28s succeeded in %s%s%s\n", a.Name, roundDuration(a.FinishedAt.Sub(a.StartedAt)), attempt, suffix(a.Summary))
			default:
				fmt.Fprintf(s.out, " ✗ %-28s %s in %s%s: %s\n", a.Name, strings.ToLower(string(a.Status)), roundDuration(a.FinishedAt.Sub(a.StartedAt)), attempt, a.Message)
				if !s.o.Logs && a.JobID != "" {
					if tail, err := s.eng.Tail(context.Background(), a.JobID, 40); err == nil && len(tail) > 0 {
						fmt.Fprintf(s.out, "   ---- last lines of %s's output ----\n", a.Name)
						for line := range strings.SplitSeq(string(tail), "\n") {
							fmt.Fprintf(s.out, "   | %s\n", line)
						}
					}
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

// approval decides an approval that now waits: approved in advance (--approve), asked on
// the terminal, or rejected with the reason when nobody can answer.
func (s *session) approval(execID, stage string, a engine.Action) {
	ref := stage + "." + a.Name
	ev := engine.Event{Type: engine.EvApproval, ExecutionID: execID, Stage: stage, Action: a.Name, Attempt: a.Attempt}
	switch {
	case s.o.ApproveAll || slices.Contains(s.o.Approve, ref):
		ev.Approved, ev.By, ev.Comment = true, "conveyor run --approve", ""
	case s.o.Prompt != nil:
		q := fmt.Sprintf("Approve %s?", ref)
		if a.Summary != "" {
			q += " " + a.Summary
		}
		answer, err := s.o.Prompt(q + " [y/N, or a comment after y/n] ")
		if err != nil {
			ev.By, ev.Comment = "conveyor run", "no answer: "+err.Error()
			break
		}
		verdict, comment, _ := strings.Cut(strings.TrimSpace(answer), " ")
		ev.Approved = strings.EqualFold(verdict, "y") || strings.EqualFold(verdict, "yes")
		ev.By, ev.Comment = userName(), strings.TrimSpace(comment)
	default:
		ev.By = "conveyor run"
		ev.Comment = fmt.Sprintf("nobody to ask: stdin is not a terminal; pass --approve %s (or --approve all) to approve it", ref)
	}
	if _, err := s.eng.Loop.Apply(context.Background(), "approval:"+execID+":"+ref+":"+fmt.Sprint(a.Attempt), ev); err != nil {
		fmt.Fprintf(s.out, "record approval of %s: %v\n", ref, err)
	}
}

func userName() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "terminal user"
}

// tee prints an action's output line as it comes, with --logs.
func (s *session) tee(jobID string, line []byte) {
	if !s.o.Logs {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	name := s.names[jobID]
	if name == "" {
		name = jobID
	}
	fmt.Fprintf(s.out, "   %s | %s\n", name, line)
}

// summary prints the table at the end.
func (s *session) summary(e *engine.Execution) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintln(s.out)
	tw := tabwriter.NewWriter(s.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tACTION\tSTATUS\tDURATION\tATTEMPT")
	for _, st := range e.Stages {
		for _, a := range st.Actions {
			status, dur := string(a.Status), ""
			if a.Status == engine.ActionNotStarted {
				status = "-"
			}
			if !a.FinishedAt.IsZero() {
				dur = roundDuration(a.FinishedAt.Sub(a.StartedAt)).String()
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", st.Name, a.Name, status, dur, a.Attempt)
		}
	}
	tw.Flush()
	s.reports(e)
	took := roundDuration(e.FinishedAt.Sub(e.CreatedAt))
	fmt.Fprintf(s.out, "\nExecution %s %s in %s", e.ID, e.Status, took)
	if e.Message != "" {
		fmt.Fprintf(s.out, ": %s", e.Message)
	}
	fmt.Fprintln(s.out)
}

// reports prints the test totals and first failed cases of each action that has reports.
func (s *session) reports(e *engine.Execution) {
	for _, st := range e.Stages {
		for _, a := range st.Actions {
			if len(a.Reports) == 0 {
				continue
			}
			fmt.Fprintln(s.out)
			if more := report.WriteSummary(s.out, "", st.Name+"."+a.Name, a.Reports, maxCasesShown); more > 0 {
				fmt.Fprintf(s.out, "  … %d more failed\n", more)
			}
		}
	}
}

// maxCasesShown is how many failed cases of an action the summary lists.
const maxCasesShown = 5

// TerminalPrompt asks on the terminal and reads one line.
func TerminalPrompt(in io.Reader, out io.Writer) func(string) (string, error) {
	r := bufio.NewReader(in)
	var mu sync.Mutex
	return func(q string) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprint(out, q)
		line, err := r.ReadString('\n')
		if err != nil && line == "" {
			return "", err
		}
		return line, nil
	}
}
