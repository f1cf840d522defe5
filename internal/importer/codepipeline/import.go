package codepipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/conveyorci/conveyor/internal/pipeline"
)

// DefaultGitBaseURL prefixes repository ids (owner/repo, a CodeCommit name) without one.
const DefaultGitBaseURL = "https://github.com"

// Options change how a declaration is imported.
type Options struct {
	// GitBaseURL prefixes repository ids to make clone URLs (default DefaultGitBaseURL).
	GitBaseURL string
	// Placeholders writes actions Conveyor cannot run as Commands actions that fail with
	// an explanation, instead of refusing the import.
	Placeholders bool
}

// FormatError says the input is not a CodePipeline pipeline declaration.
type FormatError struct {
	File   string
	Reason string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("%s: %s; expected a CodePipeline pipeline declaration: the JSON of "+
		"`aws codepipeline get-pipeline` or of a create/update-pipeline input ({\"pipeline\": {\"name\": ..., \"stages\": [...]}}), "+
		"or a bare pipeline object", e.File, e.Reason)
}

// Unsupported is an action Conveyor cannot run.
type Unsupported struct {
	Action   string // Stage.Action
	Provider string // as CodePipeline names it, e.g. "AWS CloudFormation"
	Hint     string // optional extra explanation
}

// UnsupportedError lists every action of a declaration that Conveyor cannot run.
type UnsupportedError struct {
	File    string
	Actions []Unsupported
}

func (e *UnsupportedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d action(s) cannot run outside AWS:\n", e.File, len(e.Actions))
	for _, u := range e.Actions {
		fmt.Fprintf(&b, "  %s: %s", u.Action, u.Provider)
		if u.Hint != "" {
			fmt.Fprintf(&b, " (%s)", u.Hint)
		}
		b.WriteString("\n")
	}
	b.WriteString("replace each with a Commands or CodeBuild action, or import with --placeholders " +
		"to write them as Commands actions that fail with this message, so the rest of the pipeline runs")
	return b.String()
}

// InvalidError is a generated pipeline that Conveyor's validation rejects.
type InvalidError struct {
	File string
	Err  error // the *pipeline.Errors of the generated file
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("%s: the imported pipeline is not valid for Conveyor (lines below are those of the pipeline file it would write); fix the declaration:\n%v", e.File, e.Err)
}

func (e *InvalidError) Unwrap() error { return e.Err }

// The CodePipeline declaration, as much of it as the import reads.
type declaration struct {
	Name          string     `json:"name"`
	ExecutionMode string     `json:"executionMode"`
	PipelineType  string     `json:"pipelineType"`
	Variables     []variable `json:"variables"`
	Triggers      []trigger  `json:"triggers"`
	Stages        []stage    `json:"stages"`
}

type variable struct {
	Name         string `json:"name"`
	DefaultValue string `json:"defaultValue"`
	Description  string `json:"description"`
}

type trigger struct {
	ProviderType     string `json:"providerType"`
	GitConfiguration *struct {
		SourceActionName string            `json:"sourceActionName"`
		Push             []gitPush         `json:"push"`
		PullRequest      []json.RawMessage `json:"pullRequest"`
	} `json:"gitConfiguration"`
}

type gitPush struct {
	Branches  *filter `json:"branches"`
	Tags      *filter `json:"tags"`
	FilePaths *filter `json:"filePaths"`
}

type filter struct {
	Includes []string `json:"includes"`
	Excludes []string `json:"excludes"`
}

type stage struct {
	Name    string   `json:"name"`
	Actions []action `json:"actions"`
}

type action struct {
	Name         string `json:"name"`
	ActionTypeID struct {
		Category string `json:"category"`
		Owner    string `json:"owner"`
		Provider string `json:"provider"`
		Version  string `json:"version"`
	} `json:"actionTypeId"`
	RunOrder         int               `json:"runOrder"`
	Configuration    map[string]string `json:"configuration"`
	InputArtifacts   []artifactRef     `json:"inputArtifacts"`
	OutputArtifacts  []artifactRef     `json:"outputArtifacts"`
	Namespace        string            `json:"namespace"`
	TimeoutInMinutes int               `json:"timeoutInMinutes"`
	Region           string            `json:"region"`
	RoleArn          string            `json:"roleArn"`
}

