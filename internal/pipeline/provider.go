package pipeline

import "slices"

// PropertyType is the type of one configuration property of a provider. After Parse, a
// configuration value holds the Go type named in each constant's comment.
type PropertyType string

const (
	TypeString     PropertyType = "string"   // string (numbers and booleans are taken as written)
	TypeInt        PropertyType = "int"      // int
	TypeBool       PropertyType = "bool"     // bool
	TypeStringList PropertyType = "[]string" // []string
	TypeMap        PropertyType = "map"      // map[string]string
	// TypeSecret is a reference to one of the pipeline's secrets, written { secret: NAME }
	// (never the value itself): map[string]any{"secret": NAME}, as decoded JSON has it too.
	// SecretName reads it.
	TypeSecret PropertyType = "secret"
	// TypeReports declares test reports, written { NAME: { files: [GLOB, ...], format: F } }
	// with F one of Allowed (default the first): map[string]any of NAME to
	// map[string]any{"files": []string, "format": string}. Check, when set, checks each glob.
	TypeReports PropertyType = "reports"
	// TypeCaches declares caches kept between executions, written
	// [{ key: KEY, paths: [PATH, ...] }, ...]: []any of map[string]any{"key": string,
	// "paths": []string}. A key may hold #{hash:FILE} (see HashPrefix); a path is relative to
	// the workspace, absolute, or starts with ~/ (the action's home).
	TypeCaches PropertyType = "caches"
)

// Property describes one key of an action's configuration.
type Property struct {
	Name        string
	Type        PropertyType
	Required    bool // for TypeStringList: present and not empty
	Description string
	Allowed     []string // TypeString: the only values accepted, when set
	Pattern     string   // TypeString, TypeStringList: a regular expression every value matches
	PatternHelp string   // what Pattern means, for error messages ("an environment variable name")
	Min, Max    *int     // TypeInt bounds, when set
	// Check, when set, checks a TypeString value that matches Pattern; its error says why the
	// value is refused (e.g. a duration below a minimum).
	Check func(string) error
	// ServerSide marks a TypeSecret property the server uses itself (a webhook's signing
	// secret): its value never goes to the action's job. Every other TypeSecret property's
	// value is given to the job in its configuration (Action.JobSecrets).
	ServerSide bool
}

// SecretName returns the secret a TypeSecret configuration value names ("" when v is not one).
func SecretName(v any) string {
	switch m := v.(type) {
	case map[string]any:
		s, _ := m["secret"].(string)
		return s
	case map[string]string:
		return m["secret"]
	}
	return ""
}

// Unlimited as ArtifactCount.Max allows any number of artifacts.
const Unlimited = -1

// ArtifactCount bounds the number of input or output artifacts of an action.
type ArtifactCount struct{ Min, Max int }

// ProviderSpec describes an action provider: what Parse accepts in an action using it and what
// the action publishes.
type ProviderSpec struct {
	Categories  []Category
	Provider    string
	Description string
	// Versions lists the versions accepted in an action's "version"; empty accepts any.
	Versions   []string
	Properties []Property
	// AdditionalProperties accepts configuration keys not in Properties, of any type.
	AdditionalProperties bool
	InputArtifacts       ArtifactCount
	OutputArtifacts      ArtifactCount
	// OutputVariables are the variables every action of this provider publishes in its
	// namespace. OutputVariablesProperty names a TypeStringList property whose values are
	// published too (Commands: "outputVariables"). With DynamicOutputVariables the names are
	// known only at run time, so references into the namespace are not checked by name.
	OutputVariables         []string
	OutputVariablesProperty string
	DynamicOutputVariables  bool
}

// PublishesVariables reports whether an action of this provider can publish any variable, and
// so whether a namespace makes sense for it.
func (s *ProviderSpec) PublishesVariables() bool {
	return len(s.OutputVariables) > 0 || s.OutputVariablesProperty != "" || s.DynamicOutputVariables
}

// Property returns the named property, or nil.
func (s *ProviderSpec) Property(name string) *Property {
	for i := range s.Properties {
		if s.Properties[i].Name == name {
			return &s.Properties[i]
		}
	}
	return nil
}

// Serves reports whether the provider serves category c.
func (s *ProviderSpec) Serves(c Category) bool { return slices.Contains(s.Categories, c) }

