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
// it (quiet again, after the engine's own apply moved the state version); then the same
// for a person added and for that person deleted. Two directories:
// synctest's (no server, always) and, with ROSTER_BENCH_LDAP=1 (make bench), a real slapd
// with syncprov and a session log, the change written over LDAP. Targets at 400k: quiet
// ≤ 0.2 s and ≤ 64 MiB above the resting heap; one change ≤ 0.5 s.
// Reported: quiet-s, quiet-alloc-MiB (allocated during the cycle, a bound on its growth),
// quiet-peak-MiB (peak heap in use during it above the heap before), rest-heap-MiB (heap
// in use between cycles); for each change (change: one sn; add; delete) <change>-s and
// <change>-peak-MiB, after-<change>-s and after-<change>-peak-MiB (the cycle after it).
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
			var more bytes.Buffer // one person more: the generator's person n
			if err := directory.GeneratePeople(&more, n+1, "dc=example,dc=com"); err != nil {
				b.Fatal(err)
			}
			hire := bytes.Clone(more.Bytes()[bytes.LastIndex(more.Bytes(), []byte("\ndn: "))+1:])
			more = bytes.Buffer{}
			cur := ldif
			update := func(data []byte) {
				if dir.Update(data) != 1 {
					b.Fatal("the change did not take")
				}
			}
			benchCycles(b, h, eng, n, []benchChange{
				{"change", func(i int) {
					cur = append(append(append([]byte{}, ldif[:at]...), fmt.Sprintf("sn: Changed%d", i)...), ldif[end:]...)
					update(cur)
				}},
				{"add", func(int) { update(append(bytes.Clone(cur), hire...)) }},
				{"delete", func(int) { update(cur) }},
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
			hire := "uid=bench-hire,ou=people," + srv.BaseDN
			benchCycles(b, h, eng, n, []benchChange{
				{"change", func(i int) {
					req := ldap.NewModifyRequest(dn, nil)
					req.Replace("sn", []string{fmt.Sprintf("Changed%d", i)})
					if err := conn.Modify(req); err != nil {
						b.Fatalf("modify %s: %v", dn, err)
					}
				}},
				{"add", func(int) {
					req := ldap.NewAddRequest(hire, nil)
					for _, a := range [][2]string{{"objectClass", "inetOrgPerson"}, {"uid", "bench-hire"}, {"cn", "Ann Hire bench-hire"},
						{"givenName", "Ann"}, {"sn", "Hire"}, {"mail", "bench-hire@example.com"}, {"telephoneNumber", "+1 555 9999999"},
						{"employeeType", "staff"}} {
						req.Attribute(a[0], []string{a[1]})
					}
					if err := conn.Add(req); err != nil {
						b.Fatalf("add %s: %v", hire, err)
					}
				}},
				{"delete", func(int) {
					if err := conn.Del(ldap.NewDelRequest(hire, nil)); err != nil {
						b.Fatalf("delete %s: %v", hire, err)
					}
				}},
			})
		})
	}
}

// benchChange is a directory change of the benchmark: its name (the metrics') and how it
// is made in iteration i.
type benchChange struct {
	name string
	make func(i int)
}

// benchCycles runs the initial full read and apply, then per iteration a quiet cycle and,
// for each change, the change's cycle and the (quiet) cycle after it.
func benchCycles(b *testing.B, h *harness, eng *Engine, n int, made []benchChange) {
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
	quietCheck := func(what string, p *Plan) {
		if p.HasChanges() || p.SyncReads()[0].Mode != ReadIncremental {
			b.Fatalf("%s: %d changes, reads %+v", what, p.Len(), p.SyncReads())
		}
	}
	// measured runs one cycle, timed, with the peak of the heap in use above its rest.
	measured := func(i int, name string) (*Plan, time.Duration, int64) {
		b.StopTimer()
		runtime.GC()
		rest := heapInUse()
		b.StartTimer()
		peak := watchPeak()
		stop := cycleProfile(b, i, name)
		t0 := time.Now()
		p := cycle()
		took := time.Since(t0)
		stop()
		return p, took, peak() - rest
	}
	start := time.Now()
	cycle() // the initial full read and apply
	b.Logf("initial full read + apply of %d: %s", n, time.Since(start).Round(time.Millisecond))
	quietCheck("second cycle", cycle())
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
		quietCheck("quiet cycle", p)
		b.ReportMetric(quiet.Seconds(), "quiet-s")
		b.ReportMetric(float64(alloc)/(1<<20), "quiet-alloc-MiB")
		b.ReportMetric(float64(quietPeak)/(1<<20), "quiet-peak-MiB")
		b.ReportMetric(float64(rest)/(1<<20), "rest-heap-MiB")
		for _, c := range made {
			b.StopTimer()
			c.make(i)
			b.StartTimer()
			p, took, peak := measured(i, c.name)
			if r := p.SyncReads()[0]; r.Mode != ReadIncremental || r.Changes != 1 || !p.HasChanges() {
				b.Fatalf("%s: %d changes, reads %+v", c.name, p.Len(), p.SyncReads())
			}
			if i == 0 {
				b.Logf("%s: %s", c.name, strings.Join(changes(p), "; "))
			}
			b.ReportMetric(took.Seconds(), c.name+"-s")
			b.ReportMetric(float64(peak)/(1<<20), c.name+"-peak-MiB")
			// The cycle after the change: quiet again, after the engine's own apply moved
			// the state version (the next quiet cycle reuses its plan).
			p, took, peak = measured(i, "after-"+c.name)
			quietCheck("cycle after "+c.name, p)
			b.ReportMetric(took.Seconds(), "after-"+c.name+"-s")
			b.ReportMetric(float64(peak)/(1<<20), "after-"+c.name+"-peak-MiB")
		}
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
