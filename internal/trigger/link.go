package trigger

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/conveyorci/conveyor/internal/action/source/git"
	"github.com/conveyorci/conveyor/internal/audit"
	"github.com/conveyorci/conveyor/internal/engine/loop"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/store"
)

// LinkOptions configure a Linker.
type LinkOptions struct {
	Options
	// Mirror reads the linked files (its bare clones of remote repositories); required.
	Mirror *git.Mirror
	// Head returns the commit a branch points at ("" : the default branch, whose name is
	// returned); nil means git.Remote's.
	Head func(ctx context.Context, repository, pipelineDir, branch string, creds git.Credentials) (commit, name string, err error)
	// Specs returns the providers a pipeline file may use (built-in and custom); nil: the
	// built-in ones.
	Specs func(ctx context.Context) ([]pipeline.ProviderSpec, error)
	// Audit, when set, records each version a link makes and each invalid file it meets.
	Audit *audit.Log
	// Every is how often each link's branch is checked (default 60 s).
	Every time.Duration
}

// Linker keeps the pipelines that follow a file in a repository (pipeline.Link, conveyor
// pipeline link) up to date: each commit of the followed branch that changes the file makes
// a new version of the pipeline, tied to that commit; a commit that makes the file invalid is
// refused (the last good version keeps running), and told: in the audit log, the log, and as
// a failed commit status when the pipeline reports one. One server checks each link (a lease
// "link:PIPELINE"); the last commit checked is the lease's state, so a restart does not read
// the file again.
type Linker struct {
	opts LinkOptions
}

// NewLinker returns a Linker; Run runs its checks, Sync checks one link at once.
func NewLinker(opts LinkOptions) *Linker {
	opts.defaults()
	if opts.Every <= 0 {
		opts.Every = time.Minute
	}
	if opts.Head == nil {
		r := &git.Remote{}
		opts.Head = r.Head
	}
	return &Linker{opts: opts}
}

// LinkResult is what a check of a link found.
type LinkResult struct {
	// Commit is the head of the followed branch, Branch its name.
	Commit, Branch string
	// Version is the version the check registered, 0 when the file did not change.
	Version int
	// Invalid, when set, is why the file at Commit is not a valid pipeline (a
	// *pipeline.Errors for a file that does not parse): nothing was registered.
	Invalid error
}

// ErrLinkUnreadable wraps the errors of a link whose file could not be read at all (the
// repository or branch unreachable, a credential refused), as opposed to a file that is
// there and invalid.
var ErrLinkUnreadable = errors.New("cannot read the linked file")

// Sync reads the linked file at the head of its branch and, when it is a valid pipeline that
// differs from the pipeline's latest version (or the link itself changed), registers it as a
// new version carrying link (with the commit). The registration runs ctx's loop.WithTx hooks
// in its transaction (the caller's audit entry).
func (k *Linker) Sync(ctx context.Context, name string, link pipeline.Link) (LinkResult, error) {
	o := &k.opts
	link.Path = strings.TrimPrefix(cmp.Or(link.Path, pipeline.DefaultLinkPath), "./")
	creds, err := k.credentials(ctx, name, link)
	if err != nil {
		return LinkResult{}, fmt.Errorf("%w: %v", ErrLinkUnreadable, err)
	}
	dir := o.PipelineDir(name)
	commit, branch, err := o.Head(ctx, link.Repository, dir, link.Branch, creds)
	if err != nil {
		k.forgetToken(name, link)
		return LinkResult{}, fmt.Errorf("%w: %v", ErrLinkUnreadable, err)
	}
	res := LinkResult{Commit: commit, Branch: branch}
	data, err := o.Mirror.ReadFile(ctx, link.Repository, dir, "refs/heads/"+branch, commit, link.Path, creds)
	if errors.Is(err, git.ErrNoFile) {
		res.Invalid = fmt.Errorf("%s is not in commit %s of branch %s: add it there, or link another path (--path)", link.Path, commit, branch)
		return res, nil
	}
	if err != nil {
		k.forgetToken(name, link)
		return LinkResult{}, fmt.Errorf("%w: %v", ErrLinkUnreadable, err)
	}
	var specs []pipeline.ProviderSpec
	if o.Specs != nil {
		if specs, err = o.Specs(ctx); err != nil {
			return LinkResult{}, err
		}
	} else {
		specs = pipeline.BuiltinProviders()
	}
	p, err := pipeline.Parse(link.Path, data, pipeline.WithProviders(specs))
	if err != nil {
		res.Invalid = err
		return res, nil
	}
	if p.Name != name {
		res.Invalid = fmt.Errorf("%s: the file names pipeline %q, but it is linked to pipeline %q: rename one of them", link.Path, p.Name, name)
		return res, nil
	}
	cur, err := o.Loop.Pipeline(ctx, name, 0)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return LinkResult{}, err
	}
	want := link
	want.Commit = ""
	if cur != nil && cur.Link != nil && sameDefinition(cur.Unlinked(), p) {
		have := *cur.Link
		have.Commit = ""
		if have == want {
			return res, nil // the file did not change: no version
		}
	}
	link.Commit = commit
	p.Link = &link
	if res.Version, err = o.Loop.Register(ctx, p); err != nil {
		return LinkResult{}, err
	}
	return res, nil
}

