/* metrics.c — the fixed metric table. */
#include "core/metrics.h"

#include <stdatomic.h>

static _Atomic long long values[METRIC__COUNT];

static const struct {
    const char *name, *help, *type;
} table[METRIC__COUNT] = {
    [METRIC_LIVE_STREAMS] = {"castgate_live_streams", "Publishers currently streaming on this node", "gauge"},
    [METRIC_RTMP_CONNECTIONS] = {"castgate_rtmp_connections", "Open RTMP connections", "gauge"},
    [METRIC_RTMP_ACCEPTED_TOTAL] = {"castgate_rtmp_accepted_total", "RTMP connections accepted", "counter"},
    [METRIC_RTMP_REFUSED_TOTAL] = {"castgate_rtmp_refused_total", "RTMP connections refused by limits or bans", "counter"},
    [METRIC_PUBLISH_DENIED_TOTAL] = {"castgate_publish_denied_total", "Publish attempts refused (unknown key, busy)", "counter"},
    [METRIC_INGEST_BYTES_TOTAL] = {"castgate_ingest_bytes_total", "Media bytes received from publishers", "counter"},
    [METRIC_SEGMENTS_TOTAL] = {"castgate_segments_written_total", "CMAF media segments published", "counter"},
    [METRIC_PARTS_TOTAL] = {"castgate_parts_written_total", "LL-HLS partial segments published", "counter"},
    [METRIC_SWEEPER_RUNS_TOTAL] = {"castgate_sweeper_runs_total", "Sweeper passes", "counter"},
    [METRIC_SWEEPER_DELETED_TOTAL] = {"castgate_sweeper_deleted_files_total", "Files removed by the sweeper", "counter"},
    [METRIC_RECORDING_ERRORS_TOTAL] = {"castgate_recording_errors_total", "Recording write or finalize errors", "counter"},
    [METRIC_WEBHOOKS_SENT_TOTAL] = {"castgate_webhooks_sent_total", "Webhook deliveries that succeeded", "counter"},
};

void metrics_add(enum metric_id id, long long delta)
{
    atomic_fetch_add_explicit(&values[id], delta, memory_order_relaxed);
}

void metrics_set(enum metric_id id, long long value)
{
    atomic_store_explicit(&values[id], value, memory_order_relaxed);
}

long long metrics_get(enum metric_id id)
{
    return atomic_load_explicit(&values[id], memory_order_relaxed);
}

void metrics_describe(enum metric_id id, const char **name, const char **help, const char **type)
{
    *name = table[id].name;
    *help = table[id].help;
    *type = table[id].type;
}
