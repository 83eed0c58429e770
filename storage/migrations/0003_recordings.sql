-- 0003_recordings.sql — what recordings and their sweeper need beyond 0001 (SPEC REC-4, REC-5).

-- Secrets every node on this database shares. 'download_url' signs recording
-- download URLs when token_secret is not configured (created on first use).
CREATE TABLE IF NOT EXISTS cluster_secrets (
    name       text PRIMARY KEY,
    value      text NOT NULL CHECK (length(value) >= 32),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The sweeper looks for ended rooms past their expiry, and for this node's
-- unfinished recordings at start-up (OPS-6).
CREATE INDEX IF NOT EXISTS video_rooms_ended ON video_rooms (ended_at) WHERE video_room_state = 'ENDED';
CREATE INDEX IF NOT EXISTS recordings_unfinished ON recordings (node_id) WHERE status IN ('RECORDING', 'PROCESSING');
CREATE INDEX IF NOT EXISTS recordings_no_expiry ON recordings (video_room_id) WHERE expires_at IS NULL;
