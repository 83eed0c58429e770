-- 0004_viewer.sql — viewer access, tokens and webhooks (SPEC API-8, API-9, API-10, PKG-6).

-- Secrets every node on this database shares, one row per purpose, created
-- by the first node that needs it (INSERT ... ON CONFLICT DO NOTHING, then
-- SELECT). The same definition as in 0003_recordings.sql (row
-- 'download_url'), so whichever runs first creates it. Row here:
--   'viewer_token'  HMAC key of viewer tokens when config token_secret is empty.
CREATE TABLE IF NOT EXISTS cluster_secrets (
    name       text PRIMARY KEY,
    value      text NOT NULL CHECK (length(value) >= 32),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Which access code a token was issued for (POST /v2/rooms/{id}/join); NULL
-- for tokens made by the admin API. No FK: deleting a code keeps the history.
ALTER TABLE viewer_tokens ADD COLUMN IF NOT EXISTS access_code_id bigint;

-- When the webhook URL was last set: events older than this are never sent
-- to it (turning a webhook on does not replay history).
ALTER TABLE apps ADD COLUMN IF NOT EXISTS webhook_since timestamptz;

-- One delivery per event: every node may enqueue the same event, the index
-- keeps exactly one (INSERT ... ON CONFLICT DO NOTHING).
CREATE UNIQUE INDEX IF NOT EXISTS webhook_deliveries_event_key ON webhook_deliveries (event_id);
-- The revocation poller reads "revoked since T" (index exists: viewer_tokens_revoked).
-- The room cache refresh reads "modified since T".
CREATE INDEX IF NOT EXISTS video_rooms_last_modified ON video_rooms (last_modified_at);
