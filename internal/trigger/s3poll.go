package trigger

import (
	"context"
	"fmt"
	"maps"
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
	cfg, err := s3Config(ctx, p.opts.secrets, s.pipeline, s.version, s.config)
	if err != nil {
		res.err = err
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, s3HeadTimeout)
	defer cancel()
	etag, version, err := s3.Head(ctx, cfg)
	if err != nil {
		_, names := s3Secrets(s.config)
		p.opts.secrets.forget(s.pipeline, names) // refused, perhaps: read them again next time
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

// s3Secrets returns the secret names of a Source/S3 action's credentials, by property.
func s3Secrets(cfg map[string]any) (refs map[string]string, names []string) {
	refs = map[string]string{}
	for _, k := range []string{"accessKeyId", "secretAccessKey"} {
		if n := pipeline.SecretName(cfg[k]); n != "" {
			refs[k] = n
			names = append(names, n)
		}
	}
	return refs, names
}

// s3Config returns a Source/S3 action's configuration (of version of pipelineName) with its
// credentials' values in place of their secrets' references, as a job gets it.
func s3Config(ctx context.Context, secrets *secretCache, pipelineName string, version int, cfg map[string]any) (map[string]any, error) {
	refs, names := s3Secrets(cfg)
	if len(names) == 0 {
		return cfg, nil
	}
	values, err := secrets.secrets(ctx, pipelineName, version, names)
	if err != nil {
		return nil, err
	}
	out := maps.Clone(cfg)
	for k, n := range refs {
		v, ok := values[n]
		if !ok {
			secrets.forget(pipelineName, names)
			return nil, fmt.Errorf("get secrets: secret %s has no value", n)
		}
		out[k] = v
	}
	return out, nil
}
