-- cpaas schema: the single source of truth for both databases.
-- Statements are separated by ";" at the end of a line. Sections marked
-- "-- @dialect sqlite" / "-- @dialect postgresql" apply to that database only; the
-- rest is portable SQL run on both. Timestamps are UTC, stored without a zone.
-- The peewee models in cpaas/models.py mirror this file (tests/data/test_schema.py checks).
-- This is the full current schema, which a fresh install gets; an existing database is
-- brought to it by the numbered migrations in cpaas/migrations (how to add one: its
-- docstring). Change both together: tests/data/test_migrations.py checks they agree.

CREATE TABLE IF NOT EXISTS account (
    id          VARCHAR(12)  NOT NULL PRIMARY KEY,            -- AC + 10 letters/digits
    name        VARCHAR(64)  NOT NULL UNIQUE,        -- sent in the "account" header
    auth_salt   VARCHAR(32)  NOT NULL,
    auth_hash   VARCHAR(64)  NOT NULL,               -- HMAC-SHA256(salt, secret), hex
    created_at  TIMESTAMP    NOT NULL
);

CREATE TABLE IF NOT EXISTS announce_template (
    id            VARCHAR(12)   NOT NULL PRIMARY KEY,         -- AN + 10 hex
    account_id    VARCHAR(12)   NOT NULL REFERENCES account (id),
    template_text VARCHAR(1000) NOT NULL,
    status        VARCHAR(10)   NOT NULL,            -- pending | approved | rejected
    created_at    TIMESTAMP     NOT NULL
);
CREATE INDEX IF NOT EXISTS announce_template_account ON announce_template (account_id);

CREATE TABLE IF NOT EXISTS contact_list (
    id          VARCHAR(12)  NOT NULL PRIMARY KEY,            -- LS + 10 hex
    account_id  VARCHAR(12)  NOT NULL REFERENCES account (id),
    name        VARCHAR(100) NOT NULL,
    created_at  TIMESTAMP    NOT NULL,
    UNIQUE (account_id, name)
);

CREATE TABLE IF NOT EXISTS dnd_list (
    id          VARCHAR(12)  NOT NULL PRIMARY KEY,            -- DN + 10 hex
    account_id  VARCHAR(12)  NOT NULL REFERENCES account (id),
    name        VARCHAR(100) NOT NULL,
    created_at  TIMESTAMP    NOT NULL,
    UNIQUE (account_id, name)
);

CREATE TABLE IF NOT EXISTS campaign (
    id                   VARCHAR(12)   NOT NULL PRIMARY KEY,  -- CM + 10 hex
    account_id           VARCHAR(12)   NOT NULL REFERENCES account (id),
    name                 VARCHAR(100)  NOT NULL,
    list_id              VARCHAR(12)   NOT NULL REFERENCES contact_list (id),
    dnd_list_id          VARCHAR(12)   REFERENCES dnd_list (id),
    campaign_type        SMALLINT      NOT NULL,     -- 0 announcement, 1 IVR
    caller_id            VARCHAR(16)   NOT NULL,
    dynamic_announcement SMALLINT      NOT NULL,     -- 1 text to speech, 0 recorded file
    recorded_filename    VARCHAR(200)  NOT NULL,
    announcement_text    VARCHAR(2000) NOT NULL,
    start_at             TIMESTAMP     NOT NULL,     -- UTC
    end_at               TIMESTAMP     NOT NULL,     -- UTC
    time_zone            VARCHAR(64)   NOT NULL,
    repeat_count         INTEGER       NOT NULL,
    max_retries          INTEGER       NOT NULL,
    retry_time           INTEGER       NOT NULL,     -- seconds
    retry_on_statuses    VARCHAR(100)  NOT NULL,     -- comma-separated dial statuses
    calls_per_minute     INTEGER       NOT NULL,
    voice                VARCHAR(32)   NOT NULL,
    volume               VARCHAR(10)   NOT NULL,
    rate                 VARCHAR(10)   NOT NULL,
    pitch                VARCHAR(10)   NOT NULL,
    language_code        VARCHAR(10)   NOT NULL,
    tts_engine_type      VARCHAR(10)   NOT NULL,
    status               SMALLINT      NOT NULL,     -- 0 scheduled, 1 running, 2 stopped, 3 completed, 4 paused
    created_at           TIMESTAMP     NOT NULL,
    -- the dialer's settings and what it says about itself (migration 0004)
    calling_hours        VARCHAR(11)   NOT NULL DEFAULT '',   -- "HH:MM-HH:MM" or empty
    contact_local_time   SMALLINT      NOT NULL DEFAULT 0,    -- 1: calling_hours in each contact's zones
    ivr_max_digits       INTEGER       NOT NULL DEFAULT 1,
    ivr_timeout          INTEGER       NOT NULL DEFAULT 5,    -- seconds
    ivr_digit_map        TEXT          NOT NULL DEFAULT '{}', -- JSON: digits -> agent:<ext> | number:<digits>
    announcement_audio   VARCHAR(200)  NOT NULL DEFAULT '',   -- the recorded file at 8 kHz, in the media root
    state_reason_code    VARCHAR(32)   NOT NULL DEFAULT '',   -- why it is not dialing (empty while it dials)
    state_reason         VARCHAR(200)  NOT NULL DEFAULT '',
    UNIQUE (account_id, name)
);

