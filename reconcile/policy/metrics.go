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

// latencyBuckets fit answers that take tens of microseconds, with room to show the
// 5 ms budget and a node's fall-back deadline being approached.
var latencyBuckets = []float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 50e-3, 0.25, 1, 5}

// RegisterMetrics registers the policy metrics on reg: the counts read from c at scrape
// time (c may be counted by another process) and gauges of the snapshot stats reports
// as served (nil: none yet).
func RegisterMetrics(reg prometheus.Registerer, c *Counters, stats func() *SnapshotStats) error {
	if err := reg.Register(&collector{c: c}); err != nil {
		return fmt.Errorf("register policy metrics: %w", err)
	}
	stat := func(f func(*SnapshotStats) float64) func() float64 {
		return func() float64 {
			if s := stats(); s != nil {
				return f(s)
			}
			return 0
		}
	}
	for _, g := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "roster_policy_snapshot_rooms", Help: "Rooms in the policy snapshot being served.",
		}, stat(func(s *SnapshotStats) float64 { return float64(s.Rooms) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "roster_policy_snapshot_devices", Help: "Devices in the policy snapshot being served.",
		}, stat(func(s *SnapshotStats) float64 { return float64(s.Devices) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "roster_policy_snapshot_case_collisions", Help: "Aliases of the snapshot that differ from another object's only in letter case.",
		}, stat(func(s *SnapshotStats) float64 { return float64(s.CaseCollisions) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "roster_policy_snapshot_timestamp_seconds", Help: "Unix time the policy snapshot being served was built (0: none yet).",
		}, stat(func(s *SnapshotStats) float64 { return float64(s.BuiltAt.UnixNano()) / 1e9 })),
	} {
		if err := reg.Register(g); err != nil {
			return fmt.Errorf("register policy metrics: %w", err)
		}
	}
	return nil
}

// IndexStats reports the stats of idx's current snapshot, for RegisterMetrics.
func IndexStats(idx *Index) func() *SnapshotStats {
	return func() *SnapshotStats {
		if s := idx.Load(); s != nil {
			st := s.Stats()
			return &st
		}
		return nil
	}
}

var (
	requestsDesc = prometheus.NewDesc("roster_policy_requests_total", "Policy requests received, by endpoint.", []string{"endpoint"}, nil)
	answersDesc  = prometheus.NewDesc("roster_policy_answers_total",
		"Policy requests answered, by outcome (room, device, unknown, reject, unauthorized, bad_request, unavailable).", []string{"outcome"}, nil)
	latencyDesc = prometheus.NewDesc("roster_policy_request_duration_seconds", "Time from receiving a policy request to its answer written.", nil, nil)
)

// collector exposes Counters as the policy's counters and latency histogram.
type collector struct{ c *Counters }

func (m *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- requestsDesc
	ch <- answersDesc
	ch <- latencyDesc
}

func (m *collector) Collect(ch chan<- prometheus.Metric) {
	for i := range numEndpoints {
		ch <- prometheus.MustNewConstMetric(requestsDesc, prometheus.CounterValue, float64(m.c.load(wordRequests+int(i))), endpointNames[i])
	}
	for i := range numOutcomes {
		ch <- prometheus.MustNewConstMetric(answersDesc, prometheus.CounterValue, float64(m.c.load(wordAnswers+int(i))), outcomeNames[i])
	}
	buckets, count, sum := m.c.latency()
	ch <- prometheus.MustNewConstHistogram(latencyDesc, count, sum, buckets)
}
