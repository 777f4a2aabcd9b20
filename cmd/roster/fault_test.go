//go:build unix

package main

// Fault-injection tests of the CLI with real components: roster apply killed with SIGKILL at
// random points, a read-only and a full state database, an SMTP server that is down and
// then up. See docs/operations.md for what they guarantee and how to run them.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/jmoiron/sqlx"

	"github.com/roster-dev/roster/reconcile/directory"
)

// faultChildEnv marks the test binary re-executed as the roster command
// (TestFaultHelperProcess); its value is the arguments joined by \x1f.
const faultChildEnv = "ROSTER_TEST_FAULT_CHILD_ARGS"

// The fault tests' workspaces name environment variables of their own, so that they can
// run in parallel with tests that t.Setenv ROSTER_SECRET_KEY.
func init() {
	os.Setenv("ROSTER_FAULT_SECRET_KEY", "fault-test-key")
	os.Setenv("ROSTER_FAULT_SMTP_PASSWORD", "Smtp-S3cret!")
}

// TestFaultHelperProcess is not a test: the kill -9 test re-executes the test binary with
// faultChildEnv set, and this runs roster's main (Run + exitCode) in that child process.
func TestFaultHelperProcess(t *testing.T) {
	args := os.Getenv(faultChildEnv)
	if args == "" {
		t.Skip("helper process for TestKill9DuringApply")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := Run(ctx, strings.Split(args, "\x1f"), os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// faultTemplate gives each person a VMR (one alias), a device and a WebEx user: three
// changes per person, and a VMR, a device and an activation email.
const faultTemplate = `name: staff
source: corp
user_search_dn: ou=people
user_filter: (objectClass=inetOrgPerson)
key_attribute: entryUUID
sync_vmrs: true
sync_devices: true
sync_users: true
vmr:
  name: "{{cn}} VMR"
  aliases: ["{{uid}}@vc.example.com"]
  pin: "{{ ''|pex_random_pin(6) }}"
  allow_guests: true
  participant_limit: 50
  tag: staff
  primary_owner_email_address: "{{mail}}"
device:
  alias: "{{uid}}@dev.example.com"
  username: "{{uid}}"
  password: "{{ ''|pex_random_pin(12) }}"
  tag: staff
  primary_owner_email_address: "{{mail}}"
  sync_if_account_disabled: true
user:
  first_name: "{{givenName}}"
  last_name: "{{sn}}"
  email: "{{mail}}"
  language: en-us
  time_zone: London
  host_privilege: HOST
  license: paid
emails:
  send: true
  vmr: {subject: "Your room {{ name }}", body_file: emails/vmr.txt}
  device: {subject: "Your device {{ device_alias }}", body_file: emails/device.txt}
`

// faultWorkspace is a desired-state folder, a config.cue and a state database path.
type faultWorkspace struct {
	dir, repo, cfg, db, mailDir string
}

// newFaultWorkspace writes a repo whose directory has n generated people. dbPath "" puts
// the database in the workspace; extraCfg is appended to config.cue.
func newFaultWorkspace(t testing.TB, dir string, n int, dbPath, extraCfg string) *faultWorkspace {
	t.Helper()
	w := &faultWorkspace{dir: dir, repo: filepath.Join(dir, "repo"), cfg: filepath.Join(dir, "config.cue"),
		db: dbPath, mailDir: filepath.Join(dir, "outbox")}
	if w.db == "" {
		w.db = filepath.Join(dir, "roster.db")
	}
	files := map[string]string{
		"settings.yaml":        "auto_activation_emails: true\nadmins: [ops@example.com]\n",
		"templates/staff.yaml": faultTemplate,
		"emails/vmr.txt":       "Room {{ name }} ({{ action }}), PIN {{ pin }}, aliases {{ aliases }}\n",
		"emails/device.txt":    "Device {{ device_alias }} user {{ device_username }} password {{ device_password }}\n",
	}
	for name, body := range files {
		p := filepath.Join(w.repo, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writePeopleLDIF(t, filepath.Join(w.repo, "directory.ldif"), n)
	cfg := fmt.Sprintf(`repo: {url: %q}
state: {dsn: %q}
directories: corp: {ldif: "directory.ldif", base_dn: "dc=example,dc=com"}
mail_dir: %q
safety: {max_emails: 1000000}
secret_key_env: "ROSTER_FAULT_SECRET_KEY"
%s`, w.repo, w.db, w.mailDir, extraCfg)
	if err := os.WriteFile(w.cfg, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return w
}

func writePeopleLDIF(t testing.TB, path string, n int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("dn: dc=example,dc=com\nobjectClass: domain\ndc: example\n\ndn: ou=people,dc=example,dc=com\nobjectClass: organizationalUnit\nou: people\n\n")
	if n > 0 {
		if err := directory.GeneratePeople(f, n, "dc=example,dc=com"); err != nil {
			t.Fatal(err)
		}
	}
}

// run runs roster in-process against the workspace.
func (w *faultWorkspace) run(t testing.TB, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	full := append([]string{args[0], "--config", w.cfg}, args[1:]...)
	err := Run(context.Background(), full, &out, &errb)
	code := exitCode(err, &errb)
	return out.String(), errb.String(), code
}

// child starts roster as a child process (the re-executed test binary).
func (w *faultWorkspace) child(args ...string) *exec.Cmd {
	full := append([]string{args[0], "--config", w.cfg}, args[1:]...)
	cmd := exec.Command(os.Args[0], "-test.run=^TestFaultHelperProcess$", "-test.v=false")
	cmd.Env = append(os.Environ(), faultChildEnv+"="+strings.Join(full, "\x1f"))
	return cmd
}

// dbCounts is the shape of a state database: row counts of every table that apply writes.
type dbCounts map[string]int

var countedTables = []string{"vmrs", "vmr_aliases", "devices", "users", "audit", "outbox", "email_templates", "sync_status"}

func readCounts(t testing.TB, path string) (dbCounts, string) {
	t.Helper()
	db, err := sqlx.Open("sqlite3", "file:"+path+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var check string
	if err := db.Get(&check, `PRAGMA integrity_check`); err != nil {
		t.Fatalf("integrity_check: %v", err)
	}
	c := dbCounts{}
	for _, tbl := range countedTables {
		var n int
		if err := db.Get(&n, `SELECT COUNT(*) FROM `+tbl); err != nil {
			t.Fatalf("count %s: %v", tbl, err)
		}
		c[tbl] = n
	}
	var v string
	_ = db.Get(&v, `SELECT value FROM meta WHERE key = 'state_version'`)
	if v == "" {
		v = "0"
	}
	var n int
	fmt.Sscan(v, &n)
	c["state_version"] = n
	return c, check
}

func (c dbCounts) String() string {
	var parts []string
	for _, k := range append(countedTables, "state_version") {
		parts = append(parts, fmt.Sprintf("%s=%d", k, c[k]))
	}
	return strings.Join(parts, " ")
}

func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestKill9DuringApply kills `roster apply --no-send` (a child process) with SIGKILL at a
// random moment of a ~10,000-change apply, 20 times, each time on a fresh copy of the
// initial database. After each kill the database must hold either the old state (nothing)
// or the whole new state (the same row counts as an uninterrupted apply, outbox rows =
// the plan's emails), pass PRAGMA integrity_check, and converge on a rerun.
func TestKill9DuringApply(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: 20 trials of a 10,000-change apply")
	}
	t.Parallel()
	const people = 3400
	trials := 20
	base := t.TempDir()
	ref := newFaultWorkspace(t, filepath.Join(base, "ref"), people, "", "")

	// The initial database: migrated, empty.
	if _, errOut, code := ref.run(t, "status"); code != 0 {
		t.Fatalf("status: %s", errOut)
	}
	initial := filepath.Join(base, "initial.db")
	copyFile(t, ref.db, initial)
	old, check := readCounts(t, initial)
	if check != "ok" || old["vmrs"] != 0 || old["outbox"] != 0 {
		t.Fatalf("initial database: %s %s", check, old)
	}

	// The plan, and the full state from an uninterrupted apply (timed, as a child process).
	out, errOut, code := ref.run(t, "plan", "--format", "json")
	if code != 0 {
		t.Fatalf("plan: %s", errOut)
	}
	var plan struct {
		Summary struct{ Create, Emails int } `json:"summary"`
	}
	if err := json.Unmarshal([]byte(out), &plan); err != nil {
		t.Fatal(err)
	}
	if plan.Summary.Create < 10000 {
		t.Fatalf("plan creates %d objects, want ~10,000", plan.Summary.Create)
	}
	ch := startApplyChild(t, ref)
	full, planned := ch.wait()
	if ch.err != nil || planned == 0 {
		t.Fatalf("reference apply: %v (planned after %v)\n%s", ch.err, planned, ch.log.String())
	}
	tx := full - planned
	want, check := readCounts(t, ref.db)
	if check != "ok" || want["outbox"] != plan.Summary.Emails || want["vmrs"] == 0 || want["state_version"] != 1 {
		t.Fatalf("reference apply: %s, %s; plan has %d emails", check, want, plan.Summary.Emails)
	}
	t.Logf("plan: %d creates, %d emails; uninterrupted apply (child process) took %v, of which %v after planning; new state: %s",
		plan.Summary.Create, plan.Summary.Emails, full.Round(time.Millisecond), tx.Round(time.Millisecond), want)

	type result struct {
		delay     time.Duration
		afterPlan bool
		outcome   string
		exited    bool
	}
	results := make([]result, trials)
	// One trial at a time, so that each runs as fast as the measured reference apply and the
	// random delays spread over its phases as intended.
	sem := make(chan struct{}, 1)
	var wg sync.WaitGroup
	for i := 0; i < trials; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			// Even trials: a delay from the start, spread over the whole run (and beyond: the
			// machine is shared, runs vary). Odd trials: a delay from the end of planning
			// (the child's "planned" log line), spread over the write transaction and the
			// exit, so kills land inside it.
			r := result{afterPlan: i%2 == 1}
			if r.afterPlan {
				r.delay = time.Duration(rand.Int64N(int64(tx) * 2))
			} else {
				r.delay = time.Duration(rand.Int64N(int64(full) * 3 / 2))
			}
			r.outcome, r.exited = killTrial(t, filepath.Join(base, fmt.Sprint("trial", i)), people, initial, r.delay, r.afterPlan, old, want)
			results[i] = r
		}(i)
	}
	wg.Wait()
	tally := map[string]int{}
	for i, r := range results {
		tally[r.outcome]++
		from := "start"
		if r.afterPlan {
			from = "planning"
		}
		t.Logf("trial %2d: SIGKILL %-8v after %-8s → %s%s", i, r.delay.Round(time.Millisecond), from, r.outcome,
			map[bool]string{true: " (apply had already exited)", false: ""}[r.exited])
	}
	t.Logf("kill -9 trials: %d old state (at least %d of them killed inside the write transaction), %d new state, %d other",
		tally["old"], inTx.Load(), tally["new"], trials-tally["old"]-tally["new"])
	if tally["old"]+tally["new"] != trials {
		t.Errorf("some trials left neither the old nor the new state")
	}
}

// inTx counts the trials killed inside the write transaction.
var inTx atomic.Int64

// killTrial runs one kill -9 trial and reports "old", "new" or a description of the bad
// state, and whether the child had exited before the kill.
func killTrial(t *testing.T, dir string, people int, initial string, delay time.Duration, afterPlan bool, old, want dbCounts) (string, bool) {
	w := newFaultWorkspace(t, dir, people, "", "")
	copyFile(t, initial, w.db)
	ch := startApplyChild(t, w)
	exited := ch.killAfter(delay, afterPlan)
	if exited && ch.err != nil {
		t.Errorf("apply exited on its own with %v before the kill:\n%s", ch.err, ch.log.String())
	}
	// Uncommitted WAL frames or a hot rollback journal (a first apply writes in bulk, in
	// rollback-journal mode: state.DB.InBulkTx) at the kill mean it landed inside the write
	// transaction (the initial database has neither; planning writes nothing).
	var walBytes, journalBytes int64
	if fi, err := os.Stat(w.db + "-wal"); err == nil {
		walBytes = fi.Size()
	}
	if fi, err := os.Stat(w.db + "-journal"); err == nil {
		journalBytes = fi.Size()
	}
	got, check := readCounts(t, w.db)
	if check != "ok" {
		t.Errorf("after SIGKILL at %v: integrity_check: %s", delay, check)
	}
	outcome := ""
	switch {
	case fmt.Sprint(got) == fmt.Sprint(old) && walBytes+journalBytes > 0 && !exited:
		outcome = "old"
		t.Logf("SIGKILL %v after %s landed inside the transaction: %d bytes of uncommitted WAL, %d of hot journal rolled back",
			delay.Round(time.Millisecond), map[bool]string{true: "planning", false: "start"}[afterPlan], walBytes, journalBytes)
		inTx.Add(1)
	case fmt.Sprint(got) == fmt.Sprint(old):
		outcome = "old"
	case fmt.Sprint(got) == fmt.Sprint(want):
		outcome = "new"
	default:
		outcome = "PARTIAL " + got.String()
		t.Errorf("after SIGKILL at %v the database is neither old nor new:\n got %s\nold %s\nnew %s", delay, got, old, want)
	}
	// A rerun converges: apply (nothing or everything left to do), then no changes.
	if _, errOut, code := w.run(t, "apply", "--no-send"); code != 0 {
		t.Errorf("rerun apply after SIGKILL at %v: exit %d\n%s", delay, code, errOut)
	}
	if out, errOut, code := w.run(t, "plan", "--detailed-exitcode"); code != 0 {
		t.Errorf("plan after rerun: exit %d\n%.500s\n%s", code, out, errOut)
	}
	if after, _ := readCounts(t, w.db); fmt.Sprint(after) != fmt.Sprint(want) {
		// The rerun's sync_status and state version match an uninterrupted apply too.
		t.Errorf("after the rerun: %s, want %s", after, want)
	}
	os.RemoveAll(dir)
	return outcome, exited
}

// applyChild is `roster apply --no-send --log-level debug` running as a child process;
// planned is signalled when it logs the end of planning.
type applyChild struct {
	cmd     *exec.Cmd
	start   time.Time
	planned chan time.Duration
	done    chan struct{}
	log     bytes.Buffer // stderr, complete once done is closed
	err     error
}

func startApplyChild(t testing.TB, w *faultWorkspace) *applyChild {
	t.Helper()
	c := &applyChild{cmd: w.child("apply", "--no-send", "--log-level", "debug", "--log-format", "json"),
		planned: make(chan time.Duration, 1), done: make(chan struct{})}
	c.cmd.Stdout = io.Discard
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.start = time.Now()
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			c.log.WriteString(line + "\n")
			if strings.Contains(line, `"msg":"planned"`) {
				c.planned <- time.Since(c.start)
			}
		}
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	return c
}

// wait waits for the child to exit and returns how long it ran and when it had planned.
func (c *applyChild) wait() (full, planned time.Duration) {
	<-c.done
	full = time.Since(c.start)
	select {
	case planned = <-c.planned:
	default:
	}
	return full, planned
}

// killAfter sends SIGKILL delay after the start (or after planning) and waits for the
// child; it reports whether the child had exited on its own first.
func (c *applyChild) killAfter(delay time.Duration, afterPlan bool) bool {
	if afterPlan {
		select {
		case <-c.planned:
		case <-c.done:
			return true
		}
	}
	select {
	case <-c.done:
		return true
	case <-time.After(delay):
		_ = c.cmd.Process.Signal(syscall.SIGKILL)
		<-c.done
		return false
	}
}

// makeReadOnly makes path unwritable: mode 0400 and, for root (which ignores modes), the
// immutable attribute. It returns an undo for the cleanup.
func makeReadOnly(t *testing.T, path string) func() {
	t.Helper()
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		return func() { os.Chmod(path, 0o600) }
	}
	if out, err := exec.Command("chattr", "+i", path).CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("running as root, and chattr +i %s failed: %v: %s", path, err, out)
		}
		t.Skipf("running as root (file modes do not bind) and chattr +i failed: %v: %s", err, out)
	}
	return func() {
		exec.Command("chattr", "-i", path).Run()
		os.Chmod(path, 0o600)
	}
}

