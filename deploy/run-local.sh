#!/usr/bin/env bash
# `make run`: a local broker, a worker, the demo feed, and the alerts on screen.
#
# With KAFKA_BOOTSTRAP_SERVERS set, uses that cluster instead of starting a broker.
# Ctrl-C stops the watcher, the worker and (if this script started it) the broker.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
bin=$repo/.venv/bin
mkdir -p .local
worker_log=.local/worker.log
started_broker=0
worker_pid=
watch_pid=
console_pid=

cleanup() {
  trap - EXIT INT TERM
  echo
  echo "stopping ..."
  [[ -n $watch_pid ]] && kill "$watch_pid" 2>/dev/null || true
  [[ -n $console_pid ]] && kill "$console_pid" 2>/dev/null || true
  if [[ -n $worker_pid ]] && kill -0 "$worker_pid" 2>/dev/null; then
    kill -TERM "$worker_pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$worker_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$worker_pid" 2>/dev/null || true
  fi
  wait 2>/dev/null || true
  if ((started_broker)); then deploy/kafka/broker.sh stop; fi
  echo "stopped."
}
trap cleanup EXIT INT TERM

t0=$(date +%s.%N)
if [[ -z ${KAFKA_BOOTSTRAP_SERVERS:-} ]]; then
  echo "starting the local Kafka broker (first run resolves its jars with Maven) ..."
  KAFKA_BOOTSTRAP_SERVERS=$(deploy/kafka/broker.sh start | tail -n 1)
  started_broker=1
fi
export KAFKA_BOOTSTRAP_SERVERS
echo "broker: $KAFKA_BOOTSTRAP_SERVERS"

# The pre-withdrawal screening API (docs/screening.md), with a token made for this machine.
if [[ -z ${SENTINEL_SCREENING_PORT:-} ]]; then
  export SENTINEL_SCREENING_PORT=9200
  token_file=.local/screening-token
  [[ -s $token_file ]] || (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$token_file")
  export SENTINEL_SCREENING_TOKENS="demo:$(cat "$token_file")"
fi

"$bin/sentinel" topics create

echo "starting the worker (log: $worker_log, metrics: http://${SENTINEL_METRICS_HOST:-127.0.0.1}:${SENTINEL_METRICS_PORT:-9108}/metrics) ..."
: >"$worker_log"
"$bin/sentinel" worker >"$worker_log" 2>&1 &
worker_pid=$!
until grep -q "Worker\]: Ready" "$worker_log"; do
  if ! kill -0 "$worker_pid" 2>/dev/null; then
    echo "the worker exited during start-up:" >&2
    tail -n 30 "$worker_log" >&2
    exit 1
  fi
  sleep 0.2
done

# The alert console (docs/console.md), with a sign-in token made for this machine.
console_log=.local/console.log
console_token_file=.local/console-token
[[ -s $console_token_file ]] || (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$console_token_file")
export SENTINEL_CONSOLE_PORT=${SENTINEL_CONSOLE_PORT:-9300}
: >"$console_log"
SENTINEL_CONSOLE_TOKENS="analyst:$(cat "$console_token_file")" "$bin/sentinel" console >"$console_log" 2>&1 &
console_pid=$!

watch_out=.local/watch.out
: >"$watch_out"
# Process substitution, not a pipe: $! must be the watcher itself so cleanup can stop it.
"$bin/sentinel" watch > >(tee "$watch_out") &
watch_pid=$!
until grep -q "^watching" "$watch_out"; do sleep 0.1; done

# --new-ids: a demo run again is new events, not resends of the last run's (which the worker drops).
"$bin/sentinel" feed deploy/demo/demo-feed.jsonl --now --new-ids
until grep -q "^FREEZE" "$watch_out"; do sleep 0.1; done
awk -v t0="$t0" -v t1="$(date +%s.%N)" \
  'BEGIN { printf "\nfirst freeze alert %.1f s after start. Alerts keep appearing above as events arrive;\n", t1 - t0 }'
echo "produce more with: .venv/bin/sentinel feed FILE.jsonl   (Ctrl-C stops everything)"
if [[ ${SENTINEL_SCREENING_PORT:-0} != 0 && -n ${token_file:-} ]]; then
  echo "screen before a withdrawal leaves (docs/screening.md):"
  echo "  curl -s -H \"Authorization: Bearer \$(cat $token_file)\" http://127.0.0.1:$SENTINEL_SCREENING_PORT/v1/screen/address/ethereum/0x098B716B8Aaf21512996dC57EB0615e2383E2f96"
fi
if kill -0 "$console_pid" 2>/dev/null; then
  echo "alert console: http://127.0.0.1:$SENTINEL_CONSOLE_PORT/  (sign in with the token in $console_token_file; log: $console_log)"
else
  echo "the alert console did not start (see $console_log)" >&2
fi
wait "$watch_pid"
