package trigger

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/conveyorci/conveyor/internal/action/source/git"
	"github.com/conveyorci/conveyor/internal/pipeline"
)

// secretCache keeps the secret values a trigger service resolved for a source's credentials,
// for ttl: the secret store records every read in the audit log, and a source polled every
// minute would otherwise read its token, and add an audit entry, 1,440 times a day. An entry
// is for one pipeline version and set of names: a new version of the pipeline reads them
// again, and so does the next look after a failure with them (forget), so that a rotated
// token is picked up at once where the old one is refused. It is safe for concurrent use.
type secretCache struct {
	get func(ctx context.Context, pipeline string, names []string) (map[string]string, error) // nil: no secret store
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[string]cachedSecrets // by secretKey
}

type cachedSecrets struct {
	version int
	values  map[string]string
	at      time.Time
}

func secretKey(pipeline string, names []string) string {
	return pipeline + "\x00" + strings.Join(slices.Sorted(slices.Values(names)), "\x00")
}

// secrets returns the values of names for version of pipeline, read through get unless read
// within ttl. Errors are not kept.
func (c *secretCache) secrets(ctx context.Context, pipeline string, version int, names []string) (map[string]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	if c.get == nil {
		return nil, fmt.Errorf("get secrets %s: this server has no secret store", strings.Join(names, ", "))
	}
	k, now := secretKey(pipeline, names), c.now()
	c.mu.Lock()
	e, ok := c.entries[k]
	c.mu.Unlock()
	if ok && e.version == version && now.Sub(e.at) < c.ttl && !now.Before(e.at) {
		return e.values, nil
	}
	values, err := c.get(ctx, pipeline, names)
	if err != nil {
		c.forget(pipeline, names)
		return nil, fmt.Errorf("get secrets %s: %w", strings.Join(names, ", "), err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]cachedSecrets{}
	}
	for key, e := range c.entries { // what expired: pipelines deleted, sources gone
		if now.Sub(e.at) >= c.ttl {
			delete(c.entries, key)
		}
	}
	c.entries[k] = cachedSecrets{version: version, values: values, at: now}
	return values, nil
}

// forget drops the values of names for pipeline: the next look reads them again.
func (c *secretCache) forget(pipeline string, names []string) {
	if len(names) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, secretKey(pipeline, names))
}

// The properties of a source action's configuration that hold its credentials.
var (
	gitCredentialKeys = []string{"token", "sshKey"}
	s3CredentialKeys  = []string{"accessKeyId", "secretAccessKey"}
)

// secretRefs returns the secret names the properties keys of cfg reference, by property.
func secretRefs(cfg map[string]any, keys []string) (refs map[string]string, names []string) {
	refs = map[string]string{}
	for _, k := range keys {
		if n := pipeline.SecretName(cfg[k]); n != "" {
			refs[k] = n
			names = append(names, n)
		}
	}
	return refs, names
}

// resolve returns cfg (of version of pipelineName) with the values of the secrets its
// properties keys reference in place of the references, as a job gets it; cfg itself when
// they reference none.
func (c *secretCache) resolve(ctx context.Context, pipelineName string, version int, cfg map[string]any, keys []string) (map[string]any, error) {
	refs, names := secretRefs(cfg, keys)
	if len(names) == 0 {
		return cfg, nil
	}
	values, err := c.secrets(ctx, pipelineName, version, names)
	if err != nil {
		return nil, err
	}
	out := maps.Clone(cfg)
	for k, n := range refs {
		v, ok := values[n]
		if !ok {
			c.forget(pipelineName, names)
			return nil, fmt.Errorf("get secrets: secret %s has no value", n)
		}
		out[k] = v
	}
	return out, nil
}

// forgetRefs drops the values of the secrets the properties keys of cfg reference, after
// they were refused perhaps: the next look reads them again.
func (c *secretCache) forgetRefs(pipelineName string, cfg map[string]any, keys []string) {
	_, names := secretRefs(cfg, keys)
	c.forget(pipelineName, names)
}

// sourceCredentials are the credentials a Git source's configuration (of version of
// pipelineName) names, their secrets read through secrets.
func sourceCredentials(ctx context.Context, secrets *secretCache, pipelineName string, version int, cfg map[string]any) (git.Credentials, error) {
	resolved, err := secrets.resolve(ctx, pipelineName, version, cfg, gitCredentialKeys)
	if err != nil {
		return git.Credentials{}, err
	}
	return git.CredentialsFrom(resolved), nil
}
