#!/usr/bin/env bash
# A local Redis for `dc003 serve`: `scripts/redis.sh start|stop|status`. In-memory only (no RDB/AOF files),
# bound to 127.0.0.1, port $DC003_REDIS_PORT (6379); its pid file and log live in .redis/.
# Then: export DC003_REDIS_URL=redis://127.0.0.1:6379/0 (what `start` prints) and run `dc003 serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${DC003_REDIS_PORT:-6379}"
DIR="$PWD/.redis"
PIDFILE="$DIR/redis-$PORT.pid"
case "${1:-}" in
  start)
    command -v redis-server >/dev/null 2>&1 || { echo "error: redis-server missing: run scripts/setup_system.sh" >&2; exit 1; }
    if redis-cli -p "$PORT" ping >/dev/null 2>&1; then
      echo "redis already answers on 127.0.0.1:$PORT"
    else
      mkdir -p "$DIR"
      redis-server --bind 127.0.0.1 --port "$PORT" --save '' --appendonly no --dir "$DIR" \
        --daemonize yes --pidfile "$PIDFILE" --logfile "$DIR/redis-$PORT.log"
      for _ in $(seq 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
      redis-cli -p "$PORT" ping >/dev/null || { echo "error: redis did not start (see $DIR/redis-$PORT.log)" >&2; exit 1; }
    fi
    echo "DC003_REDIS_URL=redis://127.0.0.1:$PORT/0"
    ;;
  stop)
    redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
    rm -f "$PIDFILE"
    ;;
  status)
    redis-cli -p "$PORT" ping
    ;;
  *)
    echo "usage: scripts/redis.sh start|stop|status  (port: DC003_REDIS_PORT, default 6379)" >&2
    exit 2
    ;;
esac
