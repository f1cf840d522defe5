package pipeline

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ExecutionMode says how executions of one pipeline share its stages.
type ExecutionMode string

const (
	// Superseded (the default, as in CodePipeline): a stage holds one execution at a time and a
	// newer execution replaces an older one waiting before the same stage.
	Superseded ExecutionMode = "SUPERSEDED"
	// Queued: like Superseded, but waiting executions queue in order and none is superseded.
	Queued ExecutionMode = "QUEUED"
	// Parallel: executions are independent and never wait for each other.
	Parallel ExecutionMode = "PARALLEL"
)

// Category is the kind of work an action does.
type Category string

const (
	Source   Category = "Source"
	Build    Category = "Build"
	Test     Category = "Test"
	Deploy   Category = "Deploy"
	Approval Category = "Approval"
	Invoke   Category = "Invoke"
	Compute  Category = "Compute"
)

// Categories lists every category in the order the documentation shows them.
var Categories = []Category{Source, Build, Test, Deploy, Approval, Invoke, Compute}

// Pipeline is one version of a pipeline declaration, as read from a pipeline file.
type Pipeline struct {
	Name          string        `json:"name" yaml:"name"`
	ExecutionMode ExecutionMode `json:"executionMode,omitempty" yaml:"executionMode,omitempty"`
	// MaxConcurrency caps the executions in progress at once (PARALLEL mode only; 0: no cap).
	MaxConcurrency int `json:"maxConcurrency,omitempty" yaml:"maxConcurrency,omitempty"`
	// MaxQueued caps the executions waiting before a stage (QUEUED mode only; 0: no cap).
	MaxQueued int        `json:"maxQueued,omitempty" yaml:"maxQueued,omitempty"`
	Variables []Variable `json:"variables,omitempty" yaml:"variables,omitempty"`
	// Secrets names the secrets the pipeline's actions may take into their environment.
	Secrets  []string  `json:"secrets,omitempty" yaml:"secrets,omitempty"`
	Triggers []Trigger `json:"triggers,omitempty" yaml:"triggers,omitempty"`
	// Notifications and CommitStatus say what the pipeline reports outside (reporting.go).
	Notifications []Notification `json:"notifications,omitempty" yaml:"notifications,omitempty"`
	CommitStatus  *CommitStatus  `json:"commitStatus,omitempty" yaml:"commitStatus,omitempty"`
	// PullRequests says what executions started by gitPullRequest triggers may have (nil:
	// no secrets, no pull requests from forks).
	PullRequests *PullRequestPolicy `json:"pullRequests,omitempty" yaml:"pullRequests,omitempty"`
	Stages       []Stage            `json:"stages" yaml:"stages"`
	// Link, when set, makes the definition follow a file in a repository (conveyor pipeline
	// link): it is not part of the file, and each version records the commit it was read at.
	Link *Link `json:"link,omitempty" yaml:"-"`
}

// Link is where a pipeline's definition comes from when it follows a file in a repository.
type Link struct {
	Repository string `json:"repository"`
	// Branch is the branch followed ("" : the repository's default branch).
	Branch string `json:"branch,omitempty"`
	// Path is the file, relative to the repository's root (default DefaultLinkPath).
	Path string `json:"path"`
	// Token names a secret of the pipeline holding an access token for an HTTPS repository.
	Token string `json:"token,omitempty"`
	// Commit is the commit this version of the definition was read at.
	Commit string `json:"commit,omitempty"`
}

// DefaultLinkPath is the file a linked pipeline follows unless told another.
const DefaultLinkPath = ".conveyor/pipeline.yaml"

// Unlinked returns a copy of p without its link: what the file says, to compare versions.
func (p *Pipeline) Unlinked() *Pipeline {
	c := *p
	c.Link = nil
	return &c
}

// Trigger starts executions of the pipeline. Exactly one of its fields is set.
type Trigger struct {
	GitPush  *GitPushTrigger  `json:"gitPush,omitempty" yaml:"gitPush,omitempty"`
	Schedule *ScheduleTrigger `json:"schedule,omitempty" yaml:"schedule,omitempty"`
	Upstream *UpstreamTrigger `json:"upstream,omitempty" yaml:"upstream,omitempty"`
	// Webhook and GitPullRequest are declared in triggers.go.
	Webhook        *WebhookTrigger     `json:"webhook,omitempty" yaml:"webhook,omitempty"`
	GitPullRequest *PullRequestTrigger `json:"gitPullRequest,omitempty" yaml:"gitPullRequest,omitempty"`
}

