package push

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roster-dev/roster/reconcile/platform/pexip"
	"github.com/roster-dev/roster/state"
)

// Deliverer drains one platform's queue through a client.
type Deliverer struct {
	DB       *state.DB
	Client   *pexip.Client
	Platform string       // the queue's platform name, "pexip"
	Marker   pexip.Marker // this roster's ownership marker
	// Workers send at once (0: 4): the rate is the client's, shared; several workers
	// keep it full when each answer takes long.
	Workers int
	Batch   int // operations claimed at once (0: 200)
	// MaxAttempts bounds the tries of one operation across restarts (0: 20); each try
	// is itself up to the client's MaxAttempts requests.
	MaxAttempts         int
	Backoff, MaxBackoff time.Duration // between tries (0: 2 s doubling up to 10 min)
	// Progress is called whenever outcomes are recorded (at least every 500 ms while
	// answers come); a log line says the same every LogEvery
	// (0: 10 s) while a drain runs.
	Progress func(Progress)
	LogEvery time.Duration
	Logger   *slog.Logger
	Now      func() time.Time
}

// Progress is where a drain stands.
type Progress struct {
	Total     int // operations to deliver when the drain started, plus any enqueued since
	Done      int // delivered
	Failed    int // given up (invalid values, too many tries)
	Conflicts int // objects roster does not own in the way
	Retries   int // tries put off for later
	Elapsed   time.Duration
	Rate      float64       // operations finished per second so far
	ETA       time.Duration // at that rate, for the rest
	// QueueTime is the time spent claiming and recording in SQLite; SendTime the time the
	// workers spent sending, added up over workers (recording overlaps sending).
	QueueTime, SendTime time.Duration
}

// now and logger are the clock and the log, or their defaults.
func (d *Deliverer) now() time.Time {
	clock := time.Now
	if d.Now != nil {
		clock = d.Now
	}
	return clock()
}

func (d *Deliverer) logger() *slog.Logger { return cmp.Or(d.Logger, slog.Default()) }

