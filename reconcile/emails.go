package reconcile

// Emails of VMRs and devices: whether an update warrants one (notify_on) and the
// variables each kind's template reads.

import (
	"slices"
	"strings"

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

// appendFieldVars appends the email variables of x's emailed fields (lists joined by
// ", ") and the action.
func appendFieldVars[T any](vars []state.Var, fields []account.Field[T], x *T, action account.Action) []state.Var {
	for i := range fields {
		f := &fields[i]
		switch {
		case f.Email == "":
		case f.Type == account.Strings:
			vars = append(vars, state.Var{Name: f.Email, Value: strings.Join(*f.List(x), ", ")})
		default:
			vars = append(vars, state.Var{Name: f.Email, Value: f.Value(x)})
		}
	}
	return append(vars, state.Var{Name: "action", Value: string(action)})
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
	return varMap(appendVMRVars(nil, v, action))
}

func appendVMRVars(vars []state.Var, v *account.VMR, action account.Action) []state.Var {
	uri, numeric := "", ""
	for _, a := range v.Aliases {
		if uri == "" && strings.Contains(a, "@") {
			uri = a
		}
		if numeric == "" && a != "" && strings.Trim(a, "0123456789") == "" {
			numeric = a
		}
	}
	var list []string // nil when there are none, as it always was (JSON null)
	if len(v.Aliases) > 0 {
		list = slices.Clip(v.Aliases)
	}
	vars = appendFieldVars(vars, account.VMRFields, v, action)
	return append(vars, state.Var{Name: "aliases_list", Value: list},
		state.Var{Name: "uri_alias", Value: uri}, state.Var{Name: "numeric_alias", Value: numeric})
}

// DeviceVars are the seed's device email variables.
func DeviceVars(dv *account.Device, action account.Action) map[string]any {
	return varMap(appendDeviceVars(nil, dv, action))
}

func appendDeviceVars(vars []state.Var, dv *account.Device, action account.Action) []state.Var {
	return appendFieldVars(vars, account.DeviceFields, dv, action)
}
