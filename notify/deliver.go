package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/state"
)

// MaxTries is how many times a message is tried before it is marked failed (SPEC §5.7).
const MaxTries = 3

// Report counts the outcomes of a delivery run.
type Report struct {
	Sent     int // accepted by the server (or written to mail_dir)
	Retried  int // a try failed; due again after a backoff
	Failed   int // gave up: three tries failed, or the email cannot be composed
	Deferred int // not tried: the SMTP server could not be reached; due again after DownDelay
	Pending  int // DeliverAll: rows still pending or sending when it returned
}

func (r *Report) add(o Report) {
	r.Sent += o.Sent
	r.Retried += o.Retried
	r.Failed += o.Failed
	r.Deferred += o.Deferred
}

// Deliverer sends due outbox rows.
//
// Idempotency: rows are claimed ("sending", with a lease) before any SMTP transaction and
// marked "sent" right after the server's 250 reply to DATA; outcomes are group-committed by
// one writer (one transaction per ≤5 ms of outcomes), so the window between acceptance and
// the "sent" mark is a few milliseconds. A row left "sending" by a crash is claimed again
// when its lease expires
// (state.ClaimLease) and resent with the same deterministic Message-ID: a message the
// server accepted in that window may arrive twice, recognisably; no message is ever lost.
// Likewise a connection lost after the message's final dot but before the reply counts as
// a failed try and is retried.
type Deliverer struct {
	DB       *state.DB
	Servers  map[string]schema.SMTPConfig // by name; a row's smtp_server "" means the only one, or "default"
	Password func(envName string) string  // reads password_env (os.Getenv in production)
	MailDir  string                       // with no SMTP server: one <id>.eml per message here
	From     string                       // From of mail_dir messages; default roster@localhost
	Renderer Renderer                     // the pattern language (PatternRenderer)
	Logger   *slog.Logger
	Progress io.Writer // a progress line (\r) when sending many; pass only a terminal (IsTerminal)
	PoolSize int       // connections per SMTP server; default 2
	Backoff  func(attempt int) time.Duration
	// DownDelay is how long rows wait when their SMTP server cannot be reached (dial, TLS,
	// greeting or authentication failed); such rows keep their tries. Default 30s.
	DownDelay time.Duration
	Now       func() time.Time
	TLSConfig *tls.Config // base TLS configuration (RootCAs); ServerName is set per server
	HeloName  string      // EHLO name; default the host name
	BatchSize int         // rows claimed at a time; default 1000

	composerOnce sync.Once
	composer     *Composer
}

// DefaultBackoff waits 1s, 4s, 16s… after the 1st, 2nd, 3rd… failed try.
func DefaultBackoff(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	if attempt > 8 {
		attempt = 8
	}
	return time.Second << (2 * (attempt - 1))
}

func (d *Deliverer) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *Deliverer) logger() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (d *Deliverer) backoff(attempt int) time.Duration {
	if d.Backoff != nil {
		return d.Backoff(attempt)
	}
	return DefaultBackoff(attempt)
}

func (d *Deliverer) downDelay() time.Duration {
	if d.DownDelay > 0 {
		return d.DownDelay
	}
	return 30 * time.Second
}

func (d *Deliverer) comp() *Composer {
	d.composerOnce.Do(func() { d.composer = NewComposer(d.Renderer) })
	return d.composer
}

// route says where a row goes: a named SMTP server, or mail_dir ("" name, nil error).
func (d *Deliverer) route(name string) (string, *schema.SMTPConfig, error) {
	if len(d.Servers) == 0 {
		if d.MailDir == "" {
			return "", nil, errors.New("no SMTP server and no mail_dir configured")
		}
		return "", nil, nil
	}
	if name == "" {
		if len(d.Servers) == 1 {
			for n := range d.Servers {
				name = n
			}
		} else if _, ok := d.Servers["default"]; ok {
			name = "default"
		} else {
			return "", nil, errors.New("the email names no SMTP server and there are several, none named default")
		}
	}
	cfg, ok := d.Servers[name]
	if !ok {
		return "", nil, fmt.Errorf("unknown SMTP server %q", name)
	}
	return name, &cfg, nil
}

// job is one claimed row on its way to a sender.
type job struct {
	row state.OutboxRow
	m   *Message // composed
}

// run is the state of one DeliverDue call.
type run struct {
	d        *Deliverer
	ctx      context.Context // cancelled: stop sending, release claimed rows
	start    time.Time
	outcomes outcomeQueue
	claimed  atomic.Int64
	done     atomic.Int64
}

