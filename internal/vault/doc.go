// Package vault keeps the server's secrets: it seals each value with the master keys
// (keyring.Seal) into the store, and opens them for the jobs that take them. A value is never
// stored, logged or returned in the clear; only a job's environment receives it, and the
// worker pool masks it in everything the job prints.
//
// A secret belongs to a pipeline (its scope is the pipeline's name) or is global (scope ""),
// for every pipeline that lists it under `secrets:`; a pipeline's own secret wins over a
// global one of the same name. Each value is sealed with the associated data
// "conveyor secret v1|SCOPE|NAME" (Seal's aad, authenticated but not stored), so a sealed
// value copied to another name or scope, by someone with write access to the database,
// fails to open instead of handing one pipeline's secret to another. Names and scopes cannot
// hold '|', so the associated data names one secret only.
//
// Vault is what the API (set, delete) and the worker pool (job.SecretSource: Secrets) use.
// Rewrap moves every sealed value to the current master key after a rotation.
package vault
