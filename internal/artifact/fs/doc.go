// Package fs is the local-disk backend of the artifact store: an artifact.Blobs keeping each
// blob as a file under a root directory, written atomically (temporary file, sync, rename).
// It is the default backend; package artifact/s3 is the one for scale-out.
package fs