// sameDefinition reports whether two pipelines are the same definition.
func sameDefinition(a, b *pipeline.Pipeline) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// credentials returns the credentials the link's token names.
func (k *Linker) credentials(ctx context.Context, name string, link pipeline.Link) (git.Credentials, error) {
	if link.Token == "" {
		return git.Credentials{}, nil
	}
	// Options.Secrets, kept a while (secretCache): a link is checked every minute.
	vals, err := k.opts.secrets.secrets(ctx, name, 0, []string{link.Token})
	if err != nil {
		return git.Credentials{}, fmt.Errorf("token secret %s: %w", link.Token, err)
	}
	return git.Credentials{Token: vals[link.Token]}, nil
}

// forgetToken drops the kept value of the link's token, refused perhaps: the next check, or
// a conveyor pipeline link run again after the token was rotated, reads it again.
func (k *Linker) forgetToken(name string, link pipeline.Link) {
	if link.Token != "" {
		k.opts.secrets.forget(name, []string{link.Token})
	}
}

// linked is a link this server checks.
type linked struct {
	slot
	name string
	link pipeline.Link // as the latest version has it, Commit cleared
	last string        // the commit last checked
}

func (l *linked) same(o *linked) bool { return l.link == o.link }

// linkConcurrency caps the links checked at once.
const linkConcurrency = 4

// linkChecked is what a check of a link found: the commit now checked.
type linkChecked struct {
	key    string
	l      *linked
	commit string
}

// Run checks the links this server holds every Every until ctx is done, then releases them.
func (k *Linker) Run(ctx context.Context) error {
	o := &k.opts
	owned := map[string]*linked{}
	return runDuties(ctx, &o.Options, "links", linkConcurrency, owned,
		func(ctx context.Context) error { return k.reload(ctx, owned) },
		func(key string, l *linked) func(context.Context) linkChecked {
			last := l.last
			return func(ctx context.Context) linkChecked { return linkChecked{key, l, k.check(ctx, key, l, last)} }
		},
		func(r linkChecked) {
			if owned[r.key] != r.l {
				return // dropped or changed meanwhile
			}
			r.l.running, r.l.last = false, r.commit
			r.l.next = o.Now().Add(jitter(o.Every))
		})
}

// reload reads the linked pipelines again and takes or renews their leases.
func (k *Linker) reload(ctx context.Context, owned map[string]*linked) error {
	o := &k.opts
	pipes, err := o.pipelines(ctx)
	if err != nil {
		return err
	}
	want := map[string]*linked{}
	for _, p := range pipes {
		if p.Link == nil {
			continue
		}
		l := *p.Link
		l.Commit = ""
		want["link:"+p.Name] = &linked{name: p.Name, link: l}
	}
	held, err := renew(ctx, &o.Options, want, owned)
	if err != nil {
		return err
	}
	now := o.Now()
	for key, state := range held {
		if owned[key] == nil {
			owned[key] = &linked{slot: slot{next: now}, name: want[key].name, link: want[key].link, last: state}
		}
	}
	return nil
}

