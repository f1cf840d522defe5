// Package run runs an action's processes on the host: each in a process group of its own that
// dies with its supervisor, with an allowlisted environment (BaseEnv), stdin from /dev/null and
// stdout and stderr combined into one stream. Cancelling the context stops the whole group
// (SIGTERM, then SIGKILL after a grace period), and whatever a process leaves behind in its
// group is killed when it exits. KillGroup kills what a lost action left running after a crash
// of its supervisor, from the process group and start time recorded when it started.
//
// Linux only: it relies on /proc and on Setpgid and Pdeathsig.
package run
