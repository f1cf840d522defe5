// Package s3 is the object-store backend of the artifact store: an artifact.Blobs keeping each
// blob as an object under a prefix of a bucket on Amazon S3 or any S3-compatible server
// (MinIO, Ceph, R2, ...), which lets several Conveyor servers and remote workers share
// artifacts (DESIGN.md, "Scale-out"). Uploads stream, in bounded parts for large blobs; an
// object store makes each PUT atomic, so readers never see a partial blob. Presigned URLs let
// a remote worker move a blob without holding the store's credentials. It passes the
// artifacttest conformance suite against a real MinIO server.
package s3
