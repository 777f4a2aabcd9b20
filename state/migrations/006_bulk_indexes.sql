-- 006_bulk_indexes: the unique keys of the object tables become named indexes, and an
-- alias row is keyed by its VMR and position. An inline UNIQUE is an automatic index that
-- cannot be dropped; a named one can: a first apply into empty tables (state.DB.InBulkTx)
-- drops them, appends the rows and builds each index once from sorted keys in the same
-- transaction, where inserting 400,000 names (1.2 million aliases) one by one put each
-- in a random place of its B-tree. vmr_aliases was a rowid table with two indexes (the
-- alias key, vmr_id); keyed by (vmr_id, pos) WITHOUT ROWID it is two B-trees, written in
-- VMR order and read in that order with no sort. The tables are rebuilt (SQLite cannot
-- change a table's constraints) with foreign keys off, as migrate runs every migration.

CREATE TABLE vmrs_new (
	id                INTEGER PRIMARY KEY,
	name              TEXT NOT NULL,
	description       TEXT NOT NULL DEFAULT '',
	pin               TEXT NOT NULL DEFAULT '',
	guest_pin         TEXT NOT NULL DEFAULT '',
	allow_guests      INTEGER NOT NULL DEFAULT 0,
	max_callrate_in   INTEGER NOT NULL DEFAULT 0,
	max_callrate_out  INTEGER NOT NULL DEFAULT 0,
	participant_limit INTEGER NOT NULL DEFAULT 0,
	tag               TEXT NOT NULL DEFAULT '',
	owner_email       TEXT NOT NULL DEFAULT '',
	sync_tag          TEXT NOT NULL,
	entry_key         TEXT NOT NULL DEFAULT '',
	created_at        TEXT NOT NULL,
	updated_at        TEXT NOT NULL
);
INSERT INTO vmrs_new(id, name, description, pin, guest_pin, allow_guests, max_callrate_in, max_callrate_out,
		participant_limit, tag, owner_email, sync_tag, entry_key, created_at, updated_at)
	SELECT id, name, description, pin, guest_pin, allow_guests, max_callrate_in, max_callrate_out,
		participant_limit, tag, owner_email, sync_tag, entry_key, created_at, updated_at FROM vmrs;
DROP TABLE vmrs;
ALTER TABLE vmrs_new RENAME TO vmrs;
-- Names are unique, as in Pexip.
CREATE UNIQUE INDEX vmrs_name ON vmrs(name);

-- Aliases are globally unique: one alias, one room.
CREATE TABLE vmr_aliases_new (
	vmr_id INTEGER NOT NULL REFERENCES vmrs(id) ON DELETE CASCADE,
	pos    INTEGER NOT NULL,
	alias  TEXT NOT NULL,
	PRIMARY KEY (vmr_id, pos)
) WITHOUT ROWID;
INSERT INTO vmr_aliases_new(vmr_id, pos, alias) SELECT vmr_id, pos, alias FROM vmr_aliases;
DROP TABLE vmr_aliases;
ALTER TABLE vmr_aliases_new RENAME TO vmr_aliases;
CREATE UNIQUE INDEX vmr_aliases_alias ON vmr_aliases(alias);

CREATE TABLE devices_new (
	id          INTEGER PRIMARY KEY,
	alias       TEXT NOT NULL,
	description TEXT NOT NULL DEFAULT '',
	username    TEXT NOT NULL DEFAULT '',
	password    TEXT NOT NULL DEFAULT '',
	tag         TEXT NOT NULL DEFAULT '',
	owner_email TEXT NOT NULL DEFAULT '',
	sync_tag    TEXT NOT NULL,
	entry_key   TEXT NOT NULL DEFAULT '',
	created_at  TEXT NOT NULL,
	updated_at  TEXT NOT NULL
);
INSERT INTO devices_new(id, alias, description, username, password, tag, owner_email, sync_tag, entry_key,
		created_at, updated_at)
	SELECT id, alias, description, username, password, tag, owner_email, sync_tag, entry_key,
		created_at, updated_at FROM devices;
DROP TABLE devices;
ALTER TABLE devices_new RENAME TO devices;
CREATE UNIQUE INDEX devices_alias ON devices(alias);

-- Users are never deleted (WebEx): deactivated and reactivated. One account per email.
CREATE TABLE users_new (
	id             INTEGER PRIMARY KEY,
	userid         TEXT NOT NULL,              -- generated, 1-19 alphanumerics
	email          TEXT NOT NULL,              -- lower-cased identity
	first_name     TEXT NOT NULL DEFAULT '',
	last_name      TEXT NOT NULL DEFAULT '',
	language       TEXT NOT NULL DEFAULT '',
	host_privilege TEXT NOT NULL DEFAULT 'HOST',
	time_zone      TEXT NOT NULL DEFAULT '',
	tracking       TEXT NOT NULL DEFAULT '[]', -- JSON array of 10 strings, by slot
	active         INTEGER NOT NULL DEFAULT 1,
	origin         TEXT NOT NULL,              -- local | remote
	license        TEXT NOT NULL DEFAULT 'paid', -- paid | free
	sync_tag       TEXT NOT NULL DEFAULT '',   -- template for remote users, '' for local
	entry_key      TEXT NOT NULL DEFAULT '',
	notified_at    TEXT,                       -- activation email enqueued (once per lifetime)
	created_at     TEXT NOT NULL,
	updated_at     TEXT NOT NULL
);
INSERT INTO users_new(id, userid, email, first_name, last_name, language, host_privilege, time_zone, tracking,
		active, origin, license, sync_tag, entry_key, notified_at, created_at, updated_at)
	SELECT id, userid, email, first_name, last_name, language, host_privilege, time_zone, tracking,
		active, origin, license, sync_tag, entry_key, notified_at, created_at, updated_at FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;
CREATE UNIQUE INDEX users_userid ON users(userid);
CREATE UNIQUE INDEX users_email ON users(email);