// Drain delivers until no operation is pending: it waits for retries that are due later,
// and returns when the queue holds only done, failed and conflicting operations and those
// waiting for them. It returns early when ctx ends (delivered work stays recorded).
func (d *Deliverer) Drain(ctx context.Context) (Progress, error) {
	start := d.now()
	counts, err := d.DB.PlatformCounts(ctx)
	if err != nil {
		return Progress{}, err
	}
	c := counts[d.Platform]
	p := Progress{Total: c[state.PlatformPending] + c[state.PlatformSending]}
	batch := cmp.Or(max(d.Batch, 0), 200)
	logged := start
	for {
		t0, now := time.Now(), d.now()
		ops, err := d.DB.ClaimPlatformOps(ctx, d.Platform, now, batch)
		p.QueueTime += time.Since(t0)
		if err != nil {
			return p, err
		}
		if len(ops) == 0 {
			// Nothing due at the claim's time is claimable: what is due waits for a failed
			// or conflicting operation; a retry due later is waited for.
			next, ok, err := d.DB.NextPlatformDue(ctx, d.Platform, now)
			if err != nil || !ok {
				return p, err
			}
			if err := pexip.Sleep(ctx, next.Sub(d.now())); err != nil {
				return p, err
			}
			continue
		}
		// Outcomes are recorded as they come, a group at a time: a stop loses the record
		// of few answers (whose operations are sent again and meet their own objects), and
		// progress moves while a batch is sent at the rate.
		sent, unanswered, err := d.deliverAll(ctx, ops, func(outcomes []state.PlatformOutcome) error {
			t0 := time.Now()
			err := d.DB.RecordPlatformOutcomes(context.WithoutCancel(ctx), outcomes)
			p.QueueTime += time.Since(t0)
			if err != nil {
				return err
			}
			d.progress(&p, outcomes, start, &logged)
			return nil
		})
		p.SendTime += sent
		if len(unanswered) > 0 {
			// Stopped (a command's push_timeout, a signal): what got no answer is due again
			// at once for the next run, not after its lease. A request cut short may have
			// acted; its create then meets roster's marker.
			ids := make([]int64, len(unanswered))
			for i, op := range unanswered {
				ids[i] = op.ID
			}
			if rerr := d.DB.ReleasePlatformOps(context.WithoutCancel(ctx), ids, d.now()); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
		if err != nil {
			return p, err
		}
		if ctx.Err() != nil {
			return p, ctx.Err()
		}
	}
}

// Run drains the queue whenever wake fires (an apply enqueued operations), when a retry
// falls due, and every poll (0: 1 min), until ctx ends. It releases the claims a stopped
// process left first: it must be the platform's only deliverer (serve holds the state
// database's lock).
func (d *Deliverer) Run(ctx context.Context, wake <-chan struct{}, poll time.Duration) error {
	poll = cmp.Or(max(poll, 0), time.Minute)
	if n, err := d.DB.ReleasePlatformClaims(ctx, d.now()); err != nil {
		return err
	} else if n > 0 {
		d.logger().Info("platform operations resumed after a stop", "platform", d.Platform, "operations", n)
	}
	for {
		if _, err := d.Drain(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			d.logger().Error("platform push", "platform", d.Platform, "error", err)
		}
		wait := poll
		now := d.now()
		if next, ok, err := d.DB.NextPlatformDue(ctx, d.Platform, now); err == nil && ok {
			wait = min(wait, next.Sub(now))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// progress counts recorded outcomes into p and tells of it.
func (d *Deliverer) progress(p *Progress, outcomes []state.PlatformOutcome, start time.Time, logged *time.Time) {
	for _, o := range outcomes {
		switch o.Status {
		case state.PlatformDone:
			p.Done++
		case state.PlatformFailed:
			p.Failed++
		case state.PlatformConflict:
			p.Conflicts++
		case state.PlatformPending:
			p.Retries++
		}
	}
	finished := p.Done + p.Failed + p.Conflicts
	p.Total = max(p.Total, finished)
	p.Elapsed = d.now().Sub(start)
	if s := p.Elapsed.Seconds(); s > 0 {
		p.Rate = float64(finished) / s
	}
	if p.Rate > 0 {
		p.ETA = time.Duration(float64(p.Total-finished) / p.Rate * float64(time.Second))
	}
	if d.Progress != nil {
		d.Progress(*p)
	}
	if every := cmp.Or(d.LogEvery, 10*time.Second); d.now().Sub(*logged) >= every {
		*logged = d.now()
		d.logger().Info("platform push", "platform", d.Platform, "done", p.Done, "total", p.Total,
			"failed", p.Failed, "conflicts", p.Conflicts, "rate_per_s", math.Round(p.Rate*10)/10, "eta", p.ETA.Round(time.Second))
	}
}

// recordEvery bounds how long an answered outcome waits for its record, and recordGroup
// how many are recorded in one transaction.
const (
	recordEvery = 500 * time.Millisecond
	recordGroup = 200
)

// deliverAll sends ops (independent of each other, as claimed) on the workers and hands
// their outcomes to record in groups, as they come. Outcomes of requests the context cut
// short are not answers: they are not recorded but returned as unanswered, for the caller
// to release.
func (d *Deliverer) deliverAll(ctx context.Context, ops []state.PlatformOp, record func([]state.PlatformOutcome) error) (time.Duration, []state.PlatformOp, error) {
	workers := cmp.Or(max(d.Workers, 0), 4)
	var sending atomic.Int64
	next := make(chan state.PlatformOp)
	results := make(chan state.PlatformOutcome, workers)
	var wg sync.WaitGroup
	for range min(workers, len(ops)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for op := range next {
				t0 := time.Now()
				o := d.deliver(ctx, op)
				sending.Add(int64(time.Since(t0)))
				results <- o
			}
		}()
	}
	go func() {
		for _, op := range ops {
			next <- op
		}
		close(next)
		wg.Wait()
		close(results)
	}()
	tick := time.NewTicker(recordEvery)
	defer tick.Stop()
	var group []state.PlatformOutcome
	var unanswered []state.PlatformOp
	var failed error
	flush := func() {
		if len(group) > 0 && failed == nil {
			failed = record(group)
		}
		group = group[:0]
	}
	for {
		select {
		case o, ok := <-results:
			if !ok {
				flush()
				return time.Duration(sending.Load()), unanswered, failed
			}
			if o.Status != "" {
				group = append(group, o)
			} else {
				unanswered = append(unanswered, o.Op)
			}
			if len(group) >= recordGroup {
				flush()
			}
		case <-tick.C:
			flush()
		}
	}
}

// deliver sends one operation and decides its outcome. A zero Status means the context
// ended before an answer.
func (d *Deliverer) deliver(ctx context.Context, op state.PlatformOp) state.PlatformOutcome {
	out := state.PlatformOutcome{Op: op}
	payload := map[string]any{}
	err := json.Unmarshal([]byte(op.Payload), &payload)
	password, hasPassword := payload["password"].(string)
	var remote int
	var also []state.PlatformObject
	if err != nil {
		err = fmt.Errorf("operation %d: payload: %w", op.ID, err)
	} else {
		remote, also, err = d.send(ctx, op, payload)
	}
	if ctx.Err() != nil && err != nil {
		return out
	}
	out.At = d.now()
	var c *conflictError
	switch {
	case err == nil:
		out.Status, out.RemoteID, out.Also = state.PlatformDone, int64(remote), also
		if hasPassword {
			out.PasswordDigest = PasswordDigest(op.ObjectKey, password)
		}
	case errors.As(err, &c):
		out.Status, out.RemoteID, out.Err = state.PlatformConflict, int64(c.id), err.Error()
	case (pexip.Retryable(err) || errors.Is(err, pexip.ErrAuth) || errors.Is(err, errWaitForOwn)) && op.Attempts < d.maxAttempts():
		wait := max(d.backoff(op.Attempts), pexip.RetryAfterOf(err))
		out.Status, out.Next, out.Err = state.PlatformPending, out.At.Add(wait), err.Error()
	default:
		out.Status, out.Err = state.PlatformFailed, err.Error()
	}
	if password != "" { // a node may quote what it was sent
		out.Err = strings.ReplaceAll(out.Err, password, "***")
	}
	if out.Status != state.PlatformDone {
		d.logger().Warn("platform operation not done", "platform", d.Platform, "op", op.Op, "resource", op.Resource,
			"key", op.ObjectKey, "attempt", op.Attempts, "outcome", out.Status, "error", out.Err)
	}
	return out
}

func (d *Deliverer) maxAttempts() int {
	if d.MaxAttempts > 0 {
		return d.MaxAttempts
	}
	return 20
}

func (d *Deliverer) backoff(attempts int) time.Duration {
	base, ceiling := d.Backoff, d.MaxBackoff
	if base <= 0 {
		base = 2 * time.Second
	}
	if ceiling <= 0 {
		ceiling = 10 * time.Minute
	}
	b := base << min(max(attempts-1, 0), 20)
	if b <= 0 || b > ceiling {
		b = ceiling
	}
	return b
}

// conflictError: the platform holds, under the operation's unique value, an object roster
// does not own.
type conflictError struct {
	res pexip.Resource
	key string
	id  int
	why string
}

func (e *conflictError) Error() string {
	return fmt.Sprintf("conflict: %s %q (id %d) %s; roster leaves it alone", e.res, e.key, e.id, e.why)
}

// errWaitForOwn: the unique value is held by another object of roster's, which an
// operation in the queue is moving away (an alias passed from one VMR to another).
var errWaitForOwn = errors.New("held by another of roster's objects; waiting for its operation")

// errMissing: a patch's object is gone from the platform (deleted by hand).
var errMissing = errors.New("the object is missing on the platform; `roster platform check` lists it and the next apply recreates it")

// send performs op with its decoded payload (which it changes: marker, conference) and
// returns the object's id and objects made along with it.
func (d *Deliverer) send(ctx context.Context, op state.PlatformOp, payload map[string]any) (int, []state.PlatformObject, error) {
	res := pexip.Resource(op.Resource)
	switch op.Op {
	case state.OpCreate:
		return d.create(ctx, op, res, payload)
	case state.OpPatch:
		id, err := d.findOwned(ctx, res, keyBefore(op))
		if err != nil {
			return 0, nil, err
		}
		if id == 0 {
			return 0, nil, errMissing
		}
		d.mark(res, payload)
		if err := d.Client.Patch(ctx, res, id, payload); err != nil {
			if errors.Is(err, pexip.ErrNotFound) {
				return 0, nil, errMissing
			}
			if errors.Is(err, pexip.ErrDuplicate) {
				return 0, nil, d.conflictOn(ctx, res, pexip.FieldOf(err), payload, err)
			}
			return 0, nil, err
		}
		return id, nil, nil
	case state.OpDelete:
		id, err := d.findOwned(ctx, res, op.ObjectKey)
		if err != nil || id == 0 {
			return 0, nil, err // already gone: done
		}
		if err := d.Client.Delete(ctx, res, id); err != nil && !errors.Is(err, pexip.ErrNotFound) {
			return 0, nil, err
		}
		return id, nil, nil
	}
	return 0, nil, fmt.Errorf("operation %d: unknown operation %q", op.ID, op.Op)
}

// mark puts roster's marker into the description fields of a payload that sends one.
func (d *Deliverer) mark(res pexip.Resource, payload map[string]any) {
	if res == pexip.EndUsers {
		return
	}
	if desc, ok := payload["description"].(string); ok {
		payload["description"] = d.Marker.Mark(desc)
	}
	if aliases, ok := payload["aliases"].([]any); ok {
		for _, a := range aliases {
			if m, ok := a.(map[string]any); ok {
				desc, _ := m["description"].(string)
				m["description"] = d.Marker.Mark(desc)
			}
		}
	}
}

func (d *Deliverer) create(ctx context.Context, op state.PlatformOp, res pexip.Resource, payload map[string]any) (int, []state.PlatformObject, error) {
	if res == pexip.ConferenceAliases {
		cid, err := d.findOwned(ctx, pexip.Conferences, op.DepKey)
		if err != nil {
			return 0, nil, err
		}
		if cid == 0 {
			return 0, nil, fmt.Errorf("conference %q of alias %q is not on the platform: %w", op.DepKey, op.ObjectKey, errMissing)
		}
		payload["conference"] = pexip.Conferences.URI(cid)
	}
	if res != pexip.EndUsers {
		if _, ok := payload["description"]; !ok {
			payload["description"] = ""
		}
	}
	d.mark(res, payload)
	id, err := d.Client.Create(ctx, res, payload)
	if err == nil {
		return id, d.madeWith(op, res, payload), nil
	}
	if !errors.Is(err, pexip.ErrDuplicate) {
		return 0, nil, err
	}
	// Already there: ours from an earlier try whose answer was lost, or not ours.
	field := uniqueField[res]
	found, ok, lerr := d.lookup(ctx, res, op.ObjectKey)
	if lerr != nil {
		return 0, nil, lerr
	}
	if !ok {
		// The duplicate is another unique value: an alias given with a new conference.
		return 0, nil, d.conflictOn(ctx, res, pexip.FieldOf(err), payload, err)
	}
	if d.owns(res, found, op, payload, err) {
		d.logger().Info("adopted an object roster made in an earlier try", "platform", d.Platform, "resource", res,
			"key", op.ObjectKey, "id", found.id)
		return found.id, d.madeWith(op, res, payload), nil
	}
	return 0, nil, &conflictError{res: res, key: op.ObjectKey, id: found.id,
		why: fmt.Sprintf("already exists (%s) without roster's marker", field)}
}

// madeWith lists the aliases a conference create made (their ids are found when needed).
func (d *Deliverer) madeWith(op state.PlatformOp, res pexip.Resource, payload map[string]any) []state.PlatformObject {
	aliases, _ := payload["aliases"].([]any)
	if res != pexip.Conferences || len(aliases) == 0 {
		return nil
	}
	var out []state.PlatformObject
	for _, a := range aliases {
		if m, ok := a.(map[string]any); ok {
			if alias, _ := m["alias"].(string); alias != "" {
				out = append(out, state.PlatformObject{Platform: d.Platform, Resource: string(pexip.ConferenceAliases),
					Key: alias, ParentKey: op.ObjectKey})
			}
		}
	}
	return out
}

// keyBefore is the object's unique value before op (a rename's old one).
func keyBefore(op state.PlatformOp) string {
	if op.FromKey != "" {
		return op.FromKey
	}
	return op.ObjectKey
}

// conflictOn decides a duplicate on a unique value that is not the operation's own key
// (a patch renaming onto a taken name; an alias given with a new conference). Held by an
// object without roster's marker: a conflict. Held by one of roster's (an alias moving
// from one VMR to another in one apply, whose delete is queued): the operation waits.
func (d *Deliverer) conflictOn(ctx context.Context, res pexip.Resource, field string, payload map[string]any, cause error) error {
	holder := res
	var values []string
	if res == pexip.Conferences && field == "alias" {
		holder = pexip.ConferenceAliases
		aliases, _ := payload["aliases"].([]any)
		for _, a := range aliases {
			if m, ok := a.(map[string]any); ok {
				if v, _ := m["alias"].(string); v != "" {
					values = append(values, v)
				}
			}
		}
	} else if v, _ := payload[field].(string); v != "" {
		values = append(values, v)
	}
	if len(values) == 0 {
		return cause
	}
	for _, v := range values {
		f, ok, err := d.lookup(ctx, holder, v)
		if err != nil {
			return err
		}
		if ok && !d.Marker.Ours(f.description) {
			return &conflictError{res: holder, key: v, id: f.id, why: "already exists without roster's marker"}
		}
	}
	return errWaitForOwn // held by roster's own, or freed since
}

// uniqueField is each resource's unique field, by which it is looked up.
var uniqueField = map[pexip.Resource]string{
	pexip.Conferences: "name", pexip.ConferenceAliases: "alias", pexip.Devices: "alias", pexip.EndUsers: "primary_email_address",
}

// found is an object looked up by its unique value.
type found struct {
	id          int
	description string
	fields      map[string]any
}

// lookup finds the object of res whose unique field is key.
func (d *Deliverer) lookup(ctx context.Context, res pexip.Resource, key string) (found, bool, error) {
	var f found
	var n int
	err := d.Client.List(ctx, res, url.Values{uniqueField[res]: {key}}, func(raw json.RawMessage) error {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		if m[uniqueField[res]] != key { // a filter the node ignored or matched loosely
			return nil
		}
		n++
		id, _ := m["id"].(float64)
		desc, _ := m["description"].(string)
		f = found{id: int(id), description: desc, fields: m}
		return nil
	})
	if err != nil {
		return found{}, false, err
	}
	return f, n == 1 && f.id > 0, nil
}

// findOwned is the id of roster's object res/key: the recorded one, or one found by its
// unique value that carries roster's marker (then recorded); 0 when there is none. An
// object found without the marker is a conflict.
func (d *Deliverer) findOwned(ctx context.Context, res pexip.Resource, key string) (int, error) {
	obj, ok, err := d.DB.PlatformObjectByKey(ctx, d.Platform, string(res), key)
	if err != nil {
		return 0, err
	}
	if ok && obj.RemoteID != 0 {
		return int(obj.RemoteID), nil
	}
	f, exists, err := d.lookup(ctx, res, key)
	if err != nil || !exists {
		return 0, err
	}
	if res == pexip.EndUsers && ok || d.Marker.Ours(f.description) {
		return f.id, nil
	}
	return 0, &conflictError{res: res, key: key, id: f.id, why: "exists without roster's marker"}
}

// owns decides whether an object found under the create's key is roster's from an
// earlier try: its marker, or for an end user (no marker) an earlier try of this very
// operation that may have taken effect (an earlier claim of it, or a request of this one
// left unanswered) and every field as the create would have made it.
func (d *Deliverer) owns(res pexip.Resource, f found, op state.PlatformOp, payload map[string]any, dup error) bool {
	if res != pexip.EndUsers {
		return d.Marker.Ours(f.description)
	}
	if op.Attempts < 2 && !pexip.MayHaveActed(dup) {
		return false
	}
	for k, v := range payload {
		if f.fields[k] != v {
			return false
		}
	}
	return true
}

// PasswordDigest is what roster keeps of a device password it pushed (Pexip never returns
// it), to know when to send a new one: a SHA-256 over the alias and the password.
func PasswordDigest(alias, password string) string {
	h := sha256.Sum256([]byte("roster device password\x00" + alias + "\x00" + password))
	return "sha256:" + hex.EncodeToString(h[:])
}
