package trigger

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/conveyorci/conveyor/internal/action/source/git"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/store"
)

// Pushes decides, away from the request that received them, the webhook deliveries whose
// start depends on files their payload does not list: it reads the changed files with git
// diff on a bare clone of the repository kept under Dir (git.Mirror), applies the filter,
// and starts the execution (once per Cause.Key, as the webhook and the poller do). The
// fetch authenticates with the source action's credentials (token, sshKey), read from
// Options.Secrets as the poller reads them. The
// webhook handler only enqueues (Enqueue never blocks), so it answers in milliseconds
// whatever the size of the repository.
//
// The queue is in memory: a server that stops before deciding a push loses that decision,
// and the poller (on by default for every Git source) catches the commit at its next poll.
type Pushes struct {
	opts  PushesOptions
	queue chan Push
}

// PushesOptions configure Pushes.
type PushesOptions struct {
	Options
	// Dir holds the bare clones (e.g. DATA_DIR/git-cache).
	Dir string
	// Concurrency caps the git processes running at once (default 2); Queue the pushes
	// waiting (default 256: past it Enqueue refuses).
	Concurrency int
	Queue       int
	// ChangedFiles lists the files changed by a push, fetching with creds; nil means
	// git.Mirror under Dir.
	ChangedFiles func(ctx context.Context, repository, pipelineDir, ref, from, to string, mergeBase bool, creds git.Credentials) ([]string, error)
	// Done, when set, is called after each push is decided (tests wait on it).
	Done func(p Push, e *engine.Execution, started bool, err error)
}

// Push is one decision waiting for the changed files.
type Push struct {
	Cause      Cause
	Repository string // as the source action configures it
	Ref        string // the full ref that brings To
	From, To   string
	MergeBase  bool
	// Match reports whether the changed files start Cause.
	Match func(files []string) bool
}

// ErrBusy is Enqueue's answer when the queue is full.
var ErrBusy = errors.New("too many pushes waiting for git diff")

// NewPushes returns the service; Run runs it.
func NewPushes(opts PushesOptions) *Pushes {
	opts.defaults()
	if opts.Concurrency <= 0 {
		opts.Concurrency = 2
	}
	if opts.Queue <= 0 {
		opts.Queue = 256
	}
	if opts.ChangedFiles == nil {
		opts.ChangedFiles = (&git.Mirror{Dir: opts.Dir}).ChangedFiles
	}
	return &Pushes{opts: opts, queue: make(chan Push, opts.Queue)}
}

// Enqueue hands p to the service without waiting; ErrBusy when the queue is full.
func (s *Pushes) Enqueue(p Push) error {
	select {
	case s.queue <- p:
		return nil
	default:
		return ErrBusy
	}
}

// Run decides the pushes enqueued until ctx is done.
func (s *Pushes) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range s.opts.Concurrency {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case p := <-s.queue:
					e, started, err := s.decide(ctx, p)
					if s.opts.Done != nil {
						s.opts.Done(p, e, started, err)
					}
				}
			}
		})
	}
	wg.Wait()
	return nil
}

func (s *Pushes) decide(ctx context.Context, p Push) (*engine.Execution, bool, error) {
	o := &s.opts
	log := o.Logger.With("pipeline", p.Cause.Pipeline, "ref", p.Ref, "commit", p.To)
	creds, names, err := s.credentials(ctx, p)
	if err != nil {
		log.Warn("webhook: the source's credentials are unavailable; fetching without them", "err", err)
	}
	files, err := o.ChangedFiles(ctx, p.Repository, o.PipelineDir(p.Cause.Pipeline), p.Ref, p.From, p.To, p.MergeBase, creds)
	if err != nil {
		o.secrets.forget(p.Cause.Pipeline, names) // refused, perhaps: read them again next time
	}
	switch {
	case ctx.Err() != nil:
		return nil, false, ctx.Err()
	case err != nil:
		// A filter that cannot tell starts rather than misses a change, as for a payload
		// without files.
		log.Warn("webhook: changed files unknown; file path filters not applied", "err", strings.TrimSpace(err.Error()))
	case !p.Match(files):
		log.Info("webhook: no changed file passes the filePaths filters; nothing started", "files", len(files))
		return nil, false, nil
	}
	e, started, err := Start(ctx, o.Loop, p.Cause)
	switch {
	case errors.Is(err, engine.ErrRefused):
		log.Warn("webhook: execution refused", "err", err)
	case err != nil:
		log.Error("webhook: start execution", "err", err)
		return nil, false, fmt.Errorf("start %s: %w", p.Cause.Pipeline, err)
	case started:
		log.Info("webhook: execution started after git diff", "execution", e.ID)
	}
	return e, started, err
}

// credentials returns the credentials of the source action p starts (the one Cause.Sources
// names) in the latest version of its pipeline, and the names of their secrets.
func (s *Pushes) credentials(ctx context.Context, p Push) (git.Credentials, []string, error) {
	o := &s.opts
	var version int
	err := o.Store.View(ctx, func(r store.Reader) error {
		pv, err := r.PipelineVersion(ctx, p.Cause.Pipeline, 0)
		if err == nil {
			version = pv.Version
		}
		return err
	})
	if err != nil {
		return git.Credentials{}, nil, fmt.Errorf("read pipeline %s: %w", p.Cause.Pipeline, err)
	}
	pl, err := o.Loop.Pipeline(ctx, p.Cause.Pipeline, version)
	if err != nil {
		return git.Credentials{}, nil, err
	}
	for ref := range p.Cause.Sources {
		si, ai, err := pl.FindAction(ref)
		if err != nil {
			return git.Credentials{}, nil, err
		}
		cfg := pl.Stages[si].Actions[ai].Configuration
		_, names := secretRefs(cfg, gitCredentialKeys)
		creds, err := sourceCredentials(ctx, o.secrets, pl.Name, version, cfg)
		return creds, names, err
	}
	return git.Credentials{}, nil, nil
}
