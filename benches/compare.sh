#!/usr/bin/env bash
# Our broker vs RabbitMQ, same client (`perf`, lapin-based), same run.
#
# Builds release, starts our broker on $OURS_PORT (data dir in a temp dir), finds RabbitMQ's
# beam.smp, runs the same perf scenarios against both (alternating), and prints a markdown
# table side by side with the ratio ours/RabbitMQ. Stops our broker at the end.
#
#   benches/compare.sh                 # ~2 minutes
#   DURATION=20 benches/compare.sh     # longer windows
#
# Environment: DURATION (s per run, default 10), OURS_PORT (5673), RABBIT_URL
# (amqp://guest:guest@127.0.0.1:5672/%2f), MAX_BACKLOG (10000, see perf --max-backlog),
# CARGO_TARGET_DIR, OUT (directory for raw results; default target/compare-<time>),
# ONLY (regex: run only the scenarios whose name matches, e.g. ONLY='10k'), WAIT_QUIET=1
# (before each run, wait until the machine has been idle for 10 s, at most QUIET_TIMEOUT s:
# for shared machines; the table's "other load" column shows what still got in the way).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
DURATION=${DURATION:-10}
OURS_PORT=${OURS_PORT:-5673}
OURS_URL="amqp://guest:guest@127.0.0.1:${OURS_PORT}/%2f"
RABBIT_URL=${RABBIT_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
RABBIT_PORT=$(sed -E 's#^[a-z]+://([^@]*@)?[^:/]+:([0-9]+).*#\2#' <<<"$RABBIT_URL")
[[ "$RABBIT_PORT" =~ ^[0-9]+$ ]] || RABBIT_PORT=5672
MAX_BACKLOG=${MAX_BACKLOG:-10000}
OUT=${OUT:-$TARGET/compare-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"

# name | perf flags
SCENARIOS=(
  "16 B, autoack|--size 16 --autoack"
  "1 KiB, autoack|--size 1024 --autoack"
  "16 B, manual ack, prefetch 1000|--size 16 --prefetch 1000"
  "1 KiB, manual ack, prefetch 1000|--size 1024 --prefetch 1000"
  "1 KiB, autoack, fixed 10k msg/s|--size 1024 --autoack --rate 10000"
)

if [[ -n "${ONLY:-}" ]]; then
  kept=()
  for s in "${SCENARIOS[@]}"; do
    if grep -qiE -- "$ONLY" <<<"${s%%|*}"; then kept+=("$s"); fi
  done
  SCENARIOS=("${kept[@]}")
  if [[ ${#SCENARIOS[@]} -eq 0 ]]; then
    echo "error: no scenario matches ONLY='$ONLY'" >&2
    exit 1
  fi
fi

echo "building (release)…" >&2
(cd "$ROOT" && cargo build --release -p broker -p benches --bins >&2)
PERF="$TARGET/release/perf"
BROKER="$TARGET/release/broker"

RABBIT_PID=$(pgrep -f beam.smp | head -n1 || true)
if [[ -z "$RABBIT_PID" ]]; then
  echo "error: RabbitMQ (beam.smp) is not running; start it with 'rabbitmq-server -detached'" >&2
  exit 1
fi

if (exec 3<>"/dev/tcp/127.0.0.1/$OURS_PORT") 2>/dev/null; then
  echo "error: port $OURS_PORT is already in use (another broker?); stop it or set OURS_PORT" >&2
  exit 1
fi

DATA_DIR=$(mktemp -d)
RUST_LOG=${RUST_LOG:-warn} "$BROKER" --port "$OURS_PORT" --management-port 0 --prometheus-port 0 --data-dir "$DATA_DIR" \
  >"$OUT/broker.log" 2>&1 &
OURS_PID=$!
cleanup() {
  if kill -0 "$OURS_PID" 2>/dev/null; then
    kill -TERM "$OURS_PID" 2>/dev/null || true
    wait "$OURS_PID" 2>/dev/null || true
  fi
  rm -rf "$DATA_DIR"
}
trap cleanup EXIT
for _ in $(seq 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$OURS_PORT") 2>/dev/null; then break; fi
  if ! kill -0 "$OURS_PID" 2>/dev/null; then
    echo "error: our broker exited; see $OUT/broker.log" >&2
    cat "$OUT/broker.log" >&2
    exit 1
  fi
  sleep 0.1
done
if ! kill -0 "$OURS_PID" 2>/dev/null; then
  echo "error: our broker exited; see $OUT/broker.log" >&2
  cat "$OUT/broker.log" >&2
  exit 1
fi

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpus: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "kernel: $(uname -r)"
  echo "rabbitmq: $(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null || echo unknown) (pid $RABBIT_PID)"
  echo "ours: $BROKER (pid $OURS_PID)"
  echo "git: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo none)$(cd "$ROOT" && git diff --quiet 2>/dev/null || echo ' (dirty)')"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "perf flags: --duration $DURATION --max-backlog $MAX_BACKLOG, 1 producer, 1 consumer, transient"
} | tee "$OUT/machine.txt" >&2

RESULTS="$OUT/results.txt"
: >"$RESULTS"
busy_ticks() { # CPU ticks used by everything so far (user nice system irq softirq steal)
  awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}
wait_quiet() { # with WAIT_QUIET=1: wait until the machine has been idle for 10 s
  [[ "${WAIT_QUIET:-0}" == 1 ]] || return 0
  local hz quiet=0 waited=0 a b
  hz=$(getconf CLK_TCK 2>/dev/null || echo 100)
  while ((quiet < 5)); do
    a=$(busy_ticks)
    sleep 2
    b=$(busy_ticks)
    waited=$((waited + 2))
    # Under 0.15 cores busy (RabbitMQ idles at a few %).
    if (((b - a) * 100 < 2 * hz * 15)); then quiet=$((quiet + 1)); else quiet=0; fi
    if ((waited >= ${QUIET_TIMEOUT:-900})); then
      echo "   (machine still busy after ${waited}s; running anyway)" >&2
      return 0
    fi
  done
  ((waited > 10)) && echo "   (waited ${waited}s for the machine to be idle)" >&2
  return 0
}
conns() { # port: established AMQP connections to it
  ss -Htn state established "( sport = :$1 )" 2>/dev/null | wc -l
}
run() { # broker-label url port pid flags...
  local label=$1 url=$2 port=$3 pid=$4
  shift 4
  local tmp line seen
  tmp=$(mktemp)
  wait_quiet
  "$PERF" --url "$url" --broker-pid "$pid" --label "$label" --duration "$DURATION" \
    --max-backlog "$MAX_BACKLOG" --quiet "$@" >"$tmp" &
  local perf_pid=$!
  # Mid-window, count connections to the broker: perf holds 3 (admin, producer, consumer);
  # more means another client (e.g. a test suite) was loading the broker during the run.
  sleep "$(awk -v d="$DURATION" 'BEGIN { print d / 2 + 1 }')"
  seen=$(conns "$port")
  if ! wait "$perf_pid" || ! grep -q '^RESULT ' "$tmp"; then
    echo "error: perf failed against $label ($url)" >&2
    rm -f "$tmp"
    return 1
  fi
  line="$(grep '^RESULT ' "$tmp") foreign_conns=$((seen > 3 ? seen - 3 : 0))"
  rm -f "$tmp"
  echo "$line" >>"$RESULTS"
  echo "$line"
}

declare -A R
i=0
for s in "${SCENARIOS[@]}"; do
  name=${s%%|*}
  read -r -a flags <<<"${s#*|}"
  echo "== $name" >&2
  R[ours,$i]=$(run ours "$OURS_URL" "$OURS_PORT" "$OURS_PID" "${flags[@]}")
  echo "   ours:     $(grep -o 'recv_rate=[^ ]*\|lat_p99_us=[^ ]*\|broker_cpu_us_per_msg=[^ ]*' <<<"${R[ours,$i]}" | xargs)" >&2
  sleep 2
  R[rabbit,$i]=$(run rabbitmq "$RABBIT_URL" "$RABBIT_PORT" "$RABBIT_PID" "${flags[@]}")
  echo "   rabbitmq: $(grep -o 'recv_rate=[^ ]*\|lat_p99_us=[^ ]*\|broker_cpu_us_per_msg=[^ ]*' <<<"${R[rabbit,$i]}" | xargs)" >&2
  sleep 2
  i=$((i + 1))
done

field() { # line key
  grep -o " $2=[^ ]*" <<<"$1" | cut -d= -f2
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0 && a != "na" && b != "na") printf "%.2fx", a / b; else print "–" }'; }
num() { awk -v a="$1" 'BEGIN { if (a == "na") print "–"; else printf "%.0f", a }'; }
dec() { awk -v a="$1" -v p="$2" 'BEGIN { if (a == "na") print "–"; else printf "%." p "f", a }'; }
load() { awk -v c="$(field "$1" other_cpu_s)" -v w="$(field "$1" duration_s)" 'BEGIN { if (w + 0 > 0) printf "%.2f", c / w; else print "–" }'; }
ms() { awk -v a="$1" 'BEGIN { printf "%.2f", a / 1000 }'; }

{
  echo
  echo "| scenario (1 producer, 1 consumer, transient) | ours msg/s | RabbitMQ msg/s | ours / RabbitMQ | ours CPU µs/msg | RabbitMQ CPU µs/msg | ours / RabbitMQ CPU | ours CPU % | RabbitMQ CPU % | ours p50 / p99 ms | RabbitMQ p50 / p99 ms | other load, cores (ours / RabbitMQ run) | other clients (ours / RabbitMQ) |"
  echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
  i=0
  for s in "${SCENARIOS[@]}"; do
    o=${R[ours,$i]}
    r=${R[rabbit,$i]}
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s / %s | %s / %s | %s / %s |\n' \
      "${s%%|*}" \
      "$(num "$(field "$o" recv_rate)")" "$(num "$(field "$r" recv_rate)")" \
      "$(ratio "$(field "$o" recv_rate)" "$(field "$r" recv_rate)")" \
      "$(dec "$(field "$o" broker_cpu_us_per_msg)" 2)" "$(dec "$(field "$r" broker_cpu_us_per_msg)" 2)" \
      "$(ratio "$(field "$o" broker_cpu_us_per_msg)" "$(field "$r" broker_cpu_us_per_msg)")" \
      "$(dec "$(field "$o" broker_cpu_pct)" 0)" "$(dec "$(field "$r" broker_cpu_pct)" 0)" \
      "$(ms "$(field "$o" lat_p50_us)")" "$(ms "$(field "$o" lat_p99_us)")" \
      "$(ms "$(field "$r" lat_p50_us)")" "$(ms "$(field "$r" lat_p99_us)")" \
      "$(load "$o")" "$(load "$r")" "$(field "$o" foreign_conns)" "$(field "$r" foreign_conns)"
    i=$((i + 1))
  done
  echo
  echo "msg/s = messages consumed per second in the ${DURATION} s window; CPU = broker utime+stime"
  echo "over the window (from /proc/PID/stat), per message and as % of one core; latency ="
  echo "publish-to-consume time of every message received (send timestamp in the body); other"
  echo "load = CPU used by everything except the broker under test and the client during the"
  echo "window (from /proc/stat), in cores; other clients = AMQP connections to the broker from"
  echo "other programs mid-window. Anything well above 0 in either means the figures were disturbed."
} | tee "$OUT/table.md"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt" >&2
echo "raw results: $RESULTS" >&2
