/* loadpub.c — N concurrent RTMP publishers of one FLV file at real-time pace.
 *
 * The load generator of `make bench` (ARCHITECTURE §5). It reads the FLV file
 * once, indexes its tags, and has every stream send the same tags over its
 * own librtmp connection, each tag at the wall-clock moment its timestamp
 * says (real time, like an encoder). Streams longer than the file loop it
 * with continuous timestamps: loop k adds k * file_length to every tag and
 * skips the sequence headers and metadata that only belong at the start.
 *
 * Threads: librtmp I/O is blocking, so streams are dealt round-robin to
 * ceil(N / per_thread) sender threads. Each sender sends whatever is due on
 * its streams, then sleeps (absolute monotonic clock) until the next tag is
 * due. Any time a stream spends waiting behind another shows up as lateness.
 * One connector thread makes the (blocking, ramped) connections and hands
 * each published stream to its sender, so a slow handshake does not make
 * the live streams of that sender late; a stream's clock starts when its
 * sender takes it over.
 *
 * What it records, per stream: connect ok / error, connect time, media bytes
 * and tags sent, send lateness (now - due when the tag is handed to the
 * socket: max and p99 from a 1 ms histogram), and, in the send log, the
 * wall-clock time each video frame was sent with its FLV timestamp, so the
 * latency probe can join playlist events against it. Publisher CPU comes
 * from getrusage over the publishing phase.
 *
 * Why not RTMP_Write: it mallocs a packet per tag, puts audio, video and
 * data on one chunk stream and keeps librtmp's 128-byte chunks (a write(2)
 * per 128 bytes). We build the RTMPPacket ourselves (same FLV tag -> RTMP
 * message mapping: type, timestamp, body; data tags get "@setDataFrame" as
 * RTMP_Write does), announce a 4096-byte chunk size as OBS does, and use
 * separate chunk streams for audio, video and data (RTMP spec §5.3.1).
 *
 * Send log format (text, one line per video frame; '#' lines are comments):
 *   STREAM_INDEX KEY FLV_TS_MS KEYFRAME(0|1) WALL_US
 * WALL_US is CLOCK_REALTIME in microseconds when the tag was handed to the
 * socket. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <librtmp/log.h>
#include <librtmp/rtmp.h>

#include "core/bytes.h"
#include "core/log.h"

#define FLV_TAG_AUDIO 8
#define FLV_TAG_VIDEO 9
#define FLV_TAG_SCRIPT 18
#define FLV_HEADER_MIN 9
#define FLV_TAG_HEADER 11

#define OUT_CHUNK_SIZE 4096
/* Chunk stream ids (RTMP §5.3.1.1: 2 is protocol control, 3+ free). The same
 * split FFmpeg's rtmpproto uses: audio 4, video 6, data 8 (source). */
#define CH_CONTROL 2
#define CH_AUDIO 4
#define CH_VIDEO 6
#define CH_DATA 8

#define LATE_BINS 2001 /* 1 ms bins, the last one is ">= 2000 ms" */
#define MAX_STREAMS 100000
#define MAX_FILE_BYTES (1u << 30)
#define SETDATAFRAME_LEN 16 /* AMF0 string "@setDataFrame": 0x02, u16 len 13, text */

enum tag_flag {
	TAG_KEYFRAME = 1, /* video keyframe (FLV VideoTagHeader frame type 1) */
	TAG_HEADER = 2,   /* sequence header or metadata: sent only on loop 0 */
	TAG_SKIP = 4,     /* never sent (AVC end of sequence) */
};

struct flv_tag {
	size_t data_off;
	uint32_t size;
	uint32_t ts;
	uint8_t type;
	uint8_t flags;
};

struct flv_file {
	uint8_t *buf;
	size_t len;
	struct flv_tag *tags;
	size_t ntags;
	uint32_t loop_ms;  /* timestamp added per loop */
	uint32_t max_size; /* largest tag body */
};

/* PENDING -> CONNECTED (connector thread) -> LIVE (sender) -> DONE | FAILED.
 * state is written by the connector and read by the sender until CONNECTED
 * or FAILED, so it is accessed with acquire/release atomics. */
enum stream_state { ST_PENDING, ST_CONNECTED, ST_LIVE, ST_DONE, ST_FAILED };

