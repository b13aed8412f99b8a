-- The campaign dialer (issue 9): the campaign's new settings and what it tells about
-- itself, one progress row per (campaign, contact), one row per dial attempt, and the
-- counts of announcement placeholders a contact had no value for. The CDR gains the
-- target of an IVR transfer and the state of its transcript (issue 10 fills it in).
ALTER TABLE campaign ADD COLUMN calling_hours VARCHAR(11) NOT NULL DEFAULT '';
ALTER TABLE campaign ADD COLUMN contact_local_time SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE campaign ADD COLUMN ivr_max_digits INTEGER NOT NULL DEFAULT 1;
ALTER TABLE campaign ADD COLUMN ivr_timeout INTEGER NOT NULL DEFAULT 5;
ALTER TABLE campaign ADD COLUMN ivr_digit_map TEXT NOT NULL DEFAULT '{}';
ALTER TABLE campaign ADD COLUMN announcement_audio VARCHAR(200) NOT NULL DEFAULT '';
ALTER TABLE campaign ADD COLUMN state_reason_code VARCHAR(32) NOT NULL DEFAULT '';
ALTER TABLE campaign ADD COLUMN state_reason VARCHAR(200) NOT NULL DEFAULT '';
ALTER TABLE cdr ADD COLUMN transfer_to VARCHAR(24) NOT NULL DEFAULT '';
ALTER TABLE cdr ADD COLUMN transcript_status VARCHAR(10) NOT NULL DEFAULT 'off';

CREATE TABLE IF NOT EXISTS campaign_contact (
    campaign_id VARCHAR(12) NOT NULL REFERENCES campaign (id),
    contact_id  BIGINT      NOT NULL,
    number      VARCHAR(16) NOT NULL,
    state       VARCHAR(12) NOT NULL,
    attempts    INTEGER     NOT NULL,
    next_at     TIMESTAMP   NOT NULL,
    reason_code VARCHAR(32) NOT NULL,
    updated_at  TIMESTAMP   NOT NULL,
    PRIMARY KEY (campaign_id, contact_id)
);
CREATE INDEX IF NOT EXISTS campaign_contact_due ON campaign_contact (campaign_id, state, next_at);

CREATE TABLE IF NOT EXISTS campaign_attempt (
    id          VARCHAR(12) NOT NULL PRIMARY KEY,
    account_id  VARCHAR(12) NOT NULL REFERENCES account (id),
    campaign_id VARCHAR(12) NOT NULL REFERENCES campaign (id),
    contact_id  BIGINT      NOT NULL,
    attempt     INTEGER     NOT NULL,
    number      VARCHAR(16) NOT NULL,
    status      VARCHAR(10) NOT NULL,
    dial_status VARCHAR(16) NOT NULL,
    reason_code VARCHAR(32) NOT NULL,
    created_at  TIMESTAMP   NOT NULL,
    settled_at  TIMESTAMP,
    UNIQUE (campaign_id, contact_id, attempt)
);
CREATE INDEX IF NOT EXISTS campaign_attempt_number ON campaign_attempt (account_id, number, created_at);
CREATE INDEX IF NOT EXISTS campaign_attempt_open ON campaign_attempt (status, created_at);

CREATE TABLE IF NOT EXISTS campaign_placeholder (
    campaign_id VARCHAR(12) NOT NULL REFERENCES campaign (id),
    field       VARCHAR(64) NOT NULL,
    missing     BIGINT      NOT NULL,
    PRIMARY KEY (campaign_id, field)
);

-- The pre-rendered CDRs gain the two new keys, last, as cpaas/cdr/writer.py renders them
-- (every api_json ends with "}": the object without its leading {"id":N,).
UPDATE cdr SET api_json = substr(api_json, 1, length(api_json) - 1) || ',"transfer_to":"","transcript_status":"off"}';
