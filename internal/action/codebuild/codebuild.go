package codebuild

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/conveyorci/conveyor/internal/action"
	"github.com/conveyorci/conveyor/internal/action/cache"
	"github.com/conveyorci/conveyor/internal/action/shell"
	"github.com/conveyorci/conveyor/internal/report"
	"github.com/conveyorci/conveyor/internal/run"
)

// Provider runs Build/CodeBuild and Test/CodeBuild actions. The zero value is ready to use.
type Provider struct {
	// Grace is how long the shell has between SIGTERM and SIGKILL; zero means run.DefaultGrace.
	Grace time.Duration
	// TempDir holds the per-run directory of the generated script; empty means /dev/shm where
	// it can be written, else os.TempDir(), as commands.Provider.
	TempDir string
	// Executor and HomeDir are as commands.Provider's: nil runs on the host; under a
	// sandbox, HomeDir gives the pipeline's $HOME kept between executions.
	Executor run.Executor
	HomeDir  func(pipeline string) string
	// Now is the clock giving CODEBUILD_START_TIME; nil means time.Now.
	Now func() time.Time
}

var _ action.Provider = (*Provider)(nil)

// config is an action's configuration, checked.
type config struct {
	buildspec string // path in the primary input artifact
	inline    string // or the buildspec itself
	env       map[string]string
	shell     string
	caches    []cache.Spec
}

func parseConfig(m map[string]any) (config, error) {
	c := config{buildspec: "buildspec.yml"}
	known := []string{"buildspec", "buildspecInline", "environmentVariables", "shell", "cache"}
	for k := range m {
		if !slices.Contains(known, k) {
			return c, fmt.Errorf("unknown configuration key %q (known: %s)", k, strings.Join(known, ", "))
		}
	}
	str := func(k string) (string, error) {
		switch v := m[k].(type) {
		case nil:
			return "", nil
		case string:
			return v, nil
		default:
			return "", fmt.Errorf("configuration %s must be a string, not %T", k, v)
		}
	}
	var err error
	if c.inline, err = str("buildspecInline"); err != nil {
		return c, err
	}
	if p, err := str("buildspec"); err != nil {
		return c, err
	} else if p != "" {
		if c.inline != "" {
			return c, errors.New("configuration has both buildspec and buildspecInline: keep one")
		}
		if strings.HasPrefix(p, "arn:") || strings.HasPrefix(p, "s3://") {
			return c, fmt.Errorf("configuration buildspec %q names an S3 object: give a path in the primary input artifact, or the buildspec itself as buildspecInline", p)
		}
		if !filepath.IsLocal(p) {
			return c, fmt.Errorf("configuration buildspec %q must be a relative path inside the primary input artifact", p)
		}
		c.buildspec = p
	}
	if c.shell, err = str("shell"); err != nil {
		return c, err
	}
	if c.caches, err = cache.Parse(m["cache"], "configuration cache"); err != nil {
		return c, err
	}
	switch v := m["environmentVariables"].(type) {
	case nil:
	case map[string]string:
		c.env = v
	case map[string]any:
		c.env = make(map[string]string, len(v))
		for k, e := range v {
			switch e := e.(type) {
			case string:
				c.env[k] = e
			case bool, int, int64, uint64, float64:
				c.env[k] = fmt.Sprint(e)
			default:
				return c, fmt.Errorf("configuration environmentVariables.%s must be a string, not %T", k, e)
			}
		}
	default:
		return c, fmt.Errorf("configuration environmentVariables must be a mapping of names to values, not %T", v)
	}
	for k, v := range c.env {
		if !isIdentifier(k) || strings.ContainsRune(v, 0) {
			return c, fmt.Errorf("configuration environmentVariables: %q is not an environment variable name (or its value holds a NUL byte)", k)
		}
	}
	return c, nil
}

func failed(format string, args ...any) error {
	return &action.Error{Kind: action.Failed, Message: fmt.Sprintf(format, args...)}
}

