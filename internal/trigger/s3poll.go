package trigger

import (
	"context"
	"time"

	"github.com/conveyorci/conveyor/internal/action/s3"
	"github.com/conveyorci/conveyor/internal/pipeline"
)

// The Poller polls the object of each Source/S3 action as it polls a Git branch: every
// pollInterval it reads the object's VersionId, or its ETag in a bucket without versioning
// (s3.Revision), and a new one starts an execution pinned to it (Key
// "s3:PIPELINE:STAGE.ACTION:REVISION"); the first one seen is a baseline. A pipeline without
// triggers has each of its S3 sources polled (every 60 s by default); a pipeline with
// triggers, which say what starts it, only those that set pollInterval.

// s3HeadTimeout bounds one look at an object, so that a server that does not answer cannot
// hold a poll forever.
const s3HeadTimeout = time.Minute

// s3Source returns the polled source of a Source/S3 action, nil when a is not one or is not
// to be polled.
func (p *Poller) s3Source(pl *pipeline.Pipeline, ref string, a *pipeline.Action) *source {
	if a.Category != pipeline.Source || a.Provider != pipeline.ProviderS3 {
		return nil
	}
	if _, set := a.Configuration["pollInterval"]; len(pl.Triggers) > 0 && !set {
		return nil
	}
	interval := a.PollInterval()
	if interval == 0 {
		return nil
	}
	if p.opts.Every > 0 {
		interval = p.opts.Every
	}
	key := "poll:" + pl.Name + ":" + ref
	return &source{key: key, kind: "s3", pipeline: pl.Name, action: ref, interval: interval, config: a.Configuration}
}

// pollS3 reads the revision of a Source/S3 action's object and advances the source to it.
func (p *Poller) pollS3(ctx context.Context, s *source, last string) pollResult {
	res := pollResult{key: s.key, src: s}
	cfg, err := p.opts.secrets.resolve(ctx, s.pipeline, s.version, s.config, s3CredentialKeys)
	if err != nil {
		res.err = err
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, s3HeadTimeout)
	defer cancel()
	etag, version, err := s3.Head(ctx, cfg)
	if err != nil {
		p.opts.secrets.forgetRefs(s.pipeline, s.config, s3CredentialKeys)
		res.err = err
		return res
	}
	rev := s3.Revision(etag, version)
	if rev == last {
		res.commit = rev
		return res
	}
	bucket, _ := cfg["bucket"].(string)
	key, _ := cfg["objectKey"].(string)
	return p.advance(ctx, res, s, rev, last != "", "new version of s3://"+bucket+"/"+key)
}
