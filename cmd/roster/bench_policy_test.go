package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/roster-dev/roster/reconcile/policy/policytest"
)

// policyBenchTemplate is the policy load benchmark's sync template, at version v: every
// person's VMR (two aliases) and device. The description, the PIN's first digit and the
// device password all carry v, so an answer shows which applied state it came from, and
// a room whose description and PIN disagree would be half of an apply.
func policyBenchTemplate(v int) string {
	return fmt.Sprintf(`name: staff
source: corp
user_search_dn: ou=people
user_filter: (objectClass=inetOrgPerson)
key_attribute: entryUUID
disabled_filter: (employeeType=disabled)
sync_vmrs: true
sync_devices: true
vmr:
  name: "{{cn}} VMR"
  description: "v%[1]d room of {{cn}}"
  aliases: ["{{uid}}@vc.example.com", "{{telephoneNumber|pex_clean_phone_number|pex_tail(7)}}"]
  pin: "%[1]d{{telephoneNumber|pex_clean_phone_number|pex_tail(5)}}"
  allow_guests: true
  max_callrate_in: 4128
  max_callrate_out: 4128
  participant_limit: 50
  tag: staff
  primary_owner_email_address: "{{mail}}"
device:
  alias: "{{uid}}@dev.example.com"
  description: "Soft client of {{cn}}"
  username: "{{uid}}"
  password: "v%[1]dx{{uid}}"
  tag: staff
  primary_owner_email_address: "{{mail}}"
emails:
  send: false
`, v)
}

// benchEnvInt reads a positive integer from the environment, or def.
func benchEnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// freeLoopbackAddr returns a loopback address with a port free at the time of asking.
func freeLoopbackAddr(t *testing.T) string { return fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t)) }

// policyProbe is one request of the load: when it was due, how long it took from then,
// the version of the state it was answered from (0: none, e.g. an unknown alias) and
// what was wrong with it.
type policyProbe struct {
	due     time.Time
	latency time.Duration
	version int
	problem string
}

