package directory

import "context"

// Change is one entry changed since a sync cookie: its stable key and what it is now.
type Change struct {
	UUID  string // entryUUID / objectGUID hex: the stable key
	Entry *Entry // nil = deleted or moved out of scope/filter
}

// SyncResult is what an incremental read returns.
type SyncResult struct {
	Changes []Change
	Cookie  []byte // stored in the same transaction as the changes it led to
	Refresh bool   // cookie rejected: do a full read; Changes empty
}

// Syncer reads a directory incrementally (SPEC §7).
type Syncer interface {
	Mode(ctx context.Context) (string, error)                                                 // "syncrepl", "dirsync" or "" (full only)
	Baseline(ctx context.Context, req Request) ([]byte, error)                                // cookie marking "now", taken just before a full read
	Changes(ctx context.Context, req Request, cookie []byte) (SyncResult, error)              // refreshOnly since cookie
	Persist(ctx context.Context, req Request, cookie []byte, fn func(SyncResult) error) error // refreshAndPersist until ctx ends or conn drops
}