// load reads and parses the buildspec the configuration names.
func load(cfg config, ws *action.Workspace) (*Buildspec, error) {
	if cfg.inline != "" {
		return Parse("buildspecInline", []byte(cfg.inline))
	}
	root, err := os.OpenRoot(ws.Dir)
	if err != nil {
		return nil, &action.Error{Kind: action.Errored, Message: "open workspace", Err: err}
	}
	defer root.Close()
	src, err := root.ReadFile(cfg.buildspec)
	if errors.Is(err, os.ErrNotExist) {
		var names []string
		if es, err := os.ReadDir(ws.Dir); err == nil {
			for _, e := range es {
				names = append(names, e.Name())
			}
		}
		have := "it is empty"
		if len(names) > 0 {
			if len(names) > 12 {
				names = append(names[:12], "...")
			}
			have = "it holds " + strings.Join(names, ", ")
		}
		return nil, failed("read buildspec: %s is not in the primary input artifact (%s); set configuration buildspec to its path, or give buildspecInline", cfg.buildspec, have)
	}
	if err != nil {
		return nil, failed("read buildspec %s: %v", cfg.buildspec, err)
	}
	return Parse(cfg.buildspec, src)
}

// Run runs the buildspec's phases in one shell session in ws.Dir, then stages its artifacts.
// It returns an *action.Error: Failed when a phase fails (CodeBuild's rules, see the package
// doc) or the buildspec is wrong, TimedOut past job.Timeout, Stopped when ctx is done,
// Errored when the shell cannot be run.
//
// The buildspec's reports are read once the phases ran, whatever their outcome: a failed
// action returns a Result holding them along with its error.
func (p *Provider) Run(ctx context.Context, job *action.Job, ws *action.Workspace) (*action.Result, error) {
	var bs *Buildspec
	res, err := p.run(ctx, job, ws, &bs)
	if bs != nil && len(bs.Reports) > 0 {
		if res == nil {
			res = &action.Result{}
		}
		log := ws.Log
		if log == nil {
			log = io.Discard
		}
		res.Reports = report.Collect(ctx, ws.Dir, bs.Reports, log)
	}
	return res, err
}

// run runs the job; it sets *loaded to the buildspec once read.
func (p *Provider) run(ctx context.Context, job *action.Job, ws *action.Workspace, loaded **Buildspec) (*action.Result, error) {
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	start := now()
	log := ws.Log
	if log == nil {
		log = io.Discard
	}
	cfg, err := parseConfig(job.Configuration)
	if err != nil {
		return nil, failed("%v", err)
	}
	bs, err := load(cfg, ws)
	if err != nil {
		if se, ok := errors.AsType[*SyntaxError](err); ok {
			return nil, &action.Error{Kind: action.Failed, Message: "buildspec", Err: se}
		}
		return nil, err
	}
	for _, s := range bs.Ignored {
		fmt.Fprintf(log, "[conveyor] buildspec %s\n", s)
	}
	*loaded = bs
	env, err := p.environment(job, ws, cfg, bs, start)
	if err != nil {
		return nil, err
	}
	home, err := shell.Home(p.HomeDir, p.Executor, job.Pipeline)
	if err != nil {
		return nil, err
	}
	if home != "" {
		env = shell.SetEnv(env, "HOME", home)
	}
	argv, err := shellCommand(cmpOr(cfg.shell, bs.Env.Shell), run.Getenv(env, "PATH"))
	if err != nil {
		return nil, err
	}
	specs := cfg.caches
	if len(bs.Cache) > 0 {
		// The buildspec's cache is the action's own: keyed by its stage and name.
		specs = append(specs, cache.Spec{Key: cmpOr(bs.CacheKey, "buildspec-"+job.Stage+"."+job.Action), Paths: bs.Cache})
	}
	caches := cache.Restore(ctx, ws, specs, cmpOr(home, run.Getenv(env, "HOME")), log)

	dir, err := shell.ScriptDir(p.TempDir, "conveyor-codebuild-")
	if err != nil {
		return nil, &action.Error{Kind: action.Errored, Message: "create script directory", Err: err}
	}
	defer os.RemoveAll(dir)
	s := newScript(dir, bs)
	if err := s.write(); err != nil {
		return nil, &action.Error{Kind: action.Errored, Message: "write script", Err: err}
	}
	runCtx := ctx
	if job.Timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, job.Timeout)
		defer cancel()
	}
	code, err := run.Or(p.Executor).Run(runCtx, run.Cmd{
		Args: append(argv, s.path), Dir: ws.Dir, Env: env, Output: log,
		Started: ws.Started, Grace: p.Grace, Writable: shell.Writable(ws, dir, home),
	})
	at, ended := s.progress()
	during := ""
	if cmd, n := s.command(at); n > 0 {
		during = " during " + describeStep(at, n, cmd)
	}
	if err != nil {
		return nil, shell.RunError(ctx, runCtx, err, "run buildspec", during, job.Timeout)
	}
	if !ended && code != 0 {
		if during == "" {
			return nil, &action.Error{Kind: action.Errored, Message: fmt.Sprintf("the shell %s exited with status %d before running the first command", argv[0], code)}
		}
		return nil, failed("the shell ended with exit status %d%s; the commands and phases after it did not run", code, during)
	}
	fails, err := s.failures()
	if err != nil {
		return nil, &action.Error{Kind: action.Errored, Message: "read phase results", Err: err}
	}
	if msg := verdict(bs, s, fails); msg != "" {
		return nil, failed("%s", msg)
	}
	res := &action.Result{Summary: summary(bs, fails)}
	if !ended {
		res.Summary = fmt.Sprintf("the shell ended with exit status 0%s; the commands and phases after it did not run", during)
	}
	if names := bs.Env.ExportedVariables; len(names) > 0 {
		vars, err := s.variables()
		if err != nil {
			return nil, &action.Error{Kind: action.Errored, Message: "read exported variables", Err: err}
		}
		res.Variables = make(map[string]string, len(names))
		for i, name := range names {
			v, ok := "", false
			if vars != nil {
				v, ok = vars[i].value, vars[i].set
			}
			if !ok {
				fmt.Fprintf(log, "[conveyor] exported variable %s is not set: it is published empty\n", name)
			}
			res.Variables[name] = v
		}
	}
	if res.Artifacts, err = stageAll(bs, job, ws, env, log); err != nil {
		return nil, err
	}
	caches.Save(ctx)
	return res, nil
}