// TestPolicyApplyLoad is the load benchmark against a real `roster serve`
// (skipped unless ROSTER_BENCH_POLICY=1; `make bench-policy`). A daemon in its own
// process, in policy mode with plain HTTP on loopback, applies a commit of N people from
// an LDIF file in the repo (ROSTER_BENCH_POLICY_ROOMS rooms, default 400,000, each with
// two aliases and a device). Then a fake conferencing node in this process sends
// ROSTER_BENCH_POLICY_RATE requests/s (default 2,000; open loop: latency counts from each
// request's intended send time, so a stall is not hidden by requests not sent) for at
// least ROSTER_BENCH_POLICY_SECONDS (default 30). ROSTER_BENCH_POLICY_BASELINE seconds in
// (default 10: the latency without an apply, for comparison), a commit changes every
// room's description and PIN and every device's password and the daemon is kicked by
// its webhook: the full apply (plan, write, policy snapshot rebuild) runs under the
// load, which goes on until two seconds after the new state is answered.
//
// Checked: every answer is the right object and wholly one version (a room's PIN and
// description from the same commit), no answer from the old version after one from the
// new, zero errors, the whole estate changed; p99 ≤ 5 ms. Printed: client latency
// p50/p99/p99.9/max (overall, and before, during and after the apply), a per-second
// timeline, from the daemon's /metrics the handler's own time, its goroutines' wait for
// a CPU and its GC pauses, the daemon's CPU and the machine's load average; written to
// $ROSTER_BENCH_POLICY_OUT (default bench-results/policy.json). ROSTER_BENCH_POLICY_PROFILE
// names a file for the daemon's CPU profile; the daemon's log (GODEBUG=gctrace=1 shows its
// collections) is copied beside the JSON.
func TestPolicyApplyLoad(t *testing.T) {
	if os.Getenv("ROSTER_BENCH_POLICY") != "1" {
		t.Skip("set ROSTER_BENCH_POLICY=1 (make bench-policy) to run the policy load benchmark")
	}
	rooms := benchEnvInt("ROSTER_BENCH_POLICY_ROOMS", 400_000)
	people := (rooms*50 + 48) / 49 // one person in 50 is disabled: no room
	rate := benchEnvInt("ROSTER_BENCH_POLICY_RATE", 2000)
	minLoad := time.Duration(benchEnvInt("ROSTER_BENCH_POLICY_SECONDS", 30)) * time.Second
	baseline := time.Duration(benchEnvInt("ROSTER_BENCH_POLICY_BASELINE", 10)) * time.Second
	applyTimeout := time.Duration(benchEnvInt("ROSTER_BENCH_POLICY_APPLY_TIMEOUT", 1800)) * time.Second

	bin := filepath.Join(t.TempDir(), "roster")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build roster: %v\n%s", err, out)
	}
	root := t.TempDir()
	r := &gitRepo{t: t, bare: filepath.Join(root, "remote.git"), work: filepath.Join(root, "work")}
	runGit(t, root, "init", "-q", "--bare", "-b", "main", r.bare)
	runGit(t, root, "clone", "-q", r.bare, r.work)
	runGit(t, r.work, "checkout", "-q", "-B", "main")
	r.write(map[string]string{"settings.yaml": "auto_activation_emails: false\n", "templates/staff.yaml": policyBenchTemplate(1)})
	writePeople(t, filepath.Join(r.work, "directory.ldif"), people)
	c1 := r.commitPush("v1")

	const password, hookSecret = "node-s3cret", "bench-hook"
	cfg, dir := writeServeConfig(t, serveConfig{URL: r.bare, Interval: "1h", NoMail: true, SecretEnv: "ROSTER_BENCH_HOOK",
		ListenAddr: freeLoopbackAddr(t), MaxEmails: 1,
		Extra: fmt.Sprintf(`platforms: pexip: {username: "pexip-node", password_env: "ROSTER_BENCH_POLICY_PASSWORD", mode: "policy", policy_listen: %q}
`, freeLoopbackAddr(t))})
	logPath := filepath.Join(dir, "serve.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "serve", "--config", cfg)
	cmd.Env = append(os.Environ(), "ROSTER_SECRET_KEY=policy-bench", "ROSTER_BENCH_POLICY_PASSWORD="+password,
		"ROSTER_BENCH_HOOK="+hookSecret)
	if p := os.Getenv("ROSTER_BENCH_POLICY_PROFILE"); p != "" {
		cmd.Env = append(cmd.Env, "ROSTER_CPUPROFILE="+p)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	started := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
		}
	}()
	logTail := func() string {
		b, _ := os.ReadFile(logPath)
		return string(b[max(0, len(b)-4000):])
	}
	// The daemon's HTTP address is in the config; wait for the first apply and snapshot.
	d := &daemonUnderTest{t: t, log: &syncBuffer{}}
	b, _ := os.ReadFile(cfg)
	d.addr = between(string(b), "http: listen: \"", "\"")
	policyAddr := between(string(b), "policy_listen: \"", "\"")
	waitServe := func(what string, timeout time.Duration, cond func(*Status) bool) *Status {
		deadline := time.Now().Add(timeout)
		for {
			select {
			case err := <-exited:
				t.Fatalf("serve exited (%v) while waiting for %s\n%s", err, what, logTail())
			default:
			}
			if s, ok := tryStatus(d.url("/api/status")); ok && cond(s) {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out after %v waiting for %s\n%s", timeout, what, logTail())
			}
			time.Sleep(time.Second)
		}
	}
	s1 := waitServe("the first apply and its policy snapshot", 60*time.Minute, func(s *Status) bool {
		return s.AppliedCommit == c1 && s.Policy != nil && s.Policy.Ready && s.Policy.Snapshot.Version == fmt.Sprintf("state %d", s.StateVersion)
	})
	if got := s1.Policy.Snapshot.Rooms; got < rooms {
		t.Fatalf("snapshot holds %d rooms, want %d", got, rooms)
	}
	t.Logf("initial apply of %d people (%d rooms, %d devices) and snapshot in %v", people, s1.Policy.Snapshot.Rooms,
		s1.Policy.Snapshot.Devices, time.Since(started).Round(time.Second))
	v1State := s1.StateVersion

	node := &policytest.Node{BaseURL: "http://" + policyAddr, Username: "pexip-node", Password: password,
		Client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}}}
	defer node.Client.CloseIdleConnections()
	// Warm the connections and check the v1 answers before the clock starts.
	for i := 0; i < 200; i++ {
		if p := probePolicy(node, i*7919%people, i, people); p.problem != "" || (p.version != 0 && p.version != 1) {
			t.Fatalf("before the load: %+v", p)
		}
	}

	metrics0 := scrapeHistograms(t, d.url("/metrics"))
	answerer := s1.Policy.AnswererPID // the answering process (policy.RunAnswerer)
	cpu0, self0, ans0 := processCPU(cmd.Process.Pid), processCPU(os.Getpid()), processCPU(answerer)
	var firstNew atomic.Int64 // unix nanos of the first answer from version 2 completing
	firstNew.Store(1<<63 - 1)

	const workers = 256
	jobs := make(chan time.Time, 1<<16)
	results := make(chan policyProbe, 1<<16)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			n := w
			for due := range jobs {
				n += workers
				p := probePolicy(node, n*7919%people, n, people)
				p.due = due
				done := time.Now()
				p.latency = done.Sub(due)
				if p.version == 2 {
					for cur := firstNew.Load(); done.UnixNano() < cur && !firstNew.CompareAndSwap(cur, done.UnixNano()); cur = firstNew.Load() {
					}
				}
				if p.version == 1 && due.UnixNano() > firstNew.Load() {
					p.problem = "version 1 answered after version 2 was"
				}
				results <- p
			}
		}(w)
	}
	var probes []policyProbe
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for p := range results {
			probes = append(probes, p)
		}
	}()

	// The apply: two seconds into the load, the v2 commit and the webhook's kick.
	t0 := time.Now()
	var pushedAt, appliedAt time.Time
	var s2 *Status
	applyDone := make(chan struct{})
	go func() {
		defer close(applyDone)
		time.Sleep(baseline)
		r.write(map[string]string{"templates/staff.yaml": policyBenchTemplate(2)})
		c2 := r.commitPush("v2: every room's description and PIN, every device's password")
		pushedAt = time.Now()
		body := []byte(`{"ref":"refs/heads/main"}`)
		if code := d.hook(sign([]byte(hookSecret), body), body); code/100 != 2 {
			t.Errorf("webhook: HTTP %d", code)
		}
		// Polled here, not with waitServe: the load's figures are reported even when the
		// apply does not finish within applyTimeout.
		for deadline := time.Now().Add(applyTimeout); time.Now().Before(deadline); time.Sleep(time.Second) {
			if s, ok := tryStatus(d.url("/api/status")); ok && s.AppliedCommit == c2 && s.StateVersion > v1State &&
				s.Policy.Snapshot.Version == fmt.Sprintf("state %d", s.StateVersion) {
				s2, appliedAt = s, time.Now()
				return
			}
		}
		appliedAt = time.Now()
	}()
	interval := time.Second / time.Duration(rate)
	var end time.Time
	for k := 0; ; k++ {
		due := t0.Add(time.Duration(k) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		if due.Sub(t0) >= minLoad {
			select {
			case <-applyDone:
				if end.IsZero() {
					end = appliedAt.Add(2 * time.Second)
				}
			default:
			}
			if !end.IsZero() && due.After(end) {
				break
			}
		}
		jobs <- due
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(t0)
	cpu, selfCPU, ansCPU := processCPU(cmd.Process.Pid)-cpu0, processCPU(os.Getpid())-self0, processCPU(answerer)-ans0
	close(results)
	<-collected
	if s2 == nil {
		t.Errorf("the second apply was not answered within %v (ROSTER_BENCH_POLICY_APPLY_TIMEOUT seconds); the figures cover the load until then", applyTimeout)
	}
	metrics1 := scrapeHistograms(t, d.url("/metrics"))

	// After the load: the whole estate answers version 2.
	notNew := 0
	for i := 0; i < 2000; i++ {
		if p := probePolicy(node, i*104729%people, i, people); p.problem != "" || (p.version != 0 && p.version != 2) {
			notNew++
		}
	}

	// Figures.
	lat := make([]time.Duration, len(probes))
	var problems []string
	versions := map[int]int{}
	for i, p := range probes {
		lat[i] = p.latency
		versions[p.version]++
		if p.problem != "" {
			problems = append(problems, fmt.Sprintf("at +%v: %s", p.due.Sub(t0).Round(time.Millisecond), p.problem))
		}
	}
	slices.Sort(lat)
	q := func(f float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(f*float64(len(lat))))]
	}
	mixed := 0
	for _, p := range problems {
		if strings.Contains(p, "mixed") {
			mixed++
		}
	}
	res := map[string]any{
		"date": time.Now().UTC().Format(time.RFC3339), "rooms": s1.Policy.Snapshot.Rooms, "devices": s1.Policy.Snapshot.Devices,
		"rate": rate, "requests": len(probes), "seconds": elapsed.Seconds(),
		"apply_seconds": appliedAt.Sub(pushedAt).Seconds(), "apply_start_s": pushedAt.Sub(t0).Seconds(), "apply_end_s": appliedAt.Sub(t0).Seconds(),
		"p50_ms": ms(q(0.5)), "p90_ms": ms(q(0.9)), "p99_ms": ms(q(0.99)), "p999_ms": ms(q(0.999)), "max_ms": ms(q(1)),
		"errors": len(problems), "mixed_answers": mixed, "answers_by_version": versions,
		"daemon_cpu_seconds": cpu.Seconds(), "answerer_cpu_seconds": ansCPU.Seconds(), "node_cpu_seconds": selfCPU.Seconds(), "load_average": policytest.LoadAverage(),
	}
	hists := map[string][]histBucket{}
	for _, name := range benchHistograms {
		hists[name] = diffHistogram(metrics0[name], metrics1[name])
	}
	res["histograms"] = hists
	fmt.Printf("\npolicy load: %d rooms, %d devices; %d requests in %.1f s (%.0f/s), open loop, latency from intended send time\n",
		s1.Policy.Snapshot.Rooms, s1.Policy.Snapshot.Devices, len(probes), elapsed.Seconds(), float64(len(probes))/elapsed.Seconds())
	fmt.Printf("full apply under load: pushed at +%.1f s, new state answered at +%.1f s (%.1f s)\n",
		pushedAt.Sub(t0).Seconds(), appliedAt.Sub(t0).Seconds(), appliedAt.Sub(pushedAt).Seconds())
	fmt.Printf("latency p50 %v  p90 %v  p99 %v  p99.9 %v  max %v\n", q(0.5).Round(time.Microsecond), q(0.9).Round(time.Microsecond),
		q(0.99).Round(time.Microsecond), q(0.999).Round(time.Microsecond), q(1).Round(time.Microsecond))
	for _, w := range []struct {
		name     string
		from, to time.Time
	}{{"before the apply", t0, pushedAt}, {"during the apply", pushedAt, appliedAt}, {"after it", appliedAt, t0.Add(elapsed)}} {
		var l []time.Duration
		for _, p := range probes {
			if !p.due.Before(w.from) && p.due.Before(w.to) {
				l = append(l, p.latency)
			}
		}
		slices.Sort(l)
		if len(l) > 0 {
			pct := func(f float64) time.Duration { return l[min(len(l)-1, int(f*float64(len(l))))].Round(time.Microsecond) }
			fmt.Printf("  %-17s %6d requests: p50 %v  p99 %v  p99.9 %v  max %v\n", w.name, len(l), pct(0.5), pct(0.99), pct(0.999), pct(1))
			res["p99_ms_"+strings.ReplaceAll(w.name, " ", "_")] = ms(pct(0.99))
		}
	}
	fmt.Printf("errors %d, mixed answers %d, answers by version %v, version-2 misses after the load %d/2000\n", len(problems), mixed, versions, notNew)
	fmt.Printf("daemon CPU %.1f s in %.1f s (%.2f cores); its answering process (pid %d) %.1f s (%.0f µs a request); the node (this process) %.1f s (%.0f µs a request); machine load average %s\n",
		cpu.Seconds(), elapsed.Seconds(), cpu.Seconds()/elapsed.Seconds(), answerer, ansCPU.Seconds(),
		float64(ansCPU.Microseconds())/float64(max(len(probes), 1)), selfCPU.Seconds(),
		float64(selfCPU.Microseconds())/float64(max(len(probes), 1)), policytest.LoadAverage())
	fmt.Printf("during the load (upper bounds of the buckets holding p50, p99, p99.9):\n")
	for _, c := range []struct{ name, what string }{
		{"roster_policy_request_duration_seconds", "answering process: handler's own time"},
		{"go_sched_latencies_seconds", "reconciler: goroutine runnable → running"},
		{"go_sched_pauses_total_gc_seconds", "reconciler: GC stop-the-world pauses"},
	} {
		h := hists[c.name]
		fmt.Printf("  %-42s %8d: p50 ≤ %-9s p99 ≤ %-9s p99.9 ≤ %s\n", c.what, h[len(h)-1].Count, histQuantile(h, 0.5),
			histQuantile(h, 0.99), histQuantile(h, 0.999))
	}
	fmt.Printf("  policy answer time by bucket:")
	for _, bkt := range hists["roster_policy_request_duration_seconds"] {
		fmt.Printf(" ≤%s %.2f%%", bkt.Le, bkt.Percent)
	}
	fmt.Println()
	fmt.Printf("timeline (second: requests, p99, max):\n")
	printTimeline(probes, t0)
	out := writeBenchJSON(t, "ROSTER_BENCH_POLICY_OUT", "policy.json", res)
	if serveLog, err := os.ReadFile(logPath); err == nil { // the daemon's log beside the figures
		os.WriteFile(strings.TrimSuffix(out, ".json")+"-serve.log", serveLog, 0o644)
	}

	for i, p := range problems {
		if i == 10 {
			t.Errorf("… and %d more", len(problems)-i)
			break
		}
		t.Error(p)
	}
	if notNew > 0 {
		t.Errorf("%d of 2000 probes after the load do not answer version 2", notNew)
	}
	if versions[1] == 0 || versions[2] == 0 {
		t.Errorf("answers by version %v: the load did not span the apply", versions)
	}
	if got, want := float64(len(probes))/elapsed.Seconds(), 0.95*float64(rate); got < want {
		t.Errorf("%.0f requests/s, want about %d", got, rate)
	}
	if p99 := q(0.99); p99 > 5*time.Millisecond {
		t.Errorf("p99 latency %v, want ≤ 5ms (machine load average %s)", p99, policytest.LoadAverage())
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// between returns the text of s between the first before and the after that follows.
func between(s, before, after string) string {
	i := strings.Index(s, before)
	if i < 0 {
		return ""
	}
	s = s[i+len(before):]
	if j := strings.Index(s, after); j >= 0 {
		return s[:j]
	}
	return ""
}

// probePolicy sends request n of the load: seven in ten a room (person i's personal or
// phone alias, with or without a scheme), one a device registration, two an alias roster
// does not own. It checks the answer against person i and reads its version.
func probePolicy(node *policytest.Node, i, n, people int) policyProbe {
	ctx := context.Background()
	if i%50 == 49 { // disabled: no room; take the next person
		i = (i + 1) % people
	}
	uid := "u" + strconv.Itoa(i)
	var p policyProbe
	switch n % 10 {
	case 0:
		d := node.Registration(ctx, uid+"@dev.example.com", "sip")
		switch {
		case d.Kind != policytest.Register:
			p.problem = fmt.Sprintf("device %s: %v HTTP %d %s", uid, d.Kind, d.HTTPStatus, d.Reason)
		case d.Credentials.Username != uid:
			p.problem = fmt.Sprintf("device %s: username %q", uid, d.Credentials.Username)
		case d.Credentials.Password == "v1x"+uid:
			p.version = 1
		case d.Credentials.Password == "v2x"+uid:
			p.version = 2
		default:
			p.problem = fmt.Sprintf("device %s: password of no version", uid)
		}
	case 1, 2:
		d := node.ServiceConfiguration(ctx, "sip:stranger"+strconv.Itoa(n)+"@example.org", url.Values{"call_direction": {"dial_out"}})
		if d.Kind != policytest.Fallback || d.HTTPStatus != http.StatusOK {
			p.problem = fmt.Sprintf("unknown alias: %v HTTP %d %s", d.Kind, d.HTTPStatus, d.Reason)
		}
	default:
		alias := uid + "@vc.example.com"
		switch n % 4 {
		case 0:
			alias = "sip:" + alias
		case 1:
			alias = fmt.Sprintf("%07d", i) // the phone alias: +1 555 <i>'s last 7 digits
		}
		d := node.ServiceConfiguration(ctx, alias, nil)
		s := d.Service
		switch {
		case d.Kind != policytest.Conference:
			p.problem = fmt.Sprintf("room %s: %v HTTP %d %s", alias, d.Kind, d.HTTPStatus, d.Reason)
		case !strings.HasSuffix(s.Name, " "+uid+" VMR"):
			p.problem = fmt.Sprintf("room %s: answered %q", alias, s.Name)
		case len(s.PIN) != 6 || !strings.HasPrefix(s.Description, "v"+s.PIN[:1]+" "):
			p.problem = fmt.Sprintf("room %s: mixed answer: PIN %s… with description %q", alias, s.PIN[:min(1, len(s.PIN))], s.Description)
		default:
			p.version = int(s.PIN[0] - '0')
		}
	}
	return p
}

// tryStatus reads /api/status; false while the daemon is not answering.
func tryStatus(u string) (*Status, bool) {
	resp, err := http.Get(u)
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	var s Status
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&s) != nil {
		return nil, false
	}
	return &s, true
}

