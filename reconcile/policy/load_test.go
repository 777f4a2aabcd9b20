package policy_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roster-dev/roster/reconcile/policy"
	"github.com/roster-dev/roster/reconcile/policy/policytest"
)

// envInt reads a positive integer from the environment, or def.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestPolicyLoad is the load benchmark: 400,000 rooms, 2,000 requests/s from a
// concurrent node over HTTPS on loopback for 30 s, while full snapshots are rebuilt from
// scratch and swapped in the background (a stand-in for a full apply). Every answer is
// checked (one version, published in time). Opt-in: ROSTER_BENCH_POLICY=1; the sizes can
// be changed with ROSTER_BENCH_POLICY_ROOMS, _RATE and _SECONDS, and _REBUILD=0 leaves
// out the background rebuilds. It reports the latency the node sees (which includes its
// own wait for a CPU) and the server's own time per request.
func TestPolicyLoad(t *testing.T) {
	if os.Getenv("ROSTER_BENCH_POLICY") != "1" {
		t.Skip("load benchmark: set ROSTER_BENCH_POLICY=1 (takes about a minute and a GB)")
	}
	// versionedEstate disables one room in seven: generate enough for the wanted number
	// of rooms in the index.
	rooms := envInt("ROSTER_BENCH_POLICY_ROOMS", 400_000) * 7 / 6
	rate := envInt("ROSTER_BENCH_POLICY_RATE", 2000)
	duration := time.Duration(envInt("ROSTER_BENCH_POLICY_SECONDS", 30)) * time.Second
	rebuild := os.Getenv("ROSTER_BENCH_POLICY_REBUILD") != "0" // 0: measure without them
	devices := rooms / 10

	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	start := time.Now()
	first := buildVersion(t, rooms, devices, 1, nil)
	build := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&ms1)
	st := first.Stats()
	t.Logf("%d rooms, %d devices: built in %v; snapshot %d bytes (%.0f per room), heap +%d bytes",
		st.Rooms, st.Devices, build.Round(time.Millisecond), st.Bytes, float64(st.Bytes)/float64(st.Rooms), ms1.HeapAlloc-ms0.HeapAlloc)

	// The server's own time per request, beside what the node sees.
	var serverMu sync.Mutex
	var serverLat []time.Duration
	timed := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			t0 := time.Now()
			h.ServeHTTP(w, r)
			d := time.Since(t0)
			serverMu.Lock()
			serverLat = append(serverLat, d)
			serverMu.Unlock()
		})
	}
	p := startServer(t, "continue", false, timed)
	p.node.Client.Transport.(*http.Transport).MaxIdleConnsPerHost = 128
	var published swapClock
	published.swap(p.idx, first, 1)

	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()

	// Background: full rebuilds and swaps until the end.
	var swaps atomic.Int64
	var builds []time.Duration
	bgDone := make(chan struct{})
	go func() {
		defer close(bgDone)
		for v := 2; ctx.Err() == nil && rebuild; v++ {
			t0 := time.Now()
			s := buildVersion(t, rooms, devices, v, p.idx.Load())
			builds = append(builds, time.Since(t0))
			published.swap(p.idx, s, v)
			swaps.Add(1)
		}
	}()

	// Open-loop client: request k is due at start + k/rate whatever the previous ones did.
	type result struct {
		latency, lag time.Duration
		problem      string
	}
	jobs := make(chan time.Time, 4096)
	results := make(chan result, 4096)
	var wg sync.WaitGroup
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			n := w
			for due := range jobs {
				n += 64
				lag := time.Since(due)
				i := n * 7919 % rooms
				var pr probed
				switch n % 10 {
				case 0: // a device
					pr = probe(context.Background(), p.node, i%devices, true, &published)
				case 1, 2: // an alias roster does not own
					d := p.node.ServiceConfiguration(context.Background(), fmt.Sprintf("sip:stranger%d@example.org", n), url.Values{"call_direction": {"dial_out"}})
					pr.elapsed = d.Elapsed
					if d.Kind != policytest.Fallback || d.HTTPStatus != http.StatusOK {
						pr.problem = fmt.Sprintf("unknown alias: %v HTTP %d %s", d.Kind, d.HTTPStatus, d.Reason)
					}
				default:
					pr = probe(context.Background(), p.node, i, false, &published)
				}
				results <- result{latency: pr.elapsed, lag: lag, problem: pr.problem}
			}
		}(w)
	}
	var lat, lags []time.Duration
	var problems []string
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for r := range results {
			lat, lags = append(lat, r.latency), append(lags, r.lag)
			if r.problem != "" {
				problems = append(problems, r.problem)
			}
		}
	}()
	t0, cpu0 := time.Now(), cpuTime()
	interval := time.Second / time.Duration(rate)
	for k := 0; ; k++ {
		due := t0.Add(time.Duration(k) * interval)
		if time.Until(due) > 0 {
			time.Sleep(time.Until(due))
		}
		if ctx.Err() != nil {
			break
		}
		jobs <- due
	}
	close(jobs)
	wg.Wait()
	elapsed, cpu := time.Since(t0), cpuTime()-cpu0
	close(results)
	<-collected
	<-bgDone

	slices.Sort(lat)
	slices.Sort(serverLat)
	slices.Sort(lags)
	slices.Sort(builds)
	q := func(d []time.Duration, f float64) time.Duration {
		if len(d) == 0 {
			return 0
		}
		return d[min(len(d)-1, int(f*float64(len(d))))].Round(time.Microsecond)
	}
	t.Logf("%d requests in %v (%.0f/s) during %d full rebuilds+swaps (build p50 %v, max %v)",
		len(lat), elapsed.Round(time.Millisecond), float64(len(lat))/elapsed.Seconds(), swaps.Load(), q(builds, 0.5), q(builds, 1))
	t.Logf("latency p50 %v, p90 %v, p99 %v, p99.9 %v, max %v; scheduling lag p99 %v; %d errors",
		q(lat, 0.5), q(lat, 0.9), q(lat, 0.99), q(lat, 0.999), q(lat, 1), q(lags, 0.99), len(problems))
	t.Logf("server time per request p50 %v, p99 %v, p99.9 %v, max %v",
		q(serverLat, 0.5), q(serverLat, 0.99), q(serverLat, 0.999), q(serverLat, 1))
	t.Logf("process CPU %v in %v (%.2f cores): %v per request, node and server and rebuilds together; machine load average %s",
		cpu.Round(time.Millisecond), elapsed.Round(time.Millisecond), cpu.Seconds()/elapsed.Seconds(),
		(cpu / time.Duration(max(len(lat), 1))).Round(time.Microsecond), policytest.LoadAverage())
	st2 := p.srv.Status()
	t.Logf("answers: %v", st2.Answers)
	for i, pr := range problems {
		if i == 10 {
			t.Errorf("… and %d more", len(problems)-i)
			break
		}
		t.Error(pr)
	}
	if p99 := q(lat, 0.99); p99 > 5*time.Millisecond {
		t.Errorf("p99 latency %v, want ≤ 5ms", p99)
	}
	if got, want := float64(len(lat))/elapsed.Seconds(), 0.95*float64(rate); got < want {
		t.Errorf("%.0f requests/s, want about %d", got, rate)
	}
	if swaps.Load() < 2 {
		t.Errorf("only %d swaps during the run", swaps.Load())
	}
}

