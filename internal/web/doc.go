// Package web is Conveyor's browser UI: static HTML, CSS and JavaScript modules written by
// hand (no build step, nothing fetched from the internet), embedded in the binary and served
// by Handler. The pages hold no data: every page is index.html, which routes on the client
// and reads and changes everything through the REST API (internal/api), which checks who may
// do what. docs/ui.md shows the pages.
package web