// processCPU is pid's user+system CPU time so far (Linux /proc; 0 elsewhere).
func processCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// The daemon's histograms the benchmark reads: the policy answers' own time, how long
// its goroutines waited for a CPU, and the collector's stop-the-world pauses.
var benchHistograms = []string{"roster_policy_request_duration_seconds", "go_sched_latencies_seconds", "go_sched_pauses_total_gc_seconds"}

// scrapeHistograms reads the cumulative buckets of benchHistograms: name → le → count.
func scrapeHistograms(t *testing.T, u string) map[string]map[string]float64 {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	m := map[string]map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		for _, name := range benchHistograms {
			prefix := name + `_bucket{le="`
			if !strings.HasPrefix(line, prefix) {
				continue
			}
			le, rest, _ := strings.Cut(line[len(prefix):], `"}`)
			v, _ := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if m[name] == nil {
				m[name] = map[string]float64{}
			}
			m[name][le] = v
		}
	}
	io.Copy(io.Discard, resp.Body)
	for _, name := range benchHistograms {
		if len(m[name]) == 0 {
			t.Fatalf("metrics: no %s buckets", name)
		}
	}
	return m
}

// histQuantile is the upper bound of the bucket holding quantile q of a diffed histogram.
func histQuantile(h []histBucket, q float64) string {
	if len(h) == 0 {
		return "?"
	}
	total := float64(h[len(h)-1].Count)
	for _, b := range h {
		if float64(b.Count) >= q*total {
			if v, err := strconv.ParseFloat(b.Le, 64); err == nil && v < 1e6 {
				return time.Duration(v * float64(time.Second)).String()
			}
			return b.Le
		}
	}
	return "?"
}

