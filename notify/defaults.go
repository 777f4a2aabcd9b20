package notify

// Built-in email templates, in the pattern language, for the emails that no sync template
// defines. Reconcile snapshots them into the outbox (state.Email Subject/Body) when
// settings.yaml gives none. All are plain text (HTML false). The variables each expects are
// listed with it; reconcile fills them, notify renders what the row holds.

// Activation email (WebEx/Control Hub), kind "activation": a new paid-licence user, once in
// their lifetime, or a free→paid conversion.
// Variables: first_name last_name email userid.
const (
	ActivationSubject = "Your meeting account is ready, {{ first_name }}"
	ActivationBody    = `Hello {{ first_name }} {{ last_name }},

A meeting account has been created for you.

  Email:   {{ email }}
  User ID: {{ userid }}

Sign in with your email address to host your meetings.

This message was sent automatically; please do not reply.
`
)

// Invitation email (Pexip Service), kind "invite".
// Variables: name email username expires_at (RFC 3339 text).
const (
	InviteSubject = "You are invited to join the video service"
	InviteBody    = `Hello {{ name|default(email) }},

You have been invited to join the video service as a member.

  Email:    {{ email }}
  Username: {{ username }}

The invitation expires on {{ expires_at }}. Ask your administrator for a new
one if it has expired.

This message was sent automatically; please do not reply.
`
)

// Admin summary, kind "admin_summary": to settings.admins after a daemon sync that changed
// something, and on failure.
// Variables: commit (text); created updated deleted deactivated emails (numbers);
// errors (list of texts); templates (list of objects with name state created updated
// deleted deactivated unchanged warnings last_error).
const (
	AdminSummarySubject = "roster sync {{ commit|truncate(12, true, '') }}: {{ created }} created, {{ updated }} updated, {{ deleted }} deleted{% if errors %}, {{ errors|length }} errors{% endif %}"
	AdminSummaryBody    = `roster applied commit {{ commit }}.

  Created:     {{ created }}
  Updated:     {{ updated }}
  Deleted:     {{ deleted }}
  Deactivated: {{ deactivated }}
  Emails:      {{ emails }}
{% if templates %}
Sync templates:
{% for t in templates %}  {{ t.name }}: {{ t.state }} ({{ t.created }} created, {{ t.updated }} updated, {{ t.deleted }} deleted, {{ t.deactivated }} deactivated, {{ t.unchanged }} unchanged, {{ t.warnings }} warnings){% if t.last_error %}
    last error: {{ t.last_error }}{% endif %}
{% endfor %}{% endif %}{% if errors %}
Errors:
{% for e in errors %}  - {{ e }}
{% endfor %}{% endif %}`
)

// Sync error, kind "sync_error": to settings.admins when a sync template's reconcile failed
// (fail closed: its changes were not applied this cycle).
// Variables: template commit error at (RFC 3339 text).
const (
	SyncErrorSubject = "roster: sync template {{ template }} failed"
	SyncErrorBody    = `The sync template {{ template }} failed at {{ at }} (commit {{ commit }}).
None of its changes were applied in this cycle; the last applied state stays in force.

Error:
  {{ error }}

roster will try again at the next cycle.
`
)

// Default VMR and device emails, for sync templates that send emails without naming their
// own (Pexip's variables, SPEC §5.6).
const (
	VMRSubject = "Your meeting room {{ name }}"
	VMRBody    = `Hello,

Your meeting room {{ name }} has been {{ action }}.

  Aliases:   {{ aliases }}
{% if pin %}  Host PIN:  {{ pin }}
{% endif %}{% if allow_guests and guest_pin %}  Guest PIN: {{ guest_pin }}
{% endif %}
This message was sent automatically; please do not reply.
`
	DeviceSubject = "Your video device {{ device_alias }}"
	DeviceBody    = `Hello,

Your video device alias {{ device_alias }} has been {{ action }}.

  Username: {{ device_username }}
  Password: {{ device_password }}

This message was sent automatically; please do not reply.
`
)

// Default is a built-in template with the variables it expects and an example of them.
type Default struct {
	Kind          string
	Subject, Body string
	Vars          []string
	Example       map[string]any
}

// Defaults lists the built-in templates.
func Defaults() []Default {
	return []Default{
		{"activation", ActivationSubject, ActivationBody, []string{"first_name", "last_name", "email", "userid"},
			map[string]any{"first_name": "Zoë", "last_name": "Ångström", "email": "zoe@example.com", "userid": "zangstrom"}},
		{"invite", InviteSubject, InviteBody, []string{"name", "email", "username", "expires_at"},
			map[string]any{"name": "Ann Lee", "email": "ann@example.com", "username": "ann.lee@example.com", "expires_at": "2026-12-06T10:00:00Z"}},
		{"admin_summary", AdminSummarySubject, AdminSummaryBody,
			[]string{"commit", "created", "updated", "deleted", "deactivated", "emails", "errors", "templates"},
			map[string]any{"commit": "6a96fa7c0ffee1234567", "created": 3, "updated": 1, "deleted": 0, "deactivated": 2, "emails": 4,
				"errors": []any{"staff: ldap: timeout"},
				"templates": []any{
					map[string]any{"name": "staff", "state": "failed", "created": 0, "updated": 0, "deleted": 0, "deactivated": 0, "unchanged": 0, "warnings": 0, "last_error": "ldap: timeout"},
					map[string]any{"name": "rooms", "state": "succeeded", "created": 3, "updated": 1, "deleted": 0, "deactivated": 2, "unchanged": 120, "warnings": 1, "last_error": ""},
				}}},
		{"sync_error", SyncErrorSubject, SyncErrorBody, []string{"template", "commit", "error", "at"},
			map[string]any{"template": "staff", "commit": "6a96fa7", "error": "ldap: size limit exceeded", "at": "2026-11-22T10:00:00Z"}},
		{"vmr", VMRSubject, VMRBody, []string{"primary_owner_email_address", "description", "aliases", "allow_guests", "pin", "guest_pin",
			"max_callrate_in", "max_callrate_out", "participant_limit", "tag", "action", "uri_alias", "numeric_alias", "name", "aliases_list"},
			map[string]any{"name": "Zoë VMR", "action": "created", "aliases": "meet.zoe@example.com, 445566", "pin": "1234", "guest_pin": "5678", "allow_guests": true}},
		{"device", DeviceSubject, DeviceBody, []string{"primary_owner_email_address", "device_alias", "device_description",
			"device_username", "device_password", "device_tag", "action"},
			map[string]any{"device_alias": "zoe@dev.example.com", "action": "updated", "device_username": "zoe", "device_password": "s3cret"}},
	}
}