struct stream {
	int idx;
	char *key;
	char *url; /* librtmp keeps pointers into it: lives as long as rtmp */
	RTMP *rtmp;
	int state; /* enum stream_state, atomic */
	char error[160];
	int64_t start_at_ns;    /* monotonic: when to connect */
	int64_t media_zero_ns;  /* monotonic: the instant of FLV timestamp 0 */
	double wall_start;      /* CLOCK_REALTIME seconds at media zero */
	double connect_ms;
	size_t next_tag;
	uint32_t loop;
	uint32_t last_ts;
	unsigned channels_used; /* bit per chunk stream that had a type-0 header */
	uint64_t media_bytes;
	uint64_t tags_sent;
	uint64_t video_frames;
	uint64_t late_count;
	uint32_t late_max_ms;
	uint32_t late_hist[LATE_BINS];
	uint8_t *pktbuf; /* RTMP_MAX_HEADER_SIZE headroom + largest body */
};

struct worker {
	pthread_t thread;
	struct stream **streams;
	size_t n;
};

struct options {
	const char *file;
	const char *url_template;
	const char *keys_file;
	const char *stats_json;
	const char *sendlog;
	int count;
	double duration_s;
	int ramp_ms;
	int per_thread;
	int keyframes_only;
	int verbose;
};