// TestApplyReadOnlyDatabase: after a first apply the database file is made read-only;
// an apply with changes exits 1 with an error naming the state database, and the database
// is unchanged.
func TestApplyReadOnlyDatabase(t *testing.T) {
	w := newFaultWorkspace(t, t.TempDir(), 20, "", "")
	if _, errOut, code := w.run(t, "apply", "--no-send"); code != 0 {
		t.Fatalf("first apply: %s", errOut)
	}
	before, _ := readCounts(t, w.db)
	for _, suffix := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(w.db + suffix); err == nil {
			t.Fatalf("%s left after a clean exit", w.db+suffix)
		}
	}
	writePeopleLDIF(t, filepath.Join(w.repo, "directory.ldif"), 40) // 20 more people: changes
	undo := makeReadOnly(t, w.db)
	defer undo()
	out, errOut, code := w.run(t, "apply", "--no-send")
	undo()
	if code != 1 {
		t.Fatalf("apply on a read-only database: exit %d, want 1\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "state database") || strings.Count(strings.TrimSpace(errOut), "\n") > 2 {
		t.Errorf("unclear error for a read-only database:\n%s", errOut)
	}
	t.Logf("read-only database: %s", strings.TrimSpace(errOut))
	after, check := readCounts(t, w.db)
	if check != "ok" || fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("database changed or corrupt: %s\nbefore %s\nafter  %s", check, before, after)
	}
	// Writable again: the same apply goes through.
	if _, errOut, code := w.run(t, "apply", "--no-send"); code != 0 {
		t.Fatalf("apply once writable: %s", errOut)
	}
}

