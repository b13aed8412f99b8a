-- The sweeper (issue 8, section 3) looks all the time for requests that are not done:
-- without this index every look reads the whole call_request table, one row per call
-- ever placed.
CREATE INDEX IF NOT EXISTS call_request_status ON call_request (status, created_at);
