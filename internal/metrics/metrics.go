package metrics

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/engine/loop"
	"github.com/conveyorci/conveyor/internal/store"
)

// scrapeTimeout bounds the store reads of one scrape.
const scrapeTimeout = 10 * time.Second

// Metrics is the set of Conveyor's metrics. Build it with New, run Run for the action
// metrics, wrap the API with Instrument and serve Handler at /metrics.
type Metrics struct {
	states      <-chan *engine.Execution
	unsubscribe func()

	reg      *prometheus.Registry
	now      func() time.Time
	actions  *prometheus.CounterVec
	duration *prometheus.HistogramVec
	requests *prometheus.HistogramVec
	evicted  *prometheus.CounterVec
	freed    prometheus.Counter
}

// New returns the metrics of the engine l over st, registered on a registry of their own.
// now is the clock of the lease ages (time.Now when nil). New subscribes to l's states at
// once, so that Run counts every action finished from now on: call Run.
func New(st store.Store, l *loop.Loop, now func() time.Time) *Metrics {
	if now == nil {
		now = time.Now
	}
	states, unsubscribe := l.Subscribe()
	m := &Metrics{
		states:      states,
		unsubscribe: unsubscribe,
		reg:         prometheus.NewRegistry(),
		now:         now,
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "conveyor_action_executions_finished_total",
			Help: "Action attempts finished since the server started, by pipeline and status.",
		}, []string{"pipeline", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "conveyor_action_execution_duration_seconds",
			Help:    "How long finished action attempts ran, from start to finish, by pipeline and status.",
			Buckets: []float64{0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600},
		}, []string{"pipeline", "status"}),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "conveyor_http_request_duration_seconds",
			Help:    "Latency of API requests by route pattern and status code (streams count their whole life).",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "code"}),
	}
	m.evicted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "conveyor_cache_evictions_total",
		Help: "Caches evicted from the artifact store since the server started, by reason (age, size, missing).",
	}, []string{"reason"})
	m.freed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "conveyor_cache_evicted_bytes_total",
		Help: "Bytes of artifact storage the cache evictions freed since the server started.",
	})
	m.reg.MustRegister(m.actions, m.duration, m.requests, m.evicted, m.freed, &storeCollector{st: st, now: now})
	return m
}

// Registry returns the registry the metrics are on (to add process or Go collectors).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Run counts the actions finished in every execution state the loop commits until ctx is
// done; then it unsubscribes.
// A state commits an action's finish when the action's FinishedAt is the execution's
// UpdatedAt (the engine stamps both with the step's clock), so each finish is counted once
// without remembering anything. Subscribe never blocks the loop: under a burst that
// overflows its buffer, states are dropped and their finishes are not counted.
func (m *Metrics) Run(ctx context.Context) error {
	defer m.unsubscribe()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-m.states:
			m.observe(e)
		}
	}
}

func (m *Metrics) observe(e *engine.Execution) {
	for _, st := range e.Stages {
		for _, a := range st.Actions {
			if a.FinishedAt.IsZero() || !a.FinishedAt.Equal(e.UpdatedAt) || a.Status == engine.ActionInProgress {
				continue
			}
			m.actions.WithLabelValues(e.Pipeline, string(a.Status)).Inc()
			if !a.StartedAt.IsZero() {
				m.duration.WithLabelValues(e.Pipeline, string(a.Status)).Observe(a.FinishedAt.Sub(a.StartedAt).Seconds())
			}
		}
	}
}

// CacheEvicted counts one cache evicted for reason, and the bytes its eviction freed.
func (m *Metrics) CacheEvicted(reason string, freed int64) {
	m.evicted.WithLabelValues(reason).Inc()
	m.freed.Add(float64(freed))
}

// ObserveRequest records the latency of one HTTP request, labelled with the pattern of the
// ServeMux route that matched ("unmatched" when none did) and the status code.
func (m *Metrics) ObserveRequest(route string, status int, took time.Duration) {
	if route == "" {
		route = "unmatched"
	}
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Observe(took.Seconds())
}
