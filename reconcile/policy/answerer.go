package policy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
)

// The answering process: `roster policy-answer`, started by the daemon's Supervisor and
// nothing else. It answers the policy requests from snapshot files the daemon writes, so
// that the reconciler's heap, collections and CPU never stall a call. It inherits:
//
//	fd 3  the policy listener (TCP; it wraps TLS itself)
//	fd 4  the control pipe from the daemon: an AnswererConfig line, then one
//	      {"load":N} line per snapshot published; its end (the daemon gone) stops it
//	fd 5  the reply pipe to the daemon: one answerReply line per load
//	fd 6  the counters file, mapped shared (the daemon reads the counts from it)
//	fd 2  its log, JSON lines the daemon relays into its own log
const (
	fdListener = 3 + iota
	fdControl
	fdReply
	fdCounters
)

// AnswererCommand is the hidden subcommand that runs the answering process.
const AnswererCommand = "policy-answer"

// AnswererConfig is what the daemon tells its answering process first, over the control
// pipe (never in argv or the environment: it carries the password).
type AnswererConfig struct {
	Username, Password string
	Unknown            string // policy_unknown
	CertFile, KeyFile  string // both empty: plain HTTP (the daemon checked loopback)
	SnapshotPath       string
	Debug              bool // log every answer (log level debug)
}

// controlMsg is a line of the control pipe after the config.
type controlMsg struct {
	Load uint64 `json:"load"` // the sequence number published; the file may hold a newer one
}

// answerReply is a line of the reply pipe: the snapshot now served, or why the file
// was refused (the previous snapshot stays served).
type answerReply struct {
	Seq   uint64         `json:"seq"`
	Stats *SnapshotStats `json:"stats,omitempty"`
	Error string         `json:"error,omitempty"`
}

// RunAnswerer is the answering process's main: it serves until ctx ends or the control
// pipe closes, then shuts down gracefully.
func RunAnswerer(ctx context.Context, logOut io.Writer) error {
	ctrl := os.NewFile(fdControl, "policy-control")
	reply := os.NewFile(fdReply, "policy-reply")
	lnFile := os.NewFile(fdListener, "policy-listener")
	cntFile := os.NewFile(fdCounters, "policy-counters")
	if ctrl == nil || reply == nil || lnFile == nil || cntFile == nil {
		return errors.New("policy answerer: started without its descriptors (it is started by roster serve)")
	}
	in := bufio.NewReader(ctrl)
	line, err := in.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("policy answerer: read config: %w", err)
	}
	var cfg AnswererConfig
	if err := json.Unmarshal(line, &cfg); err != nil {
		return fmt.Errorf("policy answerer: config: %w", err)
	}
	level := slog.LevelInfo
	if cfg.Debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: level}))

	ln, err := net.FileListener(lnFile)
	lnFile.Close()
	if err != nil {
		return fmt.Errorf("policy answerer: listener: %w", err)
	}
	if cfg.CertFile != "" {
		if ln, err = WrapTLS(ln, cfg.CertFile, cfg.KeyFile); err != nil {
			return fmt.Errorf("policy answerer: %w", err)
		}
	}
	counters, err := mapCounters(cntFile)
	if err != nil {
		return fmt.Errorf("policy answerer: counters: %w", err)
	}
	var idx Index
	srv, err := NewServer(&idx, Config{Username: cfg.Username, Password: cfg.Password, Unknown: cfg.Unknown, Logger: log, Counters: counters})
	if err != nil {
		return fmt.Errorf("policy answerer: %w", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, ln, srv, log) }()
	go func() {
		defer cancel() // the daemon closed the pipe or died: stop
		enc := json.NewEncoder(reply)
		for {
			line, err := in.ReadBytes('\n')
			if err != nil {
				return
			}
			var m controlMsg
			if err := json.Unmarshal(line, &m); err != nil {
				log.Error("policy answerer: bad control message", "err", err)
				continue
			}
			enc.Encode(load(&idx, cfg.SnapshotPath, m.Load, log))
		}
	}()
	log.Info("policy answerer: serving", "addr", ln.Addr().String(), "pid", os.Getpid())
	err = <-served
	log.Info("policy answerer: stopped")
	return err
}

// load maps the snapshot file and swaps it in; a file that is refused leaves the
// snapshot served as it is.
func load(idx *Index, path string, want uint64, log *slog.Logger) answerReply {
	s, seq, err := OpenFile(path)
	if err != nil {
		log.Warn("policy answerer: snapshot refused; the previous one stays served", "want", want, "err", err)
		return answerReply{Seq: want, Error: err.Error()}
	}
	idx.Swap(s)
	st := s.Stats()
	log.Debug("policy answerer: snapshot swapped in", "seq", seq, "version", st.Version)
	return answerReply{Seq: seq, Stats: &st}
}
