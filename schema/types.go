package schema

import (
	"io"
	"time"

	"github.com/roster-dev/roster/schema/account"
)

// Config is the daemon's own configuration, loaded from config.cue (SPEC §2).
// Secrets never appear here: only the names of environment variables or files.
type Config struct {
	// Dir is the folder config.cue was read from; relative paths resolve against it.
	Dir          string                `json:"-"`
	Repo         RepoConfig            `json:"repo"`
	State        StateConfig           `json:"state"`
	Directories  map[string]DirConfig  `json:"directories"`
	SMTP         map[string]SMTPConfig `json:"smtp"`
	MailDir      string                `json:"mail_dir"`
	HTTP         HTTPConfig            `json:"http"`
	Safety       Safety                `json:"safety"`
	SecretKeyEnv string                `json:"secret_key_env"`
	Role         string                `json:"role"` // primary | replica
	Platforms    Platforms             `json:"platforms"`
}

type RepoConfig struct {
	URL              string    `json:"url"`
	Branch           string    `json:"branch"`
	Path             string    `json:"path"`
	Interval         Duration  `json:"interval"`
	Auth             *RepoAuth `json:"auth,omitempty"`
	WebhookSecretEnv string    `json:"webhook_secret_env"`
}

type RepoAuth struct {
	Username       string `json:"username"`
	PasswordEnv    string `json:"password_env"`
	SSHKeyFile     string `json:"ssh_key_file"`
	KnownHostsFile string `json:"known_hosts_file"`
}

type StateConfig struct {
	Driver string `json:"driver"`
	DSN    string `json:"dsn"`
}

// DirConfig is one directory that sync templates name as their `source`.
// Exactly one of URL and LDIF is set.
type DirConfig struct {
	URL             string   `json:"url"`
	LDIF            string   `json:"ldif"` // path inside the desired-state repo
	BaseDN          string   `json:"base_dn"`
	BindDN          string   `json:"bind_dn"`
	BindPasswordEnv string   `json:"bind_password_env"`
	StartTLS        bool     `json:"start_tls"`
	CAFile          string   `json:"ca_file"`
	PageSize        int      `json:"page_size"`
	Timeout         Duration `json:"timeout"`
	// Sync is "auto" (incremental where the server supports it) or "full" (SPEC §7).
	Sync string `json:"sync"`
	// FullRead is how often a full read runs even when incremental reads work (default 24h).
	FullRead Duration `json:"full_read"`
}

// Sync modes of a directory (DirConfig.Sync).
const (
	SyncAuto = "auto"
	SyncFull = "full"
)

type SMTPConfig struct {
	Host        string `json:"host"`
	Port        int    `json:"port"`
	Security    string `json:"security"` // none | starttls | tls
	Username    string `json:"username"`
	PasswordEnv string `json:"password_env"`
	From        string `json:"from"`
}

type HTTPConfig struct {
	Listen string `json:"listen"`
}

type Safety struct {
	MaxDeleteFraction float64 `json:"max_delete_fraction"`
	MaxDeleteCount    int     `json:"max_delete_count"`
	MaxEmails         int     `json:"max_emails"`
}

// Duration is a time.Duration written as a Go duration string ("1m", "336h").
type Duration struct{ time.Duration }

// Repo is the whole desired-state repository at one commit, loaded and validated.
type Repo struct {
	Settings      Settings
	Templates     []*Template       // sorted by name
	VMRs          []*DeclaredVMR    // vmrs/*.yaml, sync_tag "manual"
	Devices       []*DeclaredDevice // devices/*.yaml, sync_tag "manual"
	Users         []*UserRow        // users/*.csv, in file then row order
	Invites       []*InviteRow      // invites/*.csv
	TrackingCodes []*TrackingGroup  // tracking-codes.yaml, by slot order
	Overrides     Overrides
	Reminders     []*Reminder
	Announcements []*Announcement // announcements/*, sorted by id
	// EmailBodies maps a body_file path (slash-separated, relative to the repo) to its content.
	EmailBodies map[string]string
	// LDIF maps an `ldif:` path of config.cue to a function opening that file of the repo
	// (each call reads it from its start). Loading only checks that the file exists: the
	// content is read, and checked, when the directory is opened.
	LDIF map[string]func() (io.ReadCloser, error)
}

// Pos is where a value came from, for errors found after loading.
type Pos struct {
	Path string `json:"path"`
	Line int    `json:"line"`
	Col  int    `json:"col"`
}

type Settings struct {
	AutoActivationEmails bool     `json:"auto_activation_emails"`
	NotifyAdmins         bool     `json:"notify_admins"`
	Admins               []string `json:"admins"`
	LifetimeUserLimit    int      `json:"lifetime_user_limit"` // default 400000
	// Licenses.Paid caps invitations plus paid users; 0 (the default) means no limit.
	Licenses struct {
		Paid int `json:"paid"`
	} `json:"licenses"`
	InviteTTL     Duration `json:"invite_ttl"` // default 336h
	DomainHosting bool     `json:"domain_hosting"`
	// Emails are the org-wide email templates (activation, invitation, admin summary).
	Emails   SettingsEmails `json:"emails"`
	Pos      Pos            `json:"-"`
	FieldPos map[string]Pos `json:"-"` // "emails.activation.subject" → position, for render errors
}

// SettingsEmails are the email templates that belong to no sync template. A nil pattern
// means the built-in default text.
type SettingsEmails struct {
	SMTPServer   string        `json:"smtp_server"`             // "" = mail_dir (or the only SMTP server)
	Activation   *EmailPattern `json:"activation,omitempty"`    // user activation (WebEx/Control Hub)
	Invite       *EmailPattern `json:"invite,omitempty"`        // Pexip Service invitation
	AdminSummary *EmailPattern `json:"admin_summary,omitempty"` // summary to settings.admins
}

