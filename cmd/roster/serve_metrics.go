package main

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/roster-dev/roster/state"
)

// serveMetrics are the daemon's Prometheus metrics, in a registry of their own.
type serveMetrics struct {
	reg                *prometheus.Registry
	db                 *state.DB
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
}

func newServeMetrics(db *state.DB) *serveMetrics {
	m := &serveMetrics{
		reg: prometheus.NewRegistry(),
		db:  db,
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "roster_reconcile_duration_seconds", Help: "Duration of a reconcile cycle (fetch, validate, plan, apply, deliver).",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}),
		cycles: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "roster_reconcile_cycles_total", Help: "Reconcile cycles run (timer, webhook and start triggers coalesce into cycles).",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "roster_last_success_timestamp_seconds", Help: "Unix time of the last cycle that applied a plan.",
		}),
		objects: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "roster_objects", Help: "Objects in the state database, by kind.",
		}, []string{"kind"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "roster_changes_applied_total", Help: "Changes applied, by kind and action.",
		}, []string{"kind", "action"}),
		emailsSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "roster_emails_sent_total", Help: "Emails accepted by the SMTP server or written to mail_dir.",
		}),
		emailsFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "roster_emails_failed_total", Help: "Emails that gave up after their last try.",
		}),
		fetchFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "roster_git_fetch_failures_total", Help: "Failed fetches of the desired-state repository.",
		}),
		directoryErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "roster_directory_errors_total", Help: "Cycles in which a sync template's directory search or render failed (its changes were not applied).",
		}, []string{"template"}),
		validationFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "roster_validation_failures_total", Help: "Commits that did not validate.",
		}),
	}
	m.reg.MustRegister(m.duration, m.cycles, m.lastSuccess, m.objects, m.changes, m.emailsSent, m.emailsFailed,
		m.fetchFailures, m.directoryErrors, m.validationFailures,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Make the vectors visible before their first event.
	m.changes.WithLabelValues("vmr", "create").Add(0)
	for _, k := range objectKinds {
		m.objects.WithLabelValues(k).Set(0)
	}
	return m
}

// objectKinds are the labels of roster_objects (collectStatus's Objects keys).
var objectKinds = []string{"vmrs", "aliases", "devices", "users_active", "users_deactivated", "invites_pending"}

var objectQueries = map[string]string{
	"vmrs":              `SELECT COUNT(*) FROM vmrs`,
	"aliases":           `SELECT COUNT(*) FROM vmr_aliases`,
	"devices":           `SELECT COUNT(*) FROM devices`,
	"users_active":      `SELECT COUNT(*) FROM users WHERE active = 1`,
	"users_deactivated": `SELECT COUNT(*) FROM users WHERE active = 0`,
	"invites_pending":   `SELECT COUNT(*) FROM invites WHERE status = 'pending'`,
}

// refreshObjects sets roster_objects from the database.
func (m *serveMetrics) refreshObjects(ctx context.Context) {
	for _, k := range objectKinds {
		var n int
		if err := m.db.GetContext(ctx, &n, objectQueries[k]); err == nil {
			m.objects.WithLabelValues(k).Set(float64(n))
		}
	}
}
