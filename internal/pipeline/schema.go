package pipeline

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
)

type object = map[string]any

// durationPattern matches what ParseDuration accepts: a Go duration or whole days.
const durationPattern = `^([0-9]+d|([0-9]*\.?[0-9]+(ns|us|µs|ms|s|m|h))+)$`

// Schema returns the JSON Schema (draft 2020-12) of the pipeline file, indented, for editors
// to complete and check pipeline files. The configuration of each provider (BuiltinProviders,
// or those of WithProviders) is described under an if/then on category and provider. Parse
// remains the reference: it also checks what a schema cannot say (artifact flow, references).
func Schema(opts ...Option) []byte {
	o := newOptions(opts)
	ref := func(def string) object { return object{"$ref": "#/$defs/" + def} }
	described := func(s object, desc string) object {
		s["description"] = desc
		return s
	}
	names := func(re *regexp.Regexp, maxLen int, desc string) object {
		return object{"type": "string", "pattern": re.String(), "minLength": 1, "maxLength": maxLen, "description": desc}
	}
	text := object{"type": []string{"string", "number", "boolean"}, "maxLength": MaxValueLen}
	list := func(items object, desc string) object {
		return object{"type": "array", "items": items, "description": desc}
	}

	var providerNames []string
	var allOf []any
	for _, c := range Categories {
		var serving []string
		for _, s := range o.providers {
			if s.Serves(c) {
				serving = append(serving, s.Provider)
			}
		}
		if len(serving) == 0 {
			continue
		}
		allOf = append(allOf, object{
			"if":   object{"properties": object{"category": object{"const": string(c)}}, "required": []string{"category"}},
			"then": object{"properties": object{"provider": object{"enum": serving}}},
		})
	}
	for _, s := range o.providers {
		if !slices.Contains(providerNames, s.Provider) {
			providerNames = append(providerNames, s.Provider)
		}
		allOf = append(allOf, providerSchema(s))
	}

	action := object{
		"type":                 "object",
		"description":          "One task in a stage, run by a provider.",
		"required":             []string{"name", "category", "provider"},
		"additionalProperties": false,
		"properties": object{
			"name":     names(reName, MaxNameLen, "Name of the action, unique in its stage."),
			"category": object{"enum": categoryNames(), "description": "Kind of work the action does."},
			"provider": object{"enum": providerNames, "description": "Provider that runs the action; it must serve the category."},
			"version": object{"type": []string{"string", "integer"}, "default": "1",
				"description": "Version of the provider."},
			"runOrder": object{"type": "integer", "minimum": 1, "maximum": MaxRunOrder, "default": 1,
				"description": "Actions of a stage with the same runOrder run in parallel; higher runOrders wait for lower ones."},
			"lock":      described(ref("lockName"), "A lock shared by every pipeline, held while the action runs: one execution at a time runs an action or stage taking it; the others wait in order."),
			"namespace": described(ref("namespace"), "Namespace under which the action publishes its output variables, referenced as #{Namespace.Name}."),
			"retryOnLost": object{"type": "boolean", "default": false,
				"description": "Deploy and Invoke actions: run the action again (once) when its attempt is lost to a crash or an expired lease; off by default, since the lost attempt may have had effects."},
			"runOn": object{"type": "array", "uniqueItems": true, "items": names(reName, MaxNameLen, "A label."),
				"description": "Labels a worker must offer (conveyor worker --labels, conveyor server --labels) to run the action; none: any worker."},
			"timeout": described(ref("duration"),
				fmt.Sprintf("How long the action may run (default %s, approvals %s; at most 7d).", Duration(DefaultTimeout), Duration(DefaultApprovalTimeout))),
			"inputArtifacts": object{"type": "array", "uniqueItems": true, "items": ref("artifactName"),
				"description": "Artifacts produced by earlier actions (an earlier stage, or a lower runOrder) that the action needs."},
			"outputArtifacts": list(ref("outputArtifact"), "Artifacts the action produces; names are unique in the pipeline."),
			"configuration":   object{"type": "object", "description": "Provider-specific settings; values may reference variables as #{Namespace.Name}."},
			"environment": object{"type": "object", "description": "Environment variables of the action's processes.",
				"propertyNames":        object{"pattern": envNamePattern},
				"additionalProperties": ref("environmentValue")},
		},
		"allOf": allOf,
	}

	filter := object{
		"type": "object", "additionalProperties": false,
		"properties": object{
			"include": list(object{"type": "string"}, "Glob patterns; a value must match one (when any are given)."),
			"exclude": list(object{"type": "string"}, "Glob patterns; a value matching one is excluded."),
		},
	}
	trigger := object{
		"type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": false,
		"description": "What starts an execution: exactly one of gitPush, gitPullRequest, schedule, upstream, webhook.",
		"properties": object{
			"gitPush": object{
				"type": "object", "additionalProperties": false,
				"description": "A push to the repository of a Git source action.",
				"properties": object{
					"action":    object{"type": "string", "description": "The source action this trigger feeds, as Action or Stage.Action (optional when there is one)."},
					"branches":  described(ref("filter"), "Branches whose pushes start an execution."),
					"tags":      described(ref("filter"), "Tags whose pushes start an execution."),
					"filePaths": described(ref("filter"), "Changed file paths that start an execution (** allowed)."),
				},
			},
			"gitPullRequest": object{
				"type": "object", "additionalProperties": false,
				"description": "A pull (merge) request of the repository of a Git source action: its head commit runs, in a lane of its own.",
				"properties": object{
					"action":    object{"type": "string", "description": "The Git source action that fetches the pull request (optional when there is one)."},
					"events":    object{"type": "array", "uniqueItems": true, "items": object{"enum": PullRequestEvents}, "description": "Events that start an execution (default opened, updated)."},
					"branches":  described(ref("filter"), "Target branches of the pull requests."),
					"filePaths": described(ref("filter"), "Changed file paths that start an execution (** allowed)."),
				},
			},
			"webhook": object{
				"type": "object", "additionalProperties": false, "required": []string{"name", "secret"},
				"description": "A JSON document POSTed to /hooks/generic/NAME, signed with X-Conveyor-Signature: sha256=HMAC-SHA256(body).",
				"properties": object{
					"name":   names(reName, MaxNameLen, "The last element of the webhook's URL."),
					"secret": described(ref("secretRef"), "The secret whose value signs the deliveries."),
					"filters": object{"type": "array", "maxItems": MaxWebhookFilters, "description": "Conditions that must all hold.",
						"items": object{"type": "object", "additionalProperties": false, "required": []string{"jsonPath"},
							"minProperties": 2, "maxProperties": 2,
							"properties": object{
								"jsonPath": object{"type": "string", "pattern": `^\$`, "description": "$.a.b, $.a[0], $.a[*].b ..."},
								"matches":  object{"type": "string", "description": "A regular expression one selected value matches entirely."},
								"equals":   object{"type": "string", "description": "A value one selected value equals."},
							}}},
					"revision":  object{"type": "string", "pattern": `^\$`, "description": "JSONPath of the commit the Git source action fetches."},
					"action":    object{"type": "string", "description": "The Git source action the revision pins (optional when there is one)."},
					"variables": object{"type": "object", "additionalProperties": object{"type": "string", "pattern": `^\$`}, "description": "Pipeline variables set from JSONPaths."},
				},
			},
			"schedule": object{
				"type": "object", "additionalProperties": false, "required": []string{"cron"},
				"description": "Times at which an execution starts.",
				"properties": object{
					"cron":     object{"type": "string", "description": "Five-field cron expression, or @hourly, @daily, @weekly, @monthly, @yearly."},
					"timeZone": object{"type": "string", "description": "IANA time zone of the cron expression (default UTC)."},
				},
			},
			"upstream": object{
				"type": "object", "additionalProperties": false, "required": []string{"pipeline"},
				"description": "Another pipeline whose successful executions start this one.",
				"properties": object{
					"pipeline": names(reName, MaxNameLen, "Name of the upstream pipeline."),
				},
			},
		},
	}

	schema := object{
		"$schema":              "https://json-schema.org/draft/2020-12/schema",
		"title":                "Conveyor pipeline",
		"description":          "A Conveyor pipeline: stages of actions, run in order, passing artifacts and variables.",
		"type":                 "object",
		"required":             []string{"name", "stages"},
		"additionalProperties": false,
		"allOf": []any{
			object{"if": object{"required": []string{"maxConcurrency"}},
				"then": object{"required": []string{"executionMode"}, "properties": object{"executionMode": object{"const": string(Parallel)}}}},
			object{"if": object{"required": []string{"maxQueued"}},
				"then": object{"required": []string{"executionMode"}, "properties": object{"executionMode": object{"const": string(Queued)}}}},
		},
		"patternProperties": object{
			"^x-": object{"description": "Extension field, ignored: a place for YAML anchors."},
		},
		"properties": object{
			"name": names(reName, MaxNameLen, "Name of the pipeline."),
			"executionMode": object{"enum": executionModes, "default": string(Superseded),
				"description": "SUPERSEDED: a newer execution replaces an older one waiting before a stage. QUEUED: waiting executions queue in order. PARALLEL: executions never wait for each other."},
			"maxConcurrency": object{"type": "integer", "minimum": 1, "maximum": math.MaxInt32,
				"description": "PARALLEL mode only: the most executions in progress (or stopping) at once; a start past it is refused."},
			"maxQueued": object{"type": "integer", "minimum": 1, "maximum": math.MaxInt32,
				"description": "QUEUED mode only: the most executions waiting before a stage at once; a start past it is refused."},
			"variables": object{"type": "array", "maxItems": MaxVariables, "items": ref("variable"),
				"description": "Pipeline variables, referenced as #{variables.NAME} and overridable when an execution starts."},
			"secrets": object{"type": "array", "uniqueItems": true, "items": ref("variableName"),
				"description": "Secrets the pipeline's actions may take into their environment."},
			"triggers": object{"type": "array", "maxItems": MaxTriggers, "items": ref("trigger"),
				"description": "What starts executions besides the API, CLI and UI."},
			"notifications": object{"type": "array", "items": object{
				"type": "object", "additionalProperties": false, "required": []string{"url"},
				"description": "An HTTP endpoint told of executions' progress, from the outbox, at least once.",
				"properties": object{
					"name":          names(reName, MaxNameLen, "Name of the notification (default notification-N)."),
					"url":           object{"description": "The endpoint: an http(s) URL, or { secret: NAME } when it holds a token.", "oneOf": []any{object{"type": "string", "format": "uri"}, ref("secretRef")}},
					"format":        object{"enum": []string{FormatJSON, FormatSlack}, "default": FormatJSON, "description": "json: Conveyor's payload; slack: a Slack-compatible {text} message."},
					"signingSecret": described(ref("secretRef"), "A secret whose value signs each body: X-Conveyor-Signature: sha256=HEX."),
					"events":        object{"type": "array", "uniqueItems": true, "items": object{"enum": NotifyEvents}, "description": "Events notified (default: all)."},
				}},
				"description": "Where executions' progress is posted: chat incoming webhooks, other services."},
			"commitStatus": object{"type": "object", "additionalProperties": false, "required": []string{"forge", "token"},
				"description": "Report each execution's state on its commit, through the forge's commit status API.",
				"properties": object{
					"forge":      object{"enum": forges},
					"apiUrl":     object{"type": "string", "format": "uri", "description": "The forge's API base (default https://api.github.com, https://gitlab.com; required for gitea)."},
					"token":      described(ref("secretRef"), "The secret holding the API token."),
					"context":    object{"type": "string", "description": "Name of the status on the commit (default conveyor/PIPELINE)."},
					"repository": object{"type": "string", "description": "OWNER/REPO on the forge, when the source's URL does not say it (a mirror)."},
				}},
			"pullRequests": object{"type": "object", "additionalProperties": false,
				"description": "What executions of pull requests may have (default: no secrets, forks refused).",
				"properties": object{
					"secrets": object{"type": "boolean", "description": "Pull requests of the repository itself get the pipeline's secrets."},
					"forks":   object{"type": "boolean", "description": "Pull requests from forks start executions (never with secrets)."},
				}},
			"stages": object{"type": "array", "minItems": 1, "maxItems": MaxStages, "items": ref("stage"),
				"description": "Stages in order; the first holds Source actions only."},
		},
		"$defs": object{
			"namespace": func() object {
				o := names(reNamespace, MaxNameLen, "A namespace: not variables, pipeline, codepipeline or secrets.")
				o["not"] = object{"enum": reservedNamespaces}
				return o
			}(),
			"artifactName": names(reArtifact, MaxNameLen, "Name of an artifact, unique in the pipeline."),
			"lockName":     names(reName, MaxNameLen, "Name of a lock shared by every pipeline."),
			"secretRef": object{"type": "object", "required": []string{"secret"}, "additionalProperties": false,
				"properties": object{"secret": described(ref("variableName"), "A secret listed in the pipeline's secrets.")}},
			"variableName": names(reNamespace, MaxVariableNameLen, "Name of a variable or secret."),
			"duration":     object{"type": "string", "pattern": durationPattern, "description": "A duration such as 90s, 30m, 2h or 7d."},
			"variable": object{
				"type": "object", "required": []string{"name"}, "additionalProperties": false,
				"properties": object{
					"name":        ref("variableName"),
					"default":     described(clone(text), "Value when the execution does not set one."),
					"description": object{"type": "string"},
				},
			},
			"stage": object{
				"type": "object", "required": []string{"name", "actions"}, "additionalProperties": false,
				"description": "An ordered group of actions.",
				"properties": object{
					"name":        names(reName, MaxNameLen, "Name of the stage, unique in the pipeline."),
					"lock":        described(ref("lockName"), "A lock shared by every pipeline, held from entering the stage until leaving it: one execution at a time; the others wait in order."),
					"actions":     object{"type": "array", "minItems": 1, "maxItems": MaxActionsPerStage, "items": ref("action")},
					"beforeEntry": described(ref("conditions"), "Checked before the stage runs: FAIL fails it, SKIP skips it, when a rule fails."),
					"onSuccess":   described(ref("conditions"), "Checked after the stage succeeded: FAIL marks it failed, ROLLBACK also rolls it back, when a rule fails."),
					"onFailure":   described(ref("conditions"), "Checked after the stage failed: RETRY runs it again once, ROLLBACK rolls it back, when every rule passes."),
				},
			},
			"conditions": object{
				"type": "object", "required": []string{"conditions"}, "additionalProperties": false,
				"properties": object{
					"conditions": object{"type": "array", "minItems": 1, "items": object{
						"type": "object", "required": []string{"result"}, "additionalProperties": false,
						"properties": object{
							"result":    object{"enum": []string{"FAIL", "SKIP", "RETRY", "ROLLBACK"}},
							"retryMode": object{"enum": retryModes},
							"rules": object{"type": "array", "items": object{
								"type": "object", "required": []string{"name", "ruleType", "configuration"}, "additionalProperties": false,
								"properties": object{
									"name":     object{"type": "string"},
									"ruleType": object{"enum": ruleTypes},
									"configuration": object{"type": "object", "additionalProperties": false, "properties": object{
										"variable": object{"type": "string", "description": "VariableCheck: one reference, such as #{variables.GO}."},
										"operator": object{"enum": operators},
										"value":    object{"type": "string"},
										"cron":     object{"type": "string", "description": "DeploymentWindow: the rule passes in the minutes this cron expression matches."},
										"timeZone": object{"type": "string", "description": "DeploymentWindow: an IANA time zone (default UTC)."},
										"commands": object{"type": "array", "minItems": 1, "items": object{"type": "string", "minLength": 1},
											"description": "Commands: shell commands run as a job by a worker; the rule passes when they exit 0."},
									}},
								},
							}},
						},
					}},
				},
			},
			"action": action,
			"outputArtifact": object{
				"oneOf": []any{
					ref("artifactName"),
					object{
						"type": "object", "required": []string{"name"}, "additionalProperties": false,
						"properties": object{
							"name":  ref("artifactName"),
							"files": list(object{"type": "string"}, "Glob patterns (** allowed) relative to the workspace; none means every file."),
						},
					},
				},
			},
			"environmentValue": object{
				"oneOf": []any{
					object{"type": []string{"string", "number", "boolean", "null"}, "maxLength": MaxValueLen},
					object{"type": "object", "required": []string{"secret"}, "additionalProperties": false,
						"properties": object{"secret": described(ref("variableName"), "A secret listed in the pipeline's secrets.")}},
				},
			},
			"trigger": trigger,
			"filter":  filter,
		},
	}
	out, err := json.MarshalIndent(schema, "", "  ")
	if err != nil {
		panic(fmt.Sprintf("marshal pipeline schema: %v", err)) // only plain maps, slices and strings
	}
	return append(out, '\n')
}