static volatile sig_atomic_t stop_requested;
static const struct flv_file *g_file;
static const struct options *g_opt;
static FILE *g_sendlog;
static int g_nstreams;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Reads the whole file into memory. Returns 0 or -1 (logged). */
static int read_file(const char *path, uint8_t **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	struct stat st;

	if (!f) {
		log_error("loadpub: open %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fileno(f), &st) < 0 || st.st_size <= 0 || (uint64_t)st.st_size > MAX_FILE_BYTES) {
		log_error("loadpub: %s: empty, unreadable or over %u bytes", path, MAX_FILE_BYTES);
		goto fail;
	}
	buf = malloc((size_t)st.st_size);
	if (!buf || fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
		log_error("loadpub: read %s failed", path);
		goto fail;
	}
	fclose(f);
	*out = buf;
	*len = (size_t)st.st_size;
	return 0;
fail:
	free(buf);
	fclose(f);
	return -1;
}

/* Indexes the FLV tags (FLV spec v10.1 annex E: 9+ byte header, then
 * PreviousTagSize0, then tag header 11 bytes + body + PreviousTagSize).
 * Marks sequence headers (AVCPacketType 0, AACPacketType 0) and metadata as
 * loop-0-only, AVC end-of-sequence as never sent, and computes the loop
 * length: the last video timestamp plus one mean frame interval. */
static int flv_index(struct flv_file *f)
{
	size_t off, cap = 0;
	uint32_t first_v = 0, last_v = 0;
	uint64_t nvideo = 0;

	if (f->len < FLV_HEADER_MIN + 4 || memcmp(f->buf, "FLV", 3) != 0) {
		log_error("loadpub: not an FLV file");
		return -1;
	}
	off = rd_be32(f->buf + 5) + 4;
	while (off + FLV_TAG_HEADER <= f->len) {
		const uint8_t *h = f->buf + off;
		uint32_t size = rd_be24(h + 1);
		uint32_t ts = rd_be24(h + 4) | ((uint32_t)h[7] << 24);
		struct flv_tag t = { .data_off = off + FLV_TAG_HEADER, .size = size, .ts = ts, .type = h[0] & 0x1f };

		if (off + FLV_TAG_HEADER + size > f->len)
			break; /* truncated last tag: ignore it */
		if (f->ntags == cap) {
			size_t ncap = cap ? cap * 2 : 1024;
			struct flv_tag *nt = realloc(f->tags, ncap * sizeof(*nt));
			if (!nt)
				return -1;
			f->tags = nt;
			cap = ncap;
		}
		const uint8_t *b = f->buf + t.data_off;
		if (t.type == FLV_TAG_SCRIPT) {
			t.flags |= TAG_HEADER;
		} else if (t.type == FLV_TAG_VIDEO && size >= 2) {
			if ((b[0] & 0x0f) == 7 && b[1] == 0)
				t.flags |= TAG_HEADER;
			else if ((b[0] & 0x0f) == 7 && b[1] == 2)
				t.flags |= TAG_SKIP;
			else {
				if ((b[0] >> 4) == 1)
					t.flags |= TAG_KEYFRAME;
				if (nvideo++ == 0)
					first_v = ts;
				last_v = ts;
			}
		} else if (t.type == FLV_TAG_AUDIO && size >= 2) {
			if ((b[0] >> 4) == 10 && b[1] == 0)
				t.flags |= TAG_HEADER;
		} else {
			t.flags |= TAG_SKIP;
		}
		if (size > f->max_size)
			f->max_size = size;
		f->tags[f->ntags++] = t;
		off += FLV_TAG_HEADER + size + 4;
	}
	if (nvideo < 2) {
		log_error("loadpub: the FLV file needs at least two video frames");
		return -1;
	}
	/* Loop length from the video: last frame + one mean frame interval, so
	 * a file of whole GOPs keeps its keyframe cadence across loops. Audio
	 * that runs past it (AAC priming shifts audio late by a frame or two)
	 * is dropped so timestamps stay monotonic per track across the seam. */
	double frame = (double)(last_v - first_v) / (double)(nvideo - 1);
	f->loop_ms = (uint32_t)lround((double)last_v + frame);
	for (size_t i = 0; i < f->ntags; i++)
		if (f->tags[i].ts >= f->loop_ms)
			f->tags[i].flags |= TAG_SKIP;
	return 0;
}

static uint32_t hist_percentile(const uint32_t *hist, uint64_t count, double q)
{
	uint64_t want = (uint64_t)ceil(q * (double)count), seen = 0;
	if (count == 0)
		return 0;
	for (uint32_t i = 0; i < LATE_BINS; i++) {
		seen += hist[i];
		if (seen >= want)
			return i;
	}
	return LATE_BINS - 1;
}

/* Sends an RTMP control message Set Chunk Size (RTMP §5.4.1) and switches
 * librtmp's output chunking to it. */
static int send_chunk_size(RTMP *r, int size)
{
	char buf[RTMP_MAX_HEADER_SIZE + 4];
	RTMPPacket p;

	memset(&p, 0, sizeof(p));
	p.m_headerType = RTMP_PACKET_SIZE_LARGE;
	p.m_packetType = RTMP_PACKET_TYPE_CHUNK_SIZE;
	p.m_nChannel = CH_CONTROL;
	p.m_body = buf + RTMP_MAX_HEADER_SIZE;
	p.m_nBodySize = 4;
	wr_be32((uint8_t *)p.m_body, (uint32_t)size);
	if (!RTMP_SendPacket(r, &p, FALSE))
		return -1;
	r->m_outChunkSize = size;
	return 0;
}

/* Connects and publishes. Blocking (librtmp); on loopback a few ms. */
static int stream_connect(struct stream *s)
{
	RTMP *r = s->rtmp;
	int64_t t0 = mono_ns();
	struct timeval tv = { .tv_sec = 10 };

	if (!RTMP_SetupURL(r, s->url)) {
		snprintf(s->error, sizeof(s->error), "bad url");
		return -1;
	}
	r->Link.timeout = 10;
	RTMP_EnableWrite(r);
	if (!RTMP_Connect(r, NULL)) {
		snprintf(s->error, sizeof(s->error), "connect failed");
		return -1;
	}
	/* librtmp sets a receive timeout only; a stalled server must not hang
	 * a worker forever either. */
	setsockopt(RTMP_Socket(r), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (send_chunk_size(r, OUT_CHUNK_SIZE) < 0) {
		snprintf(s->error, sizeof(s->error), "set chunk size failed");
		return -1;
	}
	if (!RTMP_ConnectStream(r, 0)) {
		snprintf(s->error, sizeof(s->error), "publish refused or timed out");
		return -1;
	}
	s->connect_ms = (double)(mono_ns() - t0) / 1e6;
	return 0;
}

/* Reads and handles whatever the server sent (acks, pings, onStatus)
 * without blocking when nothing is pending. Returns -1 when the server
 * closed the connection or ended the publish. */
static int stream_drain(struct stream *s)
{
	RTMP *r = s->rtmp;

	for (int i = 0; i < 64; i++) {
		if (r->m_sb.sb_size <= 0) {
			struct pollfd pfd = { .fd = RTMP_Socket(r), .events = POLLIN };
			if (poll(&pfd, 1, 0) <= 0)
				return 0;
		}
		RTMPPacket p;
		memset(&p, 0, sizeof(p));
		if (!RTMP_ReadPacket(r, &p)) {
			snprintf(s->error, sizeof(s->error), "server closed the connection");
			return -1;
		}
		if (RTMPPacket_IsReady(&p)) {
			RTMP_ClientPacket(r, &p);
			RTMPPacket_Free(&p);
		}
		if (!RTMP_IsConnected(r)) {
			snprintf(s->error, sizeof(s->error), "server ended the publish");
			return -1;
		}
	}
	return 0;
}

static int64_t tag_due_ns(const struct stream *s, const struct flv_tag *t)
{
	uint64_t ts = (uint64_t)t->ts + (uint64_t)s->loop * g_file->loop_ms;
	return s->media_zero_ns + (int64_t)ts * 1000000;
}

/* Moves to the next tag to send, looping the file; header tags are sent
 * only on the first pass. */
static void stream_advance(struct stream *s)
{
	for (;;) {
		if (++s->next_tag >= g_file->ntags) {
			s->next_tag = 0;
			s->loop++;
		}
		uint8_t fl = g_file->tags[s->next_tag].flags;
		if (fl & TAG_SKIP)
			continue;
		if (s->loop > 0 && (fl & TAG_HEADER))
			continue;
		return;
	}
}

static int stream_send_tag(struct stream *s, const struct flv_tag *t, uint32_t ts)
{
	static const uint8_t setdataframe[SETDATAFRAME_LEN] = {
		0x02, 0x00, 0x0d, '@', 's', 'e', 't', 'D', 'a', 't', 'a', 'F', 'r', 'a', 'm', 'e'
	};
	uint8_t *body = s->pktbuf + RTMP_MAX_HEADER_SIZE;
	uint32_t n = 0;
	int ch = t->type == FLV_TAG_AUDIO ? CH_AUDIO : t->type == FLV_TAG_VIDEO ? CH_VIDEO : CH_DATA;
	RTMPPacket p;

	if (t->type == FLV_TAG_SCRIPT) {
		memcpy(body, setdataframe, SETDATAFRAME_LEN);
		n = SETDATAFRAME_LEN;
	}
	memcpy(body + n, g_file->buf + t->data_off, t->size);
	n += t->size;

	memset(&p, 0, sizeof(p));
	/* The first message on a chunk stream needs a full (type 0) header;
	 * after that librtmp sends timestamp deltas (type 1/2/3). */
	p.m_headerType = (s->channels_used & (1u << ch)) ? RTMP_PACKET_SIZE_MEDIUM : RTMP_PACKET_SIZE_LARGE;
	s->channels_used |= 1u << ch;
	p.m_packetType = t->type;
	p.m_nChannel = ch;
	p.m_nTimeStamp = ts;
	p.m_nInfoField2 = s->rtmp->m_stream_id;
	p.m_nBodySize = n;
	p.m_body = (char *)body;
	if (!RTMP_SendPacket(s->rtmp, &p, FALSE)) {
		snprintf(s->error, sizeof(s->error), "send failed: %s", strerror(errno));
		return -1;
	}
	s->media_bytes += t->size;
	s->tags_sent++;
	return 0;
}

static int stream_state_get(struct stream *s)
{
	return __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
}

static void stream_state_set(struct stream *s, enum stream_state state)
{
	__atomic_store_n(&s->state, (int)state, __ATOMIC_RELEASE);
}

static void stream_finish(struct stream *s, enum stream_state state)
{
	if (s->rtmp)
		RTMP_Close(s->rtmp); /* FCUnpublish + deleteStream when still up */
	stream_state_set(s, state);
}

/* Sends every tag of s that is due by now. Returns the monotonic time the
 * next one is due, or 0 when the stream ended. */
static int64_t stream_pump(struct stream *s)
{
	const uint64_t end_ms = (uint64_t)llround(g_opt->duration_s * 1000.0);

	if (stream_drain(s) < 0) {
		stream_finish(s, ST_FAILED);
		return 0;
	}
	for (;;) {
		const struct flv_tag *t = &g_file->tags[s->next_tag];
		uint64_t ts = (uint64_t)t->ts + (uint64_t)s->loop * g_file->loop_ms;
		int64_t due = tag_due_ns(s, t);
		int64_t now;

		if (ts >= end_ms || stop_requested) {
			stream_finish(s, ST_DONE);
			return 0;
		}
		now = mono_ns();
		if (now < due)
			return due;
		uint32_t late = (uint32_t)((now - due) / 1000000);
		s->late_hist[late < LATE_BINS ? late : LATE_BINS - 1]++;
		s->late_count++;
		if (late > s->late_max_ms)
			s->late_max_ms = late;
		if (late >= 10 && g_opt->verbose)
			log_debug("loadpub: late stream=%s ts=%" PRIu64 " late_ms=%u", s->key, ts, late);
		if (stream_send_tag(s, t, (uint32_t)ts) < 0) {
			stream_finish(s, ST_FAILED);
			return 0;
		}
		s->last_ts = (uint32_t)ts;
		if (t->type == FLV_TAG_VIDEO && !(t->flags & TAG_HEADER)) {
			s->video_frames++;
			if (g_sendlog && (!g_opt->keyframes_only || (t->flags & TAG_KEYFRAME)))
				fprintf(g_sendlog, "%d %s %" PRIu64 " %d %" PRId64 "\n", s->idx, s->key, ts,
					(t->flags & TAG_KEYFRAME) ? 1 : 0, wall_us());
		}
		stream_advance(s);
	}
}

/* The connector thread: connects the streams in order, each at its ramp
 * time, and hands them to their senders. */
static void *connector_main(void *arg)
{
	struct stream *st = arg;
	int n = g_nstreams;

	for (int i = 0; i < n; i++) {
		struct stream *s = &st[i];
		struct timespec ts = { .tv_sec = s->start_at_ns / 1000000000, .tv_nsec = s->start_at_ns % 1000000000 };

		while (!stop_requested && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
		if (stop_requested) {
			snprintf(s->error, sizeof(s->error), "not started (stopped)");
			stream_state_set(s, ST_FAILED);
			continue;
		}
		if (stream_connect(s) < 0) {
			if (g_opt->verbose)
				log_warn("loadpub: stream=%s error=\"%s\"", s->key, s->error);
			stream_finish(s, ST_FAILED);
			continue;
		}
		stream_state_set(s, ST_CONNECTED);
	}
	return NULL;
}

/* A sender thread: paces the streams dealt to it. */
static void *worker_main(void *arg)
{
	struct worker *w = arg;
	size_t live = w->n;

	while (live > 0) {
		int64_t wake = mono_ns() + 20 * 1000000LL; /* pickup and server-message poll interval */

		live = 0;
		for (size_t i = 0; i < w->n; i++) {
			struct stream *s = w->streams[i];
			int state = stream_state_get(s);

			if (state == ST_PENDING) {
				live++;
				continue;
			}
			if (state == ST_CONNECTED) {
				s->media_zero_ns = mono_ns();
				s->wall_start = (double)wall_us() / 1e6;
				s->next_tag = 0;
				s->loop = 0;
				if (g_file->tags[0].flags & TAG_SKIP)
					stream_advance(s);
				stream_state_set(s, ST_LIVE);
				state = ST_LIVE;
			}
			if (state == ST_LIVE) {
				int64_t next = stream_pump(s);
				if (next) {
					live++;
					if (next < wake)
						wake = next;
				} else if (stream_state_get(s) == ST_FAILED && g_opt->verbose) {
					log_warn("loadpub: stream=%s error=\"%s\"", s->key, s->error);
				}
			}
		}
		if (live > 0) {
			struct timespec ts = { .tv_sec = wake / 1000000000, .tv_nsec = wake % 1000000000 };
			while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR && !stop_requested)
				;
		}
	}
	return NULL;
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static double tv_s(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static int write_stats(const char *path, struct stream *st, int n, double wall_s, const struct rusage *ru0,
		       const struct rusage *ru1, int nthreads)
{
	FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
	double user = tv_s(ru1->ru_utime) - tv_s(ru0->ru_utime);
	double sys = tv_s(ru1->ru_stime) - tv_s(ru0->ru_stime);
	double stream_seconds = 0;
	uint64_t bytes = 0;
	uint32_t late_max = 0, late_p99_max = 0;
	int ok = 0, failed = 0, dropped = 0;

	if (!f) {
		log_error("loadpub: open %s: %s", path, strerror(errno));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		struct stream *s = &st[i];
		if (s->tags_sent == 0) {
			failed++;
			continue;
		}
		ok++;
		if (stream_state_get(s) == ST_FAILED)
			dropped++;
		stream_seconds += (double)s->last_ts / 1000.0;
		bytes += s->media_bytes;
		if (s->late_max_ms > late_max)
			late_max = s->late_max_ms;
		uint32_t p99 = hist_percentile(s->late_hist, s->late_count, 0.99);
		if (p99 > late_p99_max)
			late_p99_max = p99;
	}
	fprintf(f, "{\n  \"tool\": \"loadpub\",\n  \"file\": ");
	json_str(f, g_opt->file);
	fprintf(f, ",\n  \"url_template\": ");
	json_str(f, g_opt->url_template);
	fprintf(f,
		",\n  \"file_loop_ms\": %u,\n  \"duration_s\": %.3f,\n  \"ramp_ms\": %d,\n  \"threads\": %d,\n"
		"  \"streams_requested\": %d,\n  \"streams_connected\": %d,\n  \"streams_failed\": %d,\n"
		"  \"streams_dropped\": %d,\n  \"wall_s\": %.3f,\n  \"stream_seconds\": %.3f,\n"
		"  \"media_bytes\": %" PRIu64 ",\n  \"cpu_user_s\": %.3f,\n  \"cpu_sys_s\": %.3f,\n"
		"  \"cpu_s_per_stream\": %.4f,\n  \"cpu_s_per_stream_second\": %.6f,\n"
		"  \"late_max_ms\": %u,\n  \"late_p99_ms_worst_stream\": %u,\n  \"streams\": [",
		g_file->loop_ms, g_opt->duration_s, g_opt->ramp_ms, nthreads, n, ok, failed, dropped, wall_s,
		stream_seconds, bytes, user, sys, ok ? (user + sys) / ok : 0.0,
		stream_seconds > 0 ? (user + sys) / stream_seconds : 0.0, late_max, late_p99_max);
	for (int i = 0; i < n; i++) {
		struct stream *s = &st[i];
		fprintf(f, "%s\n    {\"index\": %d, \"key\": ", i ? "," : "", s->idx);
		json_str(f, s->key);
		fprintf(f,
			", \"connected\": %s, \"connect_ms\": %.2f, \"wall_start\": %.6f, \"media_bytes\": %" PRIu64
			", \"tags\": %" PRIu64 ", \"video_frames\": %" PRIu64 ", \"media_seconds\": %.3f"
			", \"late_p50_ms\": %u, \"late_p99_ms\": %u, \"late_max_ms\": %u, \"error\": ",
			s->tags_sent > 0 ? "true" : "false", s->connect_ms, s->wall_start, s->media_bytes, s->tags_sent,
			s->video_frames, (double)s->last_ts / 1000.0, hist_percentile(s->late_hist, s->late_count, 0.50),
			hist_percentile(s->late_hist, s->late_count, 0.99), s->late_max_ms);
		if (s->error[0])
			json_str(f, s->error);
		else
			fputs("null", f);
		fputc('}', f);
	}
	fprintf(f, "\n  ]\n}\n");
	if (f != stdout)
		fclose(f);
	log_info("loadpub: done streams=%d connected=%d failed=%d dropped=%d stream_seconds=%.1f cpu_s=%.2f "
		 "late_max_ms=%u",
		 n, ok, failed, dropped, stream_seconds, user + sys, late_max);
	return 0;
}

/* Reads up to max non-empty lines (keys) from path. */
static char **read_keys(const char *path, int max, int *n)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	char **keys = NULL;
	int cap = 0;

	*n = 0;
	if (!f) {
		log_error("loadpub: open %s: %s", path, strerror(errno));
		return NULL;
	}
	while ((max <= 0 || *n < max) && *n < MAX_STREAMS && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = 0;
		if (!line[0] || line[0] == '#')
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			char **nk = realloc(keys, (size_t)cap * sizeof(*nk));
			if (!nk)
				break;
			keys = nk;
		}
		keys[(*n)++] = strdup(line);
	}
	fclose(f);
	return keys;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: loadpub --file FLV [--url-template rtmp://127.0.0.1:1935/live/%%s]\n"
		"               (--keys FILE | --count N) [--duration SEC] [--ramp MS]\n"
		"               [--per-thread K] [--stats-json FILE|-] [--sendlog FILE]\n"
		"               [--keyframes-only] [--verbose]\n"
		"Publishes the FLV file to N stream keys at real-time pace, looping it with\n"
		"continuous timestamps for durations longer than the file.\n"
		"  --count N        generated keys bench-0 .. bench-(N-1) (or at most N keys from --keys)\n"
		"  --duration SEC   media seconds per stream (default 60)\n"
		"  --ramp MS        delay between stream starts (default 100)\n"
		"  --per-thread K   streams per sender thread (default 8)\n"
		"  --sendlog FILE   'INDEX KEY FLV_TS_MS KEYFRAME WALL_US' per video frame sent\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "file", required_argument, NULL, 'f' },	 { "url-template", required_argument, NULL, 'u' },
		{ "keys", required_argument, NULL, 'k' },	 { "count", required_argument, NULL, 'n' },
		{ "duration", required_argument, NULL, 'd' },	 { "ramp", required_argument, NULL, 'r' },
		{ "per-thread", required_argument, NULL, 'p' }, { "stats-json", required_argument, NULL, 's' },
		{ "sendlog", required_argument, NULL, 'l' },	 { "keyframes-only", no_argument, NULL, 'K' },
		{ "verbose", no_argument, NULL, 'v' },		 { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct options opt = {
		.url_template = "rtmp://127.0.0.1:1935/live/%s", .duration_s = 60, .ramp_ms = 100, .per_thread = 8,
	};
	struct flv_file file = { 0 };
	struct stream *streams = NULL;
	struct worker *workers = NULL;
	char **keys = NULL;
	int nkeys = 0, nthreads = 0, rc = 1, c;
	struct rusage ru0, ru1;

	while ((c = getopt_long(argc, argv, "f:u:k:n:d:r:p:s:l:Kvh", longopts, NULL)) != -1) {
		switch (c) {
		case 'f': opt.file = optarg; break;
		case 'u': opt.url_template = optarg; break;
		case 'k': opt.keys_file = optarg; break;
		case 'n': opt.count = atoi(optarg); break;
		case 'd': opt.duration_s = atof(optarg); break;
		case 'r': opt.ramp_ms = atoi(optarg); break;
		case 'p': opt.per_thread = atoi(optarg); break;
		case 's': opt.stats_json = optarg; break;
		case 'l': opt.sendlog = optarg; break;
		case 'K': opt.keyframes_only = 1; break;
		case 'v': opt.verbose = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!opt.file || (!opt.keys_file && opt.count <= 0) || opt.count > MAX_STREAMS || opt.duration_s <= 0 ||
	    opt.ramp_ms < 0 || opt.per_thread <= 0) {
		usage(stderr);
		return 2;
	}
	{
		/* The template takes exactly one %s (the key) and no other conversion. */
		const char *p = strchr(opt.url_template, '%');
		if (!p || p[1] != 's' || strchr(p + 2, '%')) {
			log_error("loadpub: --url-template needs exactly one %%s: %s", opt.url_template);
			return 2;
		}
	}
	g_opt = &opt;
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	RTMP_LogSetLevel(opt.verbose ? RTMP_LOGWARNING : RTMP_LOGCRIT);
	if (opt.verbose)
		log_set_level(LOG_DEBUG);

	if (read_file(opt.file, &file.buf, &file.len) < 0 || flv_index(&file) < 0)
		goto fail;
	g_file = &file;

	if (opt.keys_file) {
		keys = read_keys(opt.keys_file, opt.count, &nkeys);
		if (!keys || nkeys == 0) {
			log_error("loadpub: no keys in %s", opt.keys_file);
			goto fail;
		}
	} else {
		nkeys = opt.count;
		keys = calloc((size_t)nkeys, sizeof(*keys));
		if (!keys)
			goto fail;
		for (int i = 0; i < nkeys; i++) {
			char k[32];
			snprintf(k, sizeof(k), "bench-%d", i);
			keys[i] = strdup(k);
		}
	}
	if (opt.sendlog) {
		g_sendlog = fopen(opt.sendlog, "w");
		if (!g_sendlog) {
			log_error("loadpub: open %s: %s", opt.sendlog, strerror(errno));
			goto fail;
		}
		setvbuf(g_sendlog, NULL, _IOFBF, 1 << 20);
		fprintf(g_sendlog, "# loadpub send log: INDEX KEY FLV_TS_MS KEYFRAME WALL_US\n");
	}

	streams = calloc((size_t)nkeys, sizeof(*streams));
	if (!streams)
		goto fail;
	int64_t t0 = mono_ns() + 20 * 1000000LL;
	for (int i = 0; i < nkeys; i++) {
		struct stream *s = &streams[i];
		size_t ulen = strlen(opt.url_template) + strlen(keys[i]) + 1;
		s->idx = i;
		s->key = keys[i];
		s->url = malloc(ulen);
		s->pktbuf = malloc(RTMP_MAX_HEADER_SIZE + SETDATAFRAME_LEN + (size_t)file.max_size);
		/* RTMP_Alloc/Init here, single-threaded: RTMP_Init lazily sets up
		 * librtmp's global TLS context. */
		s->rtmp = RTMP_Alloc();
		if (!s->url || !s->pktbuf || !s->rtmp)
			goto fail;
		RTMP_Init(s->rtmp);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
		snprintf(s->url, ulen, opt.url_template, keys[i]);
#pragma GCC diagnostic pop
		s->start_at_ns = t0 + (int64_t)i * opt.ramp_ms * 1000000LL;
	}

	nthreads = (nkeys + opt.per_thread - 1) / opt.per_thread;
	workers = calloc((size_t)nthreads, sizeof(*workers));
	if (!workers)
		goto fail;
	for (int t = 0; t < nthreads; t++) {
		workers[t].streams = calloc((size_t)opt.per_thread, sizeof(struct stream *));
		if (!workers[t].streams)
			goto fail;
	}
	for (int i = 0; i < nkeys; i++) {
		struct worker *w = &workers[i % nthreads];
		w->streams[w->n++] = &streams[i];
	}

	log_info("loadpub: start streams=%d threads=%d duration_s=%.1f ramp_ms=%d loop_ms=%u tags=%zu", nkeys,
		 nthreads, opt.duration_s, opt.ramp_ms, file.loop_ms, file.ntags);
	getrusage(RUSAGE_SELF, &ru0);
	int64_t wall0 = mono_ns();
	int started = 0;
	pthread_t connector;
	g_nstreams = nkeys;
	if (pthread_create(&connector, NULL, connector_main, streams) != 0) {
		log_error("loadpub: pthread_create failed");
		goto fail;
	}
	for (int t = 0; t < nthreads; t++) {
		if (pthread_create(&workers[t].thread, NULL, worker_main, &workers[t]) != 0) {
			log_error("loadpub: pthread_create failed");
			stop_requested = 1;
			break;
		}
		started++;
	}
	pthread_join(connector, NULL);
	for (int t = 0; t < started; t++)
		pthread_join(workers[t].thread, NULL);
	getrusage(RUSAGE_SELF, &ru1);
	double wall_s = (double)(mono_ns() - wall0) / 1e9;

	if (g_sendlog) {
		fclose(g_sendlog);
		g_sendlog = NULL;
	}
	rc = write_stats(opt.stats_json ? opt.stats_json : "-", streams, nkeys, wall_s, &ru0, &ru1, nthreads) < 0;
	for (int i = 0; i < nkeys; i++)
		if (streams[i].tags_sent == 0)
			rc = 1; /* any stream that never got going fails the run */

fail:
	if (g_sendlog)
		fclose(g_sendlog);
	if (workers) {
		for (int t = 0; t < nthreads; t++)
			free(workers[t].streams);
		free(workers);
	}
	if (streams) {
		for (int i = 0; i < nkeys; i++) {
			if (streams[i].rtmp)
				RTMP_Free(streams[i].rtmp);
			free(streams[i].url);
			free(streams[i].pktbuf);
		}
		free(streams);
	}
	if (keys) {
		for (int i = 0; i < nkeys; i++)
			free(keys[i]);
		free(keys);
	}
	free(file.tags);
	free(file.buf);
	return rc;
}