// GitPushTrigger starts an execution when a push to the repository of a Git source action
// matches its filters. Action names that source action (filled in by Parse when the pipeline
// has a single source action).
type GitPushTrigger struct {
	Action    string  `json:"action" yaml:"action"`
	Branches  *Filter `json:"branches,omitempty" yaml:"branches,omitempty"`
	Tags      *Filter `json:"tags,omitempty" yaml:"tags,omitempty"`
	FilePaths *Filter `json:"filePaths,omitempty" yaml:"filePaths,omitempty"`
}

// Filter holds glob patterns: a value matches when it matches an Include pattern (or Include
// is empty) and no Exclude pattern.
type Filter struct {
	Include []string `json:"include,omitempty" yaml:"include,omitempty"`
	Exclude []string `json:"exclude,omitempty" yaml:"exclude,omitempty"`
}

// ScheduleTrigger starts an execution at the times of a cron expression (five fields, or
// @hourly, @daily, @weekly, @monthly, @yearly) in a time zone (default UTC).
type ScheduleTrigger struct {
	Cron     string `json:"cron" yaml:"cron"`
	TimeZone string `json:"timeZone,omitempty" yaml:"timeZone,omitempty"`
}

// UpstreamTrigger starts an execution when an execution of another pipeline succeeds.
type UpstreamTrigger struct {
	Pipeline string `json:"pipeline" yaml:"pipeline"`
}

// Variable is a pipeline-level variable, overridable when an execution starts.
type Variable struct {
	Name        string `json:"name" yaml:"name"`
	Default     string `json:"default,omitempty" yaml:"default,omitempty"`
	Description string `json:"description,omitempty" yaml:"description,omitempty"`
}

// Stage is an ordered group of actions.
type Stage struct {
	Name string `json:"name" yaml:"name"`
	// Lock names a lock shared by every pipeline: one execution at a time holds it, from
	// entering the stage until it leaves it.
	Lock    string   `json:"lock,omitempty" yaml:"lock,omitempty"`
	Actions []Action `json:"actions" yaml:"actions"`
	// BeforeEntry, OnSuccess and OnFailure are the stage's conditions (see Conditions).
	BeforeEntry *Conditions `json:"beforeEntry,omitempty" yaml:"beforeEntry,omitempty"`
	OnSuccess   *Conditions `json:"onSuccess,omitempty" yaml:"onSuccess,omitempty"`
	OnFailure   *Conditions `json:"onFailure,omitempty" yaml:"onFailure,omitempty"`
}

// Action is one task in a stage, run by a provider.
type Action struct {
	Name            string            `json:"name" yaml:"name"`
	Category        Category          `json:"category" yaml:"category"`
	Provider        string            `json:"provider" yaml:"provider"`
	Version         string            `json:"version,omitempty" yaml:"version,omitempty"`
	RunOrder        int               `json:"runOrder,omitempty" yaml:"runOrder,omitempty"`
	Configuration   map[string]any    `json:"configuration,omitempty" yaml:"configuration,omitempty"`
	InputArtifacts  []string          `json:"inputArtifacts,omitempty" yaml:"inputArtifacts,omitempty"`
	OutputArtifacts []OutputArtifact  `json:"outputArtifacts,omitempty" yaml:"outputArtifacts,omitempty"`
	Namespace       string            `json:"namespace,omitempty" yaml:"namespace,omitempty"`
	Timeout         Duration          `json:"timeout,omitempty" yaml:"timeout,omitempty"`
	Environment     map[string]string `json:"environment,omitempty" yaml:"environment,omitempty"`
	// Lock names a lock shared by every pipeline, held while the action runs.
	Lock string `json:"lock,omitempty" yaml:"lock,omitempty"`
	// RunOn are labels a worker must offer to run the action (conveyor worker --labels).
	RunOn []string `json:"runOn,omitempty" yaml:"runOn,omitempty"`
	// RetryOnLost runs a Deploy or Invoke action again (once) when its attempt is lost (its
	// worker's lease expired, or the server crashed): off by default, since the lost attempt
	// may have had effects. Other actions are run again when lost whatever it says.
	RetryOnLost bool `json:"retryOnLost,omitempty" yaml:"retryOnLost,omitempty"`
	// SecretEnvironment maps environment variable names to the names of secrets whose values
	// they receive (written in the file as environment: { KEY: { secret: NAME } }).
	SecretEnvironment map[string]string `json:"secretEnvironment,omitempty" yaml:"secretEnvironment,omitempty"`
}

