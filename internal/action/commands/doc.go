// Package commands is the Commands provider, which runs the Build, Test, Deploy and Compute
// actions that list shell commands, as CodePipeline's Commands action does.
//
// Configuration:
//
//	commands:        [line, ...]  required; a multi-line string (a YAML block scalar) is one command
//	shell:           bash | sh | dash | zsh | ksh | mksh, or an absolute path to one of them;
//	                 default bash where the PATH has it, else sh
//	outputVariables: [NAME, ...]  shell variables read at the end and published as the action's
//	                 output variables; one that is unset is published empty, as CodePipeline does
//
// All commands run in order in one shell session, in the workspace, so `cd`, exported and
// plain shell variables carry over from one to the next. The first that fails stops the
// action: "command 2 of 3 failed with exit status 1: go test ./...". A command that ends the
// shell with `exit 0` ends the action successfully, and the commands after it do not run.
//
// Each command is echoed to the log before it runs, as "[2/3] $ go test ./..." (the lines
// after the first of a multi-line command as "[2/3] > ...").
//
// The environment is run.BaseEnv, then the action's environment, then CONVEYOR_EXECUTION_ID,
// CONVEYOR_PIPELINE, CONVEYOR_STAGE, CONVEYOR_ACTION, CONVEYOR_ATTEMPT, CONVEYOR_SRC_DIR (the
// workspace) and CONVEYOR_SRC_DIR_<input> for each input artifact, its name with every
// character other than a letter, a digit or '_' (that is, '-') written '_':
// CONVEYOR_SRC_DIR_build_output for the artifact "build-output".
//
// How the shell runs the commands: the provider writes a script to a directory of its own
// outside the workspace and runs `bash --noprofile --norc script` (or `sh script`). For each
// command the script records the command's number in a progress file, echoes it, runs it with
// `eval '<command>'`, and exits with its status if it is not zero. It does not rely on `set -e`,
// whose exceptions are many; eval keeps a command's quoting, heredocs and syntax errors from
// touching the script around it. At the end the script writes the output variables as
// NUL-separated records to another file. When the shell ends with a non-zero status, the
// progress file tells which command it was running, even when the command ended the shell
// itself (exit, exec, set -e, a syntax error in sh).
package commands
