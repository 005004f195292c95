-- Nothing to change on SQLite (it has no MVCC garbage to collect: its
-- writer updates rows in place). The PostgreSQL copy of this version tunes
-- autovacuum for the tables every callback updates.
SELECT 1;
