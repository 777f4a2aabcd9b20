package state

// Email variables of VMRs, devices and user accounts (SPEC §5.6): the one implementation,
// called by the planner when it enqueues an email by value and by the outbox when it reads
// an email that references its object (Email.Ref), so both give the same variables.

import (
	"slices"
	"strings"

	"github.com/roster-dev/roster/schema/account"
)

// AppendFieldVars appends the email variables of x's emailed fields (lists joined by
// ", ") and the action.
func AppendFieldVars[T any](vars []Var, fields []account.Field[T], x *T, action string) []Var {
	for i := range fields {
		f := &fields[i]
		switch {
		case f.Email == "":
		case f.Type == account.Strings:
			vars = append(vars, Var{Name: f.Email, Value: strings.Join(*f.List(x), ", ")})
		default:
			vars = append(vars, Var{Name: f.Email, Value: f.Value(x)})
		}
	}
	return append(vars, Var{Name: "action", Value: action})
}

// AppendVMRVars appends the seed's VMR email variables: its emailed fields, the aliases
// also as a list, and its first URI and numeric aliases.
func AppendVMRVars(vars []Var, v *account.VMR, action string) []Var {
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
	vars = AppendFieldVars(vars, account.VMRFields, v, action)
	return append(vars, Var{Name: "aliases_list", Value: list},
		Var{Name: "uri_alias", Value: uri}, Var{Name: "numeric_alias", Value: numeric})
}

// AppendDeviceVars appends the seed's device email variables.
func AppendDeviceVars(vars []Var, dv *account.Device, action string) []Var {
	return AppendFieldVars(vars, account.DeviceFields, dv, action)
}

// AppendUserVars appends the activation email's variables.
func AppendUserVars(vars []Var, u *account.User, action string) []Var {
	return append(vars, Var{Name: "first_name", Value: u.FirstName}, Var{Name: "last_name", Value: u.LastName},
		Var{Name: "email", Value: u.Email}, Var{Name: "userid", Value: u.UserID},
		Var{Name: "action", Value: action}, Var{Name: "license", Value: u.License})
}

// MayRead reports whether an email template (subject and body) may read the variable
// name. An email is rendered with the pattern language (notify.PatternRenderer), where a
// variable is only ever read by its name, written out in the template: a variable whose
// name appears nowhere in the template's text cannot change what it renders, and is not
// stored.
func MayRead(subject, body, name string) bool {
	return strings.Contains(subject, name) || strings.Contains(body, name)
}