// DeliverDue sends every row due now (rows retried during the call wait for the next one).
func (d *Deliverer) DeliverDue(ctx context.Context) (Report, error) {
	r := &run{d: d, ctx: ctx, start: d.now()}
	r.outcomes.wake = make(chan struct{}, 1)
	var rep Report
	var recErr error
	recDone := make(chan struct{})
	go func() { defer close(recDone); rep, recErr = r.record() }()
	stopProgress := r.progress()

	queues := map[string]chan job{}
	var wg sync.WaitGroup
	batch := d.BatchSize
	if batch <= 0 {
		batch = 1000
	}
	var claimErr error
	for ctx.Err() == nil {
		limit := batch
		if r.claimed.Load() == 0 {
			limit = min(batch, 64) // a small first claim: the senders start at once
		}
		rows, err := d.DB.ClaimDue(context.WithoutCancel(ctx), r.start, limit)
		if err != nil {
			claimErr = err
			break
		}
		if len(rows) == 0 {
			break
		}
		r.claimed.Add(int64(len(rows)))
		for _, row := range rows {
			name, cfg, err := d.route(row.SMTPServer)
			if err != nil {
				r.fail(row, configError{err})
				continue
			}
			q, ok := queues[name]
			if !ok {
				q = make(chan job, 2*batch)
				queues[name] = q
				n := d.PoolSize
				if n <= 0 {
					n = 2
				}
				if cfg == nil {
					n = 1
				}
				p := &pool{r: r, name: name, cfg: cfg}
				p.start(q, n, &wg)
			}
			select {
			case q <- job{row: row}:
			case <-ctx.Done():
				r.release(row)
			}
		}
	}
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
	r.outcomes.close()
	<-recDone
	stopProgress()
	if claimErr != nil {
		return rep, fmt.Errorf("deliver emails: %w", claimErr)
	}
	if recErr != nil {
		return rep, fmt.Errorf("deliver emails: %w", recErr)
	}
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("deliver emails: %w", err)
	}
	return rep, nil
}

// DeliverAll delivers until nothing is pending, or until the next try would come after
// maxWait (retries with backoff). It is what `roster apply` runs before it exits.
func (d *Deliverer) DeliverAll(ctx context.Context, maxWait time.Duration) (Report, error) {
	deadline := d.now().Add(maxWait)
	var total Report
	for {
		rep, err := d.DeliverDue(ctx)
		total.add(rep)
		if err != nil {
			return total, err
		}
		next, ok, err := d.DB.NextDue(ctx)
		if err != nil {
			return total, fmt.Errorf("deliver emails: %w", err)
		}
		if !ok || next.After(deadline) {
			break
		}
		if wait := next.Sub(d.now()); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return total, fmt.Errorf("deliver emails: %w", ctx.Err())
			case <-t.C:
			}
		}
	}
	counts, err := d.DB.OutboxCounts(ctx)
	if err != nil {
		return total, fmt.Errorf("deliver emails: %w", err)
	}
	total.Pending = counts[state.OutboxPending] + counts[state.OutboxSending]
	return total, nil
}

// groupCommitWait is how long the writer waits for more outcomes before a commit.
const groupCommitWait = 5 * time.Millisecond

// result is an outcome on its way to the writer; deferred: not a try (server unreachable,
// or the run was cancelled).
type result struct {
	state.Outcome
	deferred bool
}

// outcomeQueue hands outcomes from the senders to the writer without waking it for each
// one: a push wakes the writer only when it is idle.
type outcomeQueue struct {
	mu     sync.Mutex
	items  []result
	closed bool
	wake   chan struct{} // capacity 1
}

func (q *outcomeQueue) push(o result) {
	q.mu.Lock()
	q.items = append(q.items, o)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *outcomeQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take waits for outcomes, lingers groupCommitWait for more, and returns them all (at
// most max); done is true once the queue is closed and empty.
func (q *outcomeQueue) take(buf []result, max int) (out []result, done bool) {
	for {
		q.mu.Lock()
		n, closed := len(q.items), q.closed
		q.mu.Unlock()
		if n == 0 && closed {
			return buf[:0], true
		}
		if n > 0 {
			break
		}
		<-q.wake
	}
	// Linger a moment for more (group commit): a few milliseconds more between a server's
	// 250 and the "sent" mark, for far fewer SQLite commits.
	t := time.NewTimer(groupCommitWait)
	select {
	case <-t.C:
	case <-q.wakeIfClosed():
	}
	t.Stop()
	q.mu.Lock()
	defer q.mu.Unlock()
	k := min(len(q.items), max)
	out = append(buf[:0], q.items[:k]...)
	q.items = append(q.items[:0], q.items[k:]...)
	return out, false
}

// wakeIfClosed is a channel closed when the queue is closed (no lingering at the end).
func (q *outcomeQueue) wakeIfClosed() <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		c := make(chan struct{})
		close(c)
		return c
	}
	return nil
}

