package reconcile

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/roster-dev/roster/reconcile/directory"
)

// benchTemplate is the benchmarks' sync template, shared with cmd/roster's end-to-end run.
var benchTemplate = func() string {
	b, err := os.ReadFile("../testdata/bench-template.yaml")
	if err != nil {
		panic(err)
	}
	return string(b)
}()

// benchSizes are the directory sizes benchmarked; ROSTER_BENCH_N=400000 adds the full size.
func benchSizes() []int {
	sizes := []int{50000}
	if n, _ := strconv.Atoi(os.Getenv("ROSTER_BENCH_N")); n > 0 && n != 50000 {
		sizes = append(sizes, n)
	}
	return sizes
}

func benchHarness(b *testing.B, n int) *harness {
	h := newHarness(b)
	var ldif bytes.Buffer
	ldif.WriteString(people())
	if err := directory.GeneratePeople(&ldif, n, "dc=example,dc=com"); err != nil {
		b.Fatal(err)
	}
	h.write("directory.ldif", ldif.String())
	h.write("templates/staff.yaml", benchTemplate)
	h.write("settings.yaml", "auto_activation_emails: false\n")
	return h
}

// BenchmarkInitialApply: plan + apply of N people into an empty database (VMR, 2 aliases,
// device and user each). Target at 400k: ≤ 15 s, peak RSS ≤ 512 MiB.
func BenchmarkInitialApply(b *testing.B) {
	for _, n := range benchSizes() {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				h := benchHarness(b, n)
				runtime.GC()
				b.StartTimer()
				start := time.Now()
				p := h.plan()
				planned := time.Since(start)
				if _, err := Apply(context.Background(), h.db, p, ApplyOptions{Actor: "bench", Now: h.now}, true); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(planned.Seconds(), "plan-s")
				b.ReportMetric(time.Since(start).Seconds(), "total-s")
				b.ReportMetric(float64(p.Len()), "changes")
			}
		})
	}
}

// BenchmarkNoopPlan: plan against a database that already holds the applied state.
// Target at 400k: ≤ 5 s.
func BenchmarkNoopPlan(b *testing.B) {
	for _, n := range benchSizes() {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			h := benchHarness(b, n)
			p := h.plan()
			if _, err := Apply(context.Background(), h.db, p, ApplyOptions{Actor: "bench", Now: h.now}, true); err != nil {
				b.Fatal(err)
			}
			runtime.GC()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if p := h.plan(); p.HasChanges() {
					b.Fatalf("no-op plan has changes: %d", p.Len())
				}
			}
		})
	}
}

// BenchmarkNoopPlanPhases splits a no-op plan into render, state load and diff.
func BenchmarkNoopPlanPhases(b *testing.B) {
	for _, n := range benchSizes() {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			h := benchHarness(b, n)
			p := h.plan()
			if _, err := Apply(context.Background(), h.db, p, ApplyOptions{Actor: "bench", Now: h.now}, true); err != nil {
				b.Fatal(err)
			}
			repo := h.loadRepo()
			eng := h.engine()
			env, _ := eng.Env(context.Background())
			runtime.GC()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				d, err := Render(context.Background(), Inputs{Config: h.cfg, Repo: repo, Env: env, Now: h.now,
					Directory: func(string) (directory.Directory, error) {
						return OpenDirectory(h.cfg.Directories["corp"], repo, nil, nil)
					}})
				if err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				a, err := h.db.LoadActual(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				t2 := time.Now()
				Diff(d, a)
				t3 := time.Now()
				b.ReportMetric(t1.Sub(t0).Seconds(), "render-s")
				b.ReportMetric(t2.Sub(t1).Seconds(), "load-s")
				b.ReportMetric(t3.Sub(t2).Seconds(), "diff-s")
			}
		})
	}
}
