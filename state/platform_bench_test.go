package state

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkPlatformQueue is the queue's own cost per operation: 10,000 operations
// enqueued, then claimed 200 at a time and recorded done (what a deliverer does).
func BenchmarkPlatformQueue(b *testing.B) {
	ctx := context.Background()
	now := time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)
	const n = 10000
	for range b.N {
		b.StopTimer()
		db, err := Open(ctx, b.TempDir()+"/roster.db")
		if err != nil {
			b.Fatal(err)
		}
		var ops []PlatformOp
		for i := range n {
			o := pop(OpCreate, "conference", fmt.Sprintf("Room %05d", i))
			if i%2 == 1 {
				o = dep(pop(OpCreate, "conference_alias", fmt.Sprintf("a%05d", i)), "conference", fmt.Sprintf("Room %05d", i-1))
			}
			ops = append(ops, o)
		}
		b.StartTimer()
		start := time.Now()
		enqueueOps(b, db, now, ops...)
		enq := time.Since(start)
		var claim, record time.Duration
		for total := 0; total < n; {
			t0 := time.Now()
			got, err := db.ClaimPlatformOps(ctx, "pexip", now, 200)
			claim += time.Since(t0)
			if err != nil || len(got) == 0 {
				b.Fatalf("claimed %d after %d: %v", len(got), total, err)
			}
			out := make([]PlatformOutcome, len(got))
			for i, o := range got {
				out[i] = PlatformOutcome{Op: o, Status: PlatformDone, RemoteID: o.ID, At: now}
			}
			t0 = time.Now()
			if err := db.RecordPlatformOutcomes(ctx, out); err != nil {
				b.Fatal(err)
			}
			record += time.Since(t0)
			total += len(got)
		}
		b.StopTimer()
		b.ReportMetric(float64(enq.Nanoseconds())/n, "enqueue-ns/op")
		b.ReportMetric(float64(claim.Nanoseconds())/n, "claim-ns/op")
		b.ReportMetric(float64(record.Nanoseconds())/n, "record-ns/op")
		db.Close()
	}
}
