package pipeline

// Platforms in push mode (SPEC §8): the apply writes their queue, step 5 (and the
// daemon's pusher) drains it before any email goes out, so that a room's email never
// precedes the room.

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/roster-dev/roster/reconcile/platform/pexip"
	"github.com/roster-dev/roster/reconcile/platform/push"
	"github.com/roster-dev/roster/schema"
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

// Push drains the queue of every platform in push mode (step 5, before the emails). The
// queue stays durable: what a stop or a failure leaves is pushed by the next run or the
// daemon. Failed operations and conflicts are reported on Out; they keep their objects'
// emails pending.
func (p *Pipeline) Push(ctx context.Context) (push.Progress, error) {
	if len(PushPlatforms(p.Config)) == 0 {
		return push.Progress{}, nil
	}
	d, err := p.Pusher(ctx, p.Progress)
	if err != nil {
		return push.Progress{}, fmt.Errorf("push to pexip: %w", err)
	}
	pr, err := d.Drain(ctx)
	if p.Progress != nil && pr.Total > 0 {
		fmt.Fprintln(p.Progress)
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
