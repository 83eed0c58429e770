-- 0002_api.sql — helpers for the admin API and the state machine (SPEC §2, §6).

-- ISO-8601 UTC with microseconds, the API's one time format (SPEC §6):
-- 2022-10-19T06:41:09.865054Z. NULL stays NULL.
CREATE FUNCTION iso_utc(t timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');

-- Lookups the API and the ingest do on every call.
CREATE INDEX stream_keys_room ON stream_keys (video_room_id) WHERE video_room_id IS NOT NULL;
CREATE INDEX video_rooms_auto_start ON video_rooms (member_id, scheduled_at)
    WHERE video_room_state = 'SCHEDULED' AND auto_start AND state = 'ACTIVE';
CREATE INDEX video_rooms_live ON video_rooms (video_room_state)
    WHERE video_room_state IN ('LIVE', 'LIVE_INACTIVE');
CREATE INDEX events_key ON events (stream_key_id, id) WHERE stream_key_id IS NOT NULL;
CREATE INDEX ingest_sessions_key ON ingest_sessions (stream_key_id);