type artifactRef struct {
	Name string `json:"name"`
}

// Import converts the declaration in data (read from file, named in messages) to a Conveyor
// pipeline file. Errors are *FormatError (not a declaration), *UnsupportedError (actions
// that need AWS) or *InvalidError (the result fails Conveyor's validation).
func Import(file string, data []byte, opt Options) ([]byte, error) {
	d, err := decode(file, data)
	if err != nil {
		return nil, err
	}
	im := importer{opt: opt, base: strings.TrimRight(cmpOr(opt.GitBaseURL, DefaultGitBaseURL), "/")}
	doc := im.pipeline(d)
	if len(im.unsupported) > 0 && !opt.Placeholders {
		return nil, &UnsupportedError{File: file, Actions: im.unsupported}
	}
	body, err := yaml.MarshalWithOptions(doc, yaml.IndentSequence(true), yaml.UseLiteralStyleIfMultiline(true))
	if err != nil {
		return nil, fmt.Errorf("write pipeline of %s: %w", file, err)
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, "# Imported from the CodePipeline declaration %s by conveyor import codepipeline.\n", baseName(file))
	for _, n := range im.notes {
		out.WriteString("# " + n + "\n")
	}
	out.Write(body)
	if _, err := pipeline.Parse(file+" as imported", out.Bytes()); err != nil {
		return nil, &InvalidError{File: file, Err: err}
	}
	return out.Bytes(), nil
}

