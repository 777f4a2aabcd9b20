// Package account holds the conferencing accounts roster manages — VMRs, devices, users,
// invitations and tracking-code groups — as plain values, with the kinds and actions a
// plan speaks of. It is neutral ground: the store (state) keeps these values and the
// reconciler (reconcile) computes them; neither defines them, and this package imports
// neither.
package account

import (
	"strings"
	"time"
)

// ManualTag is the sync tag of VMRs and devices declared by hand in the repo.
const ManualTag = "manual"

// VMR is a Virtual Meeting Room as roster applied it.
type VMR struct {
	ID               int64    `json:"-"`
	Name             string   `json:"name"`
	Description      string   `json:"description"`
	Aliases          []string `json:"aliases"`
	PIN              string   `json:"pin"`
	GuestPIN         string   `json:"guest_pin"`
	AllowGuests      bool     `json:"allow_guests"`
	MaxCallrateIn    int      `json:"max_callrate_in"`
	MaxCallrateOut   int      `json:"max_callrate_out"`
	ParticipantLimit int      `json:"participant_limit"`
	Tag              string   `json:"tag"`
	OwnerEmail       string   `json:"primary_owner_email_address"`
	SyncTag          string   `json:"sync_tag"`
	EntryKey         string   `json:"entry_key,omitempty"`
}

// Device is a device alias (a login for a video device or soft client).
type Device struct {
	ID          int64  `json:"-"`
	Alias       string `json:"alias"`
	Description string `json:"description"`
	Username    string `json:"username"`
	Password    string `json:"password"`
	Tag         string `json:"tag"`
	OwnerEmail  string `json:"primary_owner_email_address"`
	SyncTag     string `json:"sync_tag"`
	EntryKey    string `json:"entry_key,omitempty"`
}

// User is a conferencing user account (WebEx Meetings Server semantics: one per email,
// never deleted).
type User struct {
	ID            int64    `json:"-"`
	UserID        string   `json:"userid"`
	Email         string   `json:"email"`
	FirstName     string   `json:"first_name"`
	LastName      string   `json:"last_name"`
	Language      string   `json:"language"`
	HostPrivilege string   `json:"host_privilege"`
	TimeZone      string   `json:"time_zone"`
	Tracking      Tracking `json:"tracking"`
	Active        bool     `json:"active"`
	Origin        string   `json:"origin"`  // local | remote
	License       string   `json:"license"` // paid | free
	SyncTag       string   `json:"sync_tag,omitempty"`
	EntryKey      string   `json:"entry_key,omitempty"`
	Notified      bool     `json:"notified"`
}

// Invite is a Pexip Service invitation.
type Invite struct {
	Email      string    `json:"email"`
	Name       string    `json:"name"`
	Username   string    `json:"username"`
	Status     string    `json:"status"` // pending | accepted | revoked | expired
	InvitedAt  time.Time `json:"invited_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	AcceptedAt time.Time `json:"accepted_at,omitzero"`
}

// TrackingCode is one code of a tracking-code group.
type TrackingCode struct {
	Code    string `json:"code"`
	Active  bool   `json:"active"`
	Default bool   `json:"default"`
}

// TrackingGroup is one of the ten tracking-code groups.
type TrackingGroup struct {
	Slot      string         `json:"slot"`
	Name      string         `json:"name"`
	InputMode string         `json:"input_mode"`
	Usage     string         `json:"usage"`
	Sort      string         `json:"sort"`
	Codes     []TrackingCode `json:"codes"`
}

// SlotIndex orders tracking slots DIVISION … CUSTOM10.
func SlotIndex(slot string) int {
	for i, s := range []string{"DIVISION", "DEPARTMENT", "PROJECT", "OTHER", "CUSTOM5", "CUSTOM6", "CUSTOM7", "CUSTOM8", "CUSTOM9", "CUSTOM10"} {
		if strings.EqualFold(s, slot) {
			return i
		}
	}
	return 99
}
