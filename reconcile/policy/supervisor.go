package policy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Restart backoff of the answering process: doubling from the first to the last, back
// to the first once a process has run for restartReset.
const (
	restartFirst = 100 * time.Millisecond
	restartMax   = 5 * time.Second
	restartReset = 30 * time.Second
	stopTimeout  = 10 * time.Second
)

// SupervisorConfig configures a Supervisor.
type SupervisorConfig struct {
	// Listener is the policy socket (ListenTCP); the answering process inherits it, and
	// the daemon keeps it open so that a restarted process serves the same socket and
	// connections arriving meanwhile wait in its backlog.
	Listener *net.TCPListener
	Answerer AnswererConfig // SnapshotPath is where Publish writes
	// CountersPath is the counters file, created (zeroed) by NewSupervisor.
	CountersPath string
	Logger       *slog.Logger
	// Command is the program and arguments of the answering process; empty: this very
	// executable with AnswererCommand.
	Command []string
}

// Supervisor runs the answering process (RunAnswerer) for the daemon: it starts it,
// restarts it with backoff when it dies, hands it each snapshot the daemon publishes, and
// reads its counters. The process ends when the daemon does: Stop closes its control
// pipe, and the daemon's death closes it too (and, on Linux, signals it).
type Supervisor struct {
	cfg      SupervisorConfig
	log      *slog.Logger
	lnFile   *os.File
	cntFile  *os.File
	counters *Counters
	seq      atomic.Uint64 // last sequence number given to a snapshot file
	tid      int           // the thread that starts the processes (left at nice 0)
	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}

	mu        sync.Mutex
	ctrl      *os.File // the running process's control pipe; nil when none runs
	proc      *os.Process
	published uint64
	served    *SnapshotStats // what the running process reports serving
	refused   string         // why it refused the last file it was told about
	restarts  int
}

// NewSupervisor creates the counters file and starts the answering process.
func NewSupervisor(cfg SupervisorConfig) (*Supervisor, error) {
	s := &Supervisor{cfg: cfg, log: cfg.Logger, stop: make(chan struct{}), done: make(chan struct{})}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	var err error
	if s.lnFile, err = cfg.Listener.File(); err != nil {
		return nil, fmt.Errorf("policy answerer: listener: %w", err)
	}
	// Files a daemon killed while writing a snapshot left behind.
	if old, err := filepath.Glob(filepath.Join(filepath.Dir(cfg.Answerer.SnapshotPath), snapTempPattern)); err == nil {
		for _, f := range old {
			os.Remove(f)
		}
	}
	// Counts start at zero with the daemon, and survive the answering process's restarts.
	if s.cntFile, err = createCounters(cfg.CountersPath); err == nil {
		err = s.cntFile.Truncate(int64(CountersFileSize))
	}
	if err == nil {
		s.counters, err = mapCounters(s.cntFile)
	}
	if err != nil {
		s.lnFile.Close()
		if s.cntFile != nil {
			s.cntFile.Close()
		}
		return nil, fmt.Errorf("policy answerer: counters file: %w", err)
	}
	tid := make(chan int)
	go s.run(tid)
	s.tid = <-tid
	return s, nil
}

// Counters are the answering process's counts.
func (s *Supervisor) Counters() *Counters { return s.counters }

// ThreadID is the OS thread that starts the answering process (0 where unknown): a
// process inherits its creating thread's nice value, so that one is not lowered.
func (s *Supervisor) ThreadID() int { return s.tid }

// Publish writes snap as the next snapshot file and tells the answering process to map
// it. The process reports when it serves it (Served). Calls must not overlap.
func (s *Supervisor) Publish(snap *Snapshot) error {
	seq := s.seq.Add(1)
	if err := WriteFile(s.cfg.Answerer.SnapshotPath, snap, seq); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.published = seq
	s.tellLocked(seq) // a process that has died gets it when restarted
	return nil
}

// Published is the sequence number of the last snapshot published (0: none yet).
func (s *Supervisor) Published() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.published
}

