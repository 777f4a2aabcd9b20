package reconcile

import (
	"time"

	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/schema/account"
)

// Desired is everything that should exist, rendered from the repo and the directory.
type Desired struct {
	Commit   string
	Now      time.Time
	Settings schema.Settings
	// VMRs, Devices and Users are what is new or changed, packed (see pack.go).
	VMRs    VMRList
	Devices DeviceList
	Users   UserList
	// SameVMRs, SameDevices and SameUsers are actual objects whose entry renders exactly
	// what they already are and that the diff needs to see (they hold a name or alias a
	// changed object wants, say); SameOther counts the other unchanged ones, which were
	// never loaded. See hydrate.
	SameVMRs    []*account.VMR
	SameDevices []*account.Device
	SameUsers   []*account.User
	SameOther   int
	index       *actualIndex
	refs        *refIndex // the index Render compared with (nil when rendered without one)
	Invites     []*schema.InviteRow
	Tracking    []*account.TrackingGroup
	Reminders   []*schema.Reminder
	// Announcements are the repo's; UserRows its users/*.csv rows, which csv: recipients name.
	Announcements []*schema.Announcement
	UserRows      []*schema.UserRow
	// Templates holds one result per sync template of the repo, in name order.
	Templates []*TemplateResult
	// Mail holds each template's email set-up ("manual" for declared objects), for reminders.
	Mail map[string]*TemplateMail
	// Keep holds owner keys ("template\x00entry key", "user\x00email") whose objects must
	// stay exactly as they are this cycle: their entry failed to render, or is ambiguous.
	Keep map[owner]bool
	// Warnings found while rendering (no_email, duplicate users, render errors of one entry).
	Warnings []Warning
	// Errors that stop the whole plan (a CSV USERID that matches no account, …).
	Errors []Problem
	// UserLimit and PaidLicenses come from settings; 0 means no limit.
	UserLimit    int
	PaidLicenses int
	InviteTTL    time.Duration
}

// TemplateResult says how one template's search and render went.
type TemplateResult struct {
	Name    string
	Entries int
	// Err is set when the template failed (directory error, render error): its objects
	// are left exactly as they are this cycle (fail closed).
	Err error
}

// TemplateMail is how a template emails owners.
type TemplateMail struct {
	Send               bool
	AllowEmailOverride bool
	VMR, Device        *MailSpec
	NotifyOn           map[string]bool // empty: any property change
}

// MailSpec is one email's templates, snapshotted from the repo.
type MailSpec struct {
	SMTPServer string
	Subject    string
	Body       string
	BodyPath   string
	HTML       bool
}

// DesiredVMR is a VMR as the repo and directory say it should be.
type DesiredVMR struct {
	account.VMR
	// Overridable fields are written on create only (SPEC §5.4); names as in the template.
	Overridable map[string]bool
	// Overrides from overrides.yaml, field → value, applied on create and after.
	Overrides map[string]string
}

// DesiredDevice is a device alias as it should be.
type DesiredDevice struct {
	account.Device
	Overridable map[string]bool
	Overrides   map[string]string
	// Disabled: the owner's account is disabled; the device is removed unless the
	// template says sync_if_account_disabled (then Disabled is false).
	Disabled bool
}

// CSVRow is what a local user keeps of its users/*.csv row.
type CSVRow struct {
	// Pos is the row, for errors.
	Pos schema.Pos
	// GivenUserID is the row's USERID column, which must match the existing account.
	GivenUserID string
}

// givenUserID is the USERID column of a CSV user's row: "" for a directory user.
func (du *DesiredUser) givenUserID() string {
	if du.CSV == nil {
		return ""
	}
	return du.CSV.GivenUserID
}

// DesiredUser is a user account as it should be.
type DesiredUser struct {
	account.User
	// CSV is the users/*.csv row of a local user; nil for a directory user, which so
	// does not pay for it (a first apply holds 400,000 desired users).
	CSV *CSVRow
	// Disabled: found disabled in the directory (deactivate; never create).
	Disabled bool
}
