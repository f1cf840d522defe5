// Package api is Conveyor's REST/JSON API (v1), as docs/api.md describes it: the HTTP
// handlers over the engine loop and the store, bearer-token authentication and roles (auth.go:
// every route declares the role it needs, and authorize decides), users, tokens and grants
// (accounts.go), the audit log of every change and refusal (audit.go: a change's entry is
// written in the change's own transaction), JSON errors, request logging, and the OpenAPI
// document (openapi.yaml, embedded and served).
//
// New wires every route; each handler is built from exactly the parts it uses (the loop,
// the store), so the package holds no state of its own beyond what New is given.
package api