// AnswererState is the answering process as the daemon sees it.
type AnswererState struct {
	Served   *SnapshotStats // nil: no process serving a snapshot (none yet, or restarting)
	Refused  string         // why the last snapshot file was refused (the previous one stays served)
	PID      int            // 0: none running
	Restarts int
}

// State reports the answering process's state.
func (s *Supervisor) State() AnswererState {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := AnswererState{Served: s.served, Refused: s.refused, Restarts: s.restarts}
	if s.proc != nil {
		st.PID = s.proc.Pid
	}
	return st
}

// Stop ends the answering process (gracefully: requests in flight are answered) and
// waits for it, killing it after stopTimeout.
func (s *Supervisor) Stop() {
	s.stopOnce.Do(func() {
		close(s.stop)
		s.mu.Lock()
		if s.ctrl != nil {
			s.ctrl.Close() // the process sees the pipe end and shuts down
			s.ctrl = nil
		}
		s.mu.Unlock()
		select {
		case <-s.done:
		case <-time.After(stopTimeout):
			s.mu.Lock()
			if s.proc != nil {
				s.log.Warn("serve: policy answerer did not stop; killing it", "pid", s.proc.Pid)
				s.proc.Kill()
			}
			s.mu.Unlock()
			<-s.done
		}
		s.lnFile.Close()
		s.cntFile.Close()
		os.Remove(s.cfg.CountersPath)
	})
}

// createCounters creates the counters file, on a memory file system where there is one
// (/dev/shm, unlinked at once: the open file is all both processes need, and nothing is
// left behind by a kill -9), else at path. Every answer writes its page: a page of a disk
// file that the kernel is writing back makes such a write wait for the disk, which an
// apply keeps busy — tens of milliseconds at a time.
func createCounters(path string) (*os.File, error) {
	if f, err := os.CreateTemp("/dev/shm", "roster-policy-counters-*"); err == nil {
		os.Remove(f.Name())
		return f, nil
	}
	os.Remove(path)
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
}

// run starts the answering process and restarts it until Stop. Its goroutine keeps one
// OS thread for itself: Linux signals a child when the thread that started it exits
// (Pdeathsig), and a child inherits that thread's nice value.
func (s *Supervisor) run(tid chan<- int) {
	runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
	defer close(s.done)
	tid <- threadID()
	backoff := restartFirst
	for {
		started := time.Now()
		err := s.runOnce()
		select {
		case <-s.stop:
			return
		default:
		}
		if time.Since(started) > restartReset {
			backoff = restartFirst
		}
		s.log.Warn("serve: policy answerer exited; restarting it", "err", err, "after", backoff)
		select {
		case <-s.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, restartMax)
		s.mu.Lock()
		s.restarts++
		s.mu.Unlock()
	}
}

// runOnce starts one answering process, hands it its config and the last snapshot, and
// waits for it to exit.
func (s *Supervisor) runOnce() error {
	ctrlR, ctrlW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("policy answerer: %w", err)
	}
	replyR, replyW, err := os.Pipe()
	if err != nil {
		ctrlR.Close()
		ctrlW.Close()
		return fmt.Errorf("policy answerer: %w", err)
	}
	logR, logW, err := os.Pipe()
	if err != nil {
		ctrlR.Close()
		ctrlW.Close()
		replyR.Close()
		replyW.Close()
		return fmt.Errorf("policy answerer: %w", err)
	}
	cmd := s.command()
	cmd.ExtraFiles = []*os.File{s.lnFile, ctrlR, replyW, s.cntFile} // fds 3…6, see answerer.go
	cmd.Stderr = logW
	cmd.SysProcAttr = answererAttr()
	err = cmd.Start()
	ctrlR.Close()
	replyW.Close()
	logW.Close()
	if err != nil {
		ctrlW.Close()
		replyR.Close()
		logR.Close()
		return fmt.Errorf("policy answerer: start: %w", err)
	}
	var pipes sync.WaitGroup // the log and the replies, read to their end
	pipes.Go(func() { s.relayLog(logR) })
	pipes.Go(func() { s.readReplies(replyR) })

	cfg, _ := json.Marshal(s.cfg.Answerer)
	s.mu.Lock()
	s.ctrl, s.proc = ctrlW, cmd.Process
	select {
	case <-s.stop: // stopped while starting: let it go at once
		s.ctrl.Close()
		s.ctrl = nil
	default:
		if _, err := ctrlW.Write(append(cfg, '\n')); err == nil && s.published > 0 {
			s.tellLocked(s.published)
		}
	}
	s.mu.Unlock()
	s.log.Info("serve: policy answerer started", "pid", cmd.Process.Pid)

	err = cmd.Wait()
	pipes.Wait() // no reply of this process lands after it is marked gone
	s.mu.Lock()
	if s.ctrl != nil {
		s.ctrl.Close()
		s.ctrl = nil
	}
	s.proc, s.served = nil, nil
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("policy answerer: %w", err)
	}
	return errors.New("policy answerer: exited")
}

