// Package fs is the local-disk backend of the artifact store, and the default one: an
// artifact.Blobs keeping each blob as a file under a root directory, written atomically
// (temporary file in the same directory, sync, rename, sync of the directory). It passes the
// artifacttest conformance suite, as any other backend must.
package fs
