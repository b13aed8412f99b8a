-- Transcription (issue 10): one transcript per call request, its turns in time order as
-- JSON ({speaker, start, end, text}: the API's answer, stored as it is served), and the
-- callback's own transcript switch (click2call keeps it on call_request.transcript).
-- Retention looks for old transcripts by the CDR's status; the partial index keeps that
-- look off the calls that never had one.
CREATE TABLE IF NOT EXISTS transcript (
    request_id  VARCHAR(12)  NOT NULL PRIMARY KEY,
    account_id  VARCHAR(12)  NOT NULL REFERENCES account (id),
    backend     VARCHAR(16)  NOT NULL,
    turns       TEXT         NOT NULL,
    created_at  TIMESTAMP    NOT NULL
);
CREATE INDEX IF NOT EXISTS transcript_account ON transcript (account_id);
ALTER TABLE callback ADD COLUMN transcript VARCHAR(3) NOT NULL DEFAULT 'off';
CREATE INDEX IF NOT EXISTS cdr_transcript_age ON cdr (call_date) WHERE transcript_status IN ('pending', 'done', 'failed');
