// Package metrics exposes Conveyor's Prometheus metrics on a registry of its own (never the
// global one): executions by pipeline and status and the job queue, read from the store at
// each scrape so they stay right across restarts; actions finished and their durations, fed
// by the engine loop's state stream; HTTP request latency by route pattern, fed by the API.
package metrics
