package reconcile

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/roster-dev/roster/reconcile/directory"
	"github.com/roster-dev/roster/reconcile/directory/ldaptest"
	"github.com/roster-dev/roster/reconcile/directory/synctest"
	"github.com/roster-dev/roster/schema"
)

// BenchmarkIncrementalCycle: the daemon's cycle (plan and apply, cookie stored) over a
// directory read incrementally, after an initial full read of N people: a quiet cycle
// (no directory change), a cycle with one person's sn changed, and the cycle right after
// it (quiet again, after the engine's own apply moved the state version). Two directories:
// synctest's (no server, always) and, with ROSTER_BENCH_LDAP=1 (make bench), a real slapd
// with syncprov and a session log, the change written over LDAP. Targets at 400k: quiet
// ≤ 0.2 s and ≤ 64 MiB above the resting heap; one change ≤ 0.5 s.
// Reported: quiet-s, quiet-alloc-MiB (allocated during the cycle, a bound on its growth),
// quiet-peak-MiB (peak heap in use during it above the heap before), change-s,
// change-peak-MiB, after-s (the cycle after the change), and rest-heap-MiB (heap in use
// between cycles).
func BenchmarkIncrementalCycle(b *testing.B) {
	for _, n := range benchSizes() {
		b.Run(fmt.Sprintf("synctest/%d", n), func(b *testing.B) {
			h := benchHarness(b, n)
			ldif := []byte(h.files["directory.ldif"].Data)
			h.cfg.Directories["corp"] = schema.DirConfig{LDIF: "directory.ldif", BaseDN: "dc=example,dc=com", PageSize: 1000,
				Sync: schema.SyncAuto, FullRead: schema.Duration{Duration: 24 * time.Hour}}
			dir := synctest.New("dc=example,dc=com", ldif)
			eng := h.engine()
			eng.OpenDirectory = func(string, schema.DirConfig, *schema.Repo) (directory.Directory, error) { return dir, nil }
			sn := "sn: " // the first generated person's surname, changed each iteration
			at := bytes.Index(ldif, []byte("\n"+sn)) + 1
			end := at + bytes.IndexByte(ldif[at:], '\n')
			benchCycles(b, h, eng, n, func(i int) {
				changed := append(append(append([]byte{}, ldif[:at]...), fmt.Sprintf("sn: Changed%d", i)...), ldif[end:]...)
				if dir.Update(changed) != 1 {
					b.Fatal("the change did not take")
				}
			})
		})
		b.Run(fmt.Sprintf("slapd-sessionlog/%d", n), func(b *testing.B) {
			if os.Getenv("ROSTER_BENCH_LDAP") != "1" {
				b.Skip("set ROSTER_BENCH_LDAP=1 to run (slapadds the people)")
			}
			h := benchHarness(b, n)
			var people bytes.Buffer
			if err := directory.GeneratePeople(&people, n, "dc=example,dc=com"); err != nil {
				b.Fatal(err)
			}
			file := filepath.Join(b.TempDir(), "people.ldif")
			if err := os.WriteFile(file, people.Bytes(), 0o600); err != nil {
				b.Fatal(err)
			}
			dn := strings.TrimSpace(strings.SplitN(strings.TrimPrefix(people.String(), "dn: "), "\n", 2)[0])
			people = bytes.Buffer{}
			t0 := time.Now()
			srv := ldaptest.Start(b, ldaptest.Options{LDIFFile: file, Syncprov: true, SessionLog: 10000})
			b.Logf("slapadd + start of %d: %s", n, time.Since(t0).Round(time.Millisecond))
			h.cfg.Directories["corp"] = schema.DirConfig{URL: srv.URL, BaseDN: srv.BaseDN, BindDN: srv.AdminDN, BindPasswordEnv: "BIND_PW",
				PageSize: 1000, Timeout: schema.Duration{Duration: time.Minute}, Sync: schema.SyncAuto, FullRead: schema.Duration{Duration: 24 * time.Hour}}
			eng := h.engine()
			eng.Getenv = func(k string) string {
				if k == "BIND_PW" {
					return srv.AdminPassword
				}
				return "test-secret-key"
			}
			conn := srv.Conn()
			defer conn.Close()
			benchCycles(b, h, eng, n, func(i int) {
				req := ldap.NewModifyRequest(dn, nil)
				req.Replace("sn", []string{fmt.Sprintf("Changed%d", i)})
				if err := conn.Modify(req); err != nil {
					b.Fatalf("modify %s: %v", dn, err)
				}
			})
		})
	}
}

