package schema

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

func loadRootConfig(t testing.TB) *Config {
	t.Helper()
	cfg, err := LoadConfig(filepath.Join("..", "config.cue"))
	if err != nil {
		t.Fatalf("LoadConfig(../config.cue): %v", err)
	}
	return cfg
}

func TestExamplesValidate(t *testing.T) {
	cfg := loadRootConfig(t)
	var patterns int
	repo, err := Load(os.DirFS("../examples"), cfg, LoadOptions{CheckPattern: func(string) error { patterns++; return nil }})
	if err != nil {
		t.Fatalf("examples/ does not validate:\n%v", err)
	}
	if len(repo.Templates) != 2 || len(repo.VMRs) != 2 || len(repo.Devices) != 1 {
		t.Errorf("templates/vmrs/devices = %d/%d/%d, want 2/2/1", len(repo.Templates), len(repo.VMRs), len(repo.Devices))
	}
	if len(repo.Users) != 11 || len(repo.Invites) != 3 || len(repo.TrackingCodes) != 3 || len(repo.Reminders) != 2 {
		t.Errorf("users/invites/tracking/reminders = %d/%d/%d/%d, want 11/3/3/2", len(repo.Users), len(repo.Invites), len(repo.TrackingCodes), len(repo.Reminders))
	}
	if open := repo.LDIF["directory.ldif"]; open == nil {
		t.Error("directory.ldif not in Repo.LDIF")
	} else if f, err := open(); err != nil {
		t.Errorf("opening directory.ldif from Repo.LDIF: %v", err)
	} else {
		b, err := io.ReadAll(f)
		f.Close()
		want, _ := os.ReadFile("../examples/directory.ldif")
		if err != nil || len(b) == 0 || string(b) != string(want) {
			t.Errorf("directory.ldif from Repo.LDIF: %d bytes, err = %v; want the %d bytes of the file", len(b), err, len(want))
		}
	}
	if len(repo.EmailBodies) != 5 || len(repo.Announcements) != 1 || !repo.Announcements[0].HTML {
		t.Errorf("EmailBodies has %d entries, announcements %d; want 5 and 1 (HTML)", len(repo.EmailBodies), len(repo.Announcements))
	}
	if patterns < 20 {
		t.Errorf("CheckPattern called %d times, want every pattern checked", patterns)
	}
	staff := repo.Templates[1]
	if staff.Name != "staff" {
		t.Fatalf("templates not sorted: %q", staff.Name)
	}
	if p := staff.FieldPos["vmr.aliases[1]"]; p.Path != "templates/staff.yaml" || p.Line != 17 || p.Col != 7 {
		t.Errorf("FieldPos[vmr.aliases[1]] = %+v", p)
	}
	if p := staff.FieldPos["emails.vmr.subject"]; p.Line == 0 {
		t.Errorf("FieldPos[emails.vmr.subject] missing: %v", staff.FieldPos)
	}
	if repo.Settings.InviteTTL.Hours() != 336 || repo.Settings.Licenses.Paid != 2000 {
		t.Errorf("settings = %+v", repo.Settings)
	}
	if u := repo.Users[0]; u.Email != "maria.lopez@example.com" || u.Tracking[0] != "SALES" || u.Language != "es" || !u.Active {
		t.Errorf("first user = %+v", u)
	}
	// An empty optional dropdown value takes the group's default.
	if u := repo.Users[4]; u.Tracking[0] != "GEN" || u.Active {
		t.Errorf("fifth user = %+v, want DIVISION GEN (the default) and inactive", u)
	}
}

func TestLoadRootConfig(t *testing.T) {
	cfg := loadRootConfig(t)
	if cfg.Repo.URL != "./examples" || cfg.Repo.Branch != "main" || cfg.Repo.Interval.Minutes() != 1 {
		t.Errorf("repo = %+v", cfg.Repo)
	}
	d, ok := cfg.Directories["corp"]
	if !ok || d.LDIF != "directory.ldif" || d.PageSize != 1000 || d.Timeout.Seconds() != 30 || d.BaseDN != "dc=example,dc=com" {
		t.Errorf("directories = %+v", cfg.Directories)
	}
	if cfg.State.Driver != "sqlite" || cfg.State.DSN != "roster.db" || cfg.MailDir != "outbox" || len(cfg.SMTP) != 0 {
		t.Errorf("state/mail = %+v %q %v", cfg.State, cfg.MailDir, cfg.SMTP)
	}
	if cfg.HTTP.Listen != "127.0.0.1:8080" || cfg.Safety.MaxDeleteFraction != 0.25 || cfg.Safety.MaxDeleteCount != 500 || cfg.Safety.MaxEmails != 500 || cfg.SecretKeyEnv != "ROSTER_SECRET_KEY" {
		t.Errorf("defaults = %+v %+v %q", cfg.HTTP, cfg.Safety, cfg.SecretKeyEnv)
	}
	if !filepath.IsAbs(cfg.Dir) {
		t.Errorf("Dir = %q, want absolute", cfg.Dir)
	}
}