// record is the single writer: it group-commits outcomes as they arrive and counts them.
func (r *run) record() (Report, error) {
	var rep Report
	var firstErr error
	ctx := context.WithoutCancel(r.ctx)
	var items []result
	batch := make([]state.Outcome, 0, 512)
	for {
		var done bool
		items, done = r.outcomes.take(items, 512)
		if done {
			break
		}
		batch = batch[:0]
		var counted Report
		for _, o := range items {
			batch = append(batch, o.Outcome)
			switch {
			case o.deferred:
				counted.Deferred++
			case o.Status == state.OutboxSent:
				counted.Sent++
			case o.Status == state.OutboxFailed:
				counted.Failed++
			default:
				counted.Retried++
			}
		}
		var err error
		for try := 0; try < 5; try++ {
			if err = r.d.DB.RecordOutcomes(ctx, batch); err == nil {
				break
			}
			time.Sleep(time.Duration(try+1) * 100 * time.Millisecond)
		}
		if err != nil {
			r.d.logger().Error("cannot record email outcomes", "count", len(batch), "err", err)
			if firstErr == nil {
				firstErr = err
			}
		}
		rep.add(counted)
		r.done.Add(int64(len(batch)))
	}
	return rep, firstErr
}

func (r *run) sent(row state.OutboxRow, messageID string) {
	o := state.Outcome{ID: row.ID, Status: state.OutboxSent, MessageID: messageID, At: r.d.now()}
	if row.RefID != nil {
		o.Vars = row.Vars // made from the referenced row at claim: kept with the sent row
	}
	r.outcomes.push(result{Outcome: o})
}

// fail records a try that failed: retried with backoff, or failed after the last try.
// A ComposeError fails at once.
func (r *run) fail(row state.OutboxRow, err error) {
	attempts := row.Attempts + 1
	log := r.d.logger().With("email", row.ID, "kind", row.Kind, "key", row.ObjectKey, "attempt", attempts)
	if attempts >= MaxTries || IsComposeError(err) || isConfigError(err) {
		log.Error("email failed", "err", err)
		r.outcomes.push(result{Outcome: state.Outcome{ID: row.ID, Status: state.OutboxFailed, Attempts: attempts, Err: err.Error()}})
		return
	}
	next := r.d.now().Add(r.d.backoff(attempts))
	log.Warn("email try failed, will retry", "err", err, "next", next)
	r.outcomes.push(result{Outcome: state.Outcome{ID: row.ID, Status: state.OutboxPending, Attempts: attempts, Next: next, Err: err.Error()}})
}

// deferRow puts a row back without using a try: its server could not be reached.
func (r *run) deferRow(row state.OutboxRow, err error) {
	r.deferRowFor(row, err, r.d.downDelay())
}

func (r *run) deferRowFor(row state.OutboxRow, err error, wait time.Duration) {
	r.outcomes.push(result{deferred: true, Outcome: state.Outcome{ID: row.ID, Status: state.OutboxPending, Attempts: row.Attempts,
		Next: r.d.now().Add(wait), Err: "server unavailable: " + err.Error()}})
}

// release puts a claimed row back untouched (the run was cancelled).
func (r *run) release(row state.OutboxRow) {
	r.outcomes.push(result{deferred: true, Outcome: state.Outcome{ID: row.ID, Status: state.OutboxPending, Attempts: row.Attempts, Next: r.start, Err: row.LastError}})
}

type configError struct{ error }

func isConfigError(err error) bool {
	var c configError
	return errors.As(err, &c)
}

// progress prints "\rsending emails n/m" to d.Progress while many are being sent.
func (r *run) progress() (stop func()) {
	if r.d.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		printed := false
		show := func() {
			fmt.Fprintf(r.d.Progress, "\rsending emails: %d/%d", r.done.Load(), r.claimed.Load())
			printed = true
		}
		for {
			select {
			case <-t.C:
				if r.claimed.Load() >= 20 {
					show()
				}
			case <-done:
				if printed || r.claimed.Load() >= 20 {
					show()
					fmt.Fprintln(r.d.Progress)
				}
				return
			}
		}
	}()
	return func() { close(done); <-finished }
}

// IsTerminal reports whether f is a terminal (a character device), for Progress.
func IsTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// writeMailDir writes the message to dir/<id>.eml atomically (temporary file, fsync, rename).
func writeMailDir(dir string, m *Message) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("write to mail_dir: %w", err)
	}
	f, err := os.CreateTemp(dir, ".tmp-*.eml")
	if err != nil {
		return fmt.Errorf("write to mail_dir: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(m.Data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, strconv.FormatInt(m.RowID, 10)+".eml"))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write to mail_dir: %w", err)
	}
	return nil
}
