package account

// Kind is what a change or an email is about, as plans, the audit log and the outbox
// name it.
type Kind string

// The kinds of a plan's changes.
const (
	KindVMR           Kind = "vmr"
	KindAlias         Kind = "alias"
	KindDevice        Kind = "device"
	KindUser          Kind = "user"
	KindTrackingGroup Kind = "tracking_group"
	KindInvite        Kind = "invite"
)

// The kinds of emails but those of VMRs, devices and invitations (KindVMR, KindDevice,
// KindInvite), which share their object's kind.
const (
	KindActivation   Kind = "activation"
	KindAdminSummary Kind = "admin_summary"
	KindSyncError    Kind = "sync_error"
)

// Action is what a change does to its object, or why an email is sent.
type Action string

// The actions of a plan's changes.
const (
	ActionCreate     Action = "create"
	ActionUpdate     Action = "update"
	ActionDelete     Action = "delete"
	ActionDeactivate Action = "deactivate"
	ActionReactivate Action = "reactivate"
)

// The actions of emails: the object was created or updated, or the operator asked for a
// reminder.
const (
	EmailCreated  Action = "created"
	EmailUpdated  Action = "updated"
	EmailReminder Action = "reminder"
)

// What the audit log records beside changes and emails: a reminder carried out.
const (
	KindReminder Kind   = "reminder"
	KindEmail    Kind   = "email"
	ActionDone   Action = "done"
)

// An announcement (SPEC §9): the audit log's record of one, and the kind and action of its
// emails.
const (
	KindAnnouncement Kind   = "announcement"
	ActionAnnounce   Action = "announce"
)
