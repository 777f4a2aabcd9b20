package push

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
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
// object and how it splits: the fake's handlers (the "platform"), the HTTP round trip
// outside them (both ends' net/http on loopback), SQLite (claims and records), and the
// client's and deliverer's own code (JSON, marking, request building, the limiter,
// outcomes: the workers' sending time outside the round trip). Recording runs beside
// sending, so the parts may add up to more than the whole. overhead-at-rate-% is everything but the handlers, per object, against the
// time one object has at the default rate (60 s / 900): the share of a real push that is
// roster's rather than the platform's or the rate's.
//
//	go test -run XXX -bench Deliver10k -benchtime 1x ./reconcile/platform/push/
func BenchmarkDeliver10k(b *testing.B) {
	const n = 10000
	for range b.N {
		b.StopTimer()
		rt := &timedTransport{base: http.DefaultTransport.(*http.Transport).Clone()}
		rt.base.MaxIdleConnsPerHost = 8
		r := newRig(b, func(c *pexip.Config) { c.Rate, c.Transport = 0, rt })
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
		roundTrip := time.Duration(rt.nanos.Load())
		own := p.SendTime - roundTrip // the client's and the deliverer's own code
		perObject := float64(wall.Nanoseconds()) / n
		budget := float64((time.Minute / pexip.DefaultRate).Nanoseconds())
		pct := func(d time.Duration) float64 { return 100 * float64(d) / float64(wall) }
		b.ReportMetric(perObject, "ns/object")
		b.ReportMetric(pct(handler), "fake-handler-%")
		b.ReportMetric(pct(roundTrip-handler), "http-stack-%")
		b.ReportMetric(pct(p.QueueTime), "sqlite-%")
		b.ReportMetric(pct(own), "client-own-%")
		b.ReportMetric(100*float64(wall-handler)/n/budget, "overhead-at-rate-%")
		b.ReportMetric(float64(r.fake.Stats().Requests)/n, "requests/object")
		b.Logf("%d objects in %s: fake handlers %s, HTTP on loopback (both net/http ends) %s, SQLite %s, client and deliverer code %s",
			n, wall.Round(time.Millisecond), handler.Round(time.Millisecond), (roundTrip - handler).Round(time.Millisecond),
			p.QueueTime.Round(time.Millisecond), own.Round(time.Millisecond))
		r.db.Close()
		r.fake.Close()
	}
}

// timedTransport adds up the time requests spend in the HTTP round trip (sending,
// the server, reading the head of the answer).
type timedTransport struct {
	base  *http.Transport
	nanos atomic.Int64
}

func (t *timedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.base.RoundTrip(req)
	t.nanos.Add(int64(time.Since(start)))
	return resp, err
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