// OutputArtifact names an artifact an action produces and the files (globs relative to the
// action's workspace, `**` allowed) that go into it. No globs means every file.
type OutputArtifact struct {
	Name  string   `json:"name" yaml:"name"`
	Files []string `json:"files,omitempty" yaml:"files,omitempty"`
}

// DefaultTimeout applies to actions without a timeout; approvals wait DefaultApprovalTimeout.
const (
	DefaultTimeout         = time.Hour
	DefaultApprovalTimeout = 7 * 24 * time.Hour
)

// EffectiveTimeout is the action's timeout with the defaults applied.
func (a *Action) EffectiveTimeout() time.Duration {
	if a.Timeout > 0 {
		return time.Duration(a.Timeout)
	}
	if a.Category == Approval {
		return DefaultApprovalTimeout
	}
	return DefaultTimeout
}

// EffectiveRunOrder is the action's runOrder with the default (1) applied.
func (a *Action) EffectiveRunOrder() int {
	if a.RunOrder <= 0 {
		return 1
	}
	return a.RunOrder
}

// Mode is the pipeline's execution mode with the default applied.
func (p *Pipeline) Mode() ExecutionMode {
	if p.ExecutionMode == "" {
		return Superseded
	}
	return p.ExecutionMode
}

// LockNames returns the named locks the pipeline's stages and actions take, sorted, once each.
func (p *Pipeline) LockNames() []string {
	var names []string
	for _, st := range p.Stages {
		if st.Lock != "" {
			names = append(names, st.Lock)
		}
		for _, a := range st.Actions {
			if a.Lock != "" {
				names = append(names, a.Lock)
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// StageIndex returns the index of the named stage, or -1.
func (p *Pipeline) StageIndex(name string) int {
	for i := range p.Stages {
		if p.Stages[i].Name == name {
			return i
		}
	}
	return -1
}

// Producer returns the indexes of the action that produces the named artifact.
func (p *Pipeline) Producer(artifact string) (stage, action int, ok bool) {
	for si := range p.Stages {
		for ai := range p.Stages[si].Actions {
			for _, oa := range p.Stages[si].Actions[ai].OutputArtifacts {
				if oa.Name == artifact {
					return si, ai, true
				}
			}
		}
	}
	return -1, -1, false
}

// NamespaceOwner returns the indexes of the action that publishes variables under namespace.
func (p *Pipeline) NamespaceOwner(namespace string) (stage, action int, ok bool) {
	for si := range p.Stages {
		for ai := range p.Stages[si].Actions {
			if a := &p.Stages[si].Actions[ai]; a.Namespace != "" && a.Namespace == namespace {
				return si, ai, true
			}
		}
	}
	return -1, -1, false
}

// FindAction resolves an action reference as the command line takes it: "Stage.Action", or
// "Action" when that name is unique in the pipeline.
func (p *Pipeline) FindAction(ref string) (stage, action int, err error) {
	if st, ac, ok := strings.Cut(ref, "."); ok {
		if si := p.StageIndex(st); si >= 0 {
			for ai := range p.Stages[si].Actions {
				if p.Stages[si].Actions[ai].Name == ac {
					return si, ai, nil
				}
			}
		}
	}
	var found [][2]int
	for si := range p.Stages {
		for ai := range p.Stages[si].Actions {
			if p.Stages[si].Actions[ai].Name == ref {
				found = append(found, [2]int{si, ai})
			}
		}
	}
	switch len(found) {
	case 1:
		return found[0][0], found[0][1], nil
	case 0:
		return -1, -1, fmt.Errorf("no action %q in pipeline %s: name it as Stage.Action or Action", ref, p.Name)
	default:
		return -1, -1, fmt.Errorf("action name %q is in several stages of pipeline %s: name it as Stage.Action", ref, p.Name)
	}
}

// Duration is a time.Duration that also accepts whole days ("7d") in pipeline files.
type Duration time.Duration

// ParseDuration parses a Go duration ("90m", "1h30m") or a number of days ("7d").
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("invalid duration %q: days must be a whole number such as 7d", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: use a Go duration such as 90s, 30m or 2h, or days such as 7d", s)
	}
	return d, nil
}

func (d Duration) String() string {
	td := time.Duration(d)
	if td > 0 && td%(24*time.Hour) == 0 {
		return strconv.Itoa(int(td/(24*time.Hour))) + "d"
	}
	s := td.String() // "1h0m0s": drop the zero minutes and seconds
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// MarshalText writes the duration as the file format spells it.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads a Go duration or a number of days.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// envJSON is how an action's environment is written in a pipeline file: a string, or
// { secret: NAME } for a value taken from a secret.
type envJSON struct {
	Secret string `json:"secret" yaml:"secret"`
}

// actionFile is an Action as the pipeline file writes it: secrets sit inside environment.
// E is the type of an environment value: any to write, json.RawMessage to read.
type actionFile[E any] struct {
	Name            string           `json:"name" yaml:"name"`
	Category        Category         `json:"category" yaml:"category"`
	Provider        string           `json:"provider" yaml:"provider"`
	Version         string           `json:"version,omitempty" yaml:"version,omitempty"`
	RunOrder        int              `json:"runOrder,omitempty" yaml:"runOrder,omitempty"`
	Namespace       string           `json:"namespace,omitempty" yaml:"namespace,omitempty"`
	Timeout         Duration         `json:"timeout,omitempty" yaml:"timeout,omitempty"`
	Lock            string           `json:"lock,omitempty" yaml:"lock,omitempty"`
	RunOn           []string         `json:"runOn,omitempty" yaml:"runOn,omitempty"`
	RetryOnLost     bool             `json:"retryOnLost,omitempty" yaml:"retryOnLost,omitempty"`
	InputArtifacts  []string         `json:"inputArtifacts,omitempty" yaml:"inputArtifacts,omitempty"`
	OutputArtifacts []OutputArtifact `json:"outputArtifacts,omitempty" yaml:"outputArtifacts,omitempty"`
	Configuration   map[string]any   `json:"configuration,omitempty" yaml:"configuration,omitempty"`
	Environment     map[string]E     `json:"environment,omitempty" yaml:"environment,omitempty"`
}

func (a *Action) fileForm() actionFile[any] {
	f := actionFile[any]{
		Name: a.Name, Category: a.Category, Provider: a.Provider, Version: a.Version, RunOrder: a.RunOrder,
		Namespace: a.Namespace, Timeout: a.Timeout, Lock: a.Lock, RunOn: a.RunOn, RetryOnLost: a.RetryOnLost, InputArtifacts: a.InputArtifacts,
		OutputArtifacts: a.OutputArtifacts, Configuration: a.Configuration,
	}
	if len(a.Environment)+len(a.SecretEnvironment) > 0 {
		f.Environment = make(map[string]any, len(a.Environment)+len(a.SecretEnvironment))
		for k, v := range a.Environment {
			f.Environment[k] = v
		}
		for k, v := range a.SecretEnvironment {
			f.Environment[k] = envJSON{Secret: v}
		}
	}
	return f
}

// MarshalJSON writes the action as the pipeline file does, secrets inside environment, so
// that Parse reads the output back to an equal Action.
func (a Action) MarshalJSON() ([]byte, error) { return json.Marshal(a.fileForm()) }

// MarshalYAML writes the action as the pipeline file does.
func (a Action) MarshalYAML() (any, error) { return a.fileForm(), nil }

// UnmarshalJSON reads what MarshalJSON writes.
func (a *Action) UnmarshalJSON(b []byte) error {
	var f actionFile[json.RawMessage]
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*a = Action{
		Name: f.Name, Category: f.Category, Provider: f.Provider, Version: f.Version, RunOrder: f.RunOrder,
		Namespace: f.Namespace, Timeout: f.Timeout, Lock: f.Lock, RunOn: f.RunOn, RetryOnLost: f.RetryOnLost, InputArtifacts: f.InputArtifacts,
		OutputArtifacts: f.OutputArtifacts, Configuration: f.Configuration,
	}
	for k, raw := range f.Environment {
		var s string
		if err := json.Unmarshal(raw, &s); err == nil {
			setMap(&a.Environment, k, s)
			continue
		}
		var sec envJSON
		if err := json.Unmarshal(raw, &sec); err != nil {
			return fmt.Errorf("environment %s: %w", k, err)
		}
		setMap(&a.SecretEnvironment, k, sec.Secret)
	}
	return nil
}
