package daemon

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/roster-dev/roster/notify"
	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/state"
)

// The daemon's error email (kind sync_error). notify.SyncErrorSubject is about one sync
// template; the daemon's failures may also be a fetch, a commit that does not validate or
// a plan refused by the safety guards, so it has its own text. Variables: those of the admin
// summary (commit created updated deleted deactivated emails errors templates) plus
// template, error and at.
const (
	daemonErrorSubject = "roster: sync failed at commit {{ commit|truncate(12, true, '') }}"
	daemonErrorBody    = `The roster daemon could not complete a sync at {{ at }} (commit {{ commit }}).
Nothing of the failed part was applied; the last applied state stays in force.

Error:
{% for e in errors %}  - {{ e }}
{% endfor %}
roster tries again at every interval. You get this email once per distinct error.
`
)

// notifyAdmins enqueues, when settings.notify_admins, the admin summary after a sync that
// changed something and the error email when the sync failed (once per distinct error).
// Each goes in a small transaction of its own; failures are logged, never fatal.
func (d *daemon) notifyAdmins(ctx context.Context, res cycleResult) {
	if d.good == nil {
		return // no settings known yet
	}
	set := d.good.Settings
	var errs []string
	if res.err != nil {
		errs = append(errs, errorLines(res.err)...)
	}
	if d.badCommit != "" {
		errs = append(errs, fmt.Sprintf("commit %s does not validate (commit %s stays in force):", shortCommit(d.badCommit), shortCommit(d.goodCommit)))
		errs = append(errs, d.badErrs...)
	}
	errKey := strings.Join(errs, "\n")
	if errKey == "" {
		d.lastMailErr = "" // recovered: the same error later is news again
	}
	if !set.NotifyAdmins || len(set.Admins) == 0 {
		return
	}
	commit := res.commit
	if commit == "" {
		commit = d.goodCommit
	}
	vars := map[string]any{"commit": commit, "created": 0, "updated": 0, "deleted": 0, "deactivated": 0, "emails": 0,
		"errors": toAny(errs), "templates": []any{}}
	if p := res.plan; p != nil {
		vars["created"], vars["updated"], vars["deleted"] = p.Summary.Create, p.Summary.Update, p.Summary.Delete
		vars["deactivated"], vars["emails"] = p.Summary.Deactivate, p.Summary.Emails
		var ts []any
		for _, t := range p.Templates {
			st := "succeeded"
			if t.Error != "" {
				st = "failed"
			}
			ts = append(ts, map[string]any{"name": t.Name, "state": st, "created": t.Created, "updated": t.Updated,
				"deleted": t.Deleted, "deactivated": t.Deactivated, "unchanged": t.Unchanged, "warnings": t.Warnings,
				"last_error": t.Error})
		}
		if ts != nil {
			vars["templates"] = ts
		}
	}
	var emails []state.Email
	if res.applied && res.plan != nil && res.plan.HasChanges() {
		subject, body, path, html := notify.AdminSummarySubject, notify.AdminSummaryBody, "", false
		if e := set.Emails.AdminSummary; e != nil {
			subject, body, path, html = e.Subject, d.good.EmailBodies[e.BodyFile], e.BodyFile, strings.HasSuffix(strings.ToLower(e.BodyFile), ".html")
		}
		emails = append(emails, adminEmails(set, "admin_summary", "summary", commit, subject, body, path, html, vars)...)
	}
	if errKey != "" && errKey != d.lastMailErr {
		d.lastMailErr = errKey
		ev := make(map[string]any, len(vars)+3)
		for k, v := range vars {
			ev[k] = v
		}
		ev["template"], ev["error"], ev["at"] = "", errKey, time.Now().UTC().Format(time.RFC3339)
		emails = append(emails, adminEmails(set, "sync_error", "failed", commit, daemonErrorSubject, daemonErrorBody, "", false, ev)...)
	}
	if len(emails) == 0 {
		return
	}
	if err := d.db.EnqueueEmails(ctx, time.Now().UTC(), emails); err != nil {
		d.log.Warn("serve: enqueue admin emails", "err", err)
	}
}

func adminEmails(set schema.Settings, kind, action, commit, subject, body, path string, html bool, vars map[string]any) []state.Email {
	out := make([]state.Email, 0, len(set.Admins))
	for _, to := range set.Admins {
		out = append(out, state.Email{Kind: kind, Action: action, ObjectKey: "daemon", To: to, SMTPServer: set.Emails.SMTPServer,
			Commit: commit, Subject: subject, Body: body, BodyPath: path, HTML: html, Vars: vars})
	}
	return out
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
