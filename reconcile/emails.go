package reconcile

// Emails of VMRs and devices: whether an update warrants one (notify_on) and the
// variables each kind's template reads.

import (
	"strings"

	"github.com/roster-dev/roster/schema/account"
)

// notifyGroups maps a changed field to the names notify_on may use for it.
var notifyGroups = map[string][]string{
	"pin": {"pin_settings", "pin"}, "guest_pin": {"pin_settings", "guest_pin"},
	"allow_guests":    {"pin_settings", "allow_guests"},
	"max_callrate_in": {"callrate", "max_callrate_in"}, "max_callrate_out": {"callrate", "max_callrate_out"},
	"alias": {"device_alias", "alias"}, "description": {"description", "device_description"},
	"username": {"device_username", "username"}, "password": {"device_password", "password"},
	"tag": {"tag", "device_tag"},
}

// notifies says whether an update touching fields warrants an email (SPEC §5.3 notify_on).
func (m *TemplateMail) notifies(fields []FieldChange) bool {
	if len(m.NotifyOn) == 0 {
		for _, f := range fields {
			if f.Name != "entry_key" {
				return true
			}
		}
		return false
	}
	for _, f := range fields {
		if m.NotifyOn[f.Name] {
			return true
		}
		for _, g := range notifyGroups[f.Name] {
			if m.NotifyOn[g] {
				return true
			}
		}
	}
	return false
}

// emailVars are the email variables of x's emailed fields (lists joined by ", ") and
// the action.
func emailVars[T any](fields []account.Field[T], x *T, action account.Action, extra int) map[string]any {
	n := extra + 1 // a hint of at most 8 keeps a device's map in one small allocation
	for i := range fields {
		if fields[i].Email != "" {
			n++
		}
	}
	vars := make(map[string]any, n)
	for i := range fields {
		f := &fields[i]
		switch {
		case f.Email == "":
		case f.Type == account.Strings:
			vars[f.Email] = strings.Join(*f.List(x), ", ")
		default:
			vars[f.Email] = f.Value(x)
		}
	}
	vars["action"] = string(action)
	return vars
}

// VMRVars are the seed's VMR email variables: its emailed fields, the aliases also as a
// list, and its first URI and numeric aliases.
func VMRVars(v *account.VMR, action account.Action) map[string]any {
	uri, numeric := "", ""
	for _, a := range v.Aliases {
		if uri == "" && strings.Contains(a, "@") {
			uri = a
		}
		if numeric == "" && a != "" && strings.Trim(a, "0123456789") == "" {
			numeric = a
		}
	}
	vars := emailVars(account.VMRFields, v, action, 3)
	vars["aliases_list"], vars["uri_alias"], vars["numeric_alias"] = append([]string(nil), v.Aliases...), uri, numeric
	return vars
}

// DeviceVars are the seed's device email variables.
func DeviceVars(dv *account.Device, action account.Action) map[string]any {
	return emailVars(account.DeviceFields, dv, action, 0)
}
