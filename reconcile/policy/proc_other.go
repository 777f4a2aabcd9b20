//go:build !linux

package policy

import (
	"os"
	"syscall"
)

func answererAttr() *syscall.SysProcAttr { return nil }

func threadID() int { return 0 }

func selfExecutable() string {
	if p, err := os.Executable(); err == nil {
		return p
	}
	return os.Args[0]
}
