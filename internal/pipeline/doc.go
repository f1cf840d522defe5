// Package pipeline is the pipeline declaration: its types, the parser of pipeline files (YAML,
// or the same structure as JSON), their validation, variable references and the JSON Schema of
// the format.
//
// Parse and Load accept a file only when the whole pipeline is sound, so the engine never meets
// a mistake mid-run. Every problem found is reported at once, as an *Errors whose lines read
// "file:line:col: message (hint: ...)". What is checked:
//
//   - syntax, unknown fields (with "did you mean"), types, required fields. Top-level fields
//     named x-... are ignored, as in Compose files: a place for YAML anchors;
//   - names as CodePipeline has them: pipeline, stage and action names [A-Za-z0-9.@-_]{1,100},
//     artifact names [A-Za-z0-9_-]{1,100}, namespaces [A-Za-z0-9@-_]{1,100}, variable and secret
//     names [A-Za-z0-9@-_]{1,128}; the namespaces variables, pipeline, codepipeline and secrets
//     are reserved;
//   - unique stage names, action names within a stage, output artifact names and namespaces in
//     the pipeline, variable names;
//   - Source actions only in the first stage, and a first stage with Source actions holds
//     nothing else. Unlike CodePipeline, one stage is enough and a pipeline may have no Source
//     action at all (its first stage starts from nothing);
//   - every input artifact, and every #{Namespace.Name} reference in configuration and
//     environment values, comes from an action sure to have finished before (an earlier stage,
//     or a lower runOrder in the same stage), and names a variable the action publishes where
//     that is known before it runs; #{variables.NAME} names a declared variable;
//     #{pipeline.ExecutionId}, #{pipeline.Name}, #{codepipeline.PipelineExecutionId} and
//     #{codepipeline.PipelineName} are built in; secrets are never interpolated;
//   - a known category and provider, with a configuration valid for the provider (see
//     ProviderSpec; BuiltinProviders by default, WithProviders to change them).
//
// Limits: a file of at most 1 MiB, 50 stages, 50 actions per stage, 50 variables, 50 triggers;
// runOrder 1 to 999; timeouts above zero and at most 7 days (approvals and other actions
// alike; the defaults are 7 days and 1 hour); each configuration or environment string at most
// 1000 characters (each element of a list counts alone, so a commands list may hold many).
//
// Parse returns the pipeline with defaults filled in: executionMode SUPERSEDED, runOrder 1,
// version "1", the timeout, and the source action of a gitPush trigger when there is only one.
// Configuration values hold Go types by property type (see PropertyType). The engine resolves
// references with Resolve and ResolveValue just before an action starts.
package pipeline