// command is the answering process to start: this executable (on Linux the very file
// running, even if an upgrade replaced it on disk) unless cfg.Command says otherwise.
func (s *Supervisor) command() *exec.Cmd {
	var cmd *exec.Cmd
	if len(s.cfg.Command) > 0 {
		cmd = exec.Command(s.cfg.Command[0], s.cfg.Command[1:]...)
	} else {
		cmd = exec.Command(selfExecutable(), AnswererCommand)
		cmd.Args[0] = os.Args[0]
	}
	// The profiles named for the daemon are the daemon's; ROSTER_ANSWERER_CPUPROFILE
	// names the answering process's (written when it stops).
	for _, kv := range os.Environ() {
		switch {
		case strings.HasPrefix(kv, "ROSTER_CPUPROFILE="), strings.HasPrefix(kv, "ROSTER_MEMPROFILE="):
		case strings.HasPrefix(kv, "ROSTER_ANSWERER_CPUPROFILE="):
			cmd.Env = append(cmd.Env, "ROSTER_CPUPROFILE="+strings.TrimPrefix(kv, "ROSTER_ANSWERER_CPUPROFILE="))
		case strings.HasPrefix(kv, "ROSTER_ANSWERER_GOMAXPROCS="):
			// The answering process's own GOMAXPROCS (the daemon's stays as it is).
			cmd.Env = append(cmd.Env, "GOMAXPROCS="+strings.TrimPrefix(kv, "ROSTER_ANSWERER_GOMAXPROCS="))
		default:
			cmd.Env = append(cmd.Env, kv)
		}
	}
	return cmd
}

// tellLocked asks the running process, if any, to load snapshot seq.
func (s *Supervisor) tellLocked(seq uint64) {
	if s.ctrl == nil {
		return
	}
	b, _ := json.Marshal(controlMsg{Load: seq})
	if _, err := s.ctrl.Write(append(b, '\n')); err != nil {
		s.log.Warn("serve: policy answerer: send the snapshot", "err", err) // it is dying; the restart sends it
	}
}

// readReplies records what the process reports serving.
func (s *Supervisor) readReplies(r *os.File) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var rep answerReply
		if err := json.Unmarshal(sc.Bytes(), &rep); err != nil {
			s.log.Warn("serve: policy answerer: bad reply", "err", err)
			continue
		}
		s.mu.Lock()
		if rep.Error != "" {
			s.refused = fmt.Sprintf("snapshot %d refused: %s", rep.Seq, rep.Error)
		} else {
			s.served, s.refused = rep.Stats, ""
		}
		s.mu.Unlock()
	}
}

// relayLog copies the process's JSON log lines into the daemon's log; other lines (a
// panic's trace) are logged as errors.
func (s *Supervisor) relayLog(r *os.File) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			s.log.Error("policy answerer", "output", sc.Text())
			continue
		}
		var level slog.Level
		if l, ok := rec["level"].(string); !ok || level.UnmarshalText([]byte(l)) != nil {
			level = slog.LevelInfo
		}
		msg, _ := rec["msg"].(string)
		delete(rec, "level")
		delete(rec, "msg")
		delete(rec, "time")
		attrs := make([]any, 0, 2*len(rec))
		for k, v := range rec {
			attrs = append(attrs, k, v)
		}
		s.log.Log(context.Background(), level, msg, attrs...)
	}
}
