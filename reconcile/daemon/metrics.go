package daemon

import (
	"context"
	"regexp"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/roster-dev/roster/state"
)

// metrics are the daemon's Prometheus metrics, in a registry of their own.
type metrics struct {
	reg                *prometheus.Registry
	duration           prometheus.Histogram
	cycles             prometheus.Counter
	lastSuccess        prometheus.Gauge
	objects            *prometheus.GaugeVec
	changes            *prometheus.CounterVec
	emailsSent         prometheus.Counter
	emailsFailed       prometheus.Counter
	fetchFailures      prometheus.Counter
	directoryErrors    *prometheus.CounterVec
	validationFailures prometheus.Counter
	platformOps        *prometheus.GaugeVec
	platformDrift      prometheus.Gauge
	sync               *syncMetrics
}

func newMetrics() *metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	counterVec := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &metrics{
		reg: prometheus.NewRegistry(),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "roster_reconcile_duration_seconds", Help: "Duration of a reconcile cycle (fetch, validate, plan, apply, deliver).",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}),
		cycles: counter("roster_reconcile_cycles_total", "Reconcile cycles run (timer, webhook and start triggers coalesce into cycles)."),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "roster_last_success_timestamp_seconds", Help: "Unix time of the last cycle that applied a plan.",
		}),
		objects: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "roster_objects", Help: "Objects in the state database, by kind.",
		}, []string{"kind"}),
		changes:       counterVec("roster_changes_applied_total", "Changes applied, by kind and action.", "kind", "action"),
		emailsSent:    counter("roster_emails_sent_total", "Emails accepted by the SMTP server or written to mail_dir."),
		emailsFailed:  counter("roster_emails_failed_total", "Emails that gave up after their last try."),
		fetchFailures: counter("roster_git_fetch_failures_total", "Failed fetches of the desired-state repository."),
		directoryErrors: counterVec("roster_directory_errors_total",
			"Cycles in which a sync template's directory search or render failed (its changes were not applied).", "template"),
		validationFailures: counter("roster_validation_failures_total", "Commits that did not validate."),
		platformOps: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "roster_platform_operations", Help: "Operations in a platform's queue, by status (pending, sending, done, failed, conflict).",
		}, []string{"platform", "status"}),
		platformDrift: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "roster_platform_drift_objects", Help: "Owned objects that differed on Pexip at the last scheduled platform check.",
		}),
	}
	m.reg.MustRegister(m.duration, m.cycles, m.lastSuccess, m.objects, m.changes, m.emailsSent, m.emailsFailed,
		m.fetchFailures, m.directoryErrors, m.validationFailures, m.platformOps, m.platformDrift,
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(runtimeLatencies)),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.sync = newSyncMetrics(m.reg)
	// Make the vectors visible before their first event.
	m.changes.WithLabelValues("vmr", "create").Add(0)
	for _, k := range state.ObjectKinds {
		m.objects.WithLabelValues(k).Set(0)
	}
	return m
}

// runtimeLatencies adds two of the Go runtime's histograms to the default Go metrics:
// how long goroutines wait for a CPU once runnable (go_sched_latencies_seconds) and the
// stop-the-world pauses of the collector (go_sched_pauses_total_gc_seconds). A policy
// answer's own work takes microseconds (roster_policy_request_duration_seconds); these
// show what else its latency under a running reconcile is made of.
var runtimeLatencies = collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/sched/(latencies|pauses/total/gc):seconds$`)}

// refreshObjects sets roster_objects from the database.
func (m *metrics) refreshObjects(ctx context.Context, db *state.DB) {
	counts, err := db.ObjectCounts(ctx)
	if err != nil {
		return
	}
	for k, n := range counts {
		m.objects.WithLabelValues(k).Set(float64(n))
	}
}

// refreshQueues sets roster_platform_operations from the database.
func (m *metrics) refreshQueues(ctx context.Context, db *state.DB) {
	counts, err := db.PlatformCounts(ctx)
	if err != nil {
		return
	}
	for name, c := range counts {
		for st, n := range c {
			m.platformOps.WithLabelValues(name, st).Set(float64(n))
		}
	}
}
