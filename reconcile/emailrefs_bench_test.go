package reconcile

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkApplyEmails: the apply (plan excluded) of a first plan of n people with a VMR,
// device and activation email each, with emails by reference and by value (an audit row
// each, as before migration 007), alternating in one process so both see the same load.
// Reports the process's CPU time (user+sys, every thread: SQLite's too) per apply, that
// of a second apply updating every VMR while the first apply's emails are pending (by
// reference, it materializes them) and the database's size after the first.
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
			var used, updated time.Duration
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
				// then every room's description changes while its emails are pending: by
				// reference, the update materializes them first
				h.write("templates/staff.yaml", strings.Replace(staffTemplate, `"Room of {{cn}}"`, `"The room of {{cn}}"`, 1))
				p = h.plan()
				runtime.GC()
				start = cpu()
				if _, err := Apply(context.Background(), h.db, p, ApplyOptions{Actor: "bench", Now: h.now}, true); err != nil {
					b.Fatal(err)
				}
				updated += cpu() - start
				b.StartTimer()
			}
			b.ReportMetric(used.Seconds()/float64(b.N), "cpu-s/op")
			b.ReportMetric(updated.Seconds()/float64(b.N), "update-cpu-s/op")
			b.ReportMetric(float64(size)/(1<<20), "db-MiB")
		})
	}
}
