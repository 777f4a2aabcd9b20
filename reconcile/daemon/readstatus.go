package daemon

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/roster-dev/roster/state"
)

// DirectoryRead is how a template's directory is read incrementally (SPEC §7), as the sync
// cookie its last applied cycle stored says; `roster status` shows it with or without a
// daemon. A template without one is read in full.
type DirectoryRead struct {
	Directory string `json:"directory"`
	Template  string `json:"template"`
	// Protocol is syncrepl (RFC 4533), dirsync (AD's DirSync control) or usn (AD's
	// uSNChanged, where the bind account may not use DirSync).
	Protocol     string    `json:"protocol"`
	LastFullRead time.Time `json:"last_full_read"`
	LastRead     time.Time `json:"last_read"` // when the cookie was last stored
}

// directoryReads is the latest stored cookie of each template (a template whose search
// changed keeps older cookies of the old search until they are replaced).
func directoryReads(ctx context.Context, db *state.DB) ([]DirectoryRead, error) {
	cookies, err := db.SyncCookies(ctx)
	if err != nil {
		return nil, err
	}
	latest := map[string]state.SyncCookie{}
	for _, c := range cookies {
		k := c.Directory + "\x00" + c.Template
		if l, ok := latest[k]; !ok || c.UpdatedAt.After(l.UpdatedAt) {
			latest[k] = c
		}
	}
	out := make([]DirectoryRead, 0, len(latest))
	for _, c := range latest {
		out = append(out, DirectoryRead{Directory: c.Directory, Template: c.Template, Protocol: c.Mode,
			LastFullRead: c.FullReadAt, LastRead: c.UpdatedAt})
	}
	slices.SortFunc(out, func(a, b DirectoryRead) int {
		return strings.Compare(a.Template+"\x00"+a.Directory, b.Template+"\x00"+b.Directory)
	})
	return out, nil
}

// writeDirectoryReads prints the incremental reads for `roster status`.
func writeDirectoryReads(w io.Writer, reads []DirectoryRead) {
	if len(reads) == 0 {
		return
	}
	fmt.Fprintln(w, "\nIncremental directory reads:")
	for _, r := range reads {
		fmt.Fprintf(w, "  %s (directory %s): %s, last read %s, last full read %s\n", r.Template, r.Directory, r.Protocol,
			r.LastRead.Format(time.RFC3339), r.LastFullRead.Format(time.RFC3339))
	}
}
