package api

// RouteAccess is what a route needs, for the access matrix of the external tests.
type RouteAccess struct {
	Pattern string
	Role    Role   // "" for public and token-only routes
	Scope   string // public, any token, self, global, pipeline, execution, some pipeline
}

// RouteAccesses returns what every route New registers needs.
func RouteAccesses() []RouteAccess {
	var out []RouteAccess
	for _, r := range routes(Options{}, nil) {
		out = append(out, RouteAccess{r.pattern, r.access.role, r.access.on.String()})
	}
	return out
}