// The built-in providers' names.
const (
	ProviderGit      = "Git"
	ProviderCommands = "Commands"
	ProviderManual   = "Manual"
	// ProviderCodeBuild runs a buildspec (package action/codebuild).
	ProviderCodeBuild = "CodeBuild"
	// ProviderS3 is Source/S3 (an object of a bucket) and Deploy/S3 (an artifact uploaded to
	// a bucket), on any S3-compatible store (package action/s3).
	ProviderS3 = "S3"
	// ProviderWebhook is Invoke/Webhook: calls an HTTP endpoint with a signed JSON payload.
	ProviderWebhook = "Webhook"
	// ProviderPipeline is Invoke/Pipeline: starts an execution of another pipeline, run by the
	// engine itself (no worker), optionally waiting for its result.
	ProviderPipeline = "Pipeline"
)

// builtinSpec returns the built-in provider serving category c as provider, or nil.
func builtinSpec(c Category, provider string) *ProviderSpec {
	for _, s := range BuiltinProviders() {
		if s.Provider == provider && s.Serves(c) {
			return &s
		}
	}
	return nil
}

// JobSecrets maps the action's configuration properties that reference a secret
// ({ secret: NAME }) to the secret's name, leaving out those the server uses itself
// (Property.ServerSide). A worker puts each value in the job's configuration in place of the
// reference when the job starts (engine.JobSpec.ConfigSecrets); nil when there are none.
func (a *Action) JobSecrets() map[string]string {
	var m map[string]string
	var spec *ProviderSpec // looked up at the first reference: Step asks at every job it queues
	for k, v := range a.Configuration {
		name := SecretName(v)
		if name == "" {
			continue
		}
		if spec == nil {
			spec = builtinSpec(a.Category, a.Provider)
		}
		if spec != nil {
			if p := spec.Property(k); p != nil && p.ServerSide {
				continue
			}
		}
		if m == nil {
			m = map[string]string{}
		}
		m[k] = name
	}
	return m
}

// ReportFormats returns the formats of a TypeReports property of the built-in providers
// (those internal/report parses), the default first.
func ReportFormats() []string { return []string{"junit", "cucumber", "nunit", "nunit3", "testng"} }

// cacheProperty is the cache setting of the providers that run commands (Commands, CodeBuild).
var cacheProperty = Property{Name: "cache", Type: TypeCaches, Description: "Directories kept from one execution to the next, " +
	"per pipeline and branch (falling back to the default branch's): [{ key: KEY, paths: [PATH, ...] }]; " +
	"KEY may hold #{hash:FILE}, the SHA-256 of a workspace file; a PATH is relative to the workspace, absolute, or starts with ~/."}

// s3Properties are the connection settings of the S3 actions.
var s3Properties = []Property{
	{Name: "endpoint", Type: TypeString, Pattern: `^https?://`, PatternHelp: "an http:// or https:// URL",
		Description: "The S3-compatible server (default https://s3.amazonaws.com)."},
	{Name: "region", Type: TypeString, Description: "The bucket's region (default us-east-1)."},
	{Name: "accessKeyId", Type: TypeSecret, Description: "Access key id: { secret: NAME }, with secretAccessKey; " +
		"without both, requests are anonymous."},
	{Name: "secretAccessKey", Type: TypeSecret, Description: "Secret access key: { secret: NAME }, with accessKeyId."},
}

const envNamePattern = `^[A-Za-z_][A-Za-z0-9_]*$`