// discardWriter is a ResponseWriter that keeps only the status, so that the benchmark
// measures the handler, not a recorder.
type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }
func (w *discardWriter) Write(b []byte) (int, error) { w.n += len(b); return len(b), nil }

// BenchmarkServeHTTP: one request through the handler (auth, routing, alias
// normalization, lookup in 400,000 rooms, JSON encoding), no network.
func BenchmarkServeHTTP(b *testing.B) {
	rooms := envInt("ROSTER_BENCH_POLICY_ROOMS", 400_000) * 7 / 6 // one in seven disabled
	idx := &policy.Index{}
	idx.Swap(buildVersion(b, rooms, rooms/10, 1, nil))
	srv, err := policy.NewServer(idx, policy.Config{Username: testUser, Password: testPass})
	if err != nil {
		b.Fatal(err)
	}
	enabled := func(i, n int) int { // an object enabled in version 1 (see versionedEstate)
		if i %= n; (i+1)%7 == 0 {
			i = (i + 1) % n
		}
		return i
	}
	for _, bc := range []struct {
		name   string
		target func(i int) string
		want   int // bytes at least
	}{
		{"room", func(i int) string {
			return policy.ServiceConfigurationPath + "?local_alias=" + url.QueryEscape("sip:"+policytest.PersonalAlias(enabled(i*7919, rooms))) + "&protocol=sip&call_direction=dial_in"
		}, 200},
		{"unknown", func(i int) string {
			return policy.ServiceConfigurationPath + "?local_alias=sip%3Astranger" + strconv.Itoa(i) + "%40example.org&protocol=sip"
		}, 40},
		{"device", func(i int) string {
			return policy.RegistrationsPrefix + url.PathEscape(deviceAlias(enabled(i*7919, rooms/10))) + "?protocol=sip"
		}, 40},
	} {
		b.Run(bc.name, func(b *testing.B) {
			reqs := make([]*http.Request, 1024)
			for i := range reqs {
				reqs[i], _ = http.NewRequest(http.MethodGet, "https://policy.example"+bc.target(i+1), nil)
				reqs[i].SetBasicAuth(testUser, testPass)
			}
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				w.n = 0
				srv.ServeHTTP(w, reqs[i%len(reqs)])
				if w.status != http.StatusOK || w.n < bc.want {
					b.Fatalf("HTTP %d, %d bytes", w.status, w.n)
				}
				i++
			}
		})
	}
}

// BenchmarkBuild: building a snapshot from rooms already in memory (as the state reader
// hands them over), per room.
func BenchmarkBuild(b *testing.B) {
	rooms := make([]policy.Room, envInt("ROSTER_BENCH_POLICY_ROOMS", 100_000))
	for i := range rooms {
		rooms[i] = policytest.PersonalRoom(i, 1)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := policy.Build("b", rooms, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(rooms)), "ns/room")
}
