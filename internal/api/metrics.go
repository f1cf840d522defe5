package api

import (
	"net/http"

	"github.com/conveyorci/conveyor/internal/metrics"
)

// handleMetrics serves the Prometheus metrics without a token (protect /metrics at the
// network level); without metrics it answers 404.
func handleMetrics(m *metrics.Metrics) http.HandlerFunc {
	if m == nil {
		return func(w http.ResponseWriter, _ *http.Request) {
			writeError(w, http.StatusNotFound, "not_found", "metrics are not enabled on this server")
		}
	}
	return m.Handler().ServeHTTP
}
