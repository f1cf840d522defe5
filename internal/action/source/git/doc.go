// Package git is the Git source provider: it fetches one commit of a Git repository into the
// workspace with the git command line, and publishes what it fetched as output variables
// (CommitId, CommitMessage, BranchName, AuthorName, AuthorDate, CommitterDate, RepositoryName).
//
// Configuration:
//
//	repository:      a URL (https://, ssh://, git@host:path, file://) or a local path; a
//	                 relative path is relative to the pipeline file's directory, and "." is the
//	                 repository holding the pipeline file (its top level, wherever the file is)
//	branch:          default: the branch the repository's HEAD names
//	revision:        a tag, a branch or a full commit id: pins what is fetched (job.SourceRevision,
//	                 when set, overrides it)
//	depth:           history to fetch; default 1 without keepGitMetadata (the history would be
//	                 thrown away), all of it with; 0 means all of it
//	keepGitMetadata: keep .git in the artifact; default false, as CodePipeline's CODE_ZIP
//	username, token: HTTPS credentials (token is a secret's value; username defaults to
//	                 x-access-token)
//	sshKey, knownHosts: an SSH private key (a secret's value) and the server's host keys
//	submodules:      also fetch the submodules, recursively, with the same credentials
//	lfs:             also fetch the Git LFS files (git lfs pull); git-lfs must be installed
//
// Credentials (see Credentials) reach git through its environment, never its command line: a
// token through a credential helper scoped to the repository's scheme and host, a key and
// known_hosts through files in a private temporary directory removed afterwards, ssh run with
// strict host key checking. git's error output has their values replaced by ***. Remote.Head
// (the poller) and Mirror (changed files) take the same Credentials. Remote.Head starts no
// process where it need not (refs.go): a repository on this machine is read from its ref
// files, an HTTP(S) one asked over smart HTTP in Go (the token as Basic authentication);
// SSH and the rest run git ls-remote.
//
// A branch, a tag or the default branch is fetched with one `git clone --single-branch`; a
// commit id with `git init` and `git fetch <id>`, then `git checkout`. Fetching a commit by
// its id needs the server to allow it: local paths, file:// and any server speaking protocol
// version 2 (git's default since 2.26, including git-http-backend) do for any commit reachable
// from a ref; an older protocol needs uploadpack.allowReachableSHA1InWant on the server.
//
// Git runs with the allowlisted environment, never prompts (GIT_TERMINAL_PROMPT=0, no askpass,
// ssh in BatchMode), gets the proxy and CA variables of the runner's environment (HTTPS_PROXY,
// HTTP_PROXY, NO_PROXY, GIT_SSL_CAINFO, SSL_CERT_FILE, SSL_CERT_DIR), reads neither the
// system nor the user's global configuration, runs no
// hooks, starts from no template, and does not fsync (the workspace is disposable). A repository, branch or revision that is not found fails
// the action (action.Failed) with a message saying what to check.
//
// With job.SourceDir set ("--source Checkout=."), the provider takes that directory's working
// tree as it is instead: the files `git ls-files --cached --others --exclude-standard` lists
// (uncommitted changes and untracked files included, ignored files and .git excluded, deleted
// files skipped), copied with their exec bits and symlinks. The variables describe HEAD, and
// the summary says how many uncommitted changes came along. Here git reads the user's global
// configuration, so that what is ignored is what `git status` shows them. A directory that
// is not in a Git work tree is copied whole (.git directories excluded), with empty commit
// variables and a summary saying so: a local run of a pipeline need not be committed anywhere.
package git
