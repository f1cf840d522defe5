// Package cache keeps the directories an action lists in its cache setting from one
// execution of its pipeline to the next: the providers that run commands (Commands,
// CodeBuild) restore them before the work and save them after a success, through the
// worker's action.Cache, which stores them in the artifact store scoped to the pipeline and
// branch. A cache never fails an action: what goes wrong is a warning in its log.
package cache
