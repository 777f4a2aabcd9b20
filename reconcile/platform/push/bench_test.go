package push

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/roster-dev/roster/reconcile/platform/pexip"
	"github.com/roster-dev/roster/state"
)

// benchEstate is exactly n objects: half conferences (each created with its two
// aliases), a quarter devices, a quarter end users.
func benchEstate(n int) []state.PlatformOp {
	var ops []state.PlatformOp
	for i := range n / 2 {
		ops = append(ops, VMROps("pexip", nil, vmr(i))...)
	}
	for i := range n / 4 {
		ops = append(ops, DeviceOps("pexip", nil, device(i))...)
		ops = append(ops, UserOps("pexip", nil, user(i))...)
	}
	return ops
}

// BenchmarkDeliver10k pushes 10,000 objects through the deliverer to the fake, with no
// latency and no rate limit, one worker (so that times add up). It reports the time per
// object and how it splits: the fake's handlers (the "platform"), SQLite (claims and
// records), and the rest — the client and the deliverer: JSON, HTTP on loopback, both
// ends' net/http. overhead-at-rate-% is roster's own time per object (everything but the
// handlers) against the time one object has at the default rate (60 s / 900): the share
// of a real push that is roster's, not the platform's or the rate's.
//
//	go test -run XXX -bench Deliver10k -benchtime 1x ./reconcile/platform/push/
func BenchmarkDeliver10k(b *testing.B) {
	const n = 10000
	for range b.N {
		b.StopTimer()
		r := newRig(b, func(c *pexip.Config) { c.Rate = 0 })
		r.d.Workers = 1
		ops := benchEstate(n)
		if len(ops) != n {
			b.Fatalf("%d operations", len(ops))
		}
		r.enqueue(b, ops)
		b.StartTimer()
		start := time.Now()
		p, err := r.d.Drain(context.Background())
		wall := time.Since(start)
		b.StopTimer()
		if err != nil || p.Done != n {
			b.Fatalf("drain: %+v, %v", p, err)
		}
		handler := r.fake.HandlerTime()
		rest := wall - handler - p.QueueTime
		perObject := float64(wall.Nanoseconds()) / n
		budget := float64((time.Minute / pexip.DefaultRate).Nanoseconds())
		b.ReportMetric(perObject, "ns/object")
		b.ReportMetric(100*float64(handler)/float64(wall), "fake-handler-%")
		b.ReportMetric(100*float64(p.QueueTime)/float64(wall), "sqlite-%")
		b.ReportMetric(100*float64(rest)/float64(wall), "client+http-%")
		b.ReportMetric(100*float64(wall-handler)/n/budget, "overhead-at-rate-%")
		b.ReportMetric(float64(r.fake.Stats().Requests)/n, "requests/object")
		b.Logf("%d objects in %s: handlers %s, sqlite %s, client+http %s", n, wall.Round(time.Millisecond),
			handler.Round(time.Millisecond), p.QueueTime.Round(time.Millisecond), rest.Round(time.Millisecond))
		r.db.Close()
		r.fake.Close()
	}
}

// BenchmarkClientCreate is one create through the client (no queue), for its cost per
// request against the fake on loopback.
func BenchmarkClientCreate(b *testing.B) {
	r := newRig(b, func(c *pexip.Config) { c.Rate = 0 })
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := r.d.Client.Create(ctx, pexip.EndUsers, pexip.EndUser{PrimaryEmailAddress: fmt.Sprintf("u%d@example.com", i)}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(100*float64(r.fake.HandlerTime())/float64(b.Elapsed()), "fake-handler-%")
}