// BuiltinProviders returns the providers Conveyor ships with: Source/Git,
// Build|Test|Deploy|Compute/Commands, Build|Test/CodeBuild, Source/S3, Deploy/S3,
// Invoke/Webhook, Invoke/Pipeline and Approval/Manual. Each call returns a new slice.
func BuiltinProviders() []ProviderSpec {
	ptr := func(i int) *int { return &i }
	return []ProviderSpec{
		{
			Categories:  []Category{Source},
			Provider:    ProviderGit,
			Description: "Fetches a revision of a Git repository as the action's output artifact.",
			Versions:    []string{"1"},
			Properties: []Property{
				{Name: "repository", Type: TypeString, Required: true,
					Description: "URL or path of the Git repository; \".\" is the repository holding the pipeline file."},
				{Name: "branch", Type: TypeString, Description: "Branch to fetch (default: the repository's default branch)."},
				{Name: "revision", Type: TypeString, Description: "Commit or tag to fetch instead of the branch head."},
				{Name: "depth", Type: TypeInt, Min: ptr(0), Description: "Clone depth; 0 fetches the full history."},
				{Name: "keepGitMetadata", Type: TypeBool, Description: "Keep the .git directory in the output artifact."},
				{Name: "username", Type: TypeString, Description: "User name sent with token over HTTPS (default x-access-token, " +
					"which GitHub, GitLab and Gitea accept with an access token)."},
				{Name: "token", Type: TypeSecret, Description: "An access token, or the password of username, for an HTTPS repository: " +
					"{ secret: NAME }, NAME listed in the pipeline's secrets."},
				{Name: "sshKey", Type: TypeSecret, Description: "A private key (a deploy key) for an SSH repository: { secret: NAME }. " +
					"The server's host key is checked against knownHosts."},
				{Name: "knownHosts", Type: TypeString, Description: "known_hosts lines for the SSH server (ssh-keyscan HOST prints them); " +
					"required with sshKey: host keys are always checked."},
				{Name: "submodules", Type: TypeBool, Description: "Fetch the repository's submodules, recursively, with the same credentials."},
				{Name: "lfs", Type: TypeBool, Description: "Fetch Git LFS files (git-lfs must be installed where the action runs)."},
				{Name: "webhookSecret", Type: TypeSecret, ServerSide: true, Description: "The secret that signs the forge's webhook deliveries for the repository " +
					"(POST /hooks/github, /hooks/gitlab, /hooks/gitea): { secret: NAME }, NAME listed in the pipeline's secrets. Without it, webhooks are ignored."},
				{Name: "pollInterval", Type: TypeString, Pattern: pollIntervalPattern, PatternHelp: "a duration such as 30s or 5m, or 0",
					Check: checkPollInterval, Description: "How often the server checks the branch for new commits " +
						"(default 60s, at least 5s; 0 turns polling off)."},
			},
			InputArtifacts:  ArtifactCount{0, 0},
			OutputArtifacts: ArtifactCount{1, Unlimited},
			OutputVariables: []string{
				"CommitId", "CommitMessage", "BranchName", "AuthorName", "AuthorDate", "CommitterDate", "RepositoryName",
			},
		},
		{
			Categories:  []Category{Build, Test, Deploy, Compute},
			Provider:    ProviderCommands,
			Description: "Runs shell commands in a workspace holding the input artifacts.",
			Versions:    []string{"1"},
			Properties: []Property{
				{Name: "commands", Type: TypeStringList, Required: true,
					Description: "Commands to run in order; the action fails at the first that fails."},
				{Name: "shell", Type: TypeString, Description: "Shell that runs the commands, in one session (default: bash where present, else sh)."},
				{Name: "outputVariables", Type: TypeStringList, Pattern: envNamePattern, PatternHelp: "an environment variable name",
					Description: "Environment variables whose values, after the last command, are published in the action's namespace."},
				{Name: "reports", Type: TypeReports, Allowed: ReportFormats(), Description: "Test reports the commands write, " +
					"read after they ran (also when they failed): { NAME: { files: [GLOB, ...], format: junit|cucumber|nunit|nunit3|testng } }."},
				cacheProperty,
			},
			InputArtifacts:          ArtifactCount{0, Unlimited},
			OutputArtifacts:         ArtifactCount{0, Unlimited},
			OutputVariablesProperty: "outputVariables",
		},
		{
			Categories:  []Category{Build, Test},
			Provider:    ProviderCodeBuild,
			Description: "Runs a CodeBuild buildspec (version 0.2) from the primary input artifact, natively.",
			Versions:    []string{"1"},
			Properties: []Property{
				{Name: "buildspec", Type: TypeString,
					Description: "Path of the buildspec in the primary input artifact (default buildspec.yml)."},
				{Name: "buildspecInline", Type: TypeString, Description: "The buildspec itself, instead of a file."},
				{Name: "environmentVariables", Type: TypeMap,
					Description: "Environment variables for the build (NAME: value), over the buildspec's env.variables."},
				{Name: "shell", Type: TypeString, Allowed: []string{"bash", "sh", "/bin/bash", "/bin/sh"},
					Description: "Shell running every phase in one session, over the buildspec's env.shell (default bash)."},
				cacheProperty,
			},
			InputArtifacts:  ArtifactCount{1, Unlimited},
			OutputArtifacts: ArtifactCount{0, Unlimited},
			// env.exported-variables are in the buildspec, read when the action runs.
			DynamicOutputVariables: true,
		},
		{
			Categories:  []Category{Source},
			Provider:    ProviderS3,
			Description: "Fetches an object of an S3-compatible bucket as the action's output artifact (a zip or tar archive is unpacked).",
			Versions:    []string{"1"},
			Properties: append([]Property{
				{Name: "bucket", Type: TypeString, Required: true, Description: "The bucket holding the object."},
				{Name: "objectKey", Type: TypeString, Required: true, Description: "The object's key."},
				{Name: "pollInterval", Type: TypeString, Pattern: pollIntervalPattern, PatternHelp: "a duration such as 30s or 5m, or 0",
					Check: checkPollInterval, Description: "How often the server checks the object for a new version or ETag " +
						"(default 60s, at least 5s; 0 turns polling off)."},
			}, s3Properties...),
			InputArtifacts:  ArtifactCount{0, 0},
			OutputArtifacts: ArtifactCount{1, 1},
			OutputVariables: []string{"ETag", "VersionId", "ObjectKey"},
		},
		{
			Categories:  []Category{Deploy},
			Provider:    ProviderS3,
			Description: "Uploads the input artifact to an S3-compatible bucket: its files under a prefix (extract), or the archive itself.",
			Versions:    []string{"1"},
			Properties: append([]Property{
				{Name: "bucket", Type: TypeString, Required: true, Description: "The bucket to upload to."},
				{Name: "objectKey", Type: TypeString, Description: "With extract, the prefix the files go under (default: the bucket's root); " +
					"without, the key of the archive (required)."},
				{Name: "extract", Type: TypeBool, Description: "Upload the artifact's files one by one instead of the archive (default false)."},
				{Name: "cacheControl", Type: TypeString, Description: "Cache-Control header of every object uploaded."},
			}, s3Properties...),
			InputArtifacts:  ArtifactCount{1, 1},
			OutputArtifacts: ArtifactCount{0, 0},
			OutputVariables: []string{"ObjectKey", "ObjectCount"},
		},
		{
			Categories:  []Category{Invoke},
			Provider:    ProviderWebhook,
			Description: "Calls an HTTP endpoint with a signed JSON payload describing the job; a 2xx answer is success.",
			Versions:    []string{"1"},
			Properties: []Property{
				{Name: "url", Type: TypeString, Required: true, Pattern: `^https?://`, PatternHelp: "an http:// or https:// URL",
					Description: "The endpoint."},
				{Name: "method", Type: TypeString, Allowed: []string{"POST", "PUT"}, Description: "HTTP method (default POST)."},
				{Name: "secret", Type: TypeSecret, Description: "Signs the payload with HMAC-SHA256 in X-Conveyor-Signature: sha256=HEX " +
					"(as outgoing notifications): { secret: NAME }."},
				{Name: "headers", Type: TypeMap, Description: "More request headers (NAME: value)."},
				{Name: "payload", Type: TypeMap, Description: "More fields for the payload's \"data\" object (NAME: value)."},
			},
			InputArtifacts:  ArtifactCount{0, 0},
			OutputArtifacts: ArtifactCount{0, 0},
			// The answer's JSON "variables" are published, named by the endpoint.
			DynamicOutputVariables: true,
		},
		{
			Categories:  []Category{Invoke},
			Provider:    ProviderPipeline,
			Description: "Starts an execution of another pipeline, with variables and source revisions, optionally waiting for its result.",
			Versions:    []string{"1"},
			Properties: []Property{
				{Name: "pipeline", Type: TypeString, Required: true, Description: "The pipeline to start."},
				{Name: "variables", Type: TypeMap, Description: "Its pipeline variables (NAME: value)."},
				{Name: "sourceRevisions", Type: TypeMap, Description: "Revisions its source actions fetch (ACTION: commit), " +
					"as conveyor start --revision does."},
				{Name: "wait", Type: TypeBool, Description: "Wait for the execution to end and take its result " +
					"(default false: succeed once it started, as CodePipeline's invoke action does)."},
			},
			InputArtifacts:  ArtifactCount{0, 0},
			OutputArtifacts: ArtifactCount{0, 0},
			OutputVariables: []string{"ExecutionId", "Status"},
		},
		{
			Categories:  []Category{Approval},
			Provider:    ProviderManual,
			Description: "Waits for a person to approve or reject.",
			Versions:    []string{"1"},
			Properties: []Property{
				{Name: "summary", Type: TypeString, Description: "What the approver is asked to decide."},
				{Name: "externalEntityLink", Type: TypeString, Description: "Link the approver should review."},
				{Name: "role", Type: TypeString, Description: "Role whose members may approve (default: approvers of the pipeline)."},
				{Name: "approvals", Type: TypeInt, Min: ptr(1), Max: ptr(100), Description: "Number of approvals needed, each from a different person (default 1)."},
				{Name: "separationOfDuties", Type: TypeBool, Description: "Whoever started the execution cannot approve it (default false)."},
			},
			InputArtifacts:  ArtifactCount{0, 0},
			OutputArtifacts: ArtifactCount{0, 0},
		},
	}
}
