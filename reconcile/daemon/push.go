package daemon

import (
	"context"
	"time"

	"github.com/roster-dev/roster/reconcile/pipeline"
	"github.com/roster-dev/roster/reconcile/platform/push"
)

// initPusher builds the deliverer of the Pexip queue when platforms.pexip is in push mode
// on a primary. It releases the operations a stopped daemon left claimed: this process
// holds the database's lock, so it is the platform's only deliverer.
func (d *daemon) initPusher(ctx context.Context) error {
	if len(pipeline.PushPlatforms(d.cfg)) == 0 {
		return nil
	}
	p, err := d.pipe.Pusher(ctx, nil)
	if err != nil {
		return err
	}
	done := 0
	p.Progress = func(pr push.Progress) {
		d.setPush(pr)
		if pr.Done > done { // emails waiting for these objects may go now
			done = pr.Done
			kick(d.mailKick)
		}
	}
	d.push = p
	return nil
}

// pusher drains the platform queue whenever a cycle ends, a retry falls due, and every
// interval, until ctx is done. Run releases earlier claims first.
func (d *daemon) pusher(ctx context.Context) {
	if d.push == nil {
		<-ctx.Done()
		return
	}
	if err := d.push.Run(ctx, d.pushKick, d.interval); err != nil && ctx.Err() == nil {
		d.log.Error("serve: platform push stopped", "err", err)
	}
}

// pushOnce drains the queue once (serve --once), bounded by ctx.
func (d *daemon) pushOnce(ctx context.Context) {
	if d.push == nil {
		return
	}
	if _, err := d.db.ReleasePlatformClaims(ctx, time.Now()); err != nil {
		d.log.Warn("serve: platform push", "err", err)
		return
	}
	if _, err := d.push.Drain(ctx); err != nil && ctx.Err() == nil {
		d.log.Warn("serve: platform push", "err", err)
	}
}

// setPush keeps the last progress of the push for status.
func (d *daemon) setPush(pr push.Progress) {
	d.mu.Lock()
	d.lastPush = pr
	d.mu.Unlock()
}

// checker runs `roster platform check` every platforms.pexip.check_interval (default
// 24h) until ctx is done; drift it finds is recorded, and the next cycle repairs it.
func (d *daemon) checker(ctx context.Context) {
	if d.push == nil {
		return
	}
	every := d.cfg.Platforms.Pexip.CheckInterval.Duration
	if every <= 0 {
		every = 24 * time.Hour
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		drift, err := d.pipe.CheckPlatform(ctx)
		if err != nil {
			if ctx.Err() == nil {
				d.log.Warn("serve: platform check", "err", err)
			}
			continue
		}
		d.met.platformDrift.Set(float64(len(drift)))
		if len(drift) > 0 {
			d.log.Warn("serve: platform drift; the next cycle repairs it", "objects", len(drift), "first", drift[0].Status+" "+drift[0].Kind+" "+drift[0].Key)
		} else {
			d.log.Info("serve: platform check: no drift")
		}
	}
}
