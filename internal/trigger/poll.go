package trigger

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
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
	// one, whose name is returned), authenticated with creds; nil means git ls-remote
	// through git.Remote.
	Head func(ctx context.Context, repository, pipelineDir, branch string, creds git.Credentials) (commit, name string, err error)
	// ChangedFiles lists the files changed between two commits of a local repository; nil
	// means git diff through git.Remote.
	ChangedFiles func(ctx context.Context, path, from, to string) ([]string, error)
}

// Poller is the change detection of Git sources without webhooks: every pollInterval
// (jittered ±10 %), for each polled source whose lease this server holds, it reads the
// branch head (git.Remote.Head: the repository's files, smart HTTP, or git ls-remote), at
// most Concurrency at once; a head that moved starts an execution pinned to it (Key
// "git:PIPELINE:STAGE.ACTION:COMMIT", as a webhook for the same commit, so only one starts).
// The first head seen is a baseline and starts nothing: applying a pipeline does not run it.
// A pipeline without triggers has each Git source polled on its branch; one with triggers
// only the sources its gitPush triggers name, through their branch (and, for a local
// repository, file path) filters. Errors back off exponentially and are logged when a
// source starts or stops failing. While the repository's webhooks deliver, a source with a
// webhookSecret is polled hookSlowdown times less often (hooks.go). Source/S3 actions are
// polled the same way (s3poll.go).
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

// source is one polled source action.
type source struct {
	key        string // the lease key: "poll:PIPELINE:STAGE.ACTION"
	kind       string // "git", or "s3": a Source/S3 action, whose object is polled (s3poll.go)
	pipeline   string
	version    int    // the pipeline's: its secrets are read again for a new one
	action     string // "Stage.Action"
	repository string
	branch     string // as configured ("" : the default branch)
	interval   time.Duration
	triggers   []*pipeline.GitPushTrigger // nil: no filters (a pipeline without triggers)
	config     map[string]any             // the action's configuration: its credentials
	hook       string                     // the row of its repository's deliveries ("": it has no webhookSecret)
}

func (s *source) same(o *source) bool {
	return s.kind == o.kind && s.version == o.version && s.repository == o.repository && s.branch == o.branch && s.interval == o.interval &&
		fmt.Sprint(s.triggers) == fmt.Sprint(o.triggers) && fmt.Sprint(s.config) == fmt.Sprint(o.config)
}

// polled is a source this poller owns.
type polled struct {
	*source
	slot
	last      string // the last head seen ("": none yet)
	failures  int
	polledAt  time.Time // the last successful poll (zero: none yet)
	spread    float64   // its jitter: the wait after it is multiplied by spread
	delivered time.Time // the last webhook delivery for its repository (zero: none seen)
}

// pollResult is what one poll found.
type pollResult struct {
	key    string
	src    *source
	commit string // the head now seen; "" on error
	err    error
}

// sources returns the sources the pipelines (at versions) ask to poll.
func (p *Poller) sources(pipes []*pipeline.Pipeline, versions map[string]int) map[string]*source {
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
				if s := p.s3Source(pl, st.Name+"."+a.Name, a); s != nil {
					s.version = versions[pl.Name]
					out[s.key] = s
					continue
				}
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
				s := &source{key: key, kind: "git", pipeline: pl.Name, version: versions[pl.Name], action: ref, repository: repo,
					branch: branch, interval: interval, triggers: trig, config: a.Configuration}
				if pipeline.SecretName(a.Configuration["webhookSecret"]) != "" {
					s.hook = hookKey(repo)
				}
				out[key] = s
			}
		}
	}
	return out
}

// Run polls until ctx is done, then releases its leases.
func (p *Poller) Run(ctx context.Context) error {
	owned := map[string]*polled{}
	return runDuties(ctx, &p.opts.Options, "pollers", p.opts.Concurrency, owned,
		func(ctx context.Context) error { return p.reload(ctx, owned) },
		func(_ string, s *polled) func(context.Context) pollResult {
			src, last := s.source, s.last
			return func(ctx context.Context) pollResult { return p.poll(ctx, src, last) }
		},
		func(r pollResult) { p.done(owned, r) })
}

// reload reads the sources again and takes or renews their leases; sources gone, changed or
// held by another server are dropped.
func (p *Poller) reload(ctx context.Context, owned map[string]*polled) error {
	o := &p.opts
	pipes, versions, err := o.latest(ctx)
	if err != nil {
		return err
	}
	want := p.sources(pipes, versions)
	held, err := renew(ctx, &o.Options, want, owned) // a running poll's result for a dropped source is ignored
	if err != nil {
		return err
	}
	now := o.Now()
	for k, last := range held {
		if owned[k] == nil {
			// Polled at once: the first poll of a new source is its baseline.
			owned[k] = &polled{source: want[k], last: last, slot: slot{next: now}}
		}
	}
	return p.slowForHooks(ctx, owned)
}

