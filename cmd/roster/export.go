package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"os"

	"github.com/roster-dev/roster/schema/account"
)

// usersHeader is the WebEx Meetings Server CSV header, every column, in its order.
var usersHeader = []string{"USERID", "ACTIVE", "FIRSTNAME", "LASTNAME", "EMAIL", "LANGUAGE", "HOSTPRIVILEGE", "TIMEZONE",
	"DIVISION", "DEPARTMENT", "PROJECT", "OTHER", "CUSTOM5", "CUSTOM6", "CUSTOM7", "CUSTOM8", "CUSTOM9", "CUSTOM10"}

// runExport: `roster export users [--delimiter comma|tab] [--out FILE]` — every user in the
// WebEx CSV format; committed back as users/*.csv it plans no change.
func runExport(ctx context.Context, a *app, rest []string) error {
	if len(rest) != 1 || rest[0] != "users" {
		return fmt.Errorf("export: say what to export: `roster export users`")
	}
	comma := ','
	switch a.opt.delimiter {
	case "comma":
	case "tab":
		comma = '\t'
	default:
		return fmt.Errorf("--delimiter %q: use comma or tab", a.opt.delimiter)
	}
	db, err := a.database(ctx)
	if err != nil {
		return err
	}
	actual, err := db.LoadActual(ctx)
	if err != nil {
		return err
	}
	w := a.stdout
	if a.opt.out != "" {
		f, err := os.OpenFile(a.opt.out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return fmt.Errorf("export users: %w", err)
		}
		defer f.Close()
		w = f
	}
	return writeUsersCSV(w, actual.Users, comma)
}

func writeUsersCSV(w io.Writer, users []*account.User, comma rune) error {
	cw := csv.NewWriter(w)
	cw.Comma = comma
	if err := cw.Write(usersHeader); err != nil {
		return fmt.Errorf("export users: %w", err)
	}
	row := make([]string, len(usersHeader))
	for _, u := range users {
		active := "Y"
		if !u.Active {
			active = "N"
		}
		row = append(row[:0], u.UserID, active, u.FirstName, u.LastName, u.Email, u.Language, u.HostPrivilege, u.TimeZone)
		tr := u.Tracking.Values()
		row = append(row, tr[:]...)
		if err := cw.Write(row); err != nil {
			return fmt.Errorf("export users: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("export users: %w", err)
	}
	return nil
}