CREATE TABLE IF NOT EXISTS callback (
    id                 VARCHAR(10)  NOT NULL PRIMARY KEY,     -- the request_id, 10 hex
    account_id         VARCHAR(12)  NOT NULL REFERENCES account (id),
    agent_number       VARCHAR(16)  NOT NULL,
    caller_id          VARCHAR(16)  NOT NULL,
    destination_number VARCHAR(16)  NOT NULL,
    recording_option   VARCHAR(10)  NOT NULL,
    time_zone          VARCHAR(64)  NOT NULL,
    scheduled_at       TIMESTAMP    NOT NULL,        -- UTC
    status             VARCHAR(10)  NOT NULL,        -- scheduled | fired | late
    fired_at           TIMESTAMP,
    created_at         TIMESTAMP    NOT NULL,
    transcript         VARCHAR(3)   NOT NULL DEFAULT 'off'  -- on | off (0005)
);
CREATE INDEX IF NOT EXISTS callback_due ON callback (status, scheduled_at);
CREATE INDEX IF NOT EXISTS callback_account ON callback (account_id);

-- A call's transcript (issue 10): its turns in time order, JSON as the API serves them
-- (0005). The CDR's transcript_status says whether one is pending, done or deleted.
CREATE TABLE IF NOT EXISTS transcript (
    request_id  VARCHAR(12)  NOT NULL PRIMARY KEY,
    account_id  VARCHAR(12)  NOT NULL REFERENCES account (id),
    backend     VARCHAR(16)  NOT NULL,               -- whisper | aws
    turns       TEXT         NOT NULL,
    created_at  TIMESTAMP    NOT NULL
);
CREATE INDEX IF NOT EXISTS transcript_account ON transcript (account_id);

-- One row per call-placing request (click2call, OTP, a fired callback, a campaign
-- attempt): what the engine's events are attributed to when the CDR is written.
CREATE TABLE IF NOT EXISTS call_request (
    id                  VARCHAR(12)  NOT NULL PRIMARY KEY,    -- request_id
    account_id          VARCHAR(12)  NOT NULL REFERENCES account (id),
    kind                VARCHAR(10)  NOT NULL,       -- c2c | otp | campaign | callback
    agent_number        VARCHAR(16)  NOT NULL,
    customer_number     VARCHAR(16)  NOT NULL,
    caller_id           VARCHAR(16)  NOT NULL,
    recording_option    VARCHAR(10)  NOT NULL,
    transcript          VARCHAR(3)   NOT NULL,
    destination_context VARCHAR(40)  NOT NULL,
    call_direction      VARCHAR(20)  NOT NULL,
    campaign_id         VARCHAR(12),
    list_id             VARCHAR(12),
    status              VARCHAR(10)  NOT NULL,       -- queued | live | done
    created_at          TIMESTAMP    NOT NULL
);
CREATE INDEX IF NOT EXISTS call_request_account ON call_request (account_id);
-- The requests not yet done, oldest first, without reading the done ones: what the
-- sweeper reads all the time (migration 0002).
CREATE INDEX IF NOT EXISTS call_request_status ON call_request (status, created_at);

