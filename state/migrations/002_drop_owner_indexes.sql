-- 002: the owner indexes of vmrs and devices served no query (roster matches owners in
-- memory) and cost a random B-tree insert per created row: a first apply of 400,000
-- people paid for 800,000 of them.
DROP INDEX IF EXISTS vmrs_owner;
DROP INDEX IF EXISTS devices_owner;