// benchCycles runs the initial full read and apply, then per iteration a quiet cycle, a
// change made by change(i) and its cycle, and the cycle after it.
func benchCycles(b *testing.B, h *harness, eng *Engine, n int, change func(i int)) {
	eng.Incremental = true
	if os.Getenv("ROSTER_BENCH_DEBUG") != "" {
		eng.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	repo := h.loadRepo()
	cycle := func() *Plan {
		p, err := eng.Plan(context.Background(), repo, "c1")
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Check(h.cfg.Safety, Allowances{}); err != nil {
			b.Fatal(err)
		}
		if _, err := Apply(context.Background(), h.db, p, ApplyOptions{Actor: "bench", Now: h.now}, true); err != nil {
			b.Fatal(err)
		}
		return p
	}
	start := time.Now()
	cycle() // the initial full read and apply
	b.Logf("initial full read + apply of %d: %s", n, time.Since(start).Round(time.Millisecond))
	if p := cycle(); p.HasChanges() || p.SyncReads()[0].Mode != ReadIncremental {
		b.Fatalf("second cycle: %d changes, reads %+v", p.Len(), p.SyncReads())
	}
	cycle() // the cycle after the second one's (empty) apply
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		runtime.GC()
		rest := heapInUse()
		b.StartTimer()
		peak := watchPeak()
		t0 := time.Now()
		before := allocated()
		p := cycle()
		quiet, alloc := time.Since(t0), allocated()-before
		quietPeak := peak() - rest
		if p.HasChanges() || p.SyncReads()[0].Mode != ReadIncremental {
			b.Fatalf("quiet cycle: %d changes, reads %+v", p.Len(), p.SyncReads())
		}
		b.StopTimer()
		change(i)
		runtime.GC()
		rest2 := heapInUse()
		b.StartTimer()
		peak = watchPeak()
		stopProfile := cycleProfile(b, i, "change")
		t0 = time.Now()
		p = cycle()
		one := time.Since(t0)
		stopProfile()
		changePeak := peak() - rest2
		if r := p.SyncReads()[0]; r.Mode != ReadIncremental || r.Changes != 1 || !p.HasChanges() {
			b.Fatalf("one change: %d changes, reads %+v", p.Len(), p.SyncReads())
		}
		if i == 0 {
			b.Logf("one change: %s", strings.Join(changes(p), "; "))
		}
		stopProfile = cycleProfile(b, i, "after")
		t0 = time.Now()
		p = cycle() // the cycle after the change: the quiet cycle of the next iteration reuses its plan
		after := time.Since(t0)
		stopProfile()
		if p.HasChanges() || p.SyncReads()[0].Mode != ReadIncremental {
			b.Fatalf("cycle after the change: %d changes, reads %+v", p.Len(), p.SyncReads())
		}
		b.ReportMetric(quiet.Seconds(), "quiet-s")
		b.ReportMetric(float64(alloc)/(1<<20), "quiet-alloc-MiB")
		b.ReportMetric(float64(quietPeak)/(1<<20), "quiet-peak-MiB")
		b.ReportMetric(one.Seconds(), "change-s")
		b.ReportMetric(float64(changePeak)/(1<<20), "change-peak-MiB")
		b.ReportMetric(after.Seconds(), "after-s")
		b.ReportMetric(float64(rest)/(1<<20), "rest-heap-MiB")
	}
}

// cycleProfile writes a CPU profile of one cycle of the first iteration to
// $ROSTER_BENCH_PROFILE-<name>.cpu (and the allocations since to .alloc) when that
// variable is set: the per-cycle costs drown in the initial read's in a whole-run profile.
func cycleProfile(b *testing.B, i int, name string) func() {
	prefix := os.Getenv("ROSTER_BENCH_PROFILE")
	if prefix == "" || i > 0 {
		return func() {}
	}
	f, err := os.Create(prefix + "-" + name + ".cpu")
	if err != nil {
		b.Fatal(err)
	}
	allocs := func(suffix string) { // cumulative: compare with -diff_base
		runtime.GC()
		a, err := os.Create(prefix + "-" + name + suffix)
		if err != nil {
			b.Fatal(err)
		}
		defer a.Close()
		if err := pprof.Lookup("allocs").WriteTo(a, 0); err != nil {
			b.Fatal(err)
		}
	}
	allocs(".alloc0")
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		allocs(".alloc")
	}
}

func heapInUse() int64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

func allocated() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

// watchPeak samples the heap in use every millisecond until the returned func is called,
// which returns the peak.
func watchPeak() func() int64 {
	var peak atomic.Int64
	peak.Store(heapInUse())
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if v := heapInUse(); v > peak.Load() {
					peak.Store(v)
				}
			}
		}
	}()
	return func() int64 {
		close(stop)
		<-done
		if v := heapInUse(); v > peak.Load() {
			peak.Store(v)
		}
		return peak.Load()
	}
}
