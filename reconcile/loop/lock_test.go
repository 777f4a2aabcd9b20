//go:build unix

package loop

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestLockSameProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "roster.db.lock")
	release, err := AcquireLock(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Fatalf("lock file holds %q, %v; want our pid %d", b, err, os.Getpid())
	}
	// flock belongs to the open file description: a second open in this process conflicts.
	_, err = AcquireLock(path)
	want := fmt.Sprintf("another roster daemon holds %s (pid %d)", path, os.Getpid())
	if err == nil || err.Error() != want {
		t.Fatalf("second AcquireLock: %v; want %q", err, want)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if err := release(); err != nil { // idempotent
		t.Fatal(err)
	}
	release2, err := AcquireLock(path)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	_ = release2()
}

func TestLockBadPath(t *testing.T) {
	if _, err := AcquireLock(filepath.Join(t.TempDir(), "missing", "x.lock")); err == nil {
		t.Fatal("lock in a missing folder succeeded")
	}
}

// TestLockHelperProcess is the child of TestLockOtherProcess, not a test on its own.
func TestLockHelperProcess(t *testing.T) {
	path := os.Getenv("ROSTER_LOCK_HELPER")
	if path == "" {
		return // only a helper: runs as the child of TestLockOtherProcess
	}
	if _, err := AcquireLock(path); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("locked")
	// Hold the lock until the parent closes stdin; exiting drops it.
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	os.Exit(0)
}

func TestLockOtherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "roster.db.lock")
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHelperProcess$")
	cmd.Env = append(os.Environ(), "ROSTER_LOCK_HELPER="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "locked" {
		t.Fatalf("child: %q, %v", line, err)
	}

	_, err = AcquireLock(path)
	want := fmt.Sprintf("another roster daemon holds %s (pid %d)", path, cmd.Process.Pid)
	if err == nil || err.Error() != want {
		t.Fatalf("AcquireLock while the child holds it: %v; want %q", err, want)
	}

	// The child exits: the kernel drops its lock even though the file stays.
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	release, err := AcquireLock(path)
	if err != nil {
		t.Fatalf("after the child exited: %v", err)
	}
	_ = release()
}
