// Package bench holds Conveyor's performance budgets as benchmarks that anyone can run with
// `make bench`: B1, the overhead of the orchestrator per action, through the real binary; B2,
// the throughput and memory of the engine on the SQLite store; B4, the latency from an API
// start to the first action running; B5, the API's latency and the server's memory with
// 100,000 executions in history; B7, the CPU polling 500 Git sources every 10 s costs. Each reports its figures next to a baseline measured in the
// same run on the same machine. docs/benchmarks.md explains them and records the figures
// measured.
package bench
