package loop

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testLogger() (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// startLoop runs l.Start in the background; the returned stop cancels and waits.
func startLoop(t *testing.T, l *Loop) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Start(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Start returned %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Start did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestCoalescingAndNeverConcurrent(t *testing.T) {
	var runs, active, maxActive atomic.Int32
	release := make(chan struct{})
	started := make(chan string, 10)
	l := &Loop{
		Interval: time.Hour,
		Run: func(ctx context.Context, reason string) error {
			if n := active.Add(1); n > maxActive.Load() {
				maxActive.Store(n)
			}
			defer active.Add(-1)
			runs.Add(1)
			started <- reason
			if reason == "start" {
				<-release // slow first run
			}
			return nil
		},
	}
	stop := startLoop(t, l)
	if r := <-started; r != "start" {
		t.Fatalf("first run reason %q", r)
	}
	for i := 0; i < 100; i++ {
		l.Trigger("hook")
	}
	close(release)
	if r := <-started; r != "hook" {
		t.Fatalf("second run reason %q", r)
	}
	// Give a wrongly queued third run the chance to happen.
	time.Sleep(100 * time.Millisecond)
	stop()
	if got := runs.Load(); got != 2 {
		t.Fatalf("runs = %d, want 2 (100 triggers during a run coalesce into one)", got)
	}
	if maxActive.Load() != 1 {
		t.Fatalf("max concurrent runs = %d", maxActive.Load())
	}
}

func TestNeverConcurrentUnderTriggerStorm(t *testing.T) {
	var active, overlaps, runs atomic.Int32
	l := &Loop{
		Interval: time.Millisecond,
		Run: func(ctx context.Context, reason string) error {
			if active.Add(1) != 1 {
				overlaps.Add(1)
			}
			time.Sleep(200 * time.Microsecond)
			active.Add(-1)
			runs.Add(1)
			return nil
		},
	}
	stop := startLoop(t, l)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				l.Trigger("storm")
			}
		}()
	}
	wg.Wait()
	waitFor(t, "some runs", func() bool { return runs.Load() >= 5 })
	stop()
	if overlaps.Load() != 0 {
		t.Fatalf("%d overlapping runs", overlaps.Load())
	}
}

func TestIntervalTicks(t *testing.T) {
	var runs atomic.Int32
	reasons := make(chan string, 100)
	l := &Loop{Interval: 10 * time.Millisecond, Run: func(ctx context.Context, reason string) error {
		runs.Add(1)
		select {
		case reasons <- reason:
		default:
		}
		return nil
	}}
	startLoop(t, l)
	waitFor(t, "4 runs", func() bool { return runs.Load() >= 4 })
	if r := <-reasons; r != "start" {
		t.Fatalf("first reason %q", r)
	}
	if r := <-reasons; r != "interval" {
		t.Fatalf("second reason %q", r)
	}
}

var retryRe = regexp.MustCompile(`retry_in=(\S+)`)

func TestBackoffGrowsAndRecovered(t *testing.T) {
	logger, buf := testLogger()
	var runs atomic.Int32
	const failFirst = 5
	l := &Loop{
		Interval:   5 * time.Millisecond,
		MaxBackoff: 40 * time.Millisecond,
		Logger:     logger,
		Run: func(ctx context.Context, reason string) error {
			if runs.Add(1) <= failFirst {
				return errors.New("boom")
			}
			return nil
		},
	}
	startLoop(t, l)
	waitFor(t, "recovered log", func() bool { return strings.Contains(buf.String(), "recovered") })

	var waits []string
	for _, m := range retryRe.FindAllStringSubmatch(buf.String(), -1) {
		waits = append(waits, m[1])
	}
	want := []string{"5ms", "10ms", "20ms", "40ms", "40ms"}
	if strings.Join(waits, " ") != strings.Join(want, " ") {
		t.Fatalf("retry_in = %v, want %v\n%s", waits, want, buf.String())
	}
	if !regexp.MustCompile(`msg="loop: recovered".*failures=5`).MatchString(buf.String()) {
		t.Fatalf("recovered line lacks failures=5:\n%s", buf.String())
	}
}

