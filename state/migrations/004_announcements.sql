-- 004_announcements: announcements ("Email Users", SPEC §9), each sent once per id. A row is
-- written in the transaction that enqueues the announcement's emails; digests holds the
-- SHA-256 of each field a sender may not change afterwards (to, bcc, subject, body), so a
-- later plan can refuse an edit and name the field.
CREATE TABLE announcements (
	id         TEXT PRIMARY KEY,
	subject    TEXT NOT NULL,
	digests    TEXT NOT NULL,          -- JSON object: field → hex SHA-256
	recipients INTEGER NOT NULL,
	commit_id  TEXT NOT NULL DEFAULT '',
	actor      TEXT NOT NULL DEFAULT '',
	applied_at TEXT NOT NULL
) WITHOUT ROWID;

-- Once per id and recipient, ever: the outbox refuses a second row for either.
CREATE UNIQUE INDEX outbox_announcement_once ON outbox(object_key, to_addr) WHERE kind = 'announcement';