// histBucket is one bucket of the server's latency histogram over the load: requests
// answered in at most Le seconds (cumulative) and their share.
type histBucket struct {
	Le      string  `json:"le"`
	Count   int64   `json:"count"`
	Percent float64 `json:"percent"`
}

func diffHistogram(before, after map[string]float64) []histBucket {
	var les []string
	for le := range after {
		les = append(les, le)
	}
	val := func(le string) float64 {
		if le == "+Inf" {
			return 1e300
		}
		v, _ := strconv.ParseFloat(le, 64)
		return v
	}
	slices.SortFunc(les, func(a, b string) int { return cmpFloat(val(a), val(b)) })
	total := after["+Inf"] - before["+Inf"]
	var out []histBucket
	for _, le := range les {
		n := after[le] - before[le]
		out = append(out, histBucket{Le: le, Count: int64(n), Percent: 100 * n / max(total, 1)})
	}
	return out
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// printTimeline prints, per second of the load, the requests due in it, their p99 and max.
func printTimeline(probes []policyProbe, t0 time.Time) {
	bySec := map[int][]time.Duration{}
	last := 0
	for _, p := range probes {
		s := int(p.due.Sub(t0) / time.Second)
		bySec[s] = append(bySec[s], p.latency)
		last = max(last, s)
	}
	var line strings.Builder
	for s := 0; s <= last; s++ {
		l := bySec[s]
		slices.Sort(l)
		if len(l) == 0 {
			continue
		}
		fmt.Fprintf(&line, "%3d: %4d %7.2f %7.2f ms | ", s, len(l), ms(l[min(len(l)-1, len(l)*99/100)]), ms(l[len(l)-1]))
		if s%3 == 2 {
			fmt.Println(strings.TrimSuffix(line.String(), " | "))
			line.Reset()
		}
	}
	if line.Len() > 0 {
		fmt.Println(strings.TrimSuffix(line.String(), " | "))
	}
}