func baseName(file string) string {
	if i := strings.LastIndexAny(file, `/\`); i >= 0 {
		return file[i+1:]
	}
	return file
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// decode finds the pipeline object in the JSON: under "pipeline" (get-pipeline output,
// create/update input), under "data.pipeline" (a recorded API response), or at the top.
func decode(file string, data []byte) (*declaration, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, &FormatError{File: file, Reason: "not a JSON object (" + err.Error() + ")"}
	}
	raw := json.RawMessage(nil)
	switch {
	case top["pipeline"] != nil:
		raw = top["pipeline"]
	case top["data"] != nil:
		var env map[string]json.RawMessage
		if json.Unmarshal(top["data"], &env) == nil && env["pipeline"] != nil {
			raw = env["pipeline"]
		}
	case top["stages"] != nil:
		raw = data
	case top["actions"] != nil:
		return nil, &FormatError{File: file, Reason: "this is a single stage (name and actions), not a whole pipeline: " +
			"put it in the stages of a pipeline declaration, after a Source stage"}
	}
	if raw == nil {
		keys := make([]string, 0, len(top))
		for k := range top {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return nil, &FormatError{File: file, Reason: fmt.Sprintf("found no pipeline object (top-level keys: %s)", strings.Join(keys, ", "))}
	}
	var d declaration
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, &FormatError{File: file, Reason: "the pipeline object does not decode (" + err.Error() + ")"}
	}
	if len(d.Stages) == 0 {
		return nil, &FormatError{File: file, Reason: "the pipeline object has no stages"}
	}
	return &d, nil
}

type importer struct {
	opt         Options
	base        string
	unsupported []Unsupported
	notes       []string
	secrets     []string
}

func (im *importer) note(format string, args ...any) {
	im.notes = append(im.notes, strings.Join(strings.Fields(fmt.Sprintf(format, args...)), " "))
}

func kv(k string, v any) yaml.MapItem { return yaml.MapItem{Key: k, Value: v} }

func (im *importer) pipeline(d *declaration) yaml.MapSlice {
	doc := yaml.MapSlice{kv("name", d.Name), kv("executionMode", cmpOr(d.ExecutionMode, string(pipeline.Superseded)))}
	if len(d.Variables) > 0 {
		var vars []yaml.MapSlice
		for _, v := range d.Variables {
			m := yaml.MapSlice{kv("name", v.Name)}
			if v.DefaultValue != "" {
				m = append(m, kv("default", v.DefaultValue))
			}
			if v.Description != "" {
				m = append(m, kv("description", v.Description))
			}
			vars = append(vars, m)
		}
		doc = append(doc, kv("variables", vars))
	}
	var stages []yaml.MapSlice
	for _, st := range d.Stages {
		var actions []yaml.MapSlice
		for _, a := range st.Actions {
			actions = append(actions, im.action(st.Name, a))
		}
		stages = append(stages, yaml.MapSlice{kv("name", st.Name), kv("actions", actions)})
	}
	if len(im.secrets) > 0 {
		slices.Sort(im.secrets)
		doc = append(doc, kv("secrets", slices.Compact(im.secrets)))
	}
	if tr := im.triggers(d.Triggers); len(tr) > 0 {
		doc = append(doc, kv("triggers", tr))
	}
	return append(doc, kv("stages", stages))
}

func (im *importer) triggers(ts []trigger) []yaml.MapSlice {
	var out []yaml.MapSlice
	for _, t := range ts {
		g := t.GitConfiguration
		if g == nil {
			im.note("trigger of provider %s without gitConfiguration: not imported", t.ProviderType)
			continue
		}
		if len(g.PullRequest) > 0 {
			im.note("pull-request triggers of source action %s: not imported (Conveyor triggers on pushes)", g.SourceActionName)
		}
		for _, p := range g.Push {
			m := yaml.MapSlice{kv("action", g.SourceActionName)}
			for _, f := range []struct {
				key string
				f   *filter
			}{{"branches", p.Branches}, {"tags", p.Tags}, {"filePaths", p.FilePaths}} {
				if f.f == nil || len(f.f.Includes)+len(f.f.Excludes) == 0 {
					continue
				}
				fm := yaml.MapSlice{}
				if len(f.f.Includes) > 0 {
					fm = append(fm, kv("include", f.f.Includes))
				}
				if len(f.f.Excludes) > 0 {
					fm = append(fm, kv("exclude", f.f.Excludes))
				}
				m = append(m, kv(f.key, fm))
			}
			out = append(out, yaml.MapSlice{kv("gitPush", m)})
		}
	}
	return out
}

// providerLabel names a provider as the AWS console does, e.g. "AWS CloudFormation".
func providerLabel(owner, provider string) string {
	if owner == "" || strings.HasPrefix(provider, owner+" ") || owner == "Custom" {
		return provider
	}
	return owner + " " + provider
}

func (im *importer) action(stageName string, a action) yaml.MapSlice {
	ref := stageName + "." + a.Name
	t := a.ActionTypeID
	cfg := a.Configuration
	var category, provider string
	conf := yaml.MapSlice{}
	var env yaml.MapSlice
	inputs := names(a.InputArtifacts)
	switch {
	case t.Category == "Source" && t.Provider == "CodeCommit":
		category, provider = string(pipeline.Source), pipeline.ProviderGit
		conf = im.gitConf(ref, cfg["RepositoryName"], cfg["BranchName"], cfg)
		im.note("%s: CodeCommit repository %s is cloned from %s/%s (set --git-base-url to where it lives)", ref, cfg["RepositoryName"], im.base, cfg["RepositoryName"])
	case t.Category == "Source" && t.Provider == "CodeStarSourceConnection":
		category, provider = string(pipeline.Source), pipeline.ProviderGit
		conf = im.gitConf(ref, cfg["FullRepositoryId"], cfg["BranchName"], cfg)
	case t.Category == "Source" && t.Provider == "GitHub":
		category, provider = string(pipeline.Source), pipeline.ProviderGit
		conf = im.gitConf(ref, cfg["Owner"]+"/"+cfg["Repo"], cfg["Branch"], cfg)
		if cfg["OAuthToken"] != "" {
			im.note("%s: OAuthToken dropped; give the Git credentials to the Conveyor server instead", ref)
		}
	case (t.Category == "Build" || t.Category == "Test") && t.Provider == "CodeBuild":
		category, provider = t.Category, pipeline.ProviderCodeBuild
		conf = append(conf, kv("buildspec", "buildspec.yml"))
		im.note("%s: the buildspec of CodeBuild project %s is expected in the source at buildspec.yml", ref, cfg["ProjectName"])
		var plain yaml.MapSlice
		plain, env = im.codeBuildEnv(ref, cfg["EnvironmentVariables"])
		if len(plain) > 0 {
			conf = append(conf, kv("environmentVariables", plain))
		}
		if p := cfg["PrimarySource"]; p != "" && slices.Contains(inputs, p) {
			inputs = append([]string{p}, slices.DeleteFunc(inputs, func(s string) bool { return s == p })...)
		}
		if cfg["BatchEnabled"] == "true" {
			im.note("%s: batch builds are not supported; the buildspec runs as one build", ref)
		}
	case t.Category == "Source" && t.Provider == "S3":
		category, provider = string(pipeline.Source), pipeline.ProviderS3
		conf = append(conf, kv("bucket", cfg["S3Bucket"]), kv("objectKey", cfg["S3ObjectKey"]))
		if cfg["PollForSourceChanges"] == "false" {
			conf = append(conf, kv("pollInterval", "0"))
		}
		conf = im.s3Conf(ref, a.Region, conf)
	case t.Category == "Deploy" && t.Provider == "S3":
		category, provider = string(pipeline.Deploy), pipeline.ProviderS3
		conf = append(conf, kv("bucket", cfg["BucketName"]))
		if v := cfg["ObjectKey"]; v != "" {
			conf = append(conf, kv("objectKey", v))
		}
		if strings.EqualFold(cfg["Extract"], "true") {
			conf = append(conf, kv("extract", true))
		}
		if v := cfg["CacheControl"]; v != "" {
			conf = append(conf, kv("cacheControl", v))
		}
		for _, k := range []string{"CannedACL", "KMSEncryptionKeyARN"} {
			if cfg[k] != "" {
				im.note("%s: %s dropped (AWS only; set it on the bucket)", ref, k)
			}
		}
		conf = im.s3Conf(ref, a.Region, conf)
	case t.Category == "Invoke" && t.Provider == "CodePipeline":
		category, provider = string(pipeline.Invoke), pipeline.ProviderPipeline
		conf = append(conf, kv("pipeline", cfg["PipelineName"]))
		conf = append(conf, im.invokeConf(ref, cfg)...)
	case t.Category == "Approval" && t.Provider == "Manual":
		category, provider = string(pipeline.Approval), pipeline.ProviderManual
		if v := cfg["CustomData"]; v != "" {
			conf = append(conf, kv("summary", v))
		}
		if v := cfg["ExternalEntityLink"]; v != "" {
			conf = append(conf, kv("externalEntityLink", v))
		}
		if cfg["NotificationArn"] != "" {
			im.note("%s: NotificationArn (SNS) dropped; Conveyor notifies approvers itself", ref)
		}
	default:
		u := Unsupported{Action: ref, Provider: providerLabel(t.Owner, t.Provider)}
		if t.Provider == "AWS CodeBuild" {
			u.Hint = `not a provider id: CodePipeline's CodeBuild provider is "CodeBuild"`
		}
		im.unsupported = append(im.unsupported, u)
		category, provider = placeholderCategory(t.Category), pipeline.ProviderCommands
		msg := fmt.Sprintf("%s (%s) cannot run outside AWS: replace it with a Commands or CodeBuild action", ref, u.Provider)
		conf = append(conf, kv("commands", []string{"echo " + shellQuote(msg) + "; exit 1"}))
		im.note("%s: placeholder for %s; it fails until replaced", ref, u.Provider)
	}
	var dropped []string
	if a.Region != "" && provider != pipeline.ProviderS3 { // S3 actions keep it in their configuration
		dropped = append(dropped, "region")
	}
	if a.RoleArn != "" {
		dropped = append(dropped, "roleArn")
	}
	if len(dropped) > 0 {
		im.note("%s: %s dropped (AWS only)", ref, strings.Join(dropped, " and "))
	}
	m := yaml.MapSlice{kv("name", a.Name), kv("category", category), kv("provider", provider)}
	if a.RunOrder > 0 {
		m = append(m, kv("runOrder", a.RunOrder))
	}
	if a.Namespace != "" {
		m = append(m, kv("namespace", a.Namespace))
	}
	if a.TimeoutInMinutes > 0 {
		m = append(m, kv("timeout", pipeline.Duration(time.Duration(a.TimeoutInMinutes)*time.Minute).String()))
	}
	if len(conf) > 0 {
		m = append(m, kv("configuration", conf))
	}
	if len(inputs) > 0 {
		m = append(m, kv("inputArtifacts", inputs))
	}
	if len(a.OutputArtifacts) > 0 {
		var outs []yaml.MapSlice
		for _, n := range names(a.OutputArtifacts) {
			outs = append(outs, yaml.MapSlice{kv("name", n)})
		}
		m = append(m, kv("outputArtifacts", outs))
	}
	if len(env) > 0 {
		m = append(m, kv("environment", env))
	}
	return m
}

