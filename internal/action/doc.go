// Package action defines what an action provider is: a Job to run, the Workspace it runs
// in, and the Result or classified Error it hands back. Each provider lives in a package of
// its own below this one (source/git, commands); the worker in package job feeds them.
package action
