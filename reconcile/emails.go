package reconcile

// Emails of VMRs and devices: whether an update warrants one (notify_on) and the
// variables each kind's template reads.

import (
	"github.com/roster-dev/roster/schema/account"
	"github.com/roster-dev/roster/state"
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

// varMap is vars as a map.
func varMap(vars []state.Var) map[string]any {
	m := make(map[string]any, len(vars))
	for _, v := range vars {
		m[v.Name] = v.Value
	}
	return m
}

// VMRVars are the seed's VMR email variables: its emailed fields, the aliases also as a
// list, and its first URI and numeric aliases.
func VMRVars(v *account.VMR, action account.Action) map[string]any {
	return varMap(state.AppendVMRVars(nil, v, string(action)))
}

// DeviceVars are the seed's device email variables.
func DeviceVars(dv *account.Device, action account.Action) map[string]any {
	return varMap(state.AppendDeviceVars(nil, dv, string(action)))
}