-- Per-account (campaign_id '') and per-campaign counters, updated in the CDR
-- writer's transaction, so statistics never scan the CDR table.
CREATE TABLE IF NOT EXISTS cdr_stats (
    account_id        VARCHAR(12) NOT NULL REFERENCES account (id),
    campaign_id       VARCHAR(12) NOT NULL,
    answer_calls      BIGINT      NOT NULL,
    busy_calls        BIGINT      NOT NULL,
    cancel_calls      BIGINT      NOT NULL,
    chanunavail_calls BIGINT      NOT NULL,
    congestion_calls  BIGINT      NOT NULL,
    noanswer_calls    BIGINT      NOT NULL,
    dnd_calls         BIGINT      NOT NULL,
    total_calls       BIGINT      NOT NULL,
    PRIMARY KEY (account_id, campaign_id)
);

-- contact / dnd_contact (the bulk tables, a million rows per CSV import) have no
-- foreign key to their list: every writer checks the list is the caller's (in the
-- same statement for the API's upserts, before the first row for an import), and
-- a list is deleted only together with its entries, in one transaction
-- (cpaas/campaigns/listing.py), so the key would only re-check, once per inserted
-- row, what the writer already checked. On PostgreSQL that check was half the server's
-- work per imported row (bench/README.md).
-- The dialer's books (migration 0004): one progress row per (campaign, contact); one row
-- per dial attempt, whose unique (campaign, contact, attempt) is what lets only one
-- process dial it (its id is the attempt's call request_id); the placeholders contacts
-- had no value for.
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

-- @dialect sqlite
CREATE TABLE IF NOT EXISTS contact (
    id          INTEGER      PRIMARY KEY AUTOINCREMENT,
    list_id     VARCHAR(12)  NOT NULL,               -- a contact_list (see above)
    number      VARCHAR(16)  NOT NULL,               -- digits only
    name        VARCHAR(100) NOT NULL,
    fields      TEXT         NOT NULL,               -- JSON object of strings
    UNIQUE (list_id, number)
);

CREATE TABLE IF NOT EXISTS dnd_contact (
    id          INTEGER      PRIMARY KEY AUTOINCREMENT,
    dnd_list_id VARCHAR(12)  NOT NULL,               -- a dnd_list (see above)
    number      VARCHAR(16)  NOT NULL,
    name        VARCHAR(100) NOT NULL,
    UNIQUE (dnd_list_id, number)
);

CREATE TABLE IF NOT EXISTS cdr (
    id                  INTEGER      PRIMARY KEY AUTOINCREMENT,
    account_id          VARCHAR(12)  NOT NULL REFERENCES account (id),
    request_id          VARCHAR(12)  NOT NULL,
    campaign_id         VARCHAR(12),
    list_id             VARCHAR(12)  NOT NULL,
    uniqueid            VARCHAR(40)  NOT NULL,
    agent_number        VARCHAR(16)  NOT NULL,
    customer_number     VARCHAR(16)  NOT NULL,
    dialed_number       VARCHAR(16)  NOT NULL,
    caller_id           VARCHAR(16)  NOT NULL,
    call_date           TIMESTAMP    NOT NULL,       -- UTC, when the call ended
    answer_at           TIMESTAMP,
    end_at              TIMESTAMP,
    billsec             REAL,
    call_duration       REAL,
    call_status         VARCHAR(16),
    dial_status         VARCHAR(16)  NOT NULL,
    destination_context VARCHAR(40)  NOT NULL,
    call_direction      VARCHAR(20)  NOT NULL,
    dtmf_inputs         VARCHAR(64)  NOT NULL,
    recording_name      VARCHAR(300) NOT NULL,
    is_dnd              SMALLINT     NOT NULL,
    hangup_cause        VARCHAR(64)  NOT NULL DEFAULT '', -- why the call ended (ours, not the spec's)
    api_json            TEXT         NOT NULL,        -- the row as the API sends it, less "id" (see cpaas/cdr/writer.py)
    media_deleted_at    TIMESTAMP,                    -- when retention deleted its recordings (migration 0003)
    transfer_to         VARCHAR(24)  NOT NULL DEFAULT '', -- an IVR transfer's target, agent:<ext> | number:<digits> (0004)
    transcript_status   VARCHAR(10)  NOT NULL DEFAULT 'off' -- off | pending | done | failed | deleted (0004)
);

-- @dialect postgresql
CREATE TABLE IF NOT EXISTS contact (
    id          BIGSERIAL    PRIMARY KEY,
    list_id     VARCHAR(12)  NOT NULL,               -- a contact_list (see above)
    number      VARCHAR(16)  NOT NULL,
    name        VARCHAR(100) NOT NULL,
    fields      TEXT         NOT NULL,
    UNIQUE (list_id, number)
);

CREATE TABLE IF NOT EXISTS dnd_contact (
    id          BIGSERIAL    PRIMARY KEY,
    dnd_list_id VARCHAR(12)  NOT NULL,               -- a dnd_list (see above)
    number      VARCHAR(16)  NOT NULL,
    name        VARCHAR(100) NOT NULL,
    UNIQUE (dnd_list_id, number)
);

CREATE TABLE IF NOT EXISTS cdr (
    id                  BIGSERIAL    PRIMARY KEY,
    account_id          VARCHAR(12)  NOT NULL REFERENCES account (id),
    request_id          VARCHAR(12)  NOT NULL,
    campaign_id         VARCHAR(12),
    list_id             VARCHAR(12)  NOT NULL,
    uniqueid            VARCHAR(40)  NOT NULL,
    agent_number        VARCHAR(16)  NOT NULL,
    customer_number     VARCHAR(16)  NOT NULL,
    dialed_number       VARCHAR(16)  NOT NULL,
    caller_id           VARCHAR(16)  NOT NULL,
    call_date           TIMESTAMP    NOT NULL,
    answer_at           TIMESTAMP,
    end_at              TIMESTAMP,
    billsec             REAL,
    call_duration       REAL,
    call_status         VARCHAR(16),
    dial_status         VARCHAR(16)  NOT NULL,
    destination_context VARCHAR(40)  NOT NULL,
    call_direction      VARCHAR(20)  NOT NULL,
    dtmf_inputs         VARCHAR(64)  NOT NULL,
    recording_name      VARCHAR(300) NOT NULL,
    is_dnd              SMALLINT     NOT NULL,
    hangup_cause        VARCHAR(64)  NOT NULL DEFAULT '', -- why the call ended (ours, not the spec's)
    api_json            TEXT         NOT NULL,        -- the row as the API sends it, less "id" (see cpaas/cdr/writer.py)
    media_deleted_at    TIMESTAMP,                    -- when retention deleted its recordings (migration 0003)
    transfer_to         VARCHAR(24)  NOT NULL DEFAULT '', -- an IVR transfer's target, agent:<ext> | number:<digits> (0004)
    transcript_status   VARCHAR(10)  NOT NULL DEFAULT 'off' -- off | pending | done | failed | deleted (0004)
);

-- @dialect common
CREATE INDEX IF NOT EXISTS contact_list_id ON contact (list_id, id);
CREATE INDEX IF NOT EXISTS cdr_account_date ON cdr (account_id, call_date, id);
CREATE INDEX IF NOT EXISTS cdr_account_request ON cdr (account_id, request_id);
CREATE INDEX IF NOT EXISTS cdr_account_campaign ON cdr (account_id, campaign_id);
CREATE INDEX IF NOT EXISTS cdr_recording_age ON cdr (call_date) WHERE recording_name <> '';
CREATE INDEX IF NOT EXISTS cdr_transcript_age ON cdr (call_date) WHERE transcript_status IN ('pending', 'done', 'failed');
-- A plan ends once; its CDR is written once even if an event is delivered twice.
CREATE UNIQUE INDEX IF NOT EXISTS cdr_uniqueid ON cdr (uniqueid) WHERE uniqueid <> '';
