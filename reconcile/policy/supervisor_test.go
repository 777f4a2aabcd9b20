package policy_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/roster-dev/roster/reconcile/policy"
	"github.com/roster-dev/roster/reconcile/policy/policytest"
)

// TestSupervisor runs the real answering process (this test binary, see TestMain) on a
// loopback listener: it answers the snapshot published; a damaged snapshot file is
// refused with the reason and the previous snapshot stays served; killed, the process is
// restarted on the same socket and answers the last snapshot again, its counts kept;
// stopped, it exits.
func TestSupervisor(t *testing.T) {
	dir := t.TempDir()
	ln, err := policy.ListenTCP("127.0.0.1:0", "", "")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var logs syncBuffer
	sup, err := policy.NewSupervisor(policy.SupervisorConfig{Listener: ln,
		Answerer:     policy.AnswererConfig{Username: testUser, Password: testPass, SnapshotPath: filepath.Join(dir, "policy.snapshot")},
		CountersPath: filepath.Join(dir, "policy.counters"),
		Logger:       slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			sup.Stop()
		}
	}()
	node := &policytest.Node{BaseURL: "http://" + ln.Addr().String(), Username: testUser, Password: testPass, Client: &http.Client{}}
	ctx := context.Background()
	const rooms = 50
	waitFor := func(what string, cond func(policy.AnswererState) bool) policy.AnswererState {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if st := sup.State(); cond(st) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: %+v\n%s", what, sup.State(), logs.String())
			}
		}
	}
	serving := func(v string) func(policy.AnswererState) bool {
		return func(st policy.AnswererState) bool { return st.Served != nil && st.Served.Version == v }
	}
	pin := func(i int) string {
		t.Helper()
		node.Client.CloseIdleConnections() // a new connection: to the process running now
		d := node.ServiceConfiguration(ctx, policytest.PersonalAlias(i), nil)
		if d.Kind != policytest.Conference {
			t.Logf("room %d: %v HTTP %d %s", i, d.Kind, d.HTTPStatus, d.Reason)
		}
		return d.Service.PIN
	}

	if err := sup.Publish(buildVersion(t, rooms, 0, 1, nil)); err != nil {
		t.Fatal(err)
	}
	first := waitFor("version 1 served", serving("1"))
	if got, want := pin(3), policytest.PersonalPIN(3, 1); got != want {
		t.Fatalf("PIN %q, want version 1's %q", got, want)
	}

	// A damaged file where the next snapshot should be: refused, version 1 still served.
	path := filepath.Join(dir, "policy.snapshot")
	if err := policy.WriteFile(path, buildVersion(t, rooms, 0, 2, nil), 2); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-3] ^= 1
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	sup.Tell(2)
	st := waitFor("the damaged file refused", func(st policy.AnswererState) bool { return st.Refused != "" })
	if !strings.Contains(st.Refused, "checksum") || st.Served == nil || st.Served.Version != "1" {
		t.Errorf("after a damaged file: %+v, want it refused for its checksum and version 1 served", st)
	}
	if got, want := pin(3), policytest.PersonalPIN(3, 1); got != want {
		t.Errorf("after a damaged file: PIN %q, want version 1's %q", got, want)
	}
	if err := sup.Publish(buildVersion(t, rooms, 0, 3, nil)); err != nil {
		t.Fatal(err)
	}
	st = waitFor("version 3 served", serving("3"))
	if st.Refused != "" || pin(3) != policytest.PersonalPIN(3, 3) {
		t.Errorf("after publishing version 3: %+v, PIN %q", st, pin(3))
	}
	answered := sup.Counters().Answers()["room"]
	if answered < 3 {
		t.Errorf("%d room answers counted, want at least 3", answered)
	}

	// Killed: restarted on the same socket, version 3 served again, the counts go on.
	if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st = waitFor("a new process serving version 3", func(st policy.AnswererState) bool {
		return st.PID != 0 && st.PID != first.PID && st.Served != nil && st.Served.Version == "3"
	})
	if st.Restarts != 1 {
		t.Errorf("%d restarts, want 1", st.Restarts)
	}
	if got, want := pin(5), policytest.PersonalPIN(5, 3); got != want {
		t.Errorf("after the restart: PIN %q, want version 3's %q", got, want)
	}
	if got := sup.Counters().Answers()["room"]; got != answered+1 {
		t.Errorf("room answers %d after the restart, want %d", got, answered+1)
	}
	if !strings.Contains(logs.String(), "policy answerer exited; restarting it") {
		t.Errorf("the restart is not logged:\n%s", logs.String())
	}

	sup.Stop()
	stopped = true
	if err := syscall.Kill(st.PID, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the answering process %d is still there after Stop: %v", st.PID, err)
	}
	if st := sup.State(); st.PID != 0 || st.Served != nil {
		t.Errorf("after Stop: %+v", st)
	}
}
