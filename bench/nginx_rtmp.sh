#!/bin/sh
# bench/nginx_rtmp.sh — the nginx-rtmp comparison target of `make bench`.
#
#   sh bench/nginx_rtmp.sh start    (re)start nginx under bench/out/nginx
#   sh bench/nginx_rtmp.sh stop     stop it (waits for the processes to exit)
#   sh bench/nginx_rtmp.sh status   prints the master pid, exit 1 if not running
#
# Environment: BENCH_OUT (default bench/out), NGINX_RTMP_PORT (19350),
# NGINX_HTTP_PORT (18080), NGINX_WORKERS (1), BENCH_MEDIA (the FLV file the
# static /static/segment.ts is cut from; default bench/out/media/720p30.flv).
#
# nginx runs with its own prefix, conf, pid file, logs and temp paths under
# $BENCH_OUT/nginx and listens on 127.0.0.1 only: it never touches the
# system nginx. RTMP: rtmp://127.0.0.1:$NGINX_RTMP_PORT/live/KEY. HLS:
# http://127.0.0.1:$NGINX_HTTP_PORT/hls/KEY.m3u8. Static files for the wrk
# delivery comparison: /static/segment.ts and /static/playlist.m3u8.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
OUT=${BENCH_OUT:-$here/out}
PREFIX=$OUT/nginx
RTMP_PORT=${NGINX_RTMP_PORT:-19350}
HTTP_PORT=${NGINX_HTTP_PORT:-18080}
WORKERS=${NGINX_WORKERS:-1}
MEDIA=${BENCH_MEDIA:-$OUT/media/720p30.flv}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}

master_pid() {
	[ -s "$PREFIX/nginx.pid" ] || return 1
	pid=$(cat "$PREFIX/nginx.pid")
	kill -0 "$pid" 2>/dev/null || return 1
	echo "$pid"
}

# wait_port PORT: up to 5 s for 127.0.0.1:PORT to accept a connection.
wait_port() {
	python3 - "$1" <<'PY'
import socket, sys, time
deadline = time.monotonic() + 5
while True:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.5).close()
        sys.exit(0)
    except OSError:
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(0.05)
PY
}

do_stop() {
	pid=$(master_pid) || return 0
	kill -QUIT "$pid" 2>/dev/null || true
	# Graceful stop lets nginx-rtmp close its recordings; bounded wait.
	i=0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "nginx_rtmp: master $pid did not quit in 10 s, sending TERM" >&2
		kill -TERM "$pid" 2>/dev/null || true
	fi
	rm -f "$PREFIX/nginx.pid"
}

make_static() {
	mkdir -p "$PREFIX/static"
	if [ ! -s "$PREFIX/static/segment.ts" ] && [ -s "$MEDIA" ]; then
		ffmpeg -nostdin -hide_banner -loglevel error -y -i "$MEDIA" -t 2 -c copy \
			-f mpegts "$PREFIX/static/segment.ts.tmp"
		mv "$PREFIX/static/segment.ts.tmp" "$PREFIX/static/segment.ts"
	fi
	# A 10-segment live playlist of the usual size.
	{
		printf '#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-MEDIA-SEQUENCE:100\n#EXT-X-TARGETDURATION:2\n'
		i=100
		while [ $i -lt 110 ]; do
			printf '#EXTINF:2.000,\nsegment-%d.ts\n' $i
			i=$((i + 1))
		done
	} > "$PREFIX/static/playlist.m3u8"
}

do_start() {
	[ -x "$NGINX" ] || { echo "nginx_rtmp: nginx not found (apt-get install nginx libnginx-mod-rtmp)" >&2; exit 1; }
	[ -f /usr/lib/nginx/modules/ngx_rtmp_module.so ] || {
		echo "nginx_rtmp: ngx_rtmp_module.so not found (apt-get install libnginx-mod-rtmp)" >&2; exit 1; }
	do_stop
	rm -rf "$PREFIX/hls" "$PREFIX/rec"
	mkdir -p "$PREFIX/logs" "$PREFIX/hls" "$PREFIX/rec" "$PREFIX/tmp"
	# As root, workers run as root too so they can write under the prefix
	# without chmod games; as another user the user directive is ignored.
	if [ "$(id -u)" = 0 ]; then user_line="user root;"; else user_line=""; fi
	sed -e "s#@PREFIX@#$PREFIX#g" -e "s#@RTMP_PORT@#$RTMP_PORT#g" -e "s#@HTTP_PORT@#$HTTP_PORT#g" \
		-e "s#@WORKERS@#$WORKERS#g" -e "s#@USER_LINE@#$user_line#g" \
		"$here/nginx.conf.in" > "$PREFIX/nginx.conf"
	make_static
	: > "$PREFIX/logs/error.log"
	"$NGINX" -p "$PREFIX/" -c "$PREFIX/nginx.conf" -e "$PREFIX/logs/error.log" -t -q || {
		echo "nginx_rtmp: configuration test failed, see $PREFIX/logs/error.log" >&2; exit 1; }
	"$NGINX" -p "$PREFIX/" -c "$PREFIX/nginx.conf" -e "$PREFIX/logs/error.log"
	if ! wait_port "$RTMP_PORT" || ! wait_port "$HTTP_PORT"; then
		echo "nginx_rtmp: nginx did not listen on $RTMP_PORT/$HTTP_PORT" >&2
		tail -5 "$PREFIX/logs/error.log" >&2 || true
		do_stop
		exit 1
	fi
	master_pid
}

case ${1:-} in
start) do_start ;;
stop) do_stop ;;
status) master_pid ;;
*) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
