//go:build unix

package push

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/roster-dev/roster/reconcile/platform/pexip"
	"github.com/roster-dev/roster/reconcile/platform/pexip/pexipfake"
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

// fakeChildEnv makes the test binary, re-executed, serve a fake management node
// (TestPexipFakeProcess) instead of running tests.
const fakeChildEnv = "ROSTER_PEXIPFAKE_CHILD"

// fakeReport is what the fake's process says when it stops: its requests and the CPU it
// spent (its handlers and its side of HTTP).
type fakeReport struct {
	Requests int   `json:"requests"`
	CPUNanos int64 `json:"cpu_ns"`
}

// TestPexipFakeProcess is not a test: BenchmarkDeliver10k re-executes the test binary
// with fakeChildEnv set, and this serves a fake on loopback in that process, prints its
// URL, and when its stdin closes prints a fakeReport and exits.
func TestPexipFakeProcess(t *testing.T) {
	if os.Getenv(fakeChildEnv) == "" {
		t.Skip("helper process for BenchmarkDeliver10k")
	}
	fake := pexipfake.New("roster", "pw")
	start := cpuTime()
	fmt.Println(fake.URL)
	io.Copy(io.Discard, os.Stdin)
	cpu := cpuTime() - start
	b, _ := json.Marshal(fakeReport{Requests: fake.Stats().Requests, CPUNanos: int64(cpu)})
	fmt.Println(string(b))
	fake.Close()
	os.Exit(0)
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// fakeProcess is a fake management node in a process of its own.
type fakeProcess struct {
	url   string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

func startFakeProcess(tb testing.TB) *fakeProcess {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestPexipFakeProcess$", "-test.v=false")
	cmd.Env = append(os.Environ(), fakeChildEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	fp := &fakeProcess{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	line, err := fp.out.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "http://127.0.0.1:") {
		cmd.Process.Kill()
		tb.Fatalf("the fake's process said %q: %v", line, err)
	}
	fp.url = strings.TrimSpace(line)
	return fp
}

// stop ends the fake's process and returns its report.
func (fp *fakeProcess) stop(tb testing.TB) fakeReport {
	tb.Helper()
	fp.stdin.Close()
	var r fakeReport
	for {
		line, err := fp.out.ReadString('\n')
		if json.Unmarshal([]byte(line), &r) == nil && r.Requests > 0 {
			break
		}
		if err != nil {
			tb.Fatalf("the fake's process ended without a report: %v", err)
		}
	}
	if err := fp.cmd.Wait(); err != nil {
		tb.Fatalf("the fake's process: %v", err)
	}
	return r
}

// BenchmarkDeliver10k pushes 10,000 objects (5,000 conferences with two aliases each,
// 2,500 devices, 2,500 end users: one request each) through the deliverer as `roster
// apply` and `serve` run it (default workers and batch, SQLite queue in a file) to a fake
// with no latency and no rate limit. The fake runs in a process of its own, so that the
// benchmark process's CPU time (getrusage) is roster's alone: the client's JSON and
// request building, its side of HTTP on loopback, the claims and records in SQLite, the
// garbage collector. Reported:
//
//   - objects/s: unthrottled throughput (wall clock, both processes sharing the cores);
//   - client-cpu-µs/object: roster's CPU time per object;
//   - overhead-%-of-rate-budget: that CPU time against the time one object has at the
//     default rate (60 s / 900 requests, one request per object): the share of a real
//     push at the configured rate that is roster's own work rather than waiting for
//     the rate or the platform (the target: under 5 %);
//   - wall-%-of-rate-budget: the unthrottled wall time per object against the same
//     budget (an upper bound: it includes the fake's time and the loopback);
//   - fake-cpu-µs/object, sqlite-wall-µs/object (claims and records, wall clock),
//     requests/object.
//
// Where the client's time goes: run with -cpuprofile (the profile holds only roster's
// process) and `go tool pprof -top`; docs/operations.md has the figures.
//
//	go test -run XXX -bench Deliver10k -benchtime 1x ./reconcile/platform/push/
func BenchmarkDeliver10k(b *testing.B) {
	const n = 10000
	for range b.N {
		r := benchPush(b, n, 0)
		budget := float64((time.Minute / pexip.DefaultRate).Nanoseconds())
		b.ReportMetric(n/r.wall.Seconds(), "objects/s")
		b.ReportMetric(r.perObject(r.cpu)/1e3, "client-cpu-µs/object")
		b.ReportMetric(100*r.perObject(r.cpu)/budget, "overhead-%-of-rate-budget")
		b.ReportMetric(100*r.perObject(r.wall)/budget, "wall-%-of-rate-budget")
		b.ReportMetric(float64(r.fake.CPUNanos)/n/1e3, "fake-cpu-µs/object")
		b.ReportMetric(r.perObject(r.queue)/1e3, "sqlite-wall-µs/object")
		b.ReportMetric(float64(r.fake.Requests)/n, "requests/object")
		b.Logf("%d objects in %s (%.0f/s): roster's CPU %s (%.0f µs/object, %.2f %% of the %s one object has at %d requests/min), the fake's CPU %s, SQLite claims and records %s wall",
			n, r.wall.Round(time.Millisecond), n/r.wall.Seconds(), r.cpu.Round(time.Millisecond), r.perObject(r.cpu)/1e3,
			100*r.perObject(r.cpu)/budget, time.Minute/pexip.DefaultRate, pexip.DefaultRate,
			time.Duration(r.fake.CPUNanos).Round(time.Millisecond), r.queue.Round(time.Millisecond))
	}
}

// BenchmarkDeliver10kAtRate pushes the same 10,000 objects at a configured rate
// ($ROSTER_BENCH_PUSH_RATE requests per minute; default 60,000, ten seconds: the default
// 900 would take eleven minutes) and measures directly what share of the push's time
// roster's process was busy (its CPU time over the wall time), and that the rate held
// (wall time against n / rate, less the limiter's one-second burst).
func BenchmarkDeliver10kAtRate(b *testing.B) {
	const n = 10000
	rate := 60000
	if v := os.Getenv("ROSTER_BENCH_PUSH_RATE"); v != "" {
		if _, err := fmt.Sscan(v, &rate); err != nil || rate <= 0 {
			b.Fatalf("ROSTER_BENCH_PUSH_RATE=%q: a number of requests per minute", v)
		}
	}
	for range b.N {
		r := benchPush(b, n, rate)
		least := time.Duration(float64(n-rate/60) / float64(rate) * float64(time.Minute))
		if r.wall < least {
			b.Fatalf("%d objects in %s at %d requests/min: faster than the rate allows (%s)", n, r.wall, rate, least)
		}
		b.ReportMetric(float64(rate), "rate/min")
		b.ReportMetric(n/r.wall.Seconds()*60, "objects/min")
		b.ReportMetric(r.perObject(r.cpu)/1e3, "client-cpu-µs/object")
		b.ReportMetric(100*float64(r.cpu)/float64(r.wall), "client-cpu-%-of-push-time")
		b.Logf("%d objects at %d/min in %s (at least %s): roster's CPU %s, %.2f %% of the push's time",
			n, rate, r.wall.Round(time.Millisecond), least.Round(time.Millisecond), r.cpu.Round(time.Millisecond),
			100*float64(r.cpu)/float64(r.wall))
	}
}

// pushResult is one benchPush.
type pushResult struct {
	n         int
	wall, cpu time.Duration // the drain's wall time and roster's CPU time during it
	queue     time.Duration // claims and records in SQLite (wall)
	fake      fakeReport
}

func (r pushResult) perObject(d time.Duration) float64 {
	return float64(d.Nanoseconds()) / float64(r.n)
}

// benchPush enqueues n objects' creations in a fresh state and drains them to a fake in
// its own process at rate requests per minute (0: no limit), with the deliverer's
// defaults, timing the drain only.
func benchPush(b *testing.B, n, rate int) pushResult {
	b.StopTimer()
	fp := startFakeProcess(b)
	db, err := state.Open(context.Background(), filepath.Join(b.TempDir(), "roster.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	c, err := pexip.New(pexip.Config{URL: fp.url, Username: "roster", Password: "pw", Rate: rate})
	if err != nil {
		b.Fatal(err)
	}
	d := &Deliverer{DB: db, Client: c, Platform: "pexip", Marker: pexip.Marker{Instance: "bench"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ops := benchEstate(n)
	if len(ops) != n {
		b.Fatalf("%d operations", len(ops))
	}
	(&rig{db: db}).enqueue(b, ops)
	b.StartTimer()
	cpu0, start := cpuTime(), time.Now()
	p, err := d.Drain(context.Background())
	r := pushResult{n: n, wall: time.Since(start), cpu: cpuTime() - cpu0, queue: p.QueueTime}
	b.StopTimer()
	r.fake = fp.stop(b)
	if err != nil || p.Done != n || r.fake.Requests != n {
		b.Fatalf("drain: %+v, %v; the fake answered %d requests", p, err, r.fake.Requests)
	}
	return r
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
