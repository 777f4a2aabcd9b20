//go:build unix

package loop

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// AcquireLock takes an exclusive, non-blocking flock on path (e.g. "<db>.lock"),
// creating the file, and writes this process's PID into it. A second holder — another
// process, or another AcquireLock in this one — gets "another roster daemon holds <path>
// (pid N)". The kernel drops the lock when the process dies; release drops it earlier.
// The file is left in place: removing it would let two daemons lock two different files.
func AcquireLock(path string) (release func() error, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid := "unknown"
			if b, rerr := os.ReadFile(path); rerr == nil && strings.TrimSpace(string(b)) != "" {
				pid = strings.TrimSpace(string(b))
			}
			return nil, fmt.Errorf("another roster daemon holds %s (pid %s)", path, pid)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := writePID(f); err != nil {
		_ = f.Close() // closing drops the lock
		return nil, fmt.Errorf("lock %s: write pid: %w", path, err)
	}
	var once sync.Once
	var relErr error
	return func() error {
		once.Do(func() {
			_ = f.Truncate(0)
			if err := syscall.Flock(int(f.Fd()), syscall.LOCK_UN); err != nil {
				relErr = fmt.Errorf("unlock %s: %w", path, err)
			}
			if err := f.Close(); err != nil && relErr == nil {
				relErr = fmt.Errorf("unlock %s: %w", path, err)
			}
		})
		return relErr
	}, nil
}

func writePID(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		return err
	}
	return f.Sync()
}