func TestBackoffSchedule(t *testing.T) {
	cases := []struct {
		interval, max time.Duration
		failures      int
		want          time.Duration
	}{
		{time.Minute, 0, 1, time.Minute},
		{time.Minute, 0, 2, 2 * time.Minute},
		{time.Minute, 0, 4, 8 * time.Minute},
		{time.Minute, 0, 5, 10 * time.Minute}, // default cap 10 × interval
		{time.Minute, 0, 500, 10 * time.Minute},
		{time.Hour, 0, 3, time.Hour}, // default cap at most an hour
		{time.Second, 3 * time.Second, 3, 3 * time.Second},
		{time.Minute, time.Second, 1, time.Minute}, // a cap below Interval is Interval
	}
	for _, c := range cases {
		l := &Loop{Interval: c.interval, MaxBackoff: c.max}
		if got := l.backoff(c.failures); got != c.want {
			t.Errorf("backoff(interval %v, max %v, %d failures) = %v, want %v", c.interval, c.max, c.failures, got, c.want)
		}
	}
}

func TestTriggerRunsAtOnceDuringBackoff(t *testing.T) {
	var runs atomic.Int32
	l := &Loop{
		Interval: time.Hour, // backoff waits are hours: only a trigger can cause a run
		Run: func(ctx context.Context, reason string) error {
			runs.Add(1)
			return errors.New("always failing")
		},
	}
	startLoop(t, l)
	waitFor(t, "first run", func() bool { return runs.Load() == 1 })
	l.Trigger("hook")
	waitFor(t, "triggered run", func() bool { return runs.Load() == 2 })
}

func TestCancelWaitsForRunInFlight(t *testing.T) {
	inRun := make(chan struct{})
	var finished atomic.Bool
	l := &Loop{
		Interval: time.Hour,
		Run: func(ctx context.Context, reason string) error {
			close(inRun)
			<-ctx.Done()
			time.Sleep(50 * time.Millisecond) // finishing the transaction
			finished.Store(true)
			return nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Start(ctx) }()
	<-inRun
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Start did not return")
	}
	if !finished.Load() {
		t.Fatal("Start returned before the run in flight finished")
	}
}

func TestPanicIsAFailure(t *testing.T) {
	logger, buf := testLogger()
	var runs atomic.Int32
	l := &Loop{Interval: time.Millisecond, Logger: logger, Run: func(ctx context.Context, reason string) error {
		if runs.Add(1) == 1 {
			panic("kaboom")
		}
		return nil
	}}
	startLoop(t, l)
	waitFor(t, "recovery after panic", func() bool { return strings.Contains(buf.String(), "recovered") })
	if !strings.Contains(buf.String(), "kaboom") {
		t.Fatalf("panic not logged:\n%s", buf.String())
	}
}

func TestStartMisconfigured(t *testing.T) {
	if err := (&Loop{Interval: time.Second}).Start(context.Background()); err == nil {
		t.Fatal("nil Run accepted")
	}
	if err := (&Loop{Run: func(context.Context, string) error { return nil }}).Start(context.Background()); err == nil {
		t.Fatal("zero Interval accepted")
	}
}

func TestTriggerBeforeStartIsServedByFirstRun(t *testing.T) {
	var runs atomic.Int32
	l := &Loop{Interval: time.Hour, Run: func(ctx context.Context, reason string) error {
		runs.Add(1)
		return nil
	}}
	l.Trigger("early")
	l.Trigger("early")
	startLoop(t, l)
	waitFor(t, "first run", func() bool { return runs.Load() >= 1 })
	time.Sleep(50 * time.Millisecond)
	if got := runs.Load(); got != 1 {
		t.Fatalf("runs = %d, want 1: triggers before the first run are served by it", got)
	}
}