// check checks one link: when its branch moved past the commit last checked, it syncs it,
// and tells what an invalid file is. It returns the commit now checked.
func (k *Linker) check(ctx context.Context, key string, l *linked, last string) string {
	o := &k.opts
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	creds, err := k.credentials(ctx, l.name, l.link)
	if err != nil {
		o.Logger.Warn("link: cannot read the linked file", "pipeline", l.name, "err", err)
		return last
	}
	head, _, err := o.Head(ctx, l.link.Repository, o.PipelineDir(l.name), l.link.Branch, creds)
	if err != nil {
		k.forgetToken(l.name, l.link)
		o.Logger.Warn("link: cannot check the linked branch", "pipeline", l.name, "repository", l.link.Repository, "err", err)
		return last
	}
	if head == last {
		return last
	}
	synced := ctx
	if o.Audit != nil {
		synced = loop.WithTx(ctx, func(tx store.Tx) error {
			pv, err := tx.PipelineVersion(ctx, l.name, 0)
			if err != nil {
				return err
			}
			return o.Audit.Append(ctx, tx, audit.Entry{Actor: "link", Action: "pipeline.put", Target: "pipeline/" + l.name, Outcome: audit.OK,
				Details: map[string]any{"version": pv.Version, "repository": l.link.Repository, "path": l.link.Path, "commit": head}})
		})
	}
	res, err := k.Sync(synced, l.name, l.link)
	if err != nil {
		o.Logger.Warn("link: cannot read the linked file", "pipeline", l.name, "repository", l.link.Repository, "err", err)
		return last
	}
	record := o.setState(ctx, key, res.Commit)
	switch {
	case res.Invalid != nil:
		o.Logger.Warn("link: the linked file is not a valid pipeline; the last good version keeps running",
			"pipeline", l.name, "commit", res.Commit, "path", l.link.Path, "err", res.Invalid)
		err = o.Store.Update(ctx, func(tx store.Tx) error {
			if err := k.tellInvalid(ctx, tx, l, res); err != nil {
				return err
			}
			return record(tx)
		})
	case res.Version > 0:
		o.Logger.Info("link: new pipeline version from the linked file", "pipeline", l.name, "commit", res.Commit, "version", res.Version)
		err = o.Store.Update(ctx, record)
	default:
		err = o.Store.Update(ctx, record)
	}
	if err != nil {
		o.Logger.Warn("link: record the commit checked", "pipeline", l.name, "err", err)
		return last
	}
	return res.Commit
}

// tellInvalid records, in tx, that the linked file is invalid at res.Commit: in the audit
// log, and as a failed commit status when the pipeline reports one.
func (k *Linker) tellInvalid(ctx context.Context, tx store.Tx, l *linked, res LinkResult) error {
	o := &k.opts
	msg := res.Invalid.Error()
	if o.Audit != nil {
		e := audit.Entry{Actor: "link", Action: "pipeline.link.invalid", Target: "pipeline/" + l.name, Outcome: audit.Failed(res.Invalid),
			Details: map[string]any{"repository": l.link.Repository, "branch": res.Branch, "path": l.link.Path, "commit": res.Commit, "errors": msg}}
		if err := o.Audit.Append(ctx, tx, e); err != nil {
			return err
		}
	}
	pv, err := tx.PipelineVersion(ctx, l.name, 0)
	if err != nil {
		return err
	}
	var cur pipeline.Pipeline
	if err := json.Unmarshal(pv.Definition, &cur); err != nil {
		return err
	}
	return loop.AddDefinitionReport(ctx, tx, o.Now(), &cur, pv.Version, l.link.Repository, res.Commit, msg)
}