// mountTmpfs mounts a tmpfs of the given size on a fresh folder, unmounted at cleanup. It
// skips the test when mounting is not possible, unless CI=true.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount a %s tmpfs (needs root or CAP_SYS_ADMIN): %v: %s", size, err, out)
		}
		t.Skipf("cannot mount a tmpfs to fill up (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// TestApplyDiskFull puts the state database on a 1 MB tmpfs, applies a small plan, then a
// plan far bigger than the space left: apply exits 1 with a clear error, the database
// passes integrity_check and holds the old state, and a later plan still works.
func TestApplyDiskFull(t *testing.T) {
	mnt := mountTmpfs(t, "1m")
	w := newFaultWorkspace(t, t.TempDir(), 20, filepath.Join(mnt, "roster.db"), "")
	if _, errOut, code := w.run(t, "apply", "--no-send"); code != 0 {
		t.Fatalf("first apply: %s", errOut)
	}
	before, _ := readCounts(t, w.db)
	writePeopleLDIF(t, filepath.Join(w.repo, "directory.ldif"), 3000)
	out, errOut, code := w.run(t, "apply", "--no-send")
	if code != 1 {
		t.Fatalf("apply on a full disk: exit %d, want 1\n%.300s\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "full") || strings.Contains(errOut, "goroutine") {
		t.Errorf("unclear error for a full disk:\n%s", errOut)
	}
	t.Logf("disk full: %s", strings.TrimSpace(errOut))
	after, check := readCounts(t, w.db)
	if check != "ok" || fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("database changed or corrupt: %s\nbefore %s\nafter  %s", check, before, after)
	}
	if _, errOut, code := w.run(t, "status"); code != 0 {
		t.Errorf("status after a full disk: %s", errOut)
	}
	// Back to the old directory: nothing to do.
	writePeopleLDIF(t, filepath.Join(w.repo, "directory.ldif"), 20)
	if out, errOut, code := w.run(t, "plan", "--detailed-exitcode"); code != 0 {
		t.Errorf("plan after a full disk: exit %d\n%.300s\n%s", code, out, errOut)
	}
}

// smtpStore is an in-process SMTP server's storage (go-smtp backend).
type smtpStore struct {
	mu   sync.Mutex
	msgs [][]byte
	to   []string
	user string
	pwd  string
	// received, when set, is told of each message as it arrives (before it is stored).
	received func(to []string, data []byte)
}

func (b *smtpStore) NewSession(*smtp.Conn) (smtp.Session, error) { return &smtpSession{b: b}, nil }

func (b *smtpStore) messages() [][]byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([][]byte(nil), b.msgs...)
}

