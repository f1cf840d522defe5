// Package s3 is CodePipeline's S3 actions on any S3-compatible store (Amazon S3, MinIO, Ceph,
// R2, ...), through minio-go:
//
//   - Source/S3 (Source) fetches one object of a bucket, streamed to disk, pinned to the
//     job's source revision when set (a VersionId, or an ETag that the object must still
//     have). A zip, tar or gzip-compressed tar (recognised by content, whatever the key's
//     extension) is unpacked into the workspace, refusing what would escape it as artifacts
//     are refused (artifact.UnpackZip, artifact.UnpackTar); anything else is written as one
//     file named by the key's base name. It publishes ETag, VersionId and ObjectKey.
//   - Deploy/S3 (Deploy) uploads its input artifact: each file under a prefix (extract, with
//     a content type by extension), or the whole artifact as one zip archive, as CodePipeline
//     does. It publishes ObjectKey and ObjectCount.
//
// Both take bucket, objectKey, endpoint (default Amazon S3), region and the credentials
// accessKeyId and secretAccessKey, both or neither (anonymous requests): secrets whose values
// the worker puts in the job's configuration. They never read the runner's environment, so
// unlike the artifact store they take no credentials from AWS_* variables or instance roles.
// Head is what the trigger poller uses to see a new version of a Source/S3 object.
package s3
