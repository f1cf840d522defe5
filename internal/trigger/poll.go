package trigger

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/conveyorci/conveyor/internal/action/source/git"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/engine/loop"
	"github.com/conveyorci/conveyor/internal/pipeline"
)

// PollOptions configure a Poller.
type PollOptions struct {
	Options
	// Concurrency caps the git processes running at once (default 8).
	Concurrency int
	// Every, when set, replaces every source's pollInterval (tests poll faster than the 5 s
	// a pipeline may ask for).
	Every time.Duration
	// MaxBackoff caps the wait after repeated errors (default 30 min).
	MaxBackoff time.Duration
	// Head returns the commit a branch of a repository points at ("" branch: the default
	// one, whose name is returned); nil means git ls-remote through git.Remote.
	Head func(ctx context.Context, repository, pipelineDir, branch string) (commit, name string, err error)
	// ChangedFiles lists the files changed between two commits of a local repository; nil
	// means git diff through git.Remote.
	ChangedFiles func(ctx context.Context, path, from, to string) ([]string, error)
}

// Poller is the change detection of Git sources without webhooks: every pollInterval
// (jittered ±10 %), for each polled source whose lease this server holds, it reads the
// branch head with git ls-remote; a head that moved starts an execution pinned to it (Key
// "git:PIPELINE:STAGE.ACTION:COMMIT", as a webhook for the same commit, so only one starts).
// The first head seen is a baseline and starts nothing: applying a pipeline does not run it.
// A pipeline without triggers has each Git source polled on its branch; one with triggers
// only the sources its gitPush triggers name, through their branch (and, for a local
// repository, file path) filters. Errors back off exponentially and are logged when a
// source starts or stops failing.
type Poller struct {
	opts PollOptions
}

// NewPoller returns a poller; Run runs it.
func NewPoller(opts PollOptions) *Poller {
	opts.defaults()
	if opts.Concurrency <= 0 {
		opts.Concurrency = 8
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Minute
	}
	r := &git.Remote{}
	if opts.Head == nil {
		opts.Head = r.Head
	}
	if opts.ChangedFiles == nil {
		opts.ChangedFiles = r.ChangedFiles
	}
	return &Poller{opts: opts}
}

// source is one polled Git source action.
type source struct {
	key        string // the lease key: "poll:PIPELINE:STAGE.ACTION"
	pipeline   string
	action     string // "Stage.Action"
	repository string
	branch     string // as configured ("" : the default branch)
	interval   time.Duration
	triggers   []*pipeline.GitPushTrigger // nil: no filters (a pipeline without triggers)
}

func (s *source) same(o *source) bool {
	return s.repository == o.repository && s.branch == o.branch && s.interval == o.interval &&
		fmt.Sprint(s.triggers) == fmt.Sprint(o.triggers)
}

// polled is a source this poller owns.
type polled struct {
	*source
	last     string    // the last head seen ("": none yet)
	next     time.Time // when to poll next
	running  bool
	failures int
}

// pollResult is what one poll found.
type pollResult struct {
	key    string
	src    *source
	commit string // the head now seen; "" on error
	err    error
}

// sources returns the sources the pipelines ask to poll.
func (p *Poller) sources(pipes []*pipeline.Pipeline) map[string]*source {
	out := map[string]*source{}
	for _, pl := range pipes {
		named := map[string][]*pipeline.GitPushTrigger{}
		for _, t := range pl.Triggers {
			if g := t.GitPush; g != nil {
				if si, ai, err := pl.FindAction(g.Action); err == nil {
					ref := pl.Stages[si].Name + "." + pl.Stages[si].Actions[ai].Name
					named[ref] = append(named[ref], g)
				}
			}
		}
		for _, st := range pl.Stages {
			for i := range st.Actions {
				a := &st.Actions[i]
				if a.Category != pipeline.Source || a.Provider != pipeline.ProviderGit {
					continue
				}
				ref := st.Name + "." + a.Name
				trig := named[ref]
				if len(pl.Triggers) > 0 && len(trig) == 0 {
					continue // triggers given, none for this source
				}
				interval := a.PollInterval()
				if interval == 0 {
					continue
				}
				if p.opts.Every > 0 {
					interval = p.opts.Every
				}
				if rev, _ := a.Configuration["revision"].(string); rev != "" {
					continue // pinned: nothing to detect
				}
				repo, _ := a.Configuration["repository"].(string)
				branch, _ := a.Configuration["branch"].(string)
				key := "poll:" + pl.Name + ":" + ref
				out[key] = &source{key: key, pipeline: pl.Name, action: ref, repository: repo, branch: branch,
					interval: interval, triggers: trig}
			}
		}
	}
	return out
}

// Run polls until ctx is done, then releases its leases.
func (p *Poller) Run(ctx context.Context) error {
	o := &p.opts
	owned := map[string]*polled{}
	results := make(chan pollResult)
	sem := make(chan struct{}, o.Concurrency)
	inflight := 0
	defer func() {
		keys := make([]string, 0, len(owned))
		for k := range owned {
			keys = append(keys, k)
		}
		for ; inflight > 0; inflight-- {
			<-results
		}
		o.release(context.WithoutCancel(ctx), keys)
	}()
	var nextReload time.Time
	for {
		now := o.Now()
		if !now.Before(nextReload) {
			if err := p.reload(ctx, owned); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				o.Logger.Warn("reload pollers", "err", err)
			}
			nextReload = now.Add(o.Reload)
		}
		wake := nextReload
		for _, s := range owned {
			if s.running {
				continue
			}
			if !now.Before(s.next) {
				s.running = true
				inflight++
				go func(s *source, last string) {
					sem <- struct{}{}
					r := p.poll(ctx, s, last)
					<-sem
					results <- r
				}(s.source, s.last)
				continue
			}
			if s.next.Before(wake) {
				wake = s.next
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case r := <-results:
			inflight--
			p.done(owned, r)
		case <-o.Until(wake):
		}
	}
}

