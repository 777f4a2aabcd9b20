package policy

import "syscall"

// answererAttr puts the answering process in a process group of its own (a Ctrl-C at
// the terminal reaches the daemon alone, which then stops it after its last answers) and
// has Linux send it SIGTERM should the daemon die without closing its pipe first.
func answererAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

func threadID() int { return syscall.Gettid() }

// selfExecutable is the file this process runs, even if replaced on disk since.
func selfExecutable() string { return "/proc/self/exe" }
