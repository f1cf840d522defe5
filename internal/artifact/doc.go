// Package artifact packs the files an action declares into an immutable, content-addressed
// artifact, stores it once in a Blobs backend (package fs for local disk; an S3-compatible one
// fits the same interface), and restores it, verified, into another action's workspace.
//
// # Format
//
// An artifact is a canonical tar compressed with zstd. The tar holds the selected regular files
// and symlinks, sorted by path (bytewise), with modification time 0 (the Unix epoch), uid and
// gid 0 and no user or group names, mode 0755 if any exec bit is set and 0644 otherwise (0777
// for symlinks). Directories are not stored: they are implied by the paths, so an empty
// directory is not kept. Hard links are stored as regular files. Symlinks are kept as symlinks
// and must stay inside the tree: their target is relative and may climb with ".." only at its
// start. Other special files (fifos, sockets, devices) make Pack fail, naming the file.
//
// Its identity is the SHA-256 of the format version line and the uncompressed tar:
//
//	digest = "sha256:" + hex(sha256("conveyor-artifact-v1\n" + tar))
//
// so the same files give the same digest whatever their times, owners or other permission
// bits, and a new compressor changes no digest. A change of the canonical form must change
// the version line (TestPackGolden pins one digest).
//
// # Selecting files
//
// An action declares globs, relative to its workspace; no globs means every file. A glob is
// slash-separated; each segment is matched with path.Match (*, ?, [a-z], \ to escape, and
// * matches a leading dot), and a segment "**" matches any number of segments, none included.
// A glob that matches a directory selects everything below it. Globs are anchored at the
// workspace root:
//
//	dist/**      everything under dist (as does "dist" or "dist/")
//	**/*.go      every .go file, at any depth
//	*.txt        the .txt files at the root only
//	bin/[ab]*    the entries of bin starting with a or b, and everything below those
//
// A glob that matches nothing is not an error: the artifact has fewer files (Ref.Files says
// how many). Absolute globs and ".." are refused.
//
// # Storage and restore
//
// A Store keeps one blob per content, at a key derived from an HMAC of the digest under a
// server key (Options.DedupKey), so the key space reveals nothing about content to someone
// without it. Save packs into a temporary file while hashing, then stores the blob unless its
// key exists. Restore streams the blob through the decompressor and Unpack into a staging
// directory next to the destination, checks the digest, size and file count against the Ref,
// and only then renames the staging directory into place.
//
// Unpack trusts nothing it reads: it refuses absolute paths, "..", entries below a symlink,
// symlinks leading out, hard links to anything but an earlier file, devices and fifos,
// duplicates, more bytes (counted as decompressed) or entries than its Limits, and zstd
// windows over MaxWindow; it writes through an os.Root, so even a destination holding
// symlinks cannot be escaped.
package artifact
