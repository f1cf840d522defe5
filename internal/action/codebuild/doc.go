// Package codebuild is the CodeBuild provider: Build/CodeBuild and Test/CodeBuild actions run
// a buildspec (version 0.2) natively, with CodeBuild's semantics, in one shell session.
//
// Configuration:
//
//	buildspec:            path in the primary input artifact (default buildspec.yml)
//	buildspecInline:      the buildspec itself, instead
//	environmentVariables: {NAME: value}  as CodePipeline's EnvironmentVariables, over env.variables
//	shell:                bash | sh, over the buildspec's env.shell (default bash)
//
// Phases install, pre_build, build and post_build run in that order, all in one shell, so
// `cd` and exported variables carry over. A phase stops at its first failing command; its
// finally commands run whatever happened. With on-failure: ABORT (the default) a failed install
// or pre_build skips the phases after it; a failed build still runs post_build, with
// CODEBUILD_BUILD_SUCCEEDING=0; the action fails. With on-failure: CONTINUE the failure is
// logged, the next phase runs, and the action does not fail because of it. A command that
// ends the shell itself (exit) ends the build there.
//
// Environment, later entries winning: run.BaseEnv, env.variables (taken literally), the
// action's environment (its secrets included), environmentVariables, then CONVEYOR_* as the
// Commands provider sets them and CODEBUILD_SRC_DIR (the workspace), CODEBUILD_SRC_DIR_<input>
// for each secondary input, CODEBUILD_BUILD_ID (PIPELINE:JOB), CODEBUILD_BUILD_NUMBER (the
// attempt), CODEBUILD_INITIATOR (conveyor/PIPELINE), CODEBUILD_START_TIME (ms since the
// epoch), CODEBUILD_BUILD_SUCCEEDING. CODEBUILD_RESOLVED_SOURCE_VERSION is empty unless the
// action sets it (environmentVariables: {CODEBUILD_RESOLVED_SOURCE_VERSION: "#{Source.CommitId}"}):
// a job does not carry the execution's source revision.
//
// env.secrets-manager and env.parameter-store entries are not read from AWS: each NAME must
// be in the action's environment, given from a Conveyor secret (environment: {NAME: {secret:
// SECRET}}), or the action fails saying so. env.exported-variables become the action's output
// variables (unset: published empty).
//
// Artifacts: the files of `artifacts` (files, base-directory, discard-paths, exclude-paths)
// are staged into a directory that becomes the action's first output artifact; each
// secondary artifact becomes the output artifact named by its identifier. An output artifact
// with no buildspec artifact is collected from the workspace by the pipeline's files, as for
// any action. No matching file is an error, as in CodeBuild.
//
// AWS-only keys (runtime-versions, run-as, proxy, batch, env.git-credential-helper, artifacts
// name, s3-prefix, enable-symlinks) and the not yet supported reports and cache are logged as
// ignored, once; unknown keys are errors with file:line:col.
package codebuild
