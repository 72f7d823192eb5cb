#!/usr/bin/env bash
# Durable storage (issue 3): our broker vs RabbitMQ, same client (`perf`, lapin-based), same run.
#
# Builds release and runs each scenario against our broker and against RabbitMQ, then prints
# one markdown table side by side with the ratio ours / RabbitMQ, and the command to reproduce
# it. Our broker gets a fresh --data-dir and a fresh process per scenario, so the store
# counters it logs when it stops ("message store closed fsyncs=…") cover that scenario only.
#
# - 1 KiB: persistent 1 KiB messages to a durable queue, 1 producer with confirms (1000 in
#   flight), 1 consumer with manual acks (prefetch 1000): msg/s, broker CPU µs/msg, latency;
#   for ours also fsyncs per second and message records per fsync.
# - seed topology: fanout exchange perf.sales_events → durable queues perf.email_notifications
#   and perf.loyalty_points (the seed's shape, prefixed so the demo's queues are left alone),
#   persistent 1 KiB messages with confirms, one consumer per queue:
#   publishes/s and deliveries/s (both queues).
# - fill: FILL persistent 1 KiB messages into a durable queue, no consumer (confirms 1000):
#   fill rate, broker RSS, disk use; then a restart (ours: SIGTERM and start again on the same
#   data dir; RabbitMQ: `rabbitmqctl stop_app && rabbitmqctl start_app`), recovery time (from
#   the start until a consumer has the first message), and a drain (manual ack, prefetch
#   1000): drain rate, disk use and RSS after it. With FILL_5M=1, our broker alone is also
#   filled to 5 × FILL on a fresh data dir: RSS growth per message from FILL to 5 × FILL.
# - raw: the fill and drain again with `rawperf` (benches/src/bin/rawperf.rs), a lean client
#   that costs well under a microsecond per message, so the rates are the broker's and not
#   lapin's; no restart; drain acks every 100 messages on both brokers.
# - 64 KiB and 1 MiB bodies, persistent, confirms, manual ack: MB/s (10^6 bytes).
#
# RabbitMQ must run on this machine: the script reads its beam.smp's CPU time and RSS and its
# mnesia directory's size, and restarts its app with rabbitmqctl for the recovery figure. On
# RabbitMQ it deletes and declares afresh the queues storage-1k, storage-fill, storage-64k,
# storage-1m, perf.email_notifications and perf.loyalty_points and the exchange
# perf.sales_events, and deletes them again at the end.
#
#   benches/storage.sh                          # ~3 minutes plus the 1M fill, restart, drain
#   DURATION=3 FILL=20000 benches/storage.sh    # quick check, ~1 minute
#
# Environment: DURATION (s per throughput run, default 10), FILL (messages, default 1000000),
# FILL_5M=1 (also our RSS at 5 × FILL), OURS_PORT (5673), RABBIT_URL
# (amqp://guest:guest@127.0.0.1:5672/%2f), RABBIT_RESTART (1; 0 skips RabbitMQ's restart and
# its recovery figure), CARGO_TARGET_DIR, OUT (directory for raw results and logs; default
# target/storage-<time>), ONLY (regex: run only the scenarios whose name matches, e.g.
# ONLY='fill|MiB').
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
DURATION=${DURATION:-10}
FILL=${FILL:-1000000}
FILL_5M=${FILL_5M:-0}
RABBIT_RESTART=${RABBIT_RESTART:-1}
OURS_PORT=${OURS_PORT:-5673}
OURS_URL="amqp://guest:guest@127.0.0.1:${OURS_PORT}/%2f"
RABBIT_URL=${RABBIT_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
OUT=${OUT:-$TARGET/storage-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
[[ "$FILL" =~ ^[1-9][0-9]*$ ]] || {
  echo "error: FILL must be a positive integer" >&2
  exit 1
}

# key | name | perf flags (besides --url, --broker-pid, --label, --duration, --quiet)
FILL_FLAGS="--size 1024 --persistent --confirm 1000 --consumers 0 --count $FILL --queue storage-fill --keep-queue"
DRAIN_FLAGS="--producers 0 --prefetch 1000 --no-declare --queue storage-fill --keep-queue"
SCENARIOS=(
  "1k|1 KiB, durable queue, confirm 1000, prefetch 1000|--size 1024 --persistent --confirm 1000 --prefetch 1000 --max-backlog 10000 --queue storage-1k"
  "seed|seed topology: fanout to 2 durable queues, 1 KiB|--size 1024 --persistent --confirm 1000 --prefetch 1000 --max-backlog 10000 --exchange perf.sales_events --exchange-type fanout --queues perf.email_notifications,perf.loyalty_points"
  "fill|fill $FILL × 1 KiB, restart, drain|$FILL_FLAGS, then $DRAIN_FLAGS"
  "raw|fill and drain $FILL × 1 KiB with rawperf (lean client)|rawperf fill --declare --persistent --count $FILL --size 1024 --confirm 1000 --queue storage-raw, then rawperf drain --count $FILL --size 1024 --prefetch 1000 --ack-every 100 --queue storage-raw"
  "64k|64 KiB, confirm 100, prefetch 100|--size 65536 --persistent --confirm 100 --prefetch 100 --max-backlog 1000 --queue storage-64k"
  "1m|1 MiB, confirm 16, prefetch 16|--size 1048576 --persistent --confirm 16 --prefetch 16 --max-backlog 64 --queue storage-1m"
)
# What each scenario declares (for the final clean-up on RabbitMQ).
CLEANUP=(
  "--queue storage-1k"
  "--exchange perf.sales_events --queues perf.email_notifications,perf.loyalty_points"
  "--queue storage-fill"
  "--queue storage-raw"
  "--queue storage-64k"
  "--queue storage-1m"
)

if [[ -n "${ONLY:-}" ]]; then
  kept=()
  for s in "${SCENARIOS[@]}"; do
    name=${s#*|}
    if grep -qiE -- "$ONLY" <<<"${name%%|*}"; then kept+=("$s"); fi
  done
  if [[ ${#kept[@]} -eq 0 ]]; then
    echo "error: no scenario matches ONLY='$ONLY'" >&2
    exit 1
  fi
  SCENARIOS=("${kept[@]}")
fi

echo "building (release)…" >&2
(cd "$ROOT" && cargo build --release -p broker -p benches --bins >&2)
PERF="$TARGET/release/perf"
RAWPERF="$TARGET/release/rawperf"
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

WORK=$(mktemp -d)
OURS_PID=
RABBIT_STOPPED=0
cleanup() {
  set +e
  if [[ -n "$OURS_PID" ]] && kill -0 "$OURS_PID" 2>/dev/null; then
    kill -TERM "$OURS_PID"
    wait "$OURS_PID"
  fi
  if ((RABBIT_STOPPED)); then
    echo "restarting RabbitMQ's app (the script stopped it)…" >&2
    rabbitmqctl start_app >&2
  fi
  for c in "${CLEANUP[@]}"; do
    read -r -a flags <<<"$c"
    "$PERF" --url "$RABBIT_URL" --delete "${flags[@]}" >/dev/null ||
      echo "warning: could not delete ($c) on RabbitMQ" >&2
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpus: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "kernel: $(uname -r)"
  echo "disk: $(df -h --output=source,fstype,size "$WORK" | tail -n1 | xargs) (our data dirs in $WORK)"
  echo "rabbitmq: $(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null || echo unknown) (pid $RABBIT_PID)"
  echo "ours: $BROKER"
  echo "git: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo none)$(cd "$ROOT" && git diff --quiet 2>/dev/null || echo ' (dirty)')"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/machine.txt" >&2

RESULTS="$OUT/results.txt"
: >"$RESULTS"

# ---- our broker: one process per scenario ---------------------------------------------------

start_ours() { # data-dir log: starts our broker, sets OURS_PID and OURS_T0_MS (its start time)
  OURS_T0_MS=$(date +%s%3N)
  RUST_LOG=info NO_COLOR=1 "$BROKER" --port "$OURS_PORT" --management-port 0 --prometheus-port 0 --data-dir "$1" >>"$2" 2>&1 &
  OURS_PID=$!
  # The port is bound before recovery, so this does not wait for it.
  for _ in $(seq 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$OURS_PORT") 2>/dev/null; then return 0; fi
    kill -0 "$OURS_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "error: our broker did not start; see $2" >&2
  tail -n 20 "$2" >&2
  return 1
}
stop_ours() { # SIGTERM, wait: the broker logs its store counters as it stops
  kill -TERM "$OURS_PID"
  wait "$OURS_PID" || {
    echo "error: our broker exited with an error; see its log in $OUT" >&2
    return 1
  }
  OURS_PID=
}
store_stat() { # log key: a counter from the last "message store closed" line of the log
  sed 's/\x1b\[[0-9;]*m//g' "$1" | grep 'message store closed' | tail -n1 |
    grep -o " $2=[0-9]*" | cut -d= -f2
}
rss() { # pid: resident set size in bytes
  awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$1/status"
}
disk() { # dir: bytes
  du -sb "$1" | cut -f1
}

# ---- perf ----------------------------------------------------------------------------------

perf_run() { # label url pid flags...: prints perf's RESULT line (and appends it to $RESULTS)
  local label=$1 url=$2 pid=$3 tmp line
  shift 3
  tmp=$(mktemp -p "$WORK")
  echo "   perf --label $label $*" >>"$OUT/commands.txt"
  if ! "$PERF" --url "$url" --broker-pid "$pid" --label "$label" --duration "$DURATION" \
    --quiet "$@" >"$tmp" || ! grep -q '^RESULT ' "$tmp"; then
    echo "error: perf failed against $label ($url): perf $*" >&2
    return 1
  fi
  line=$(grep '^RESULT ' "$tmp")
  rm -f "$tmp"
  echo "$line" >>"$RESULTS"
  echo "$line"
}
field() { # line key
  grep -o " $2=[^ ]*" <<<"$1" | cut -d= -f2
}

declare -A R # R[scenario,figure] = value

steady() { # key flags...: one throughput run against each broker
  local key=$1 dir log o r
  shift
  dir="$WORK/ours-$key"
  log="$OUT/ours-$key.log"
  start_ours "$dir" "$log"
  o=$(perf_run ours "$OURS_URL" "$OURS_PID" "$@")
  stop_ours
  R[$key,ours]=$o
  R[$key,fsyncs]=$(store_stat "$log" fsyncs)
  R[$key,batches]=$(store_stat "$log" sync_batches)
  R[$key,records]=$(store_stat "$log" message_records)
  rm -rf "$dir"
  echo "   ours:     $(grep -o 'sent_rate=[^ ]*\|recv_rate=[^ ]*\|broker_cpu_us_per_msg=[^ ]*' <<<"$o" | xargs) fsyncs=${R[$key,fsyncs]}" >&2
  sleep 2
  r=$(perf_run rabbitmq "$RABBIT_URL" "$RABBIT_PID" "$@")
  R[$key,rabbit]=$r
  echo "   rabbitmq: $(grep -o 'sent_rate=[^ ]*\|recv_rate=[^ ]*\|broker_cpu_us_per_msg=[^ ]*' <<<"$r" | xargs)" >&2
  sleep 2
}

fill_restart_drain() {
  local dir="$WORK/ours-fill" log="$OUT/ours-fill.log" line t0 t1 mnesia
  local -a fill drain
  read -r -a fill <<<"$FILL_FLAGS"
  read -r -a drain <<<"$DRAIN_FLAGS"

  echo "   ours: fill" >&2
  start_ours "$dir" "$log"
  R[fill,ours,rss0]=$(rss "$OURS_PID")
  R[fill,ours,disk0]=$(disk "$dir")
  line=$(perf_run ours-fill "$OURS_URL" "$OURS_PID" "${fill[@]}")
  R[fill,ours,fill]=$line
  R[fill,ours,rss_fill]=$(rss "$OURS_PID")
  R[fill,ours,disk_fill]=$(disk "$dir")
  stop_ours
  R[fill,fsyncs]=$(store_stat "$log" fsyncs)
  R[fill,records]=$(store_stat "$log" message_records)
  echo "   ours: restart, drain" >&2
  start_ours "$dir" "$log"
  line=$(perf_run ours-drain "$OURS_URL" "$OURS_PID" "${drain[@]}")
  R[fill,ours,drain]=$line
  R[fill,ours,recovery_ms]=$(($(field "$line" first_recv_unix_ms) - OURS_T0_MS))
  sleep 2 # lazy syncs of the last acks, segment deletion
  R[fill,ours,rss_drain]=$(rss "$OURS_PID")
  R[fill,ours,disk_drain]=$(disk "$dir")
  "$PERF" --url "$OURS_URL" --delete --queue storage-fill
  stop_ours
  R[fill,ours,replay]=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep 'messages recovered' | tail -n1 |
    grep -o 'elapsed=[^ ]*' | cut -d= -f2)
  rm -rf "$dir"

  if [[ "$FILL_5M" == 1 ]]; then
    echo "   ours: fill to 5 × $FILL" >&2
    dir="$WORK/ours-fill5"
    log="$OUT/ours-fill5.log"
    start_ours "$dir" "$log"
    perf_run ours-fill "$OURS_URL" "$OURS_PID" "${fill[@]}" >/dev/null
    R[fill,ours,rss_1x]=$(rss "$OURS_PID")
    perf_run ours-fill-more "$OURS_URL" "$OURS_PID" --size 1024 --persistent --confirm 1000 \
      --consumers 0 --count $((4 * FILL)) --queue storage-fill --no-declare --keep-queue >/dev/null
    R[fill,ours,rss_5x]=$(rss "$OURS_PID")
    R[fill,ours,disk_5x]=$(disk "$dir")
    stop_ours
    rm -rf "$dir"
  fi
  sleep 2

  echo "   rabbitmq: fill" >&2
  mnesia=$(rabbitmqctl eval 'rabbit_mnesia:dir().' 2>/dev/null | tr -d '"' || true)
  [[ -d "$mnesia" ]] || mnesia=/var/lib/rabbitmq/mnesia
  R[fill,mnesia]=$mnesia
  # A fresh queue first, so the baseline does not count an old one.
  "$PERF" --url "$RABBIT_URL" --delete --queue storage-fill
  R[fill,rabbit,rss0]=$(rss "$RABBIT_PID")
  R[fill,rabbit,disk0]=$(disk "$mnesia")
  line=$(perf_run rabbitmq-fill "$RABBIT_URL" "$RABBIT_PID" "${fill[@]}")
  R[fill,rabbit,fill]=$line
  R[fill,rabbit,rss_fill]=$(rss "$RABBIT_PID")
  R[fill,rabbit,disk_fill]=$(disk "$mnesia")
  if [[ "$RABBIT_RESTART" == 1 ]]; then
    echo "   rabbitmq: restart (rabbitmqctl stop_app, start_app), drain" >&2
    # rabbitmqctl's own start-up is part of the figure below; this says how long it is.
    t0=$(date +%s%3N)
    rabbitmqctl eval 'ok.' >/dev/null
    t1=$(date +%s%3N)
    R[fill,rabbit,cli_ms]=$((t1 - t0))
    RABBIT_STOPPED=1
    rabbitmqctl stop_app >/dev/null
    t0=$(date +%s%3N)
    rabbitmqctl start_app >/dev/null
    RABBIT_STOPPED=0
    RABBIT_PID=$(pgrep -f beam.smp | head -n1)
  else
    echo "   rabbitmq: drain (no restart: RABBIT_RESTART=0)" >&2
  fi
  line=$(perf_run rabbitmq-drain "$RABBIT_URL" "$RABBIT_PID" "${drain[@]}")
  R[fill,rabbit,drain]=$line
  if [[ "$RABBIT_RESTART" == 1 ]]; then
    R[fill,rabbit,recovery_ms]=$(($(field "$line" first_recv_unix_ms) - t0))
  fi
  sleep 2
  R[fill,rabbit,rss_drain]=$(rss "$RABBIT_PID")
  R[fill,rabbit,disk_drain]=$(disk "$mnesia")
  "$PERF" --url "$RABBIT_URL" --delete --queue storage-fill
  sleep 2
}

# The fill and drain rates again with `rawperf`, whose per-message cost is well under a
# microsecond: with lapin the client, not the broker, is the limit of a pure fill or drain.
raw_fill_drain() {
  local dir="$WORK/ours-raw" log="$OUT/ours-raw.log" who url pid
  local -a fill=(fill --declare --persistent --count "$FILL" --size 1024 --confirm 1000 --queue storage-raw)
  local -a drain=(drain --count "$FILL" --size 1024 --prefetch 1000 --ack-every 100 --queue storage-raw)
  for who in ours rabbit; do
    if [[ $who == ours ]]; then
      start_ours "$dir" "$log"
      url=$OURS_URL pid=$OURS_PID
    else
      "$PERF" --url "$RABBIT_URL" --delete --queue storage-raw
      url=$RABBIT_URL pid=$RABBIT_PID
    fi
    echo "   $who: rawperf fill, drain" >&2
    echo "   rawperf ${fill[*]} / ${drain[*]} ($who)" >>"$OUT/commands.txt"
    R[raw,$who,fill]=$("$RAWPERF" "${fill[@]}" --url "$url" --broker-pid "$pid" --quiet | grep '^RESULT ')
    R[raw,$who,drain]=$("$RAWPERF" "${drain[@]}" --url "$url" --broker-pid "$pid" --quiet | grep '^RESULT ')
    echo "${R[raw,$who,fill]}" >>"$RESULTS"
    echo "${R[raw,$who,drain]}" >>"$RESULTS"
    "$PERF" --url "$url" --delete --queue storage-raw
    if [[ $who == ours ]]; then
      stop_ours
      rm -rf "$dir"
    fi
    sleep 2
  done
}

for s in "${SCENARIOS[@]}"; do
  key=${s%%|*}
  rest=${s#*|}
  echo "== ${rest%%|*}" >&2
  if [[ "$key" == fill ]]; then
    fill_restart_drain
  elif [[ "$key" == raw ]]; then
    raw_fill_drain
  else
    read -r -a flags <<<"${rest#*|}"
    steady "$key" "${flags[@]}"
  fi
done

# ---- the table -----------------------------------------------------------------------------

na() { [[ -z "$1" || "$1" == na ]]; }
ratio() { if na "$1" || na "$2"; then echo "–"; else awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.2fx", a / b; else print "–" }'; fi; }
num() { if na "$1"; then echo "–"; else awk -v a="$1" 'BEGIN { printf "%.0f", a }'; fi; }
dec() { if na "$1"; then echo "–"; else awk -v a="$1" -v p="$2" 'BEGIN { printf "%." p "f", a }'; fi; }
mib() { if na "$1"; then echo "–"; else awk -v a="$1" 'BEGIN { printf "%.2f", a / 1048576 }'; fi; }
div() { if na "$1" || na "$2"; then echo na; else awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.6f", a / b; else print "na" }'; fi; }
sub() { if na "$1" || na "$2"; then echo na; else echo $(($1 - $2)); fi; }
ms() { if na "$1"; then echo "–"; else awk -v a="$1" 'BEGIN { printf "%.2f", a / 1000 }'; fi; }
row() { # scenario figure ours rabbit [ratio]
  printf '| %s | %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4" "${5:-–}"
}
lat() { # result line: p50 / p99 in ms
  echo "$(ms "$(field "$1" lat_p50_us)") / $(ms "$(field "$1" lat_p99_us)")"
}
other() { # result line: CPU of everything else during the window, in cores
  div "$(field "$1" other_cpu_s)" "$(field "$1" duration_s)"
}
fsync_rows() { # scenario-name key
  local o=${R[$2,ours]} fs=${R[$2,fsyncs]:-na}
  row "$1" "fsyncs/s (store counter ÷ run time)" "$(num "$(div "$fs" "$(field "$o" elapsed_s)")")" "–"
  row "$1" "message records per fsync" "$(dec "$(div "${R[$2,records]:-na}" "$fs")" 1)" "–"
}
steady_rows() { # scenario-name key
  local o=${R[$2,ours]} r=${R[$2,rabbit]} size
  size=$(field "$o" size)
  case $2 in
    seed)
      row "$1" "publishes/s (confirmed)" "$(num "$(field "$o" sent_rate)")" "$(num "$(field "$r" sent_rate)")" \
        "$(ratio "$(field "$o" sent_rate)" "$(field "$r" sent_rate)")"
      row "$1" "deliveries/s (both queues)" "$(num "$(field "$o" recv_rate)")" "$(num "$(field "$r" recv_rate)")" \
        "$(ratio "$(field "$o" recv_rate)" "$(field "$r" recv_rate)")"
      ;;
    64k | 1m)
      local omb rmb
      omb=$(awk -v a="$(field "$o" recv_rate)" -v s="$size" 'BEGIN { printf "%.1f", a * s / 1e6 }')
      rmb=$(awk -v a="$(field "$r" recv_rate)" -v s="$size" 'BEGIN { printf "%.1f", a * s / 1e6 }')
      row "$1" "MB/s (consumed)" "$omb" "$rmb" "$(ratio "$omb" "$rmb")"
      row "$1" "msg/s (consumed)" "$(num "$(field "$o" recv_rate)")" "$(num "$(field "$r" recv_rate)")" \
        "$(ratio "$(field "$o" recv_rate)" "$(field "$r" recv_rate)")"
      ;;
    *)
      row "$1" "msg/s (consumed)" "$(num "$(field "$o" recv_rate)")" "$(num "$(field "$r" recv_rate)")" \
        "$(ratio "$(field "$o" recv_rate)" "$(field "$r" recv_rate)")"
      ;;
  esac
  row "$1" "broker CPU µs/msg$([[ $2 == seed ]] && echo ' (per publish)')" \
    "$(dec "$(field "$o" broker_cpu_us_per_msg)" 2)" "$(dec "$(field "$r" broker_cpu_us_per_msg)" 2)" \
    "$(ratio "$(field "$o" broker_cpu_us_per_msg)" "$(field "$r" broker_cpu_us_per_msg)")"
  row "$1" "latency p50 / p99 ms" "$(lat "$o")" "$(lat "$r")"
  fsync_rows "$1" "$2"
  row "$1" "other load, cores" "$(dec "$(other "$o")" 2)" "$(dec "$(other "$r")" 2)"
}
fill_rows() { # scenario-name
  local n=$1 of=${R[fill,ours,fill]} rf=${R[fill,rabbit,fill]} od=${R[fill,ours,drain]} rd=${R[fill,rabbit,drain]} a b
  row "$n" "fill msg/s (confirmed)" "$(num "$(field "$of" sent_rate)")" "$(num "$(field "$rf" sent_rate)")" \
    "$(ratio "$(field "$of" sent_rate)" "$(field "$rf" sent_rate)")"
  R[fill,ours]=$of
  fsync_rows "$n" fill
  for f in rss0:"RSS before fill, MiB" rss_fill:"RSS after fill, MiB" disk_fill:"disk use after fill, MiB"; do
    a=${R[fill,ours,${f%%:*}]:-na}
    b=${R[fill,rabbit,${f%%:*}]:-na}
    if [[ ${f%%:*} == disk_* ]]; then
      a=$(sub "$a" "${R[fill,ours,disk0]}")
      b=$(sub "$b" "${R[fill,rabbit,disk0]}")
    fi
    row "$n" "${f#*:}" "$(mib "$a")" "$(mib "$b")" "$(ratio "$a" "$b")"
  done
  a=${R[fill,ours,recovery_ms]:-na}
  b=${R[fill,rabbit,recovery_ms]:-na}
  row "$n" "recovery: start to first message, s" "$(ms "$a")" "$(ms "$b")" "$(ratio "$a" "$b")"
  row "$n" "drain msg/s" "$(num "$(field "$od" recv_rate)")" "$(num "$(field "$rd" recv_rate)")" \
    "$(ratio "$(field "$od" recv_rate)" "$(field "$rd" recv_rate)")"
  row "$n" "messages drained" "$(field "$od" received_total)" "$(field "$rd" received_total)"
  for f in disk_drain:"disk use after drain, MiB" rss_drain:"RSS after drain, MiB"; do
    a=${R[fill,ours,${f%%:*}]:-na}
    b=${R[fill,rabbit,${f%%:*}]:-na}
    if [[ ${f%%:*} == disk_* ]]; then
      a=$(sub "$a" "${R[fill,ours,disk0]}")
      b=$(sub "$b" "${R[fill,rabbit,disk0]}")
    fi
    row "$n" "${f#*:}" "$(mib "$a")" "$(mib "$b")" "$(ratio "$a" "$b")"
  done
  if [[ "$FILL_5M" == 1 ]]; then
    a=${R[fill,ours,rss_5x]}
    row "$n" "RSS at $((5 * FILL)) queued, MiB (fresh broker)" "$(mib "$a")" "–"
    row "$n" "RSS growth per message, $FILL → $((5 * FILL)) queued, bytes" \
      "$(dec "$(div "$(sub "$a" "${R[fill,ours,rss_1x]}")" $((4 * FILL)))" 1)" "–"
    row "$n" "disk use at $((5 * FILL)) queued, MiB" "$(mib "${R[fill,ours,disk_5x]}")" "–"
  fi
}

raw_rows() { # scenario-name
  local n=$1 side o r
  for side in fill drain; do
    o=${R[raw,ours,$side]} r=${R[raw,rabbit,$side]}
    row "$n" "$side msg/s" "$(num "$(field "$o" rate)")" "$(num "$(field "$r" rate)")" \
      "$(ratio "$(field "$o" rate)" "$(field "$r" rate)")"
    row "$n" "$side: broker CPU µs/msg" "$(dec "$(field "$o" broker_cpu_us_per_msg)" 2)" \
      "$(dec "$(field "$r" broker_cpu_us_per_msg)" 2)" \
      "$(ratio "$(field "$o" broker_cpu_us_per_msg)" "$(field "$r" broker_cpu_us_per_msg)")"
    row "$n" "$side: client CPU µs/msg" "$(dec "$(field "$o" client_cpu_us_per_msg)" 2)" \
      "$(dec "$(field "$r" client_cpu_us_per_msg)" 2)"
  done
  row "$n" "messages drained" "$(field "${R[raw,ours,drain]}" count)" "$(field "${R[raw,rabbit,drain]}" count)"
}

reproduce="DURATION=$DURATION FILL=$FILL"
[[ "$FILL_5M" == 1 ]] && reproduce+=" FILL_5M=1"
[[ "$RABBIT_RESTART" == 1 ]] || reproduce+=" RABBIT_RESTART=0"
[[ -n "${ONLY:-}" ]] && reproduce+=" ONLY='$ONLY'"
{
  echo
  echo "Reproduce: \`$reproduce benches/storage.sh\` (commit $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo none)$(cd "$ROOT" && git diff --quiet 2>/dev/null || echo ', dirty tree'), $(date -u +%Y-%m-%d))"
  echo
  echo "| scenario | figure | ours | RabbitMQ | ours / RabbitMQ |"
  echo "|---|---|--:|--:|--:|"
  for s in "${SCENARIOS[@]}"; do
    key=${s%%|*}
    rest=${s#*|}
    case $key in
      fill) fill_rows "${rest%%|*}" ;;
      raw) raw_rows "${rest%%|*}" ;;
      *) steady_rows "${rest%%|*}" "$key" ;;
    esac
  done
  echo
  echo "| scenario | perf flags (plus --url, --broker-pid, --duration $DURATION) |"
  echo "|---|---|"
  for s in "${SCENARIOS[@]}"; do
    rest=${s#*|}
    echo "| ${rest%%|*} | \`${rest#*|}\` |"
  done
  echo
  echo "Throughput rows: ${DURATION} s windows, 1 producer; msg/s = consumed per second; broker"
  echo "CPU = utime+stime of the broker process over the window (beam.smp for RabbitMQ) per"
  echo "message; latency = publish to consume. Ours runs on a fresh --data-dir in a fresh process"
  echo "per scenario; fsyncs = the store's counter (files fsynced) for that process's life, ÷ the"
  echo "run from the window's start until every message was consumed; message records = messages"
  echo "written, from the same counters. Fill rows:"
  echo "RSS from /proc/PID/status, disk use = growth of the data dir (RabbitMQ: ${R[fill,mnesia]:-its mnesia dir})"
  echo "since before the fill, measured 2 s after the fill and the drain; recovery = from starting"
  echo "the broker (ours: the process; RabbitMQ: \`rabbitmqctl start_app\`) until a consumer has the"
  echo "first message. Other load = CPU used by everything but the broker and the client, in cores."
  if [[ -n "${R[fill,ours,replay]:-}" ]]; then
    echo "Our broker's log: definitions and messages recovered in ${R[fill,ours,replay]}."
  fi
  if [[ -n "${R[fill,rabbit,cli_ms]:-}" ]]; then
    echo "RabbitMQ's recovery includes rabbitmqctl's own start-up: \`rabbitmqctl eval 'ok.'\` took $(ms "${R[fill,rabbit,cli_ms]}") s."
  fi
} | tee "$OUT/table.md"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt" >&2
echo "raw results: $RESULTS" >&2
