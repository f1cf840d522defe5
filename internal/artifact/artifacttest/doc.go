// Package artifacttest is the conformance suite of artifact.Blobs backends: Run checks the
// Blobs contract, then an artifact.Store on top of the backend (round trips, deduplication,
// deterministic digests, corruption detection). Every backend's tests call Run unchanged.
package artifacttest