// s3Conf completes the configuration of an S3 action: its region, and a note that the
// credentials are Conveyor secrets.
func (im *importer) s3Conf(ref, region string, conf yaml.MapSlice) yaml.MapSlice {
	if region != "" {
		conf = append(conf, kv("region", region))
	}
	im.note("%s: add accessKeyId and secretAccessKey ({ secret: NAME }) for a private bucket, and endpoint for a store other than AWS S3", ref)
	return conf
}

// invokeConf maps the Variables and SourceRevisions of CodePipeline's invoke action, JSON
// lists in its configuration, to the maps of Invoke/Pipeline.
func (im *importer) invokeConf(ref string, cfg map[string]string) yaml.MapSlice {
	var conf yaml.MapSlice
	vars := jsonList[struct{ Name, Value string }](im, ref, "Variables", "{name, value}", cfg["Variables"])
	if len(vars) > 0 {
		m := yaml.MapSlice{}
		for _, x := range vars {
			m = append(m, kv(x.Name, x.Value))
		}
		conf = append(conf, kv("variables", m))
	}
	revs := jsonList[struct{ ActionName, RevisionValue string }](im, ref, "SourceRevisions", "{actionName, revisionType, revisionValue}", cfg["SourceRevisions"])
	if len(revs) > 0 {
		m := yaml.MapSlice{}
		for _, r := range revs {
			m = append(m, kv(r.ActionName, r.RevisionValue))
		}
		conf = append(conf, kv("sourceRevisions", m))
	}
	return conf
}

