-- Retention (issue 10): when the retention task deleted a call's recordings (NULL: never).
-- It is what lets GET /api/recording tell "deleted by retention" from "never recorded";
-- a transcript's own state will be a column of its own (transcript_status), set by the
-- same task. The partial index keeps the task's look for old recordings off the calls
-- that have none.
ALTER TABLE cdr ADD COLUMN media_deleted_at TIMESTAMP;
CREATE INDEX IF NOT EXISTS cdr_recording_age ON cdr (call_date) WHERE recording_name <> '';
