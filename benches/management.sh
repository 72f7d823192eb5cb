#!/usr/bin/env bash
# Figures for the management API and metrics (BENCHMARKS.md "Management and metrics").
#
# 1. What statistics cost the message path: our broker's CPU per message in the 1 KiB
#    transient and persistent scenarios with the API and Prometheus endpoint off, on, and on
#    with a client polling GET /api/queues and /metrics/per-object every second. A fresh
#    broker per run; the three modes alternate, ROUNDS times; the table shows the median.
# 2. Latency of GET /api/queues?page=1&page_size=100, GET /api/overview and
#    /metrics/per-object with QUEUES queues, ours and RabbitMQ in the same run (mgmtbench).
#
#   benches/management.sh                      # ~8 minutes
#   ROUNDS=5 DURATION=15 benches/management.sh
#
# Environment: DURATION (s per perf run, 10), ROUNDS (3), QUEUES (10000), REPS (30),
# RABBIT_URL (amqp://guest:guest@127.0.0.1:5672/%2f), RABBIT_HTTP (http://127.0.0.1:15672),
# RABBIT_METRICS (http://127.0.0.1:15692), OUT (raw results; default target/management-<time>),
# ONLY=cpu|latency to run one part, BASELINE_BROKER=<path to a broker binary built before the
# statistics counters existed, e.g. from commit 08545f6> to add a "before" column (that binary
# has no HTTP API flags).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
QUEUES=${QUEUES:-10000}
REPS=${REPS:-30}
PORT=5673
HTTP_PORT=15673
PROM_PORT=15693
OURS_URL="amqp://guest:guest@127.0.0.1:${PORT}/%2f"
RABBIT_URL=${RABBIT_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
RABBIT_HTTP=${RABBIT_HTTP:-http://127.0.0.1:15672}
RABBIT_METRICS=${RABBIT_METRICS:-http://127.0.0.1:15692}
OUT=${OUT:-$TARGET/management-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"

echo "building (release)…" >&2
(cd "$ROOT" && cargo build --release -p broker -p benches --bins >&2)
BROKER="$TARGET/release/broker"
PERF="$TARGET/release/perf"
MGMTBENCH="$TARGET/release/mgmtbench"

for p in $PORT $HTTP_PORT $PROM_PORT; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "error: port $p is in use (another broker?); stop it first" >&2
    exit 1
  fi
done

BROKER_PID=
DATA_DIR=
POLL_PID=
stop_broker() {
  if [[ -n "$POLL_PID" ]]; then
    kill "$POLL_PID" 2>/dev/null || true
    wait "$POLL_PID" 2>/dev/null || true
    POLL_PID=
  fi
  if [[ -n "$BROKER_PID" ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill -TERM "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
  fi
  BROKER_PID=
  [[ -n "$DATA_DIR" ]] && rm -rf "$DATA_DIR"
  DATA_DIR=
}
trap stop_broker EXIT

start_broker() { # mode: before | off | on | poll
  DATA_DIR=$(mktemp -d)
  local bin=$BROKER
  local -a ports=(--management-port 0 --prometheus-port 0)
  case "$1" in
    before) bin=$BASELINE_BROKER ports=() ;;
    on | poll) ports=(--management-port "$HTTP_PORT" --prometheus-port "$PROM_PORT") ;;
  esac
  RUST_LOG=warn "$bin" --port "$PORT" "${ports[@]}" --data-dir "$DATA_DIR" \
    >>"$OUT/broker.log" 2>&1 &
  BROKER_PID=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "error: our broker did not start; see $OUT/broker.log" >&2
  exit 1
}

poll() { # what a dashboard does: the queue list and the metrics, once a second each
  # One curl process for the whole window (`--rate`, URLs from a config file), so the
  # poller's own start-up costs do not take the shared cores from the broker and the client.
  local cfg=$OUT/poll.curlrc
  : >"$cfg"
  for _ in $(seq $((DURATION * 2))); do
    printf 'url = "http://127.0.0.1:%s/api/queues"\noutput = "/dev/null"\n' "$HTTP_PORT" >>"$cfg"
    printf 'url = "http://127.0.0.1:%s/metrics/per-object"\noutput = "/dev/null"\n' "$PROM_PORT" >>"$cfg"
  done
  exec curl -s -u guest:guest --rate 2/s -K "$cfg"
}

field() { grep -o " $2=[^ ]*" <<<"$1" | cut -d= -f2; }
median() { grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "na"; else print v[int((NR + 1) / 2)] }'; }

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpus: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "rabbitmq: $(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null || echo unknown)"
  echo "git: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo none)$(cd "$ROOT" && git diff --quiet 2>/dev/null || echo ' (dirty)')"
} | tee "$OUT/machine.txt" >&2

if [[ "${ONLY:-cpu}" == cpu || -z "${ONLY:-}" ]]; then
  SCENARIOS=(
    "1 KiB transient, manual ack, prefetch 1000|--size 1024 --prefetch 1000 --max-backlog 10000 --queue mgmt-transient"
    "1 KiB persistent, durable queue, confirm 1000, prefetch 1000|--size 1024 --persistent --confirm 1000 --prefetch 1000 --max-backlog 10000 --queue mgmt-persistent"
  )
  MODES=(off on poll)
  [[ -n "${BASELINE_BROKER:-}" ]] && MODES=(before off on poll)
  declare -A CPU RATE
  for s in "${SCENARIOS[@]}"; do
    name=${s%%|*}
    read -r -a flags <<<"${s#*|}"
    for round in $(seq "$ROUNDS"); do
      for mode in "${MODES[@]}"; do
        start_broker "$mode"
        [[ "$mode" == poll ]] && { poll & POLL_PID=$!; }
        line=$("$PERF" --url "$OURS_URL" --broker-pid "$BROKER_PID" --label "$mode" \
          --duration "$DURATION" --quiet "${flags[@]}" | grep '^RESULT ')
        stop_broker
        echo "$name | round $round | $mode | $line" >>"$OUT/cpu.txt"
        CPU[$name,$mode]+="$(field "$line" broker_cpu_us_per_msg) "
        RATE[$name,$mode]+="$(field "$line" recv_rate) "
        echo "   $name, $mode, round $round: $(field "$line" broker_cpu_us_per_msg) µs/msg, $(field "$line" recv_rate) msg/s" >&2
      done
    done
  done
  {
    echo
    echo "| scenario | before the counters µs/msg | API off µs/msg | API on µs/msg | on + polling µs/msg | off / before | on / off | polling / off | msg/s off / on / polling |"
    echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|"
    for s in "${SCENARIOS[@]}"; do
      name=${s%%|*}
      before=$(tr ' ' '\n' <<<"${CPU[$name,before]:-}" | median)
      off=$(tr ' ' '\n' <<<"${CPU[$name,off]}" | median)
      on=$(tr ' ' '\n' <<<"${CPU[$name,on]}" | median)
      pl=$(tr ' ' '\n' <<<"${CPU[$name,poll]}" | median)
      r() { tr ' ' '\n' <<<"${RATE[$name,$1]}" | median | awk '{ printf "%.0f", $1 }'; }
      awk -v n="$name" -v z="$before" -v a="$off" -v b="$on" -v c="$pl" -v ro="$(r off)" -v rn="$(r on)" -v rp="$(r poll)" \
        'BEGIN { zs = (z == "na") ? "–" : sprintf("%.2f", z); zr = (z == "na") ? "–" : sprintf("%+.1f%%", (a / z - 1) * 100);
                 printf "| %s | %s | %.2f | %.2f | %.2f | %s | %+.1f%% | %+.1f%% | %s / %s / %s |\n", n, zs, a, b, c, zr, (b / a - 1) * 100, (c / a - 1) * 100, ro, rn, rp }'
    done
    echo
    echo "median of $ROUNDS rounds of $DURATION s; broker CPU = utime + stime of our broker's process per message received by the consumer"
  } | tee -a "$OUT/table.md"
fi

if [[ "${ONLY:-latency}" == latency || -z "${ONLY:-}" ]]; then
  start_broker on
  {
    echo
    echo "== $QUEUES queues: ours (http://127.0.0.1:$HTTP_PORT) then RabbitMQ ($RABBIT_HTTP)"
  } >&2
  "$MGMTBENCH" --amqp "$OURS_URL" --http "http://127.0.0.1:$HTTP_PORT" \
    --metrics "http://127.0.0.1:$PROM_PORT" --queues "$QUEUES" --reps "$REPS" --label ours |
    tee -a "$OUT/latency.txt"
  RSS_KB=$(awk '/VmRSS/ { print $2 }' "/proc/$BROKER_PID/status")
  stop_broker
  "$MGMTBENCH" --amqp "$RABBIT_URL" --http "$RABBIT_HTTP" --metrics "$RABBIT_METRICS" \
    --queues "$QUEUES" --reps "$REPS" --label rabbitmq | tee -a "$OUT/latency.txt"
  {
    echo
    echo "| endpoint ($QUEUES queues) | ours p50 / p95 ms | RabbitMQ p50 / p95 ms | ours / RabbitMQ (p50) | response bytes ours / RabbitMQ |"
    echo "|---|--:|--:|--:|--:|"
    grep '^RESULT label=ours' "$OUT/latency.txt" | while read -r line; do
      ep=$(grep -o 'endpoint="[^"]*"' <<<"$line" | cut -d'"' -f2)
      other=$(grep '^RESULT label=rabbitmq' "$OUT/latency.txt" | grep "endpoint=\"$ep\"" || true)
      awk -v ep="$ep" -v a50="$(field "$line" p50_ms)" -v a95="$(field "$line" p95_ms)" \
        -v b50="$(field "$other" p50_ms)" -v b95="$(field "$other" p95_ms)" \
        -v ab="$(field "$line" bytes)" -v bb="$(field "$other" bytes)" \
        'BEGIN { printf "| %s | %.2f / %.2f | %.2f / %.2f | %.2fx | %s / %s |\n", ep, a50, a95, b50, b95, (b50 > 0 ? a50 / b50 : 0), ab, bb }'
    done
    echo
    echo "ours with $QUEUES queues: RSS $((RSS_KB / 1024)) MiB"
  } | tee -a "$OUT/table.md"
fi
echo "raw results in $OUT" >&2
