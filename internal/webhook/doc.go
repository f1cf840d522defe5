// Package webhook reads the deliveries of Git forges (GitHub, GitLab, Gitea): it checks their
// signatures (Verify), turns their payloads into one Change type whatever the forge (Parse),
// normalizes repository URLs so that a delivery finds the pipelines whose Git sources name
// the same repository in another spelling (NormalizeURL), and decides which source actions
// of a pipeline a change starts (Decide). It does no I/O: the API receives deliveries, reads
// pipelines and secrets, and starts executions through package trigger.
package webhook
