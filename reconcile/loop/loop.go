// Package loop holds the daemon's generic building blocks: the run loop with coalescing
// triggers and backoff, the GitHub-style webhook handler that triggers it, and the lock
// that keeps one daemon per state database.
package loop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"
)

// maxDefaultBackoff caps the default MaxBackoff (10 × Interval).
const maxDefaultBackoff = time.Hour

// Loop runs Run once at Start, then every Interval and whenever Trigger is called.
// Runs never overlap; triggers that arrive while a run is in progress coalesce into
// one next run. After a failed run the next timed run waits longer (Interval, 2×, 4×, …
// up to MaxBackoff); a Trigger still runs at once.
type Loop struct {
	Interval time.Duration
	// Run is one reconcile. Its ctx is Start's: it is cancelled on shutdown, and Run
	// should then finish (or roll back) the transaction it is in and return.
	Run    func(ctx context.Context, reason string) error
	Logger *slog.Logger
	// MaxBackoff bounds the wait after repeated failures; default 10 × Interval (at most
	// an hour, at least Interval).
	MaxBackoff time.Duration

	once sync.Once
	trig chan string
}

func (l *Loop) init() { l.once.Do(func() { l.trig = make(chan string, 1) }) }

// Trigger asks for a run as soon as possible. It never blocks; triggers made before the
// next run starts are all served by that one run.
func (l *Loop) Trigger(reason string) {
	l.init()
	select {
	case l.trig <- reason:
	default: // a run is already pending
	}
}

func (l *Loop) logger() *slog.Logger {
	if l.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l.Logger
}

func (l *Loop) maxBackoff() time.Duration {
	if l.MaxBackoff > 0 {
		return max(l.MaxBackoff, l.Interval)
	}
	m := 10 * l.Interval
	if m > maxDefaultBackoff || m <= 0 { // m <= 0: overflow
		m = maxDefaultBackoff
	}
	return max(m, l.Interval)
}

// backoff is the wait after failures consecutive failed runs (failures ≥ 1).
func (l *Loop) backoff(failures int) time.Duration {
	limit := l.maxBackoff()
	d := l.Interval
	for i := 1; i < failures; i++ {
		d *= 2
		if d >= limit || d <= 0 {
			return limit
		}
	}
	return min(d, limit)
}

// Start runs the loop until ctx is done, then returns nil once the run in progress, if
// any, has returned. It returns an error at once only when the Loop is misconfigured.
func (l *Loop) Start(ctx context.Context) error {
	if l.Run == nil {
		return errors.New("loop: Run is nil")
	}
	if l.Interval <= 0 {
		return fmt.Errorf("loop: interval %v must be positive", l.Interval)
	}
	l.init()
	log := l.logger()
	failures := 0
	reason := "start"
	for {
		if ctx.Err() != nil {
			return nil
		}
		// Triggers that arrived before this run starts are served by it.
		select {
		case r := <-l.trig:
			if reason == "interval" {
				reason = r
			}
		default:
		}
		start := time.Now()
		err := l.runOnce(ctx, reason)
		took := time.Since(start)
		if ctx.Err() != nil {
			if err != nil {
				log.Info("loop: stopped; last run ended with an error", "reason", reason, "took", took, "err", err)
			}
			return nil
		}
		wait := l.Interval
		if err != nil {
			failures++
			wait = l.backoff(failures)
			log.Warn("loop: run failed", "reason", reason, "took", took, "failures", failures, "retry_in", wait, "err", err)
		} else {
			if failures > 0 {
				log.Info("loop: recovered", "reason", reason, "failures", failures, "took", took)
			} else {
				log.Debug("loop: run done", "reason", reason, "took", took)
			}
			failures = 0
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case reason = <-l.trig:
			timer.Stop()
		case <-timer.C:
			reason = "interval"
		}
	}
}

// runOnce calls Run, turning a panic into an error so the daemon keeps going.
func (l *Loop) runOnce(ctx context.Context, reason string) (err error) {
	defer func() {
		if p := recover(); p != nil {
			l.logger().Error("loop: run panicked", "reason", reason, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = fmt.Errorf("loop: run panicked: %v", p)
		}
	}()
	return l.Run(ctx, reason)
}
