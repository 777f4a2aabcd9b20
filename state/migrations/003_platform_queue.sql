-- 003_platform_queue: the durable platform queue (SPEC §8) and the objects roster owns on
-- each platform. Operations are written in the apply's transaction, like the email outbox,
-- and delivered afterwards by a deliverer.

-- One operation to send. object_key is the object's unique value on the platform after
-- the operation (conference name, alias, device alias, end user email); from_key its value
-- before, when the operation renames it. An operation waits for every earlier unfinished
-- operation on the same object, on the object it depends on (dep_resource/dep_key: an
-- alias's conference) and on objects that depend on it. kind/owner_key name roster's own
-- object (vmr, device, user) the operation delivers, so that its emails can wait for it.
-- payload holds only the fields to send. status: pending | sending (claimed, next_try is
-- the lease's end) | done | failed | conflict.
CREATE TABLE platform_ops (
	id           INTEGER PRIMARY KEY,
	platform     TEXT NOT NULL,
	op           TEXT NOT NULL,                  -- create | patch | delete
	resource     TEXT NOT NULL,
	object_key   TEXT NOT NULL,
	from_key     TEXT NOT NULL DEFAULT '',
	kind         TEXT NOT NULL DEFAULT '',
	owner_key    TEXT NOT NULL DEFAULT '',
	payload      TEXT NOT NULL DEFAULT '{}',
	dep_resource TEXT NOT NULL DEFAULT '',
	dep_key      TEXT NOT NULL DEFAULT '',
	status       TEXT NOT NULL DEFAULT 'pending',
	attempts     INTEGER NOT NULL DEFAULT 0,
	next_try     TEXT NOT NULL,
	last_error   TEXT NOT NULL DEFAULT '',
	remote_id    INTEGER NOT NULL DEFAULT 0,
	commit_id    TEXT NOT NULL DEFAULT '',
	created_at   TEXT NOT NULL,
	done_at      TEXT
);
-- Finished operations leave the partial indexes: a long history costs the queue nothing.
CREATE INDEX platform_ops_open ON platform_ops(platform, id) WHERE status IN ('pending', 'sending');
CREATE INDEX platform_ops_object ON platform_ops(platform, resource, object_key, id) WHERE status != 'done';
CREATE INDEX platform_ops_dep ON platform_ops(platform, dep_resource, dep_key, id) WHERE status != 'done';
CREATE INDEX platform_ops_owner ON platform_ops(kind, owner_key) WHERE status != 'done';

-- The objects roster owns on a platform, by unique value: their remote id (0 while not
-- known, e.g. an alias created with its conference), an alias's conference (parent_key)
-- and, for a device, the digest of the password last pushed (passwords are write-only).
CREATE TABLE platform_objects (
	platform        TEXT NOT NULL,
	resource        TEXT NOT NULL,
	object_key      TEXT NOT NULL,
	remote_id       INTEGER NOT NULL DEFAULT 0,
	parent_key      TEXT NOT NULL DEFAULT '',
	password_digest TEXT NOT NULL DEFAULT '',
	pushed_at       TEXT NOT NULL,
	PRIMARY KEY (platform, resource, object_key)
) WITHOUT ROWID;
CREATE INDEX platform_objects_parent ON platform_objects(platform, parent_key) WHERE parent_key != '';
