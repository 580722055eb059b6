-- No query reads audit events by task id (reports go by time, user and feature), and the
-- index cost every insert a B-tree descent: dropped.
DROP INDEX IF EXISTS audit_events_task;