// jsonList decodes the configuration value v of key, a JSON list of shape; one that does not
// decode is dropped with a note.
func jsonList[T any](im *importer, ref, key, shape, v string) []T {
	if v == "" {
		return nil
	}
	var list []T
	if err := json.Unmarshal([]byte(v), &list); err != nil {
		im.note("%s: %s is not a JSON list of %s: dropped (%v)", ref, key, shape, err)
		return nil
	}
	return list
}

// placeholderCategory is the category of a Commands placeholder: Commands serves neither
// Source, Approval nor Invoke.
func placeholderCategory(c string) string {
	switch c {
	case "Build", "Test", "Deploy", "Compute":
		return c
	case "Invoke":
		return string(pipeline.Compute)
	default:
		return string(pipeline.Build)
	}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func names(refs []artifactRef) []string {
	var out []string
	for _, r := range refs {
		out = append(out, r.Name)
	}
	return out
}

func (im *importer) gitConf(ref, repo, branch string, cfg map[string]string) yaml.MapSlice {
	conf := yaml.MapSlice{kv("repository", im.base+"/"+repo)}
	if branch != "" {
		conf = append(conf, kv("branch", branch))
	}
	if cfg["OutputArtifactFormat"] == "CODEBUILD_CLONE_REF" {
		conf = append(conf, kv("keepGitMetadata", true))
	}
	return conf
}

type codeBuildVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	Type  string `json:"type"`
}

// codeBuildEnv splits CodeBuild's EnvironmentVariables (a JSON string) into plain variables
// and secret references; a secret is named after its variable and listed in the pipeline.
func (im *importer) codeBuildEnv(ref, s string) (plain, secret yaml.MapSlice) {
	if s == "" {
		return nil, nil
	}
	var vars []codeBuildVar
	if err := json.Unmarshal([]byte(s), &vars); err != nil {
		im.note("%s: EnvironmentVariables is not a JSON list of {name, value, type}: dropped", ref)
		return nil, nil
	}
	for _, v := range vars {
		switch cmpOr(v.Type, "PLAINTEXT") {
		case "PLAINTEXT":
			plain = append(plain, kv(v.Name, v.Value))
		default:
			secret = append(secret, kv(v.Name, yaml.MapSlice{kv("secret", v.Name)}))
			im.secrets = append(im.secrets, v.Name)
			im.note("%s: %s was %s %s; store its value as the Conveyor secret %s", ref, v.Name, v.Type, v.Value, v.Name)
		}
	}
	return plain, secret
}

// IsFormat reports whether err says the input was not a declaration.
func IsFormat(err error) bool {
	var fe *FormatError
	return errors.As(err, &fe)
}
