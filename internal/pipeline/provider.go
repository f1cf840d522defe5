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
)

// ReportFormats returns the formats of a TypeReports property of the built-in providers
// (those internal/report parses), the default first.
func ReportFormats() []string { return []string{"junit", "cucumber", "nunit", "nunit3", "testng"} }

// cacheProperty is the cache setting of the providers that run commands (Commands, CodeBuild).
var cacheProperty = Property{Name: "cache", Type: TypeCaches, Description: "Directories kept from one execution to the next, " +
	"per pipeline and branch (falling back to the default branch's): [{ key: KEY, paths: [PATH, ...] }]; " +
	"KEY may hold #{hash:FILE}, the SHA-256 of a workspace file; a PATH is relative to the workspace, absolute, or starts with ~/."}

const envNamePattern = `^[A-Za-z_][A-Za-z0-9_]*$`

// BuiltinProviders returns the providers Conveyor ships with: Source/Git,
// Build|Test|Deploy|Compute/Commands and Approval/Manual. Each call returns a new slice.
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
				{Name: "webhookSecret", Type: TypeSecret, Description: "The secret that signs the forge's webhook deliveries for the repository " +
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
