package directory_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/roster-dev/roster/reconcile/directory"
	"github.com/roster-dev/roster/reconcile/directory/ldaptest"
)

// BenchmarkSync measures incremental reads against a real slapd with syncprov holding
// ROSTER_BENCH_N people (default 50,000; make bench sets 400,000), without and with a session
// log: the two ways of taking a Baseline (the contextCSN cookie Baseline uses, and the
// refreshOnly-from-nothing it falls back to), a refresh when nothing changed, a refresh after
// one modify, and (with the session log) how long a modify takes to reach Persist's fn.
// Besides wall time it reports this process's CPU (client-cpu-ms) and slapd's
// (slapd-cpu-ms, from /proc/<pid>/stat, 10 ms ticks) per operation, steadier than wall
// time on a shared machine. Set ROSTER_BENCH_LDAP=1.
func BenchmarkSync(b *testing.B) {
	n := benchSize(b, "ROSTER_BENCH_LDAP", "slapadds the people twice", "ROSTER_BENCH_N", 50_000)
	file := peopleFile(b, n)
	ctx := context.Background()
	for _, sl := range []int{0, 10000} {
		s := ldaptest.Start(b, ldaptest.Options{LDIFFile: file, Syncprov: true, SessionLog: sl})
		d, err := directory.NewLDAP(adminConfig(s))
		if err != nil {
			b.Fatal(err)
		}
		sy := d.(directory.Syncer)
		m := fullRead(b, d, syncReq)
		if len(m) != n {
			b.Fatalf("full read: %d entries", len(m))
		}
		measure := func(name string, op func(b *testing.B)) {
			measureCPU(b, fmt.Sprintf("sessionlog=%d/%s", sl, name), "slapd", s.PID(), op)
		}
		measure("baseline-contextCSN", func(b *testing.B) {
			for b.Loop() {
				if _, err := sy.Baseline(ctx, syncReq); err != nil {
					b.Fatal(err)
				}
			}
		})
		measure("baseline-refresh-uuids", func(b *testing.B) {
			for b.Loop() {
				if _, err := directory.RefreshBaseline(ctx, d, syncReq); err != nil {
					b.Fatal(err)
				}
			}
		})
		cookie, err := sy.Baseline(ctx, syncReq)
		if err != nil {
			b.Fatal(err)
		}
		measure("changes-none", func(b *testing.B) {
			for b.Loop() {
				res, err := sy.Changes(ctx, syncReq, cookie, m.known())
				if err != nil || len(res.Changes) != 0 {
					b.Fatalf("%d changes, %v", len(res.Changes), err)
				}
			}
		})
		c := s.Conn()
		i := 0
		measure("changes-one-modify", func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				i++
				mod := ldap.NewModifyRequest(fmt.Sprintf("uid=u%d,ou=people,dc=example,dc=com", i%n), nil)
				mod.Replace("sn", []string{"Bench" + strconv.Itoa(i)})
				if err := c.Modify(mod); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				res, err := sy.Changes(ctx, syncReq, cookie, m.known())
				if err != nil || len(res.Changes) != 1 {
					b.Fatalf("%d changes, %v", len(res.Changes), err)
				}
				cookie = res.Cookie
			}
		})
		if sl > 0 {
			measure("persist-modify-to-fn", func(b *testing.B) {
				pctx, cancel := context.WithCancel(ctx)
				defer cancel()
				got := make(chan directory.SyncResult, 1)
				go func() {
					_ = sy.Persist(pctx, syncReq, cookie, m.known(), func(r directory.SyncResult) error { got <- r; return nil })
				}()
				<-got // the refresh
				var total time.Duration
				for b.Loop() {
					i++
					mod := ldap.NewModifyRequest(fmt.Sprintf("uid=u%d,ou=people,dc=example,dc=com", i%n), nil)
					mod.Replace("sn", []string{"Bench" + strconv.Itoa(i)})
					t0 := time.Now()
					if err := c.Modify(mod); err != nil {
						b.Fatal(err)
					}
					select {
					case r := <-got:
						total += time.Since(t0)
						if len(r.Changes) != 1 {
							b.Fatalf("%d changes", len(r.Changes))
						}
					case <-time.After(30 * time.Second):
						b.Fatal("no batch within 30s")
					}
				}
				b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "modify-to-fn-ms")
			})
		}
		c.Close()
		d.Close()
		s.Stop()
	}
}

// procCPU returns the user+system CPU time of process pid (0 when unknown).
// benchSize skips b unless the environment variable gate is 1 (the benchmark is slow: why),
// and returns the size the variable size names, else def.
func benchSize(b *testing.B, gate, why, size string, def int) int {
	if os.Getenv(gate) != "1" {
		b.Skipf("set %s=1 to run (%s)", gate, why)
	}
	if v, err := strconv.Atoi(os.Getenv(size)); err == nil && v > 0 {
		return v
	}
	return def
}

// measureCPU runs op as sub-benchmark name and reports, per operation, this process's
// CPU and that of the server process pid (called server in the metric's name).
func measureCPU(b *testing.B, name, server string, pid int, op func(b *testing.B)) {
	b.Run(name, func(b *testing.B) {
		c0, s0 := cpuTime(), procCPU(pid)
		b.ResetTimer()
		op(b)
		b.StopTimer()
		b.ReportMetric(float64((cpuTime()-c0).Microseconds())/1000/float64(b.N), "client-cpu-ms/op")
		b.ReportMetric(float64((procCPU(pid)-s0).Microseconds())/1000/float64(b.N), server+"-cpu-ms/op")
	})
}

func procCPU(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // fields from the 3rd on
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ = 100
}
