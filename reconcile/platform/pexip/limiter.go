package pexip

import (
	"context"
	"sync"
	"time"
)

// Limiter is a token bucket of requests per minute, shared by every request of a client:
// Wait takes a token, sleeping until one is there. Tokens are reserved in call order, so
// concurrent callers are served fairly and the rate holds however many there are. Pause
// stops every caller until a time (a 429's Retry-After: the node's limit is per node, not
// per request); after it the bucket restarts from the pause's end, so the waiting callers
// do not all leave at once. It is kept as the bucket's theoretical arrival time (GCRA):
// one time value instead of a count and a clock.
type Limiter struct {
	mu     sync.Mutex
	per    time.Duration // one token every per; 0: no limit
	tau    time.Duration // how far ahead of the schedule a burst may run: (burst-1)·per
	tat    time.Time     // when the bucket will have given every token reserved so far
	paused time.Time
	now    func() time.Time
}

// NewLimiter allows perMinute requests a minute, at most burst at once; perMinute <= 0
// means no limit (Pause still applies). burst < 1 is 1.
func NewLimiter(perMinute, burst int) *Limiter {
	l := &Limiter{now: time.Now}
	if perMinute > 0 {
		l.per = time.Minute / time.Duration(perMinute)
		l.tau = time.Duration(max(burst, 1)-1) * l.per
	}
	return l
}

// reserve takes a token and returns how long the caller must wait before using it.
func (l *Limiter) reserve() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	at := now
	if l.paused.After(at) {
		at = l.paused
	}
	if l.per > 0 {
		if earliest := l.tat.Add(-l.tau); earliest.After(at) {
			at = earliest
		}
		l.tat = maxTime(l.tat, at).Add(l.per)
	}
	return at.Sub(now)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Wait blocks until the caller may send one request, or ctx ends.
func (l *Limiter) Wait(ctx context.Context) error {
	return Sleep(ctx, l.reserve())
}

// Pause holds every caller until t (a later Pause may extend it, never shorten it).
func (l *Limiter) Pause(t time.Time) {
	l.mu.Lock()
	if t.After(l.paused) {
		l.paused = t
	}
	l.mu.Unlock()
}

// Sleep waits d, or until ctx ends (then it returns ctx's error).
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