func clone(o object) object {
	out := make(object, len(o))
	for k, v := range o {
		out[k] = v
	}
	return out
}

// providerSchema is the if/then that describes an action of provider s.
func providerSchema(s ProviderSpec) object {
	cats := make([]string, len(s.Categories))
	for i, c := range s.Categories {
		cats[i] = string(c)
	}
	props := object{}
	var required []string
	for _, p := range s.Properties {
		props[p.Name] = propertySchema(p)
		if p.Required {
			required = append(required, p.Name)
		}
	}
	config := object{"type": "object", "properties": props, "additionalProperties": s.AdditionalProperties}
	if s.Description != "" {
		config["description"] = s.Description
	}
	if len(required) > 0 {
		config["required"] = required
	}
	then := object{"configuration": config}
	artifacts := func(c ArtifactCount) object {
		a := object{"minItems": c.Min}
		if c.Max >= 0 {
			a["maxItems"] = c.Max
		}
		return a
	}
	then["inputArtifacts"] = artifacts(s.InputArtifacts)
	then["outputArtifacts"] = artifacts(s.OutputArtifacts)
	if len(s.Versions) > 0 {
		var versions []any // version: 1 is version "1"
		for _, v := range s.Versions {
			versions = append(versions, v)
			if n, err := strconv.Atoi(v); err == nil && strconv.Itoa(n) == v {
				versions = append(versions, n)
			}
		}
		then["version"] = object{"enum": versions}
	}
	if !s.PublishesVariables() {
		then["namespace"] = false
	}
	thenObj := object{"properties": then}
	if len(required) > 0 {
		thenObj["required"] = []string{"configuration"}
	}
	if s.OutputArtifacts.Min > 0 {
		thenObj["required"] = append(slices.Clone(anyStrings(thenObj["required"])), "outputArtifacts")
	}
	return object{
		"if": object{
			"properties": object{"category": object{"enum": cats}, "provider": object{"const": s.Provider}},
			"required":   []string{"category", "provider"},
		},
		"then": thenObj,
	}
}

