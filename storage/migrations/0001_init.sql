-- 0001_init.sql — the whole castgate schema (SPEC §2, §5, §6, OPS-7).
-- Every state enum is a CHECK; uniqueness lives here, not only in C.
-- Times are timestamptz (UTC, microseconds).

CREATE TABLE apps (
    id                bigserial PRIMARY KEY,
    state             text NOT NULL DEFAULT 'ACTIVE' CHECK (state IN ('ACTIVE', 'DELETED')),
    name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    api_key           text NOT NULL UNIQUE,
    api_secret_sha256 text NOT NULL,             -- hex SHA-256 of the secret; the secret is shown once
    org_id            text NOT NULL UNIQUE,      -- VF-ORG-ID for the /v1 compatibility alias
    webhook_url       text,
    webhook_secret    text,
    recording_ttl_sec integer CHECK (recording_ttl_sec > 0),   -- per-app override (REC-4)
    created_at        timestamptz NOT NULL DEFAULT now(),
    last_modified_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE members (
    id                       bigserial PRIMARY KEY,
    app_id                   bigint NOT NULL REFERENCES apps(id),
    state                    text NOT NULL DEFAULT 'ACTIVE' CHECK (state IN ('ACTIVE', 'DELETED')),
    app_user_id              text NOT NULL CHECK (length(app_user_id) BETWEEN 1 AND 200),
    app_user_name            text CHECK (length(app_user_name) <= 500),
    app_user_profile_img_url text CHECK (length(app_user_profile_img_url) <= 2000),
    created_at               timestamptz NOT NULL DEFAULT now(),
    last_modified_at         timestamptz NOT NULL DEFAULT now()
);
-- One live member per (app, appUserId); a deleted member frees its appUserId.
CREATE UNIQUE INDEX members_app_user_id_key ON members (app_id, app_user_id) WHERE state = 'ACTIVE';
CREATE INDEX members_app_created ON members (app_id, created_at);

CREATE TABLE video_rooms (
    id                  bigserial PRIMARY KEY,
    app_id              bigint NOT NULL REFERENCES apps(id),
    member_id           bigint NOT NULL REFERENCES members(id),
    state               text NOT NULL DEFAULT 'ACTIVE' CHECK (state IN ('ACTIVE', 'DELETED')),
    video_room_state    text NOT NULL DEFAULT 'SCHEDULED'
                        CHECK (video_room_state IN ('SCHEDULED', 'LIVE', 'LIVE_INACTIVE', 'ENDED', 'ARCHIVED')),
    type                text NOT NULL CHECK (type IN ('BROADCAST_RTMP', 'BROADCAST_WEBRTC', 'WEBINAR',
                                                      'VIDEO_CONFERENCE', 'SURVEILLANCE')),
    access_level        text NOT NULL DEFAULT 'PUBLIC'
                        CHECK (access_level IN ('PUBLIC', 'APP', 'MEMBER', 'FRIEND', 'FOLLOWER',
                                                'RESTRICTED', 'PRIVATE')),
    external_id         text CHECK (length(external_id) BETWEEN 1 AND 200),
    title               text CHECK (length(title) <= 500),
    description         text CHECK (length(description) <= 10000),
    scheduled_at        timestamptz,
    started_at          timestamptz,
    ended_at            timestamptz,
    archived_at         timestamptz,
    stream_key_id       bigint,                  -- the key broadcasting into this room (LIVE, LIVE_INACTIVE)
    -- settings (SPEC API-4)
    recording           boolean NOT NULL DEFAULT true,
    auto_start_recording boolean NOT NULL DEFAULT true,
    auto_start          boolean NOT NULL DEFAULT false,
    auto_end_after_sec  integer CHECK (auto_end_after_sec > 0),
    max_duration_sec    integer CHECK (max_duration_sec > 0),
    max_participants    integer CHECK (max_participants > 0),
    dvr_window_sec      integer CHECK (dvr_window_sec > 0),
    metadata            jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    -- live figures
    is_recording        boolean NOT NULL DEFAULT false,
    recording_error     text,
    inactive_since      timestamptz,            -- entered LIVE_INACTIVE (autoEndAfterSec)
    hls_next_msn        bigint NOT NULL DEFAULT 0,
    hls_session_no      integer NOT NULL DEFAULT 0,
    created_by          text NOT NULL DEFAULT 'APP',
    last_modified_by    text NOT NULL DEFAULT 'APP',
    created_at          timestamptz NOT NULL DEFAULT now(),
    last_modified_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (type <> 'BROADCAST_RTMP' OR scheduled_at IS NOT NULL),
    CHECK (video_room_state NOT IN ('LIVE', 'LIVE_INACTIVE') OR started_at IS NOT NULL),
    CHECK (video_room_state NOT IN ('ENDED', 'ARCHIVED') OR ended_at IS NOT NULL)
);
CREATE UNIQUE INDEX video_rooms_app_external_id_key ON video_rooms (app_id, external_id) WHERE state = 'ACTIVE';
CREATE INDEX video_rooms_app_created ON video_rooms (app_id, created_at);
CREATE INDEX video_rooms_member_state ON video_rooms (member_id, video_room_state);

CREATE TABLE stream_keys (
    id               bigserial PRIMARY KEY,
    app_id           bigint NOT NULL REFERENCES apps(id),
    member_id        bigint NOT NULL UNIQUE REFERENCES members(id),   -- exactly one key per member
    state            text NOT NULL DEFAULT 'ACTIVE' CHECK (state IN ('ACTIVE', 'DELETED')),
    stream_key_state text NOT NULL DEFAULT 'INACTIVE'
                     CHECK (stream_key_state IN ('INACTIVE', 'ACTIVE_PREP', 'ACTIVE', 'ACTIVE_LIVE',
                                                 'INACTIVE_LIVE', 'ACTIVE_LIVE_PREP')),
    -- The secret key string. Looked up by its non-secret prefix, then compared
    -- in constant time (CRYPTO_memcmp) in C.
    stream_key       text NOT NULL UNIQUE CHECK (length(stream_key) >= 24),
    key_prefix       text NOT NULL UNIQUE CHECK (length(key_prefix) = 12),
    video_room_id    bigint REFERENCES video_rooms(id),              -- room it is live in
    error            text,
    -- OPS-7: which node holds the publisher, under a lease renewed while it streams
    node_id          text,
    lease_until      timestamptz,
    ingest_session_id bigint,
    last_media_at    timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_modified_at timestamptz NOT NULL DEFAULT now(),
    CHECK (stream_key_state NOT IN ('ACTIVE_LIVE', 'INACTIVE_LIVE', 'ACTIVE_LIVE_PREP')
           OR video_room_id IS NOT NULL)
);
ALTER TABLE video_rooms ADD CONSTRAINT video_rooms_stream_key_fk
    FOREIGN KEY (stream_key_id) REFERENCES stream_keys(id);
CREATE INDEX stream_keys_app_created ON stream_keys (app_id, created_at);
CREATE INDEX stream_keys_node ON stream_keys (node_id) WHERE node_id IS NOT NULL;

CREATE TABLE ingest_sessions (
    id               bigserial PRIMARY KEY,
    app_id           bigint NOT NULL REFERENCES apps(id),
    stream_key_id    bigint NOT NULL REFERENCES stream_keys(id),
    video_room_id    bigint REFERENCES video_rooms(id),
    node_id          text NOT NULL,
    peer             text,
    state            text NOT NULL DEFAULT 'PREP' CHECK (state IN ('PREP', 'ACTIVE', 'CLOSED')),
    close_reason     text,
    video_codec      text,
    audio_codec      text,
    width            integer,
    height           integer,
    started_at       timestamptz NOT NULL DEFAULT now(),
    first_segment_at timestamptz,
    ended_at         timestamptz,
    CHECK (state <> 'CLOSED' OR ended_at IS NOT NULL)
);
CREATE INDEX ingest_sessions_open ON ingest_sessions (node_id) WHERE state <> 'CLOSED';
ALTER TABLE stream_keys ADD CONSTRAINT stream_keys_ingest_session_fk
    FOREIGN KEY (ingest_session_id) REFERENCES ingest_sessions(id);

CREATE TABLE recordings (
    id                bigserial PRIMARY KEY,
    app_id            bigint NOT NULL REFERENCES apps(id),
    video_room_id     bigint NOT NULL REFERENCES video_rooms(id),
    ingest_session_id bigint REFERENCES ingest_sessions(id),
    node_id           text NOT NULL,
    status            text NOT NULL DEFAULT 'RECORDING'
                      CHECK (status IN ('RECORDING', 'PROCESSING', 'READY', 'EXPIRED', 'FAILED')),
    failure_reason    text,
    filename          text NOT NULL,
    path              text NOT NULL,             -- relative to data_dir
    size_bytes        bigint NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
    duration_ms       bigint NOT NULL DEFAULT 0 CHECK (duration_ms >= 0),
    started_at        timestamptz NOT NULL DEFAULT now(),
    ended_at          timestamptz,
    expires_at        timestamptz,
    swept_at          timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    last_modified_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (status <> 'FAILED' OR failure_reason IS NOT NULL)
);
CREATE INDEX recordings_room ON recordings (video_room_id, id);
CREATE INDEX recordings_expiry ON recordings (expires_at) WHERE status IN ('READY', 'FAILED', 'PROCESSING');

CREATE TABLE viewer_tokens (
    id            bigserial PRIMARY KEY,
    app_id        bigint NOT NULL REFERENCES apps(id),
    video_room_id bigint NOT NULL REFERENCES video_rooms(id),
    role          text NOT NULL CHECK (role IN ('STUDENT', 'MODERATOR', 'TEACHER', 'ADMIN')),
    uid           text,
    name          text,
    photo_url     text,
    jti           text NOT NULL UNIQUE,
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    last_usage    timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX viewer_tokens_room ON viewer_tokens (video_room_id, id);
CREATE INDEX viewer_tokens_revoked ON viewer_tokens (revoked_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE access_codes (
    id            bigserial PRIMARY KEY,
    app_id        bigint NOT NULL REFERENCES apps(id),
    video_room_id bigint NOT NULL REFERENCES video_rooms(id),
    code          text NOT NULL CHECK (length(code) BETWEEN 4 AND 64),
    role          text NOT NULL CHECK (role IN ('STUDENT', 'MODERATOR', 'TEACHER', 'ADMIN')),
    expires_at    timestamptz,
    last_usage    timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (video_room_id, code)
);

-- Every transition and notable happening (SPEC §2.2, API-10). Append-only.
CREATE TABLE events (
    id            bigserial PRIMARY KEY,
    app_id        bigint NOT NULL REFERENCES apps(id),
    video_room_id bigint REFERENCES video_rooms(id),
    stream_key_id bigint REFERENCES stream_keys(id),
    type          text NOT NULL CHECK (type IN (
                      'video_room_state', 'stream_key_state',
                      'connected', 'disconnected', 'participant_joined', 'participant_left',
                      'class_ended', 'participant_removed', 'recording_started',
                      'recording_stopped', 'recording_state', 'quality_changed')),
    from_state    text,
    to_state      text,
    actor         text NOT NULL,                 -- api:app:3, ingest:node-a, sweeper:node-a, token:17
    data          jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX events_room ON events (video_room_id, id);
CREATE INDEX events_app ON events (app_id, id);

-- Webhook deliveries (API-10): queued in the same transaction as the event.
CREATE TABLE webhook_deliveries (
    id           bigserial PRIMARY KEY,
    app_id       bigint NOT NULL REFERENCES apps(id),
    event_id     bigint NOT NULL REFERENCES events(id),
    attempts     integer NOT NULL DEFAULT 0,
    next_try_at  timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz,
    last_error   text
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_try_at) WHERE delivered_at IS NULL;

-- Gateway nodes sharing this database (OPS-7).
CREATE TABLE nodes (
    id           text PRIMARY KEY,
    http_url     text NOT NULL,
    rtmp_url     text NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);
