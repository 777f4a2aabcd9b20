package policy

import "time"

// This file holds every point of Pexip's external policy API that PEXIP.md §2 marks
// *(unverified)*, and the answer shapes built on them, so that checking roster against a
// real conferencing node means reading one file. Everything else in the package follows
// the documented parts only. Alias letter case is a choice of roster's, explained in
// alias.go; it does not depend on how Pexip compares its own aliases.

// NodeDeadline is how long a conferencing node waits for a policy answer before it falls
// back to its own database. *(Unverified: "about 5 s".)* The fake node client uses it as
// its deadline; the server aims far below it (PEXIP.md: well under 10 ms).
const NodeDeadline = 5 * time.Second

// callrateBPS converts a call rate as roster stores it (kbps, as the management API
// takes it) to the policy API's unit. *(Unverified: bps, kbps × 1000.)*
func callrateBPS(kbps int) int64 { return int64(kbps) * 1000 }

// appendRoomAnswer writes the service configuration answer for a VMR:
//
//	{"status":"success","action":"continue","result":{"service_type":"conference",…}}
//
// Documented: status, action, service_type, name, service_tag, and the optional field
// names. *(Unverified: the exact optional-field rules.)* roster writes service_type,
// name, service_tag (even empty) and allow_guests (false is meaningful) always, and the
// other fields only when they hold a value: an empty description, PIN, guest PIN or owner
// and a zero call rate or participant limit (roster's "unset", i.e. no limit) are left
// out rather than sent as "" or 0, which a strict node might read as a value.
func appendRoomAnswer(b []byte, r *Room) []byte {
	b = append(b, `{"status":"success","action":"continue","result":{"service_type":"conference"`...)
	b = appendJSONField(b, "name")
	b = appendJSONString(b, r.Name)
	b = appendJSONField(b, "service_tag")
	b = appendJSONString(b, r.ServiceTag)
	for _, f := range [...]struct{ name, value string }{
		{"description", r.Description}, {"pin", r.PIN}, {"guest_pin", r.GuestPIN},
	} {
		if f.value != "" {
			b = appendJSONField(b, f.name)
			b = appendJSONString(b, f.value)
		}
	}
	b = appendJSONField(b, "allow_guests")
	if r.AllowGuests {
		b = append(b, "true"...)
	} else {
		b = append(b, "false"...)
	}
	if r.MaxCallrateIn > 0 {
		b = appendJSONField(b, "max_callrate_in")
		b = appendJSONInt(b, callrateBPS(r.MaxCallrateIn))
	}
	if r.MaxCallrateOut > 0 {
		b = appendJSONField(b, "max_callrate_out")
		b = appendJSONInt(b, callrateBPS(r.MaxCallrateOut))
	}
	if r.ParticipantLimit > 0 {
		b = appendJSONField(b, "participant_limit")
		b = appendJSONInt(b, int64(r.ParticipantLimit))
	}
	if r.OwnerEmail != "" {
		b = appendJSONField(b, "primary_owner_email_address")
		b = appendJSONString(b, r.OwnerEmail)
	}
	return append(b, "}}"...)
}

// appendDeviceAnswer writes the registration answer for a known device:
//
//	{"status":"success","result":{"username":"…","password":"…"}}
//
// *(Unverified: whether a node wants "action":"continue" beside it; PEXIP.md shows
// none.)*
func appendDeviceAnswer(b []byte, d *Device) []byte {
	b = append(b, `{"status":"success","result":{"username":`...)
	b = appendJSONString(b, d.Username)
	b = append(b, `,"password":`...)
	b = appendJSONString(b, d.Password)
	return append(b, "}}"...)
}

// Answers for an alias roster does not own, by policy_unknown: "continue" lets the node
// fall back to its own database, "reject" refuses the call or registration. The same
// shape serves both request kinds. *(Unverified: that an empty result object, rather
// than none, is expected.)*
const (
	answerContinue = `{"status":"success","action":"continue","result":{}}`
	answerReject   = `{"status":"success","action":"reject","result":{}}`
)
