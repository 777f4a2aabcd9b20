package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const boardRoomDesc = "Board meetings; guests wait for a host"

// TestServeGitSync: the first cycle applies the repo; a pushed commit is applied within
// the interval; /metrics has the daemon's metrics; a second daemon on the same database
// gets the lock error.
func TestServeGitSync(t *testing.T) {
	r := newGitRepo(t)
	c1 := r.commitPush("initial")
	cfg, dir := writeServeConfig(t, serveConfig{URL: r.bare, Interval: "200ms"})
	d := startServe(t, cfg)

	s := d.waitStatus("the first sync", 110*time.Second, func(s *Status) bool { return s.Daemon.Ready && s.AppliedCommit == c1 })
	if s.Daemon.GoodCommit != c1 || s.Daemon.Commit != c1 || s.Daemon.LastError != "" {
		t.Fatalf("daemon after first sync = %+v, want good commit %s and no error", s.Daemon, c1)
	}
	if s.Objects["vmrs"] == 0 || len(s.Templates) != 2 {
		t.Fatalf("first sync: objects %v, templates %+v", s.Objects, s.Templates)
	}
	db := openDB(t, filepath.Join(dir, "roster.db"))
	if got := queryString(t, db, `SELECT description FROM vmrs WHERE name = 'Board Room'`); got != boardRoomDesc {
		t.Fatalf("Board Room description = %q", got)
	}
	// The admin summary of a sync that changed something (settings.notify_admins). It is
	// enqueued in its own transaction just after the apply's, so the status may say
	// "applied" a moment before it is there: wait for it, then require exactly one.
	summaries := func() int {
		return queryInt(t, db, `SELECT COUNT(*) FROM outbox WHERE kind = 'admin_summary' AND to_addr = 'ops@example.com'`)
	}
	for deadline := time.Now().Add(10 * time.Second); summaries() == 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if n := summaries(); n != 1 {
		t.Errorf("admin summaries after the first sync = %d, want 1", n)
	}
	// The mailer delivers continuously: everything enqueued ends up in mail_dir.
	enqueued := queryInt(t, db, `SELECT COUNT(*) FROM outbox`)
	d.waitStatus("the emails to be delivered", 10*time.Second, func(s *Status) bool { return s.Outbox["sent"] == enqueued })
	if files, _ := filepath.Glob(filepath.Join(dir, "outbox", "*.eml")); len(files) != enqueued {
		t.Errorf("mail_dir holds %d messages, the outbox %d", len(files), enqueued)
	}
	if st := queryString(t, db, `SELECT status FROM outbox WHERE kind = 'admin_summary'`); st != "sent" {
		t.Errorf("admin summary status = %q, want sent", st)
	}

	// A pushed change is applied within a few intervals.
	r.write(map[string]string{"vmrs/team-rooms.yaml": strings.Replace(r.read("vmrs/team-rooms.yaml"), boardRoomDesc, "Board meetings, second floor", 1)})
	c2 := r.commitPush("board room moves")
	pushed := time.Now()
	d.waitStatus("the second commit", 10*time.Second, func(s *Status) bool { return s.AppliedCommit == c2 })
	t.Logf("commit applied %v after the push (interval 200ms)", time.Since(pushed).Round(time.Millisecond))
	if got := queryString(t, db, `SELECT description FROM vmrs WHERE name = 'Board Room'`); got != "Board meetings, second floor" {
		t.Fatalf("Board Room description after the push = %q", got)
	}
	if n := queryInt(t, db, `SELECT COUNT(*) FROM audit WHERE kind = 'vmr' AND action = 'update' AND key = 'Board Room' AND actor = 'daemon' AND commit_id = ?`, c2); n != 1 {
		t.Errorf("audit rows for the update = %d, want 1", n)
	}

	// Unchanged input: later cycles write nothing.
	sv := d.status().StateVersion
	cycles := d.status().Daemon.Cycles
	d.waitStatus("two more cycles", 10*time.Second, func(s *Status) bool { return s.Daemon.Cycles >= cycles+2 })
	if got := d.status().StateVersion; got != sv {
		t.Errorf("state version moved from %d to %d with no input change", sv, got)
	}

	d.waitStatus("the update's emails", 10*time.Second, func(s *Status) bool { return s.Outbox["pending"] == 0 && s.Outbox["sending"] == 0 })
	sent := d.status().Outbox["sent"]
	code, metrics := d.get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, name := range []string{"roster_reconcile_duration_seconds_bucket", "roster_last_success_timestamp_seconds", "roster_objects{kind=\"vmrs\"}",
		"roster_changes_applied_total{action=\"update\",kind=\"vmr\"} 1", "roster_emails_sent_total " + strconv.Itoa(sent), "roster_emails_failed_total",
		"roster_git_fetch_failures_total 0", "roster_directory_errors_total", "roster_validation_failures_total 0", "roster_reconcile_cycles_total"} {
		if !strings.Contains(metrics, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if code, _ := d.get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d", code)
	}

	// One daemon per state database.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out, errOut syncBuffer
	err := Run(ctx, []string{"serve", "--config", cfg}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "another roster daemon holds") || !strings.Contains(err.Error(), "roster.db.lock") {
		t.Fatalf("second daemon: err = %v, want the lock error", err)
	}

	if err := d.stop(); err != nil {
		t.Fatalf("serve returned %v after cancel, want nil", err)
	}
	if !strings.Contains(d.log.String(), "serve: stopped") {
		t.Errorf("log lacks the stop message:\n%s", d.log)
	}
}

// TestServeInvalidCommit: /readyz is 503 until the first good sync; a commit that does
// not validate is reported (error + commit) and the last good one stays in force; a fix
// recovers by itself. Uses a file:// URL.
func TestServeInvalidCommit(t *testing.T) {
	r := newGitRepo(t)
	good := r.read("settings.yaml")
	r.write(map[string]string{"settings.yaml": "admins: [ops@example.com\nnotify_admins: true\n"})
	bad1 := r.commitPush("broken from the start")
	cfg, dir := writeServeConfig(t, serveConfig{URL: "file://" + r.bare, Interval: "200ms"})
	d := startServe(t, cfg)

	s := d.waitStatus("the invalid first commit", 10*time.Second, func(s *Status) bool { return s.Daemon.InvalidCommit == bad1 && s.Daemon.Cycles >= 1 })
	if s.Daemon.Ready || s.Daemon.GoodCommit != "" || len(s.Daemon.ValidationErrors) == 0 || !strings.Contains(s.Daemon.ValidationErrors[0], "settings.yaml") {
		t.Fatalf("daemon with only an invalid commit = %+v", s.Daemon)
	}
	if code, _ := d.get("/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz before any good sync = %d, want 503", code)
	}
	if s.Objects["vmrs"] != 0 {
		t.Fatalf("an invalid commit applied %d VMRs", s.Objects["vmrs"])
	}

	r.write(map[string]string{"settings.yaml": good})
	c1 := r.commitPush("fixed")
	d.waitStatus("the good commit", 10*time.Second, func(s *Status) bool { return s.AppliedCommit == c1 && s.Daemon.Ready })
	if code, _ := d.get("/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz after the first good sync = %d, want 200", code)
	}
	db := openDB(t, filepath.Join(dir, "roster.db"))
	vmrs := queryInt(t, db, `SELECT COUNT(*) FROM vmrs`)
	sv := d.status().StateVersion

	// A broken commit that would also change a VMR: nothing of it is applied.
	r.write(map[string]string{
		"vmrs/team-rooms.yaml": strings.Replace(r.read("vmrs/team-rooms.yaml"), boardRoomDesc, "should never be applied", 1),
		"templates/staff.yaml": r.read("templates/staff.yaml") + "\nvmr: [this is: not: valid\n",
	})
	bad2 := r.commitPush("broken")
	s = d.waitStatus("the broken commit reported", 10*time.Second, func(s *Status) bool { return s.Daemon.InvalidCommit == bad2 })
	if s.Daemon.GoodCommit != c1 || s.Daemon.Commit != bad2 || s.Daemon.State != "failed" || len(s.Daemon.ValidationErrors) == 0 ||
		!strings.Contains(strings.Join(s.Daemon.ValidationErrors, "\n"), "templates/staff.yaml") {
		t.Fatalf("daemon after the broken commit = %+v", s.Daemon)
	}
	// It keeps reconciling the good commit, and the page shows the error and the commit.
	cycles := s.Daemon.Cycles
	d.waitStatus("more cycles", 10*time.Second, func(s *Status) bool { return s.Daemon.Cycles >= cycles+2 })
	if got := queryString(t, db, `SELECT description FROM vmrs WHERE name = 'Board Room'`); got != boardRoomDesc {
		t.Fatalf("the broken commit changed Board Room: %q", got)
	}
	if got := queryInt(t, db, `SELECT COUNT(*) FROM vmrs`); got != vmrs || d.status().StateVersion != sv || d.status().AppliedCommit != c1 {
		t.Fatalf("the broken commit changed the state: %d VMRs (was %d), version %d (was %d)", got, vmrs, d.status().StateVersion, sv)
	}
	if code, _ := d.get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz with a good commit in force = %d, want 200", code)
	}
	_, page := d.get("/")
	if !strings.Contains(page, bad2) || !strings.Contains(page, "templates/staff.yaml") || !strings.Contains(page, `id="daemon-good-commit">`+c1) {
		t.Errorf("status page does not show the invalid commit, its errors and the good commit:\n%s", page)
	}
	// One error email per distinct error, not one per tick.
	if n := queryInt(t, db, `SELECT COUNT(*) FROM outbox WHERE kind = 'sync_error' AND commit_id = ?`, bad2); n != 1 {
		t.Errorf("sync_error emails for the broken commit = %d, want 1 (after %d cycles)", n, d.status().Daemon.Cycles-cycles+1)
	}

	// The fix recovers by itself.
	r.write(map[string]string{"templates/staff.yaml": strings.TrimSuffix(r.read("templates/staff.yaml"), "\nvmr: [this is: not: valid\n")})
	c3 := r.commitPush("fix the template")
	s = d.waitStatus("recovery", 10*time.Second, func(s *Status) bool { return s.AppliedCommit == c3 })
	if s.Daemon.InvalidCommit != "" || len(s.Daemon.ValidationErrors) != 0 || s.Daemon.GoodCommit != c3 {
		t.Fatalf("daemon after the fix = %+v", s.Daemon)
	}
	d.waitStatus("no error", 10*time.Second, func(s *Status) bool { return s.Daemon.LastError == "" && s.Daemon.State != "failed" })
	if got := queryString(t, db, `SELECT description FROM vmrs WHERE name = 'Board Room'`); got != "should never be applied" {
		t.Fatalf("after the fix Board Room = %q, want the fixed commit's description", got)
	}
	_, metrics := d.get("/metrics")
	if !strings.Contains(metrics, "roster_validation_failures_total 2") {
		t.Errorf("want roster_validation_failures_total 2 (two invalid commits), metrics:\n%s", grepLines(metrics, "roster_validation"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestServeWebhook: with a long interval, a validly signed webhook applies a pushed commit
// at once; a bad signature is 401 and triggers nothing; a flood of signed requests
// coalesces into a handful of cycles while /healthz keeps answering.
func TestServeWebhook(t *testing.T) {
	const env = "ROSTER_TEST_WEBHOOK_SECRET"
	secret := []byte("s3cret-for-tests")
	t.Setenv(env, string(secret))
	r := newGitRepo(t)
	c1 := r.commitPush("initial")
	cfg, _ := writeServeConfig(t, serveConfig{URL: r.bare, Interval: "1h", SecretEnv: env})
	d := startServe(t, cfg)
	d.waitStatus("the first sync", 110*time.Second, func(s *Status) bool { return s.AppliedCommit == c1 && s.Daemon.State == "idle" })

	r.write(map[string]string{"vmrs/team-rooms.yaml": strings.Replace(r.read("vmrs/team-rooms.yaml"), boardRoomDesc, "Hooked", 1)})
	c2 := r.commitPush("change")
	cycles := d.status().Daemon.Cycles

	body := []byte(`{"ref":"refs/heads/main"}`)
	for _, sig := range []string{"", "sha256=00", sign([]byte("wrong"), body), "sha1=" + strings.TrimPrefix(sign(secret, body), "sha256=")} {
		if code := d.hook(sig, body); code != http.StatusUnauthorized {
			t.Fatalf("webhook with signature %q = %d, want 401", sig, code)
		}
	}
	time.Sleep(400 * time.Millisecond)
	if s := d.status(); s.Daemon.Cycles != cycles || s.AppliedCommit != c1 {
		t.Fatalf("bad webhooks triggered a sync: cycles %d → %d, applied %s", cycles, s.Daemon.Cycles, s.AppliedCommit)
	}

	start := time.Now()
	if code := d.hook(sign(secret, body), body); code != http.StatusAccepted {
		t.Fatalf("signed webhook = %d, want 202", code)
	}
	d.waitStatus("the webhook's sync", 10*time.Second, func(s *Status) bool { return s.AppliedCommit == c2 })
	t.Logf("webhook → applied in %v", time.Since(start).Round(time.Millisecond))

	// Flood: 500 signed requests from 8 clients; /healthz answers throughout.
	d.waitStatus("idle", 10*time.Second, func(s *Status) bool { return s.Daemon.State == "idle" })
	before := d.status().Daemon.Cycles
	var wg sync.WaitGroup
	var accepted, other atomic.Int64
	jobs := make(chan int)
	client := &http.Client{Timeout: 5 * time.Second}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				req, _ := http.NewRequest(http.MethodPost, d.url("/hooks/git"), strings.NewReader(string(body)))
				req.Header.Set("X-Hub-Signature-256", sign(secret, body))
				resp, err := client.Do(req)
				if err != nil {
					other.Add(1)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted {
					accepted.Add(1)
				} else {
					other.Add(1)
				}
			}
		}()
	}
	healthDone := make(chan struct{})
	var healthOK, healthBad atomic.Int64
	go func() {
		defer close(healthDone)
		for {
			resp, err := client.Get(d.url("/healthz"))
			if err != nil || resp.StatusCode != http.StatusOK {
				healthBad.Add(1)
			} else {
				healthOK.Add(1)
			}
			if resp != nil {
				resp.Body.Close()
			}
			if healthOK.Load()+healthBad.Load() >= 20 {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	floodStart := time.Now()
	for i := 0; i < 500; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	flood := time.Since(floodStart)
	<-healthDone
	if flood > 5*time.Second {
		t.Errorf("500 webhooks took %v, want ≤ 5s", flood)
	}
	if accepted.Load() != 500 || other.Load() != 0 {
		t.Fatalf("flood: %d accepted, %d other", accepted.Load(), other.Load())
	}
	if healthBad.Load() != 0 || healthOK.Load() == 0 {
		t.Errorf("/healthz during the flood: %d ok, %d bad", healthOK.Load(), healthBad.Load())
	}
	s := d.waitStatus("the flood's cycles to end", 10*time.Second, func(s *Status) bool { return s.Daemon.State == "idle" })
	n := s.Daemon.Cycles - before
	t.Logf("500 webhooks in %v → %d cycles", flood.Round(time.Millisecond), n)
	if n < 1 || n > 50 {
		t.Errorf("500 webhooks gave %d cycles, want a handful (1…50)", n)
	}
}

// TestServeOnce: --once runs one cycle and returns; from a plain folder (not a git repo).
func TestServeOnce(t *testing.T) {
	repo := t.TempDir()
	copyTree(t, filepath.Join("..", "..", "examples"), repo)
	cfg, dir := writeServeConfig(t, serveConfig{URL: repo, Interval: "1h"})
	var out, errOut syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := Run(ctx, []string{"serve", "--once", "--config", cfg}, &out, &errOut); err != nil {
		t.Fatalf("serve --once: %v\n%s", err, errOut.String())
	}
	db := openDB(t, filepath.Join(dir, "roster.db"))
	if n := queryInt(t, db, `SELECT COUNT(*) FROM vmrs`); n == 0 {
		t.Fatalf("serve --once applied no VMRs\n%s", errOut.String())
	}
	if n := queryInt(t, db, `SELECT COUNT(*) FROM sync_status WHERE state = 'succeeded'`); n != 2 {
		t.Errorf("sync_status succeeded rows = %d, want 2", n)
	}
	// The lock is released: a second --once works and changes nothing.
	sv := queryString(t, db, `SELECT value FROM meta WHERE key = 'state_version'`)
	if err := Run(ctx, []string{"serve", "--once", "--config", cfg}, &out, &errOut); err != nil {
		t.Fatalf("second serve --once: %v", err)
	}
	if got := queryString(t, db, `SELECT value FROM meta WHERE key = 'state_version'`); got != sv {
		t.Errorf("second --once moved the state version %s → %s", sv, got)
	}

	// A refused plan is an error of --once (the daemon never bypasses the guards).
	os.Remove(filepath.Join(repo, "vmrs", "team-rooms.yaml"))
	if err := os.WriteFile(filepath.Join(repo, "directory.ldif"), []byte("dn: dc=example,dc=com\nobjectClass: domain\ndc: example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Run(ctx, []string{"serve", "--once", "--config", cfg}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "refusing to apply") {
		t.Fatalf("serve --once with a mass deletion: err = %v, want a refusal", err)
	}
	if got := queryString(t, db, `SELECT value FROM meta WHERE key = 'state_version'`); got != sv {
		t.Errorf("a refused plan moved the state version %s → %s", sv, got)
	}
}

// TestServeDirectoryError: a directory that cannot be reached fails its templates closed;
// the cycle is failed, the status and metrics say so, the declared objects still apply, and
// the admins get one error email however many cycles fail the same way.
func TestServeDirectoryError(t *testing.T) {
	repo := t.TempDir()
	copyTree(t, filepath.Join("..", "..", "examples"), repo)
	cfg, dir := writeServeConfig(t, serveConfig{URL: repo, Interval: "100ms", LDAPURL: "ldap://127.0.0.1:1"})
	d := startServe(t, cfg)
	s := d.waitStatus("a failed cycle", 10*time.Second, func(s *Status) bool { return s.Daemon.Cycles >= 2 && s.Daemon.State == "failed" })
	if s.Daemon.State != "failed" || !strings.Contains(s.Daemon.LastError, "template staff") {
		t.Fatalf("daemon with an unreachable directory = %+v", s.Daemon)
	}
	for _, tm := range s.Templates {
		if tm.State != "failed" && tm.State != "syncing" || tm.Created != 0 {
			t.Errorf("template %s = %+v, want failed with nothing created", tm.Template, tm)
		}
	}
	db := openDB(t, filepath.Join(dir, "roster.db"))
	if n := queryInt(t, db, `SELECT COUNT(*) FROM vmrs WHERE sync_tag = 'manual'`); n != 2 {
		t.Errorf("declared VMRs = %d, want 2 (they do not depend on the directory)", n)
	}
	if n := queryInt(t, db, `SELECT COUNT(*) FROM vmrs WHERE sync_tag = 'staff'`); n != 0 {
		t.Errorf("staff VMRs = %d with the directory down", n)
	}
	_, metrics := d.get("/metrics")
	if !strings.Contains(metrics, `roster_directory_errors_total{template="staff"}`) || strings.Contains(metrics, `roster_directory_errors_total{template="staff"} 0`) {
		t.Errorf("want roster_directory_errors_total{template=\"staff\"} > 0:\n%s", grepLines(metrics, "directory_errors"))
	}
	cycles := d.status().Daemon.Cycles
	d.waitStatus("more failed cycles", 10*time.Second, func(s *Status) bool { return s.Daemon.Cycles >= cycles+2 })
	if n := queryInt(t, db, `SELECT COUNT(*) FROM outbox WHERE kind = 'sync_error'`); n != 1 {
		t.Errorf("sync_error emails = %d after %d failing cycles, want 1", n, d.status().Daemon.Cycles)
	}
	if code, _ := d.get("/readyz"); code != http.StatusOK {
		// The declared objects applied: the daemon is serving, degraded.
		t.Errorf("/readyz = %d, want 200", code)
	}
}