func anyStrings(v any) []string {
	s, _ := v.([]string)
	return s
}

func propertySchema(p Property) object {
	var o object
	switch p.Type {
	case TypeString:
		o = object{"type": []string{"string", "number", "boolean"}, "maxLength": MaxValueLen}
		if len(p.Allowed) > 0 {
			o["enum"] = p.Allowed
		}
		if p.Pattern != "" {
			o["pattern"] = p.Pattern
		}
	case TypeInt:
		o = object{"type": "integer"}
		if p.Min != nil {
			o["minimum"] = *p.Min
		}
		if p.Max != nil {
			o["maximum"] = *p.Max
		}
	case TypeBool:
		o = object{"type": "boolean"}
	case TypeStringList:
		item := object{"type": []string{"string", "number", "boolean"}, "maxLength": MaxValueLen}
		if p.Pattern != "" {
			item["type"], item["pattern"] = "string", p.Pattern
		}
		o = object{"type": "array", "items": item}
		if p.Required {
			o["minItems"] = 1
		}
	case TypeMap:
		o = object{"type": "object", "additionalProperties": object{"type": []string{"string", "number", "boolean"}, "maxLength": MaxValueLen}}
	case TypeSecret:
		o = object{"type": "object", "required": []string{"secret"}, "additionalProperties": false,
			"properties": object{"secret": object{"$ref": "#/$defs/variableName", "description": "A secret listed in the pipeline's secrets."}}}
	case TypeReports:
		format := object{"type": "string"}
		if len(p.Allowed) > 0 {
			format["enum"] = p.Allowed
		}
		o = object{"type": "object", "additionalProperties": object{
			"type": "object", "required": []string{"files"}, "additionalProperties": false,
			"properties": object{
				"files":  object{"type": "array", "minItems": 1, "items": object{"type": "string", "maxLength": MaxValueLen}},
				"format": format,
			}}}
	case TypeCaches:
		o = object{"type": "array", "maxItems": MaxCaches, "items": object{
			"type": "object", "required": []string{"key", "paths"}, "additionalProperties": false,
			"properties": object{
				"key":   object{"type": "string", "minLength": 1, "maxLength": MaxValueLen},
				"paths": object{"type": "array", "minItems": 1, "items": object{"type": "string", "minLength": 1, "maxLength": MaxValueLen}},
			}}}
	default:
		o = object{}
	}
	if p.Description != "" {
		o["description"] = p.Description
	}
	return o
}
