/* metrics.h — process-wide counters and gauges for GET /metrics (SPEC OPS-4).
 *
 * A fixed set of metrics, each a relaxed atomic: any thread may add or set
 * without locks; the HTTP loop renders them in Prometheus text format. */
#ifndef CORE_METRICS_H
#define CORE_METRICS_H

enum metric_id {
    METRIC_LIVE_STREAMS,          /* gauge: publishers currently accepted */
    METRIC_RTMP_CONNECTIONS,      /* gauge: open RTMP connections */
    METRIC_RTMP_ACCEPTED_TOTAL,   /* counter: connections accepted */
    METRIC_RTMP_REFUSED_TOTAL,    /* counter: connections refused (limits, bans) */
    METRIC_PUBLISH_DENIED_TOTAL,  /* counter: publishes refused (bad key, busy) */
    METRIC_INGEST_BYTES_TOTAL,    /* counter: media bytes received */
    METRIC_SEGMENTS_TOTAL,        /* counter: CMAF segments published */
    METRIC_PARTS_TOTAL,           /* counter: LL-HLS parts published */
    METRIC_SWEEPER_RUNS_TOTAL,    /* counter */
    METRIC_SWEEPER_DELETED_TOTAL, /* counter: files removed by the sweeper */
    METRIC_RECORDING_ERRORS_TOTAL,/* counter */
    METRIC_WEBHOOKS_SENT_TOTAL,   /* counter */
    METRIC__COUNT
};

void metrics_add(enum metric_id id, long long delta);
void metrics_set(enum metric_id id, long long value);
long long metrics_get(enum metric_id id);
/* Prometheus name, help text and type ("counter"/"gauge"). */
void metrics_describe(enum metric_id id, const char **name, const char **help, const char **type);

#endif
