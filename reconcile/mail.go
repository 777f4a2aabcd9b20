package reconcile

// Mail specs: which email template (subject, body) each template and declared object uses.

import (
	"strings"

	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/schema/account"
)

func isHTML(path string) bool {
	p := strings.ToLower(path)
	return strings.HasSuffix(p, ".html") || strings.HasSuffix(p, ".htm")
}

func mailSpec(repo *schema.Repo, smtp string, e *schema.EmailPattern) *MailSpec {
	if e == nil {
		return nil
	}
	return &MailSpec{SMTPServer: smtp, Subject: e.Subject, Body: repo.EmailBodies[e.BodyFile], BodyPath: e.BodyFile, HTML: isHTML(e.BodyFile)}
}

func templateMail(t *schema.Template, repo *schema.Repo) *TemplateMail {
	m := &TemplateMail{Send: t.Emails.Send, AllowEmailOverride: t.Emails.AllowEmailOverride, NotifyOn: map[string]bool{},
		VMR: mailSpec(repo, t.Emails.SMTPServer, t.Emails.VMR), Device: mailSpec(repo, t.Emails.SMTPServer, t.Emails.Device)}
	for _, f := range t.Emails.NotifyOn {
		m.NotifyOn[f] = true
	}
	return m
}

// MailFromRepo is how every object's owner is emailed, from the repo: per sync template
// (by name), per declared object ("manual\x00" + key), and the org-wide activation, invite
// and admin_summary emails (from settings.yaml, else the built-in defaults; their spec sits
// in the VMR slot).
func MailFromRepo(repo *schema.Repo, defaults map[string]MailSpec) map[string]*TemplateMail {
	m := map[string]*TemplateMail{}
	for _, t := range repo.Templates {
		m[t.Name] = templateMail(t, repo)
	}
	for _, v := range repo.VMRs {
		if v.Emails != nil && v.Emails.Email != nil {
			m[mailKey(account.ManualTag, v.Name)] = &TemplateMail{Send: v.Emails.Send, VMR: mailSpec(repo, v.Emails.SMTPServer, v.Emails.Email)}
		}
	}
	for _, v := range repo.Devices {
		if v.Emails != nil && v.Emails.Email != nil {
			m[mailKey(account.ManualTag, v.Alias)] = &TemplateMail{Send: v.Emails.Send, Device: mailSpec(repo, v.Emails.SMTPServer, v.Emails.Email)}
		}
	}
	se := repo.Settings.Emails
	for name, e := range map[string]*schema.EmailPattern{"activation": se.Activation, "invite": se.Invite, "admin_summary": se.AdminSummary, "sync_error": nil} {
		spec := mailSpec(repo, se.SMTPServer, e)
		if spec == nil {
			if def, ok := defaults[name]; ok {
				def.SMTPServer = se.SMTPServer
				spec = &def
			}
		}
		if spec != nil {
			m[name] = &TemplateMail{Send: true, VMR: spec}
		}
	}
	return m
}

func mailKey(syncTag, key string) string { return syncTag + "\x00" + key }

// mailFor finds how an object's owner is emailed: per object (declared), else per template.
func (d *Desired) mailFor(syncTag, key string) *TemplateMail {
	if m := d.Mail[mailKey(syncTag, key)]; m != nil {
		return m
	}
	return d.Mail[syncTag]
}
