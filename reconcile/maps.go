package reconcile

import (
	"github.com/roster-dev/roster/state"
)

// The maps below are the before/after values of the plan's JSON. Secrets are masked by
// the output step, not here, so the fingerprint and --show-secrets see real values.

func vmrMap(v *state.VMR) map[string]any {
	aliases := v.Aliases
	if aliases == nil {
		aliases = []string{}
	}
	return map[string]any{
		"name": v.Name, "description": v.Description, "aliases": aliases, "pin": v.PIN, "guest_pin": v.GuestPIN,
		"allow_guests": v.AllowGuests, "max_callrate_in": v.MaxCallrateIn, "max_callrate_out": v.MaxCallrateOut,
		"participant_limit": v.ParticipantLimit, "tag": v.Tag, "primary_owner_email_address": v.OwnerEmail,
		"sync_tag": v.SyncTag,
	}
}

func deviceMap(d *state.Device) map[string]any {
	return map[string]any{
		"alias": d.Alias, "description": d.Description, "username": d.Username, "password": d.Password,
		"tag": d.Tag, "primary_owner_email_address": d.OwnerEmail, "sync_tag": d.SyncTag,
	}
}

func userMap(u *state.User) map[string]any {
	m := map[string]any{
		"userid": u.UserID, "email": u.Email, "first_name": u.FirstName, "last_name": u.LastName,
		"language": u.Language, "host_privilege": u.HostPrivilege, "time_zone": u.TimeZone,
		"active": u.Active, "origin": u.Origin, "license": u.License,
	}
	for i, v := range u.Tracking {
		if v != "" {
			m[trackingSlots[i]] = v
		}
	}
	return m
}

func inviteMap(in *state.Invite) map[string]any {
	return map[string]any{"email": in.Email, "name": in.Name, "username": in.Username, "status": in.Status,
		"expires_at": in.ExpiresAt.UTC().Format("2006-01-02T15:04:05Z")}
}

func trackingMap(g *state.TrackingGroup) map[string]any {
	codes := make([]any, len(g.Codes))
	for i, c := range g.Codes {
		codes[i] = map[string]any{"code": c.Code, "active": c.Active, "default": c.Default}
	}
	return map[string]any{"slot": g.Slot, "name": g.Name, "input_mode": g.InputMode, "usage": g.Usage,
		"sort": g.Sort, "codes": codes}
}

// secretFields are masked in every plan format unless --show-secrets.
var secretFields = map[string]bool{"pin": true, "guest_pin": true, "password": true, "device_password": true}

const mask = "********"