type smtpSession struct {
	b      *smtpStore
	authed bool
	to     []string
}

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *smtpSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pwd string) error {
		if user != s.b.user || pwd != s.b.pwd {
			return errors.New("invalid credentials")
		}
		s.authed = true
		return nil
	}), nil
}

func (s *smtpSession) Mail(string, *smtp.MailOptions) error {
	if s.b.user != "" && !s.authed {
		return smtp.ErrAuthRequired
	}
	return nil
}
func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error { s.to = append(s.to, to); return nil }
func (s *smtpSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if s.b.received != nil {
		s.b.received(s.to, data)
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.msgs = append(s.b.msgs, data)
	s.b.to = append(s.b.to, s.to...)
	return nil
}
func (s *smtpSession) Reset()        { s.to = nil }
func (s *smtpSession) Logout() error { return nil }

// startSMTP serves b on addr ("127.0.0.1:0" for any port) until the test ends.
func startSMTP(t *testing.T, b smtp.Backend, addr string) (port int, stop func()) {
	t.Helper()
	srv := smtp.NewServer(b)
	srv.Domain = "localhost"
	srv.ErrorLog = log.New(io.Discard, "", 0) // clients killed by the tests reset their connections
	srv.AllowInsecureAuth = true
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("SMTP test server cannot listen on %s: %v", addr, err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().(*net.TCPAddr).Port, func() { srv.Close() }
}

// freeTCPPort returns a loopback port nothing listens on (just closed).
func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestApplySMTPDownThenUp: apply with the SMTP server down leaves every email pending
// (visible in status) and says so; once the server is up, an apply with nothing to apply
// delivers the pending emails exactly once.
//
// Rows deferred because their server was down are due again 30 s later (notify's
// DownDelay), so the second apply waits that long: the test runs in parallel.
func TestApplySMTPDownThenUp(t *testing.T) {
	t.Parallel()
	port := freeTCPPort(t)
	w := newFaultWorkspace(t, t.TempDir(), 5, "", fmt.Sprintf(
		`smtp: default: {host: "127.0.0.1", port: %d, security: "none", username: "roster", password_env: "ROSTER_FAULT_SMTP_PASSWORD", from: "roster@example.com"}
`, port))
	out, errOut, code := w.run(t, "apply")
	t.Logf("apply with the SMTP server down: exit %d\n%s%s", code, tail(out, 200), errOut)
	if !strings.Contains(out, "Applied:") {
		t.Fatalf("the changes were not applied:\n%s\n%s", out, errOut)
	}
	if !strings.Contains(out+errOut, "pending") {
		t.Errorf("apply does not say the emails are still pending:\n%s\n%s", out, errOut)
	}
	if strings.Contains(out+errOut, "Smtp-S3cret!") {
		t.Errorf("SMTP password in the output")
	}
	var st Status
	out, _, _ = w.run(t, "status", "--format", "json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	emails := st.Outbox["pending"] + st.Outbox["sending"] + st.Outbox["failed"]
	if st.Outbox["sent"] != 0 || st.Outbox["pending"] == 0 || st.Outbox["failed"] != 0 {
		t.Fatalf("outbox after apply with the server down: %v, want all pending", st.Outbox)
	}
	text, _, _ := w.run(t, "status")
	if !strings.Contains(text, fmt.Sprintf("%d pending", st.Outbox["pending"])) {
		t.Errorf("status text does not show the pending emails:\n%s", text)
	}

	store := &smtpStore{user: "roster", pwd: "Smtp-S3cret!"}
	startSMTP(t, store, fmt.Sprintf("127.0.0.1:%d", port))
	start := time.Now()
	out, errOut, code = w.run(t, "apply")
	t.Logf("apply with the server up after %v: exit %d\n%s%s", time.Since(start).Round(time.Millisecond), code, tail(out, 200), errOut)
	if code != 0 || !strings.Contains(out, "Nothing to apply") {
		t.Fatalf("second apply: exit %d\n%s\n%s", code, out, errOut)
	}
	msgs := store.messages()
	if len(msgs) != emails {
		t.Errorf("the server got %d messages, want the %d pending", len(msgs), emails)
	}
	ids := map[string]int{}
	for _, m := range msgs {
		msg, err := mail.ReadMessage(bytes.NewReader(m))
		if err != nil {
			t.Fatal(err)
		}
		ids[msg.Header.Get("Message-Id")]++
	}
	for id, n := range ids {
		if n != 1 || id == "" {
			t.Errorf("Message-ID %q delivered %d times", id, n)
		}
	}
	// Exactly once: a third apply sends nothing more.
	if _, errOut, code = w.run(t, "apply"); code != 0 || len(store.messages()) != emails {
		t.Errorf("third apply: exit %d, %d messages (want %d)\n%s", code, len(store.messages()), emails, errOut)
	}
	out, _, _ = w.run(t, "status", "--format", "json")
	st = Status{}
	json.Unmarshal([]byte(out), &st)
	if st.Outbox["sent"] != emails || st.Outbox["pending"] != 0 {
		t.Errorf("outbox at the end: %v", st.Outbox)
	}
}
