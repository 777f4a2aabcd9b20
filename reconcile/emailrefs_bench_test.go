package reconcile

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// BenchmarkApplyEmails: the apply (plan excluded) of a first plan of n people with a VMR,
// device and activation email each, with emails by reference and by value (an audit row
// each, as before migration 006), alternating in one process so both see the same load.
// Reports the process's CPU time (user+sys, every thread: SQLite's too) per apply and the
// database's size.
func BenchmarkApplyEmails(b *testing.B) {
	n := 20000
	ps := make([]person, n)
	for i := range ps {
		ps[i] = person{uid: fmt.Sprintf("u%06d", i), given: fmt.Sprintf("Given%d", i), sn: "Surname", mail: fmt.Sprintf("u%06d@example.com", i),
			phone: fmt.Sprintf("+44 20 79%02d %04d", i/10000, i%10000)}
	}
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	defer func(old bool) { emailsByValue = old }(emailsByValue)
	for _, mode := range []struct {
		name    string
		byValue bool
	}{{"refs", false}, {"byvalue", true}} {
		b.Run(mode.name, func(b *testing.B) {
			emailsByValue = mode.byValue
			var used time.Duration
			var size int64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				h := newHarness(b, ps...)
				h.cfg.Safety.MaxEmails = 10 * n
				p := h.plan()
				runtime.GC()
				b.StartTimer()
				start := cpu()
				if _, err := Apply(context.Background(), h.db, p, ApplyOptions{Actor: "bench", Now: h.now}, true); err != nil {
					b.Fatal(err)
				}
				used += cpu() - start
				b.StopTimer()
				if st, err := os.Stat(filepath.Join(filepath.Dir(h.db.Path), "state.db")); err == nil {
					size = st.Size()
				}
				b.StartTimer()
			}
			b.ReportMetric(used.Seconds()/float64(b.N), "cpu-s/op")
			b.ReportMetric(float64(size)/(1<<20), "db-MiB")
		})
	}
}
