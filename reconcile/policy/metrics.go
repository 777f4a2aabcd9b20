package policy

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// outcome is what a request was answered with.
type outcome uint8

const (
	outcomeRoom         outcome = iota // a VMR's service configuration
	outcomeDevice                      // a device's credentials
	outcomeUnknown                     // not roster's alias, policy_unknown "continue"
	outcomeReject                      // not roster's alias, policy_unknown "reject"
	outcomeUnauthorized                // missing or wrong Basic credentials (401)
	outcomeBadRequest                  // wrong method, path or parameters (4xx)
	outcomeUnavailable                 // no snapshot yet (503: the node falls back)
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"room", "device", "unknown", "reject", "unauthorized", "bad_request", "unavailable"}

func (o outcome) String() string { return outcomeNames[o] }

// Outcomes are the names of the answers' outcomes, in the order status shows them.
func Outcomes() []string { return outcomeNames[:] }

// endpoint is the kind of request, by path.
type endpoint uint8

const (
	endpointService endpoint = iota
	endpointRegistration
	endpointOther
	numEndpoints
)

var endpointNames = [numEndpoints]string{"service_configuration", "registration", "other"}

// Metrics are the policy server's Prometheus metrics.
type Metrics struct {
	requests [numEndpoints]prometheus.Counter
	answers  [numOutcomes]prometheus.Counter
	latency  prometheus.Histogram
}

// latencyBuckets fit answers that take tens of microseconds, with room to show the
// 5 ms budget and a node's fall-back deadline being approached.
var latencyBuckets = []float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 50e-3, 0.25, 1, 5}

// NewMetrics registers the policy metrics on reg, including gauges that read idx's
// current snapshot at scrape time.
func NewMetrics(reg prometheus.Registerer, idx *Index) (*Metrics, error) {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "roster_policy_requests_total", Help: "Policy requests received, by endpoint.",
	}, []string{"endpoint"})
	answers := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "roster_policy_answers_total", Help: "Policy requests answered, by outcome (room, device, unknown, reject, unauthorized, bad_request, unavailable).",
	}, []string{"outcome"})
	m := &Metrics{latency: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "roster_policy_request_duration_seconds", Help: "Time from receiving a policy request to its answer written.",
		Buckets: latencyBuckets,
	})}
	for i := range m.requests {
		m.requests[i] = requests.WithLabelValues(endpointNames[i])
	}
	for i := range m.answers {
		m.answers[i] = answers.WithLabelValues(outcomeNames[i])
	}
	stat := func(f func(SnapshotStats) float64) func() float64 {
		return func() float64 {
			if s := idx.Load(); s != nil {
				return f(s.Stats())
			}
			return 0
		}
	}
	cs := []prometheus.Collector{requests, answers, m.latency,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "roster_policy_snapshot_rooms", Help: "Rooms in the policy snapshot being served.",
		}, stat(func(s SnapshotStats) float64 { return float64(s.Rooms) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "roster_policy_snapshot_devices", Help: "Devices in the policy snapshot being served.",
		}, stat(func(s SnapshotStats) float64 { return float64(s.Devices) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "roster_policy_snapshot_case_collisions", Help: "Aliases of the snapshot that differ from another object's only in letter case.",
		}, stat(func(s SnapshotStats) float64 { return float64(s.CaseCollisions) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "roster_policy_snapshot_timestamp_seconds", Help: "Unix time the policy snapshot being served was built (0: none yet).",
		}, stat(func(s SnapshotStats) float64 { return float64(s.BuiltAt.UnixNano()) / 1e9 })),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register policy metrics: %w", err)
		}
	}
	return m, nil
}
