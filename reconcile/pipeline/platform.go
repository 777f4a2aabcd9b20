package pipeline

// Platforms in push mode (SPEC §8): the apply writes their queue, step 5 (and the
// daemon's pusher) drains it before any email goes out, so that a room's email never
// precedes the room.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/roster-dev/roster/reconcile/platform/pexip"
	"github.com/roster-dev/roster/reconcile/platform/push"
	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/state"
)

// PexipPlatform is the platform name of platforms.pexip in the queue and in status.
const PexipPlatform = "pexip"

// PushPlatforms names the platforms this roster writes: Pexip in push mode, on a primary
// (a replica never writes a platform).
func PushPlatforms(cfg *schema.Config) []string {
	px := cfg.Platforms.Pexip
	if px == nil || px.Mode != schema.PexipPush || cfg.Role == schema.RoleReplica {
		return nil
	}
	return []string{PexipPlatform}
}

// PexipClient builds the management API client of platforms.pexip: url, username, the
// password from password_env, ca_file (resolved against config.cue's folder) and rate.
func PexipClient(cfg *schema.Config) (*pexip.Client, error) {
	px := cfg.Platforms.Pexip
	if px == nil {
		return nil, fmt.Errorf("config.cue names no platforms.pexip")
	}
	password := os.Getenv(px.PasswordEnv)
	if password == "" {
		return nil, fmt.Errorf("platforms.pexip: environment variable %s (password_env) is empty", px.PasswordEnv)
	}
	caFile := px.CAFile
	if caFile != "" && !filepath.IsAbs(caFile) {
		caFile = filepath.Join(cfg.Dir, caFile)
	}
	return pexip.New(pexip.Config{URL: px.URL, Username: px.Username, Password: password, CAFile: caFile, Rate: px.Rate})
}

// Pusher builds the deliverer of the Pexip queue; progress, when set, gets a line per
// change of where the push stands (a terminal).
func (p *Pipeline) Pusher(ctx context.Context, progress io.Writer) (*push.Deliverer, error) {
	db, err := p.Store(ctx)
	if err != nil {
		return nil, err
	}
	c, err := PexipClient(p.Config)
	if err != nil {
		return nil, err
	}
	key, err := db.SecretKey(ctx, os.Getenv(p.Config.SecretKeyEnv))
	if err != nil {
		return nil, err
	}
	d := &push.Deliverer{DB: db, Client: c, Platform: PexipPlatform, Marker: pexip.NewMarker(key), Logger: p.logger()}
	if progress != nil {
		d.Progress = ProgressLine(progress)
	}
	return d, nil
}

// ProgressLine writes a push's progress as one line rewritten in place, at most every
// 200 ms.
func ProgressLine(w io.Writer) func(push.Progress) {
	var last time.Time
	return func(pr push.Progress) {
		finished := pr.Done + pr.Failed + pr.Conflicts
		if time.Since(last) < 200*time.Millisecond && finished < pr.Total {
			return
		}
		last = time.Now()
		fmt.Fprintf(w, "\rpushing to pexip: %d/%d done, %d failed, %d conflicts, %.1f/s, %s left ",
			pr.Done, pr.Total, pr.Failed, pr.Conflicts, pr.Rate, pr.ETA.Round(time.Second))
	}
}

// DefaultPushTimeout bounds a command's push when config.cue gives no
// platforms.pexip.push_timeout (its CUE default says the same).
const DefaultPushTimeout = 15 * time.Minute

// Push drains the queue of every platform in push mode (step 5, before the emails), for
// at most platforms.pexip.push_timeout: a command must not hang on a dead or throttling
// platform. The queue stays durable: what the limit, a stop or a failure leaves is pushed
// by the next run or the daemon. Failed operations, conflicts and operations left queued
// are reported; they keep their objects' emails pending.
func (p *Pipeline) Push(ctx context.Context) (push.Progress, error) {
	if len(PushPlatforms(p.Config)) == 0 {
		return push.Progress{}, nil
	}
	d, err := p.Pusher(ctx, p.Progress)
	if err != nil {
		return push.Progress{}, fmt.Errorf("push to pexip: %w", err)
	}
	limit := cmp.Or(p.Config.Platforms.Pexip.PushTimeout.Duration, DefaultPushTimeout)
	pctx, cancel := context.WithTimeout(ctx, limit)
	pr, err := d.Drain(pctx)
	// The limit may surface as another error (a SQLite statement interrupted by it).
	timedOut := err != nil && errors.Is(pctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
	cancel()
	if p.Progress != nil && pr.Total > 0 {
		fmt.Fprintln(p.Progress)
	}
	if timedOut {
		left, cerr := d.DB.PlatformCounts(ctx)
		if cerr != nil {
			return pr, errors.Join(err, cerr)
		}
		c := left[PexipPlatform]
		return pr, fmt.Errorf("push to pexip: stopped after %s (platforms.pexip.push_timeout): %d operations done, %d still queued "+
			"(a queue longer than the limit allows at the rate, or a platform that is down, slow or throttling); the next `roster apply` or the daemon resumes them, and their objects' emails "+
			"stay pending until then (`roster status` shows the queue): %w",
			limit, pr.Done, c[state.PlatformPending]+c[state.PlatformSending], err)
	}
	if err != nil {
		return pr, fmt.Errorf("push to pexip: %w", err)
	}
	if pr.Total > 0 && p.Out != nil {
		fmt.Fprintf(p.Out, "Pexip: %d operations done, %d failed, %d conflicts (see `roster status`).\n", pr.Done, pr.Failed, pr.Conflicts)
	}
	if pr.Failed+pr.Conflicts > 0 {
		return pr, fmt.Errorf("push to pexip: %d operations failed and %d are conflicts; their objects' emails stay pending (`roster status` lists them)", pr.Failed, pr.Conflicts)
	}
	return pr, nil
}
