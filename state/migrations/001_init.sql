-- 001_init: the whole actual state of the conferencing platform roster manages.
-- Times are RFC 3339 UTC text. Lists and maps are JSON text.

CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) WITHOUT ROWID;

-- Virtual Meeting Rooms. A template-owned VMR is identified by (sync_tag, entry_key);
-- a declared one (sync_tag 'manual') by its name. Names are unique, as in Pexip.
CREATE TABLE vmrs (
	id                INTEGER PRIMARY KEY,
	name              TEXT NOT NULL UNIQUE,
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
CREATE INDEX vmrs_owner ON vmrs(sync_tag, entry_key);

-- Aliases are globally unique: one alias, one room.
CREATE TABLE vmr_aliases (
	alias  TEXT PRIMARY KEY,
	vmr_id INTEGER NOT NULL REFERENCES vmrs(id) ON DELETE CASCADE,
	pos    INTEGER NOT NULL
);
CREATE INDEX vmr_aliases_vmr ON vmr_aliases(vmr_id);

CREATE TABLE devices (
	id          INTEGER PRIMARY KEY,
	alias       TEXT NOT NULL UNIQUE,
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
CREATE INDEX devices_owner ON devices(sync_tag, entry_key);

-- Users are never deleted (WebEx): deactivated and reactivated. One account per email.
CREATE TABLE users (
	id             INTEGER PRIMARY KEY,
	userid         TEXT NOT NULL UNIQUE,       -- generated, 1-19 alphanumerics
	email          TEXT NOT NULL UNIQUE,       -- lower-cased identity
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

CREATE TABLE tracking_groups (
	slot       TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	input_mode TEXT NOT NULL,
	usage      TEXT NOT NULL,
	sort       TEXT NOT NULL,
	codes      TEXT NOT NULL DEFAULT '[]'   -- JSON [{code, active, default}]
) WITHOUT ROWID;

-- Pexip Service invitations. status: pending | accepted | revoked | expired.
CREATE TABLE invites (
	email       TEXT PRIMARY KEY,
	name        TEXT NOT NULL DEFAULT '',
	username    TEXT NOT NULL DEFAULT '',
	status      TEXT NOT NULL,
	invited_at  TEXT NOT NULL,
	expires_at  TEXT NOT NULL,
	accepted_at TEXT
) WITHOUT ROWID;

-- Last reconcile of each sync template, for status and the status page.
CREATE TABLE sync_status (
	template    TEXT PRIMARY KEY,
	state       TEXT NOT NULL,            -- syncing | succeeded | failed
	last_run    TEXT NOT NULL,
	commit_id   TEXT NOT NULL DEFAULT '',
	created     INTEGER NOT NULL DEFAULT 0,
	updated     INTEGER NOT NULL DEFAULT 0,
	deleted     INTEGER NOT NULL DEFAULT 0,
	deactivated INTEGER NOT NULL DEFAULT 0,
	unchanged   INTEGER NOT NULL DEFAULT 0,
	warnings    TEXT NOT NULL DEFAULT '[]',
	last_error  TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;

-- Every applied change, email and reminder.
CREATE TABLE audit (
	id        INTEGER PRIMARY KEY,
	at        TEXT NOT NULL,
	commit_id TEXT NOT NULL DEFAULT '',
	actor     TEXT NOT NULL,
	kind      TEXT NOT NULL,
	action    TEXT NOT NULL,
	key       TEXT NOT NULL,
	detail    TEXT NOT NULL DEFAULT ''
);

-- Reminder ids of reminders.yaml already carried out (each id once, ever).
CREATE TABLE reminders_done (
	id        TEXT PRIMARY KEY,
	at        TEXT NOT NULL,
	commit_id TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;

-- Email templates snapshotted at enqueue time, shared by many outbox rows (deduplicated
-- by the hash of their content), so an email says what the applied commit said.
CREATE TABLE email_templates (
	hash      TEXT PRIMARY KEY,
	subject   TEXT NOT NULL,
	body      TEXT NOT NULL,
	body_path TEXT NOT NULL DEFAULT '',   -- where the body came from, for messages
	html      INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- The email outbox: written in the same transaction as the change that causes the email,
-- then delivered by notify. status: pending | sending | sent | failed | dropped.
CREATE TABLE outbox (
	id              INTEGER PRIMARY KEY,
	created_at      TEXT NOT NULL,
	commit_id       TEXT NOT NULL DEFAULT '',
	kind            TEXT NOT NULL,   -- vmr | device | activation | invite | admin_summary | sync_error
	action          TEXT NOT NULL,   -- created | updated | reminder | ...
	object_key      TEXT NOT NULL,
	template        TEXT NOT NULL DEFAULT '',
	to_addr         TEXT NOT NULL,
	smtp_server     TEXT NOT NULL DEFAULT '',
	email_template  TEXT NOT NULL REFERENCES email_templates(hash),
	vars            TEXT NOT NULL,   -- JSON object: the email's variables
	status          TEXT NOT NULL DEFAULT 'pending',
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at TEXT NOT NULL DEFAULT '',
	last_error      TEXT NOT NULL DEFAULT '',
	message_id      TEXT NOT NULL DEFAULT '',
	sent_at         TEXT
);
CREATE INDEX outbox_status ON outbox(status, next_attempt_at);