// verdict says why the action failed ("" when it did not): the first phase that failed with
// on-failure ABORT, and what the phases after it did.
func verdict(bs *Buildspec, s *script, fails []failure) string {
	for i, f := range fails {
		ph := phase(bs, f.phase)
		if ph == nil || ph.OnFailure == "CONTINUE" {
			continue
		}
		cmd, n := s.command(f.step)
		msg := fmt.Sprintf("phase %s failed: %s exited with status %d", f.phase, describeStep(f.step, n, cmd), f.status)
		switch f.phase {
		case "install", "pre_build":
			msg += "; the phases after it did not run"
		case "build":
			if phase(bs, "post_build") != nil {
				later := 0
				for _, g := range fails[i+1:] {
					if g.phase == "post_build" {
						later++
					}
				}
				if later > 0 {
					msg += "; post_build ran and failed too"
				} else {
					msg += "; post_build ran (CODEBUILD_BUILD_SUCCEEDING=0)"
				}
			}
		}
		return msg
	}
	return ""
}

func summary(bs *Buildspec, fails []failure) string {
	var names []string
	for _, ph := range bs.Phases {
		names = append(names, ph.Name)
	}
	s := "phases " + strings.Join(names, ", ") + " succeeded"
	if len(names) == 1 {
		s = "phase " + names[0] + " succeeded"
	}
	var cont []string
	for _, f := range fails {
		if !slices.Contains(cont, f.phase) {
			cont = append(cont, f.phase)
		}
	}
	if len(cont) > 0 {
		s = "phases ran; " + strings.Join(cont, ", ") + " failed with on-failure: CONTINUE"
	}
	return s
}

func phase(bs *Buildspec, name string) *Phase {
	for i := range bs.Phases {
		if bs.Phases[i].Name == name {
			return &bs.Phases[i]
		}
	}
	return nil
}

