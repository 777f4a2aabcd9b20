package state

import "github.com/roster-dev/roster/schema/account"

// trackingFromDB is what the users table holds ("[]" or "" when empty).
func trackingFromDB(s string) account.Tracking {
	if s == "[]" {
		return ""
	}
	return account.Tracking(s)
}

// trackingDB is what the users table stores for t.
func trackingDB(t account.Tracking) string {
	if t == "" {
		return "[]"
	}
	return string(t)
}