// reload reads the sources again and takes or renews their leases; sources gone, changed or
// held by another server are dropped.
func (p *Poller) reload(ctx context.Context, owned map[string]*polled) error {
	o := &p.opts
	pipes, err := o.pipelines(ctx)
	if err != nil {
		return err
	}
	want := p.sources(pipes)
	held, err := renew(ctx, &o.Options, want, owned) // a running poll's result for a dropped source is ignored
	if err != nil {
		return err
	}
	now := o.Now()
	for k, last := range held {
		if owned[k] == nil {
			// Polled at once: the first poll of a new source is its baseline.
			owned[k] = &polled{source: want[k], last: last, next: now}
		}
	}
	return nil
}

// done records a poll's result and schedules the next poll.
func (p *Poller) done(owned map[string]*polled, r pollResult) {
	s := owned[r.key]
	if s == nil || s.source != r.src {
		return // dropped or changed meanwhile
	}
	s.running = false
	now := p.opts.Now()
	if r.err != nil {
		if s.failures == 0 {
			p.opts.Logger.Warn("polling a Git source fails; backing off", "pipeline", s.pipeline, "action", s.action, "err", r.err)
		}
		s.failures++
		s.next = now.Add(backoff(s.interval, s.failures, p.opts.MaxBackoff))
		return
	}
	if s.failures > 0 {
		p.opts.Logger.Info("polling a Git source works again", "pipeline", s.pipeline, "action", s.action, "failures", s.failures)
	}
	s.failures = 0
	s.last = r.commit
	s.next = now.Add(jitter(s.interval))
}

// backoff is the wait after n consecutive errors: interval doubled n times, capped.
func backoff(interval time.Duration, n int, ceiling time.Duration) time.Duration {
	d := interval
	for range min(n, 20) {
		d *= 2
		if d >= ceiling {
			return ceiling
		}
	}
	return jitter(d)
}

// jitter spreads polls by ±10 % so that sources applied together do not poll together.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()*0.2-0.1)*float64(d))
}

// poll checks one source: it reads the head and, when it moved since last, starts an
// execution if the filters pass, recording the head in the same transaction.
func (p *Poller) poll(ctx context.Context, s *source, last string) pollResult {
	o := &p.opts
	res := pollResult{key: s.key, src: s}
	dir := o.PipelineDir(s.pipeline)
	commit, branch, err := o.Head(ctx, s.repository, dir, s.branch)
	if err != nil {
		res.err = err
		return res
	}
	res.commit = commit
	if commit == last {
		return res
	}
	record := o.setState(ctx, s.key, commit)
	if last == "" || !p.matches(ctx, s, dir, branch, last, commit) {
		// A baseline, or a change the filters turn away: remembered, nothing started.
		if err := o.Store.Update(ctx, record); err != nil {
			res.commit, res.err = "", fmt.Errorf("record head of %s: %w", s.key, err)
		}
		return res
	}
	c := Cause{Pipeline: s.pipeline, Trigger: engine.Trigger{Type: "Poll", Detail: "new commit on " + branch},
		Sources: map[string]engine.SourceOverride{s.action: {Revision: commit}},
		Key:     "git:" + s.pipeline + ":" + s.action + ":" + commit}
	e, started, err := Start(loop.WithTx(ctx, record), o.Loop, c)
	switch {
	case errors.Is(err, engine.ErrRefused):
		// The pipeline refused the start (e.g. its queue is full): the commit is not retried.
		o.Logger.Warn("poll: execution refused", "pipeline", s.pipeline, "commit", commit, "err", err)
		if err := o.Store.Update(ctx, record); err != nil {
			res.commit, res.err = "", err
		}
	case err != nil:
		res.commit, res.err = "", fmt.Errorf("start %s for commit %s: %w", s.pipeline, commit, err)
	case started:
		o.Logger.Info("new commit: execution started", "pipeline", s.pipeline, "action", s.action, "commit", commit, "execution", e.ID)
	}
	return res
}

// matches reports whether a change of the source's branch from old to commit passes one of
// its gitPush triggers (every change passes without triggers). File path filters need the
// changed files: they are read with git diff for a local repository; for a remote one, which
// ls-remote cannot diff, file path filters are not applied.
func (p *Poller) matches(ctx context.Context, s *source, dir, branch, old, commit string) bool {
	if s.triggers == nil {
		return true
	}
	var files []string
	read := false
	for _, t := range s.triggers {
		if t.Branches == nil && t.Tags != nil {
			continue // a tags-only trigger: branch heads do not fire it
		}
		if !Match(t.Branches, branch) {
			continue
		}
		if t.FilePaths == nil {
			return true
		}
		path, local := git.Local(s.repository, dir)
		if !local {
			return true
		}
		if !read {
			var err error
			if files, err = p.opts.ChangedFiles(ctx, path, old, commit); err != nil {
				p.opts.Logger.Warn("poll: changed files unknown; file path filters not applied", "pipeline", s.pipeline,
					"action", s.action, "err", strings.TrimSpace(err.Error()))
				return true
			}
			read = true
		}
		if MatchAny(t.FilePaths, files) {
			return true
		}
	}
	return false
}