// describeStep names a command in a message: "build command 2 of 3 (mvn install)".
func describeStep(st step, n int, cmd string) string {
	what := st.phase + " command"
	if st.kind == "finally" {
		what = st.phase + " finally command"
	}
	return fmt.Sprintf("%s %d of %d (%s)", what, st.k, n, shell.Brief(cmd))
}

// environment is what the shell runs with, later entries winning: run.BaseEnv, the
// buildspec's env.variables, the action's environment (secrets included), the configuration's
// environmentVariables, then Conveyor's and CodeBuild's variables, which nothing overrides
// but CODEBUILD_RESOLVED_SOURCE_VERSION.
func (p *Provider) environment(job *action.Job, ws *action.Workspace, cfg config, bs *Buildspec, start time.Time) ([]string, error) {
	env := run.BaseEnv()
	for _, v := range bs.Env.Variables {
		env = shell.SetEnv(env, v.Name, v.Value)
	}
	if err := shell.CheckEnv(job.Environment); err != nil {
		return nil, failed("%v", err)
	}
	for _, k := range slices.Sorted(maps.Keys(job.Environment)) {
		env = shell.SetEnv(env, k, job.Environment[k])
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.env)) {
		env = shell.SetEnv(env, k, cfg.env[k])
	}
	// Secrets come from Conveyor's secrets, given to the action by name.
	var missing []string
	for _, group := range []struct {
		key  string
		vars []Var
	}{{"env.secrets-manager", bs.Env.SecretsManager}, {"env.parameter-store", bs.Env.ParameterStore}} {
		for _, v := range group.vars {
			if _, ok := job.Environment[v.Name]; !ok {
				missing = append(missing, fmt.Sprintf("%s %s (%s, line %d)", group.key, v.Name, v.Value, v.Line))
			}
		}
	}
	if len(missing) > 0 {
		return nil, failed("the buildspec takes %s from AWS, which Conveyor does not read: store each value as a Conveyor secret and give it to the action under the same name, "+
			"environment: {NAME: {secret: SECRET}} (conveyor secret set SECRET --pipeline %s)", strings.Join(missing, ", "), job.Pipeline)
	}
	if run.Getenv(env, "CODEBUILD_RESOLVED_SOURCE_VERSION") == "" {
		env = shell.SetEnv(env, "CODEBUILD_RESOLVED_SOURCE_VERSION", job.SourceRevision)
	}
	fixed := append(shell.ConveyorVars(job, ws),
		"CODEBUILD_SRC_DIR="+ws.Dir,
		"CODEBUILD_BUILD_ID="+job.Pipeline+":"+job.ID,
		"CODEBUILD_BUILD_NUMBER="+strconv.Itoa(job.Attempt),
		"CODEBUILD_INITIATOR=conveyor/"+job.Pipeline,
		"CODEBUILD_START_TIME="+strconv.FormatInt(start.UnixMilli(), 10),
		"CODEBUILD_BUILD_SUCCEEDING=1",
		"CODEBUILD_CI=true",
	)
	for _, name := range slices.Sorted(maps.Keys(ws.Inputs)) {
		if ws.Inputs[name] != ws.Dir {
			fixed = append(fixed, "CODEBUILD_SRC_DIR_"+shell.InputVariable(name)+"="+ws.Inputs[name])
		}
	}
	for _, kv := range fixed {
		k, v, _ := strings.Cut(kv, "=")
		env = shell.SetEnv(env, k, v)
	}
	return env, nil
}

// shellCommand is the shell's program and flags, the script's path to follow: bash (default)
// or sh, as CodeBuild's env.shell on Linux.
func shellCommand(name, path string) ([]string, error) {
	flags := map[string][]string{"bash": {"--noprofile", "--norc"}, "sh": nil}
	if name == "" {
		name = "bash"
	}
	base := filepath.Base(name)
	if _, ok := flags[base]; !ok || (strings.Contains(name, "/") && !filepath.IsAbs(name)) {
		return nil, failed("shell %q is not supported: use bash or sh, or an absolute path to one of them", name)
	}
	p, err := run.LookPath(name, path)
	if err != nil {
		return nil, failed("find shell %s: not found in PATH %s", name, path)
	}
	return append([]string{p}, flags[base]...), nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
