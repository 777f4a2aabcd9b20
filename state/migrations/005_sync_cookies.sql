-- 005_sync_cookies: incremental directory reads (SPEC §7). One row per directory search
-- (a template's request on a directory): the sync cookie the last applied cycle ended
-- at, the commit it was planned at and when the last full read ran. Written in the apply's
-- transaction, never before: a cycle that does not commit leaves the old cookie, so the
-- next cycle is given the same changes again.
CREATE TABLE sync_cookies (
	req          TEXT PRIMARY KEY,     -- directory, template and a digest of the request
	directory    TEXT NOT NULL,
	template     TEXT NOT NULL,
	mode         TEXT NOT NULL,        -- syncrepl | dirsync
	cookie       BLOB NOT NULL,
	commit_id    TEXT NOT NULL DEFAULT '',
	full_read_at TEXT NOT NULL,
	updated_at   TEXT NOT NULL
) WITHOUT ROWID;

-- The entries of each search by their stable id (entryUUID / objectGUID): the entry key
-- their objects are owned by, so a deletion — which comes with the id only — finds what
-- the person owned. pending is set while its objects are not yet
-- exactly what it renders (skipped for a clash, invalid, a render error, a duplicate):
-- every incremental cycle reads and renders those again (by id), as a full read would.
CREATE TABLE sync_entries (
	req       TEXT NOT NULL,
	uuid      TEXT NOT NULL,
	entry_key TEXT NOT NULL,
	email     TEXT NOT NULL DEFAULT '', -- the user account it renders (lower case), if any
	pending   INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (req, uuid)
) WITHOUT ROWID;