// Template is one LDAP sync template (names follow Pexip's conference_sync_template).
type Template struct {
	Name           string         `json:"name"`
	Description    string         `json:"description"`
	Source         string         `json:"source"`
	UserSearchDN   string         `json:"user_search_dn"`
	UserFilter     string         `json:"user_filter"`
	KeyAttribute   string         `json:"key_attribute"` // "" = the DN
	DisabledFilter string         `json:"disabled_filter"`
	SyncVMRs       bool           `json:"sync_vmrs"`
	SyncDevices    bool           `json:"sync_devices"`
	SyncUsers      bool           `json:"sync_users"`
	VMR            *VMRPattern    `json:"vmr,omitempty"`
	Device         *DevicePattern `json:"device,omitempty"`
	User           *UserPattern   `json:"user,omitempty"`
	Emails         TemplateEmails `json:"emails"`
	Pos            Pos            `json:"-"`
	FieldPos       map[string]Pos `json:"-"` // "vmr.name" → position of that pattern, for render errors
}

// VMRPattern holds the patterns of a template's VMR: a VMR whose strings are template
// source (its numbers and flags are literal).
type VMRPattern struct {
	account.VMR
	// Overridable lists fields written on create only: name, description, aliases,
	// pin_settings (pin, guest_pin, allow_guests), callrate (max_callrate_in/out),
	// participant_limit, tag, primary_owner_email_address.
	Overridable []string `json:"overridable"`
}

// DevicePattern holds the patterns of a template's device: a device whose strings are
// template source.
type DevicePattern struct {
	account.Device
	SyncIfAccountDisabled bool     `json:"sync_if_account_disabled"`
	Overridable           []string `json:"overridable"` // description, username, password, tag, primary_owner_email_address
}

type UserPattern struct {
	FirstName     string            `json:"first_name"`
	LastName      string            `json:"last_name"`
	Email         string            `json:"email"`
	Language      string            `json:"language"`
	TimeZone      string            `json:"time_zone"`
	HostPrivilege string            `json:"host_privilege"`
	License       string            `json:"license"`  // paid | free
	Tracking      map[string]string `json:"tracking"` // slot → pattern
}

type TemplateEmails struct {
	Send               bool          `json:"send"`
	SMTPServer         string        `json:"smtp_server"`
	AllowEmailOverride bool          `json:"allow_email_override"`
	VMR                *EmailPattern `json:"vmr,omitempty"`
	Device             *EmailPattern `json:"device,omitempty"`
	// NotifyOn lists the fields whose change warrants an update email (SPEC §5.3);
	// empty means any property change.
	NotifyOn []string `json:"notify_on"`
}

// EmailPattern is a subject pattern and the repo path of a body template.
type EmailPattern struct {
	Subject  string `json:"subject"`
	BodyFile string `json:"body_file"`
}

// DeclaredVMR is a VMR declared by hand in vmrs/*.yaml (a team room). Its values are
// literal, not patterns; they are the account's own fields (sync tag "manual", set when
// it is rendered).
type DeclaredVMR struct {
	account.VMR
	Emails   *DeclaredMail  `json:"emails,omitempty"`
	Pos      Pos            `json:"-"`
	FieldPos map[string]Pos `json:"-"` // "emails.email.subject" → position
}

// DeclaredDevice is a device declared by hand in devices/*.yaml.
type DeclaredDevice struct {
	account.Device
	Emails   *DeclaredMail  `json:"emails,omitempty"`
	Pos      Pos            `json:"-"`
	FieldPos map[string]Pos `json:"-"` // "emails.email.subject" → position
}

// DeclaredMail says whether and how a declared object's owner is emailed.
type DeclaredMail struct {
	Send       bool          `json:"send"`
	SMTPServer string        `json:"smtp_server"`
	Email      *EmailPattern `json:"email,omitempty"`
}

// TrackingSlots are the ten WebEx tracking-code columns, in order.
var TrackingSlots = []string{"DIVISION", "DEPARTMENT", "PROJECT", "OTHER",
	"CUSTOM5", "CUSTOM6", "CUSTOM7", "CUSTOM8", "CUSTOM9", "CUSTOM10"}

// UserRow is one row of users/*.csv (WebEx Meetings Server format).
type UserRow struct {
	UserID        string
	Active        bool
	FirstName     string
	LastName      string
	Email         string
	Language      string
	HostPrivilege string
	TimeZone      string
	Tracking      [10]string // by TrackingSlots index
	Pos           Pos        // path and line of the row
}

// InviteRow is one row of invites/*.csv (Pexip Service bulk invitation).
type InviteRow struct {
	Name     string
	Email    string
	Username string
	Pos      Pos
}

type TrackingGroup struct {
	Slot      string         `json:"slot"`
	Name      string         `json:"name"`
	InputMode string         `json:"input_mode"` // text | dropdown
	Usage     string         `json:"usage"`      // not_used | optional | required
	Sort      string         `json:"sort"`       // none | asc | desc
	Codes     []TrackingCode `json:"codes"`
	Pos       Pos            `json:"-"`
}

type TrackingCode struct {
	Code    string `json:"code"`
	Active  bool   `json:"active"`
	Default bool   `json:"default"`
}

// Overrides are per-object manual values (overrides.yaml), keyed by VMR name / device alias;
// each value maps a field name to its override.
type Overrides struct {
	VMRs    map[string]map[string]string `json:"vmrs"`
	Devices map[string]map[string]string `json:"devices"`
}

type Reminder struct {
	ID       string   `json:"id"`
	Template string   `json:"template"`
	VMRs     []string `json:"vmrs"`
	Devices  []string `json:"devices"`
	Pos      Pos      `json:"-"`
}
