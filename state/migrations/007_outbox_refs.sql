-- 007_outbox_refs: emails by reference, and the outbox as the audit record of its emails.
--
-- ref_id: an email of a VMR, device or user account that the applied commit created or
-- updated names that row (vmr → vmrs, device → devices, activation → users, by outbox.kind)
-- instead of storing its variables: vars is '' and they are computed, when the email is
-- read, from the row with the function that makes them at enqueue (state.AppendVMRVars…).
-- Before a referenced row (or a VMR's aliases) is updated or deleted, the writer writes the
-- variables of its referencing emails into vars and clears ref_id ("materializes" them), so
-- an email always says what its commit said. The triggers below refuse an update or delete
-- that forgot to: a writer path without it fails loudly instead of changing emails.
ALTER TABLE outbox ADD COLUMN ref_id INTEGER;
CREATE INDEX outbox_ref ON outbox(kind, ref_id) WHERE ref_id IS NOT NULL;

-- The apply's emails are their own audit record (SPEC §5.9): actor, and audit_after, the id
-- of the last audit row written before the email, which places it in the audit log (after
-- that row, before the next; emails between the same two rows in outbox id order). NULL
-- for emails with an audit row of their own or none (announcements, admin emails, rows
-- written before 006).
ALTER TABLE outbox ADD COLUMN actor TEXT;
ALTER TABLE outbox ADD COLUMN audit_after INTEGER;

CREATE TRIGGER vmrs_outbox_ref_update BEFORE UPDATE ON vmrs
WHEN EXISTS (SELECT 1 FROM outbox WHERE kind = 'vmr' AND ref_id = OLD.id)
BEGIN SELECT RAISE(ABORT, 'vmrs row referenced by outbox emails: materialize them first'); END;
CREATE TRIGGER vmrs_outbox_ref_delete BEFORE DELETE ON vmrs
WHEN EXISTS (SELECT 1 FROM outbox WHERE kind = 'vmr' AND ref_id = OLD.id)
BEGIN SELECT RAISE(ABORT, 'vmrs row referenced by outbox emails: materialize them first'); END;
CREATE TRIGGER vmr_aliases_outbox_ref_update BEFORE UPDATE ON vmr_aliases
WHEN EXISTS (SELECT 1 FROM outbox WHERE kind = 'vmr' AND ref_id IN (OLD.vmr_id, NEW.vmr_id))
BEGIN SELECT RAISE(ABORT, 'vmr_aliases row referenced by outbox emails: materialize them first'); END;
CREATE TRIGGER vmr_aliases_outbox_ref_delete BEFORE DELETE ON vmr_aliases
WHEN EXISTS (SELECT 1 FROM outbox WHERE kind = 'vmr' AND ref_id = OLD.vmr_id)
BEGIN SELECT RAISE(ABORT, 'vmr_aliases row referenced by outbox emails: materialize them first'); END;
CREATE TRIGGER devices_outbox_ref_update BEFORE UPDATE ON devices
WHEN EXISTS (SELECT 1 FROM outbox WHERE kind = 'device' AND ref_id = OLD.id)
BEGIN SELECT RAISE(ABORT, 'devices row referenced by outbox emails: materialize them first'); END;
CREATE TRIGGER devices_outbox_ref_delete BEFORE DELETE ON devices
WHEN EXISTS (SELECT 1 FROM outbox WHERE kind = 'device' AND ref_id = OLD.id)
BEGIN SELECT RAISE(ABORT, 'devices row referenced by outbox emails: materialize them first'); END;
CREATE TRIGGER users_outbox_ref_update BEFORE UPDATE ON users
WHEN EXISTS (SELECT 1 FROM outbox WHERE kind = 'activation' AND ref_id = OLD.id)
BEGIN SELECT RAISE(ABORT, 'users row referenced by outbox emails: materialize them first'); END;
CREATE TRIGGER users_outbox_ref_delete BEFORE DELETE ON users
WHEN EXISTS (SELECT 1 FROM outbox WHERE kind = 'activation' AND ref_id = OLD.id)
BEGIN SELECT RAISE(ABORT, 'users row referenced by outbox emails: materialize them first'); END;