// slowForHooks reads when the repositories of the owned sources with a webhookSecret last
// had a delivery, and moves their next poll to pollEvery's pace.
func (p *Poller) slowForHooks(ctx context.Context, owned map[string]*polled) error {
	o := &p.opts
	var keys []string
	for _, s := range owned {
		if s.hook != "" && !slices.Contains(keys, s.hook) {
			keys = append(keys, s.hook)
		}
	}
	last, err := o.lastDeliveries(ctx, keys)
	if err != nil {
		return fmt.Errorf("read webhook deliveries: %w", err)
	}
	now := o.Now()
	for _, s := range owned {
		if s.hook == "" {
			continue
		}
		s.delivered = last[s.hook]
		if !s.running && s.failures == 0 && !s.polledAt.IsZero() {
			s.next = p.nextPoll(s, now)
		}
	}
	return nil
}

// nextPoll is when s, polled successfully at s.polledAt, is polled next.
func (p *Poller) nextPoll(s *polled, now time.Time) time.Time {
	every := pollEvery(s.interval, s.delivered, now)
	return s.polledAt.Add(time.Duration(float64(every) * s.spread))
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
			p.opts.Logger.Warn("polling a source fails; backing off", "kind", s.kind, "pipeline", s.pipeline, "action", s.action, "err", r.err)
		}
		s.failures++
		s.next = now.Add(backoff(s.interval, s.failures, p.opts.MaxBackoff))
		return
	}
	if s.failures > 0 {
		p.opts.Logger.Info("polling a source works again", "kind", s.kind, "pipeline", s.pipeline, "action", s.action, "failures", s.failures)
	}
	s.failures = 0
	s.last = r.commit
	s.polledAt, s.spread = now, 0.9+0.2*rand.Float64()
	s.next = p.nextPoll(s, now)
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
	if s.kind == "s3" {
		return p.pollS3(ctx, s, last)
	}
	dir := o.PipelineDir(s.pipeline)
	creds, err := sourceCredentials(ctx, o.secrets, s.pipeline, s.version, s.config)
	if err != nil {
		res.err = err
		return res
	}
	commit, branch, err := o.Head(ctx, s.repository, dir, s.branch, creds)
	if err != nil {
		o.secrets.forgetRefs(s.pipeline, s.config, gitCredentialKeys) // refused, perhaps
		res.err = err
		return res
	}
	if commit == last {
		res.commit = commit
		return res
	}
	pass := last != "" && p.matches(ctx, s, dir, branch, last, commit)
	return p.advance(ctx, res, s, commit, pass, "new commit on "+branch)
}

// advance records a source's new revision and, when pass, starts an execution pinned to it in
// the same transaction (Key "KIND:PIPELINE:STAGE.ACTION:REVISION", as a webhook for the same
// revision, so only one starts). Without pass (a baseline, or a change the filters turn
// away) the revision is only remembered.
func (p *Poller) advance(ctx context.Context, res pollResult, s *source, revision string, pass bool, detail string) pollResult {
	o := &p.opts
	res.commit = revision
	record := o.setState(ctx, s.key, revision)
	if !pass {
		if err := o.Store.Update(ctx, record); err != nil {
			res.commit, res.err = "", fmt.Errorf("record head of %s: %w", s.key, err)
		}
		return res
	}
	c := Cause{Pipeline: s.pipeline, Trigger: engine.Trigger{Type: "Poll", Detail: detail},
		Sources: map[string]engine.SourceOverride{s.action: {Revision: revision}},
		Key:     s.kind + ":" + s.pipeline + ":" + s.action + ":" + revision}
	e, started, err := Start(loop.WithTx(ctx, record), o.Loop, c)
	switch {
	case errors.Is(err, engine.ErrRefused):
		// The pipeline refused the start (e.g. its queue is full): the revision is not retried.
		o.Logger.Warn("poll: execution refused", "pipeline", s.pipeline, "revision", revision, "err", err)
		if err := o.Store.Update(ctx, record); err != nil {
			res.commit, res.err = "", err
		}
	case err != nil:
		res.commit, res.err = "", fmt.Errorf("start %s for revision %s: %w", s.pipeline, revision, err)
	case started:
		o.Logger.Info("new revision: execution started", "pipeline", s.pipeline, "action", s.action, "revision", revision, "execution", e.ID)
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
