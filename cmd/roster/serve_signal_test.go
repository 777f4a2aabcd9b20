//go:build unix

package main

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/roster-dev/roster/reconcile/directory"
)

// childEnv marks the test binary re-executed as `roster` (TestServeHelperProcess).
const childEnv = "ROSTER_TEST_SERVE_CHILD_ARGS"

// TestServeHelperProcess is not a test: the SIGTERM test re-executes the test binary with
// childEnv set, and this runs roster's main in that child.
func TestServeHelperProcess(t *testing.T) {
	args := os.Getenv(childEnv)
	if args == "" {
		t.Skip("helper process for TestServeSIGTERMDuringApply")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := Run(ctx, strings.Split(args, "\x1f"), os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// TestServeSIGTERMDuringApply starts `roster serve` as a child process on a repo whose
// directory has 20,000 people and sends SIGTERM: once during planning (nothing may be
// applied) and once after the apply has started (the transaction finishes: all of it).
// Either way the database holds all of the plan or none of it, and serve exits 0.
func TestServeSIGTERMDuringApply(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: 20,000-person apply")
	}
	for _, tc := range []struct {
		name, at, want string
	}{
		{"during plan", `"serve: listening"`, "nothing"},
		{"during apply", `"serve: applying plan"`, "all"},
	} {
		t.Run(tc.name, func(t *testing.T) { testSIGTERM(t, tc.at, tc.want) })
	}
}

func testSIGTERM(t *testing.T, at, want string) {
	const people = 20000
	repo := t.TempDir()
	copyTree(t, filepath.Join("..", "..", "examples"), repo)
	f, err := os.Create(filepath.Join(repo, "directory.ldif"))
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("dn: dc=example,dc=com\nobjectClass: domain\ndc: example\n\ndn: ou=people,dc=example,dc=com\nobjectClass: organizationalUnit\nou: people\n\n")
	if err := directory.GeneratePeople(f, people, "dc=example,dc=com"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// No users: licences and the lifetime limit are not what this test is about.
	staff := strings.Replace(readFile(t, filepath.Join(repo, "templates", "staff.yaml")), "sync_users: true", "sync_users: false", 1)
	if err := os.WriteFile(filepath.Join(repo, "templates", "staff.yaml"), []byte(staff), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, dir := writeServeConfig(t, serveConfig{URL: repo, Interval: "1h", MaxEmails: 100000, NoMail: true})

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestServeHelperProcess$", "-test.v=false")
	cmd.Env = append(os.Environ(), childEnv+"="+strings.Join([]string{"serve", "--config", cfg, "--log-format", "json"}, "\x1f"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	sent := false
	var sentAt time.Duration
	sc := bufio.NewScanner(stderr)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		log.WriteString(line + "\n")
		if !sent && strings.Contains(line, at) {
			// The transaction starts right after this line.
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			sent, sentAt = true, time.Since(start)
		}
	}
	err = cmd.Wait()
	took := time.Since(start)
	if !sent {
		t.Fatalf("the child never logged %s; log:\n%s", at, log.String())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) || err != nil {
		t.Fatalf("serve exited with %v after SIGTERM, want 0; log:\n%s", err, log.String())
	}

	db := openDB(t, filepath.Join(dir, "roster.db"))
	vmrs := queryInt(t, db, `SELECT COUNT(*) FROM vmrs WHERE sync_tag = 'staff'`)
	devices := queryInt(t, db, `SELECT COUNT(*) FROM devices WHERE sync_tag = 'staff'`)
	vmrMail := queryInt(t, db, `SELECT COUNT(*) FROM outbox WHERE kind = 'vmr' AND action = 'created' AND template = 'staff'`)
	deviceMail := queryInt(t, db, `SELECT COUNT(*) FROM outbox WHERE kind = 'device' AND action = 'created' AND template = 'staff'`)
	audits := queryInt(t, db, `SELECT COUNT(*) FROM audit WHERE kind = 'device' AND action = 'create'`)
	allDevices := queryInt(t, db, `SELECT COUNT(*) FROM devices`) // staff's and the declared ones
	version := queryString(t, db, `SELECT COALESCE((SELECT value FROM meta WHERE key = 'state_version'), '0')`)
	t.Logf("SIGTERM %v after start; exit after %v; %d staff VMRs, %d devices, %d + %d created emails, state version %s",
		sentAt.Round(time.Millisecond), took.Round(time.Millisecond), vmrs, devices, vmrMail, deviceMail, version)
	// Every person but the disabled ones (every 50th) has a device; VMR names collide
	// (generated names repeat), so VMRs are fewer.
	active := people - people/50
	switch devices {
	case 0:
		if vmrs != 0 || vmrMail != 0 || deviceMail != 0 || audits != 0 || version != "0" {
			t.Fatalf("no devices, yet %d VMRs, %d + %d emails, %d audit rows, state version %s", vmrs, vmrMail, deviceMail, audits, version)
		}
		t.Log("outcome: nothing applied")
		if want == "all" {
			t.Errorf("SIGTERM after the apply started: the transaction should have finished")
		}
	case active:
		if vmrs == 0 || vmrMail != vmrs || deviceMail != devices || audits != allDevices || version != "1" {
			t.Fatalf("apply not whole: %d VMRs, %d devices, %d + %d emails, %d audit rows, state version %s",
				vmrs, devices, vmrMail, deviceMail, audits, version)
		}
		t.Log("outcome: all applied")
		if want == "nothing" {
			t.Errorf("SIGTERM during planning: nothing should have been applied")
		}
	default:
		t.Fatalf("partial apply: %d devices of %d", devices, active)
	}
	if !strings.Contains(log.String(), `"serve: stopped"`) {
		t.Errorf("no orderly stop in the log:\n%s", tail(log.String(), 2000))
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
