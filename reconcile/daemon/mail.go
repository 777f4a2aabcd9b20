package daemon

import (
	"context"
	"time"

	"github.com/roster-dev/roster/notify"
	"github.com/roster-dev/roster/schema"
)

// initMailer builds the outbox deliverer (pipeline.Deliverer: SMTP servers or mail_dir). With
// neither configured, emails stay pending in the outbox, visible on the status page.
func (d *daemon) initMailer(ctx context.Context) error {
	if d.cfg.Role == schema.RoleReplica { // SPEC §8: only the primary sends
		d.log.Info("serve: role replica: emails are enqueued but never sent")
		return nil
	}
	if len(d.cfg.SMTP) == 0 && d.cfg.MailDir == "" {
		d.log.Warn("serve: config.cue names no smtp server and no mail_dir; emails stay in the outbox")
		return nil
	}
	m, err := d.pipe.Deliverer(ctx)
	if err != nil {
		return err
	}
	m.Progress = nil // never a progress line in the daemon's log
	d.mail = m
	// The daemon holds the lock: no other deliverer of this database runs, so rows a
	// crashed run left "sending" can go again now (same Message-ID) instead of after the lease.
	if n, err := m.DB.ReleaseClaims(ctx, time.Now()); err != nil {
		return err
	} else if n > 0 {
		d.log.Info("serve: released emails left sending by an earlier run", "emails", n)
	}
	return nil
}

// kick wakes the loop waiting on ch (the mailer after a cycle enqueued emails, the pusher
// after it applied changes) without blocking: a wake-up already pending is enough.
func kick(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// mailer delivers continuously until ctx is done: whenever a cycle ends, when the next
// retry of a pending email is due, and at least every interval.
func (d *daemon) mailer(ctx context.Context) {
	if d.mail == nil {
		<-ctx.Done()
		return
	}
	for {
		d.deliverDue(ctx)
		wait := d.interval
		if next, ok, err := d.db.NextDue(context.WithoutCancel(ctx)); err == nil && ok {
			wait = min(wait, max(time.Until(next), 50*time.Millisecond))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-d.mailKick:
			t.Stop()
		case <-t.C:
		}
	}
}

// deliverDue runs one delivery pass and counts its outcomes.
func (d *daemon) deliverDue(ctx context.Context) notify.Report {
	rep, err := d.mail.DeliverDue(ctx)
	d.met.emailsSent.Add(float64(rep.Sent))
	d.met.emailsFailed.Add(float64(rep.Failed))
	if err != nil && ctx.Err() == nil {
		d.log.Warn("serve: delivering emails", "err", err)
	}
	if rep.Sent+rep.Failed+rep.Retried+rep.Deferred > 0 {
		d.log.Info("serve: emails", "sent", rep.Sent, "failed", rep.Failed, "retried", rep.Retried, "deferred", rep.Deferred)
	}
	return rep
}

// flushMail is the last delivery run on shutdown (and after --once): what is due now, for
// at most deliverGrace; what is left stays pending for the next start.
func (d *daemon) flushMail(ctx context.Context) {
	if d.mail == nil {
		return
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deliverGrace)
	defer cancel()
	d.deliverDue(fctx)
}
