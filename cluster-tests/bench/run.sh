#!/usr/bin/env bash
# Gateway-overhead benchmark: the same wrk load against the mock provider directly, through a
# bare nginx reverse proxy, and through one Tollgate node. Prints a Markdown table and ratios to
# stdout and writes them to bench-results/latest.md. See README.md beside this file.
#
# Env: BENCH_SECONDS (8), BENCH_ROUNDS (3), BENCH_CONCURRENCY ("1 32 128"),
#      BENCH_MODES ("nonstream stream"), BENCH_TARGETS ("direct nginx tollgate tollgate-key"),
#      BENCH_WARMUP_SECONDS (2).
#      tollgate-key is the same node called with a virtual key that has a budget and rpm/tpm
#      limits (admission through the budget actors), instead of the master key.
#      Each (mode, concurrency) cell runs every target once per round, rounds interleaved, and
#      reports the median round: a shared VM's speed drifts by tens of percent within minutes,
#      and interleaving spreads that drift over all targets alike.
#      BENCH_SIMULTANEOUS=1: in each round, every target is loaded at the same time (one wrk each,
#      all on the load core), so all of them share the gateway core at the same moments and see
#      the same VM speed. Their ratios are then ratios of CPU cost per request, free of the
#      drift that sequential runs of a few seconds still catch. Use it to compare variants of one
#      gateway (the observability targets) at concurrency 32 and 128.
#      BENCH_RESTART=1: the observability variants (tollgate-bare, -metrics, -otel, -otel10) are
#      started afresh before every round after the first, and warmed up again. Two processes
#      of one binary can differ in CPU per request by 1-2% for the whole of their lives (where
#      their memory landed, hash seeds); a fresh process per round spreads that over the
#      rounds like the VM's drift, instead of it settling a whole run's ratio.
#      Every gateway runs in its own session (setsid), so the kernel's autogroups share the core
#      fairly between processes; shared between threads, a gateway's helper thread (the OTLP
#      export thread) got a share of its own and its cost fell on the other targets.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

DURATION=${BENCH_SECONDS:-8}
ROUNDS=${BENCH_ROUNDS:-3}
WARMUP=${BENCH_WARMUP_SECONDS:-2}
SIMULTANEOUS=${BENCH_SIMULTANEOUS:-0}
RESTART=${BENCH_RESTART:-0}
CONCURRENCY=${BENCH_CONCURRENCY:-"1 32 128"}
MODES=${BENCH_MODES:-"nonstream stream"}
TARGETS=${BENCH_TARGETS:-"direct nginx tollgate tollgate-key"}
KEY=sk-bench
GATEWAY_CORE=0 # nginx / tollgate
LOAD_CORE=1    # mock provider and wrk

TOLLGATE_BIN=$ROOT/target/release/tollgate
MOCK_BIN=$ROOT/target/release/tollgate-mock-provider

log() { echo "bench: $*" >&2; }
die() {
    echo "bench: ERROR: $*" >&2
    exit 1
}

# ---------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------
[[ $DURATION =~ ^[1-9][0-9]*$ ]] || die "BENCH_SECONDS must be a positive integer, got '$DURATION'"
[[ $WARMUP =~ ^[0-9]+$ ]] || die "BENCH_WARMUP_SECONDS must be an integer, got '$WARMUP'"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be a positive integer, got '$ROUNDS'"
[[ $SIMULTANEOUS == 0 || $SIMULTANEOUS == 1 ]] || die "BENCH_SIMULTANEOUS must be 0 or 1, got '$SIMULTANEOUS'"
[[ $RESTART == 0 || $RESTART == 1 ]] || die "BENCH_RESTART must be 0 or 1, got '$RESTART'"
for c in $CONCURRENCY; do
    [[ $c =~ ^[1-9][0-9]*$ ]] || die "BENCH_CONCURRENCY: '$c' is not a positive integer"
done
for m in $MODES; do
    [[ $m == nonstream || $m == stream ]] || die "BENCH_MODES: '$m' is not nonstream|stream"
done
for t in $TARGETS; do
    [[ $t == direct || $t == nginx || $t == tollgate || $t == tollgate-key ||
        $t == tollgate-bare || $t == tollgate-metrics || $t == tollgate-otel || $t == tollgate-otel10 ]] ||
        die "BENCH_TARGETS: '$t' is not direct|nginx|tollgate|tollgate-key|tollgate-bare|tollgate-metrics|tollgate-otel|tollgate-otel10"
done
[[ -n ${CONCURRENCY// /} && -n ${MODES// /} && -n ${TARGETS// /} ]] ||
    die "BENCH_CONCURRENCY, BENCH_MODES and BENCH_TARGETS must not be empty"
wants() { [[ " $TARGETS " == *" $1 "* ]]; }

# ---------------------------------------------------------------------------------------------
# Tools: nginx, wrk (Debian packages), the two release binaries (cargo)
# ---------------------------------------------------------------------------------------------
apt_install() { # pkg...
    [[ $(id -u) == 0 ]] || die "missing $*: install it (apt-get install -y $*) or run as root"
    log "installing $* (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2 && return 0
    log "apt-get install failed; running apt-get update and retrying"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2
}

find_nginx() { command -v nginx || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; } || true; }

for tool in taskset setsid ps pgrep ss; do
    command -v "$tool" >/dev/null || die "'$tool' not found (util-linux / procps / iproute2)"
done
command -v curl >/dev/null || apt_install curl
command -v wrk >/dev/null || apt_install wrk
NGINX=""
if wants nginx; then
    NGINX=$(find_nginx)
    if [[ -z $NGINX ]]; then
        apt_install nginx-light || apt_install nginx
        NGINX=$(find_nginx)
        [[ -n $NGINX ]] || die "nginx still not found after installing it"
    fi
fi

stale() { # binary: missing, or older than any source it may be built from
    local bin=$1 dirs=() d
    [[ -x $bin ]] || return 0
    for d in nodes shared proto Cargo.toml Cargo.lock; do
        [[ -e $ROOT/$d ]] && dirs+=("$ROOT/$d")
    done
    [[ -n $(find "${dirs[@]}" -newer "$bin" -type f \
        \( -name '*.rs' -o -name 'Cargo.toml' -o -name 'Cargo.lock' -o -name '*.proto' \) \
        -not -path '*/target/*' -print -quit 2>/dev/null) ]]
}
if stale "$TOLLGATE_BIN" || stale "$MOCK_BIN"; then
    command -v cargo >/dev/null || die "cargo not found; cannot build the release binaries"
    log "release binaries missing or older than the sources: building" \
        "(cargo build --release -p tollgate -p tollgate-mock-provider)"
    (cd "$ROOT" && cargo build --release -p tollgate -p tollgate-mock-provider >&2) ||
        die "cargo build --release failed"
fi
[[ -x $TOLLGATE_BIN && -x $MOCK_BIN ]] || die "release binaries not found after building"

NPROC=$(nproc)
((NPROC >= 2)) || die "needs at least 2 cores for pinning (gateway on core 0, load on core 1); nproc=$NPROC"

# ---------------------------------------------------------------------------------------------
# Processes: everything started here is recorded in PIDS and stopped on exit
# ---------------------------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-bench.XXXXXX")
PIDS=()
LAST_PID=""

cleanup() {
    local rc=$? pid i alive
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        alive=1
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || {
                alive=0
                break
            }
            sleep 0.1
        done
        if ((alive)); then
            log "process $pid did not stop on SIGTERM; sending SIGKILL"
            for i in $(pgrep -P "$pid" 2>/dev/null || true); do kill -KILL "$i" 2>/dev/null || true; done
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    if ((rc == 0 || rc == 130 || rc == 143)); then # success or interrupted: nothing to keep
        rm -rf "$WORK"
    else
        log "failed (exit $rc); logs kept in $WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_bg() { # name cmd... ; stdout -> $WORK/name.out, stderr -> $WORK/name.err; sets LAST_PID
    local name=$1
    shift
    "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

reaped() { # pid: a process this script waited for, no longer to be stopped on exit
    local i
    for i in "${!PIDS[@]}"; do [[ ${PIDS[$i]} == "$1" ]] && unset 'PIDS[$i]'; done
    return 0
}

alive_or_die() { # name pid
    kill -0 "$2" 2>/dev/null && return 0
    die "$1 exited early; last lines of $WORK/$1.err:
$(tail -n 15 "$WORK/$1.err" 2>/dev/null)"
}

wait_announced_port() { # name pid -> echo port from "listening on http://HOST:PORT"
    local name=$1 pid=$2 line i
    for ((i = 0; i < 600; i++)); do
        if line=$(grep -m1 -o 'listening on http://[0-9.]*:[0-9]*' "$WORK/$name.out" 2>/dev/null); then
            echo "${line##*:}"
            return 0
        fi
        alive_or_die "$name" "$pid"
        sleep 0.1
    done
    die "$name did not print 'listening on' within 60 s (see $WORK/$name.err)"
}

rss_kb() { # pid: RSS of the process plus its direct children (nginx master + worker)
    local total=0 p kb
    for p in "$1" $(pgrep -P "$1" 2>/dev/null || true); do
        kb=$(ps -o rss= -p "$p" 2>/dev/null | tr -d ' ' || true)
        total=$((total + ${kb:-0}))
    done
    echo "$total"
}
kb_to_mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
cpu_ns() { # pid: CPU time (user + system) of the process's threads and its direct children's, ns
    local total=0 p stat v
    for p in "$1" $(pgrep -P "$1" 2>/dev/null || true); do
        for stat in /proc/"$p"/task/*/schedstat; do
            # The first field is the thread's time on a CPU in nanoseconds.
            read -r v _ <"$stat" 2>/dev/null || continue
            total=$((total + v))
        done
    done
    echo "$total"
}
[[ -r /proc/self/schedstat ]] || die "/proc/PID/schedstat is missing (a kernel without CONFIG_SCHED_INFO)"

free_port() { # a port no socket uses, below the usual ephemeral range
    local used p
    used=$(ss -Htan | awk '{ n = split($4, a, ":"); print a[n] }' | sort -u)
    for ((i = 0; i < 500; i++)); do
        p=$((20000 + RANDOM % 12000))
        grep -qx "$p" <<<"$used" || {
            echo "$p"
            return 0
        }
    done
    die "no free port found"
}

declare -A URL PID IDLE_KB AUTH

# Mock provider (core 1). It is not under test, so its logging is kept quiet.
# Its billing log is turned off where the mock has that knob, so the mock's memory and work stay
# flat over millions of requests.
mock_args=(--host 127.0.0.1 --port 0)
if grep -q 'pub max_billing_records' "$ROOT/shared/mock/src/settings.rs" 2>/dev/null; then
    echo 'max_billing_records: 0' >"$WORK/mock.yaml"
    mock_args+=(--config "$WORK/mock.yaml")
fi
log "starting mock provider on core $LOAD_CORE"
RUST_LOG=warn start_bg mock taskset -c "$LOAD_CORE" "$MOCK_BIN" "${mock_args[@]}"
MOCK_PID=$LAST_PID
MOCK_PORT=$(wait_announced_port mock "$MOCK_PID")
URL[direct]=http://127.0.0.1:$MOCK_PORT
PID[direct]=$MOCK_PID
AUTH[direct]=$KEY

# nginx (core 0): bare keepalive reverse proxy to the mock, foreground, temp prefix.
if wants nginx; then
    NGX=$WORK/nginx
    mkdir -p "$NGX/tmp"
    extra=""
    build_flags=$("$NGINX" -V 2>&1 || true)
    for m in fastcgi uwsgi scgi; do
        [[ $build_flags == *"--without-http_${m}_module"* ]] ||
            extra+="${m}_temp_path $NGX/tmp/$m; "
    done
    errflag=() # -e (nginx >= 1.19.5) keeps the startup error log out of /var/log
    [[ $("$NGINX" -h 2>&1 || true) == *"-e filename"* ]] && errflag=(-e "$NGX/error.log")
    for attempt in 1 2 3; do
        NGINX_PORT=$(free_port)
        sed -e "s|@PREFIX@|$NGX|g" -e "s|@PORT@|$NGINX_PORT|g" -e "s|@MOCK_PORT@|$MOCK_PORT|g" \
            -e "s|@EXTRA_TEMP_PATHS@|$extra|" "$HERE/nginx.conf.template" >"$NGX/nginx.conf"
        "$NGINX" -t -q -p "$NGX" -c "$NGX/nginx.conf" "${errflag[@]}" 2>"$WORK/nginx-t.err" ||
            die "nginx rejected its config:
$(cat "$WORK/nginx-t.err")"
        log "starting nginx on core $GATEWAY_CORE, port $NGINX_PORT"
        start_bg nginx setsid taskset -c "$GATEWAY_CORE" "$NGINX" -p "$NGX" -c "$NGX/nginx.conf" "${errflag[@]}"
        NGINX_PID=$LAST_PID
        up=0
        for ((i = 0; i < 100; i++)); do
            kill -0 "$NGINX_PID" 2>/dev/null || break
            if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$NGINX_PORT/"; then
                up=1
                break
            fi
            sleep 0.1
        done
        ((up)) && break
        kill -0 "$NGINX_PID" 2>/dev/null && die "nginx did not answer on port $NGINX_PORT within 10 s"
        cat "$NGX/error.log" >>"$WORK/nginx.err" 2>/dev/null || true
        grep -qi 'address already in use' "$WORK/nginx.err" ||
            die "nginx exited early; last lines of its log:
$(tail -n 15 "$WORK/nginx.err")"
        log "nginx port $NGINX_PORT was taken; retrying"
    done
    ((up)) || die "nginx could not bind a port"
    URL[nginx]=http://127.0.0.1:$NGINX_PORT
    PID[nginx]=$NGINX_PID
    AUTH[nginx]=$KEY
fi

# One Tollgate node (core 0): one Tokio worker thread under this affinity. tollgate and
# tollgate-key are the same node, called with the master key and with a virtual key.
if wants tollgate || wants tollgate-key; then
    mkdir -p "$WORK/tollgate-data"
    cat >"$WORK/tollgate.yaml" <<EOF
model_list:
  - model_name: bench
    litellm_params:
      model: openai/bench
      api_base: "http://127.0.0.1:$MOCK_PORT/v1"
      api_key: sk-upstream
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
general_settings: { master_key: $KEY }
EOF
    log "starting tollgate on core $GATEWAY_CORE"
    start_bg tollgate setsid taskset -c "$GATEWAY_CORE" "$TOLLGATE_BIN" serve --admin-port 0 --config "$WORK/tollgate.yaml" \
        --port 0 --host 127.0.0.1 --data-dir "$WORK/tollgate-data" --drain-timeout 1
    TOLLGATE_PID=$LAST_PID
    TOLLGATE_PORT=$(wait_announced_port tollgate "$TOLLGATE_PID")
    URL[tollgate]=http://127.0.0.1:$TOLLGATE_PORT
    PID[tollgate]=$TOLLGATE_PID
    AUTH[tollgate]=$KEY
    URL[tollgate-key]=${URL[tollgate]}
    PID[tollgate-key]=$TOLLGATE_PID
    # A budget that never runs out and limits that never refuse during the run, so every
    # request goes through reservation, rate windows and settlement.
    curl -sS --max-time 10 -o "$WORK/key.json" -H "Authorization: Bearer $KEY" \
        -H 'Content-Type: application/json' "${URL[tollgate]}/key/generate" \
        --data '{"key_alias":"bench","max_budget":1000000,"budget_duration":"1mo","rpm_limit":1000000000,"tpm_limit":1000000000000}' ||
        die "could not generate the benchmark's virtual key"
    AUTH[tollgate-key]=$(sed -n 's/.*"key":"\(sk-[^"]*\)".*/\1/p' "$WORK/key.json")
    [[ -n ${AUTH[tollgate-key]} ]] || die "no key in /key/generate's answer: $(head -c 400 "$WORK/key.json")"
fi

# Observability on vs off: more nodes that differ only in their observability section.
declare -A OBSERVABILITY=(
    [tollgate-bare]='{ metrics: { enabled: false } }'
    [tollgate-metrics]='{}' # metrics on (the default), no traces
    [tollgate-otel]="{ otlp: { endpoint: \"http://127.0.0.1:$MOCK_PORT\", sample_ratio: 1 } }"
    [tollgate-otel10]="{ otlp: { endpoint: \"http://127.0.0.1:$MOCK_PORT\", sample_ratio: 0.1 } }"
)
start_variant() { # name
    local name=$1 observability=${OBSERVABILITY[$1]}
    printf '%s\n' "model_list:" "  - model_name: bench" \
        "    litellm_params: { model: openai/bench, api_base: \"http://127.0.0.1:$MOCK_PORT/v1\", api_key: sk-upstream }" \
        "general_settings: { master_key: $KEY }" "observability: $observability" >"$WORK/$name.yaml"
    mkdir -p "$WORK/$name-data"
    log "starting $name on core $GATEWAY_CORE"
    start_bg "$name" setsid taskset -c "$GATEWAY_CORE" "$TOLLGATE_BIN" serve --admin-port 0 \
        --config "$WORK/$name.yaml" --port 0 --host 127.0.0.1 --data-dir "$WORK/$name-data" \
        --drain-timeout 1
    PID[$name]=$LAST_PID
    URL[$name]=http://127.0.0.1:$(wait_announced_port "$name" "$LAST_PID")
    AUTH[$name]=$KEY
}
VARIANTS=()
for target in $TARGETS; do
    if [[ -n ${OBSERVABILITY[$target]:-} ]]; then
        VARIANTS+=("$target")
        start_variant "$target"
    fi
done
restart_variants() { # stops every variant, then starts each afresh (BENCH_RESTART=1)
    local name
    for name in "${VARIANTS[@]}"; do kill -TERM "${PID[$name]}" 2>/dev/null || true; done
    for name in "${VARIANTS[@]}"; do
        wait "${PID[$name]}" 2>/dev/null || true
        reaped "${PID[$name]}"
    done
    for name in "${VARIANTS[@]}"; do start_variant "$name"; done
}

# ---------------------------------------------------------------------------------------------
# Verify every target answers 200 (and Tollgate actually routed) before measuring
# ---------------------------------------------------------------------------------------------
body_for() { # mode
    if [[ $1 == stream ]]; then
        echo '{"model":"bench","messages":[{"role":"user","content":"hello"}],"max_tokens":16,"stream":true}'
    else
        echo '{"model":"bench","messages":[{"role":"user","content":"hello"}],"max_tokens":16}'
    fi
}

for target in $TARGETS; do
    for mode in $MODES; do
        code=$(curl -sS --max-time 10 -o "$WORK/verify.body" -D "$WORK/verify.headers" -w '%{http_code}' \
            -H "Authorization: Bearer ${AUTH[$target]}" -H 'Content-Type: application/json' \
            --data "$(body_for "$mode")" "${URL[$target]}/v1/chat/completions" 2>"$WORK/verify.err") ||
            die "$target ($mode): request to ${URL[$target]} failed: $(cat "$WORK/verify.err")"
        [[ $code == 200 ]] ||
            die "$target ($mode) answered HTTP $code, expected 200: $(head -c 400 "$WORK/verify.body")"
        if [[ $target == tollgate* ]] && ! grep -qi '^x-tollgate-deployment:' "$WORK/verify.headers"; then
            die "tollgate ($mode) answered 200 without an x-tollgate-deployment header; headers:
$(cat "$WORK/verify.headers")"
        fi
        if [[ $mode == stream ]] && ! grep -q '^data: ' "$WORK/verify.body"; then
            die "$target (stream) answered 200 but not with SSE 'data:' lines: $(head -c 400 "$WORK/verify.body")"
        fi
        if [[ $mode == nonstream ]] && ! grep -q '"choices"' "$WORK/verify.body"; then
            die "$target (nonstream) answered 200 without choices: $(head -c 400 "$WORK/verify.body")"
        fi
    done
    log "$target answers 200 at ${URL[$target]}"
done

mock_spans() { curl -sS --max-time 5 "${URL[direct]}/mock/spans" | sed -n 's/.*"received":\([0-9]*\).*/\1/p'; }
if wants tollgate-otel; then # its verification requests' spans must reach the sink (batched: ≤ 5 s)
    expected=0 # a request span and an upstream-attempt span per verification request
    for _ in $MODES; do expected=$((expected + 2)); done
    for ((i = 0; i < 80; i++)); do
        (($(mock_spans || echo 0) >= expected)) && break
        sleep 0.1
    done
    (($(mock_spans || echo 0) >= expected)) ||
        die "tollgate-otel's spans did not reach the OTLP sink (received $(mock_spans), expected $expected)"
    log "OTLP sink received $(mock_spans) spans from the verification requests"
fi

sleep 0.5
for target in $TARGETS; do IDLE_KB[$target]=$(rss_kb "${PID[$target]}"); done
if wants tollgate-key; then
    spent=$(curl -sS --max-time 10 -H "Authorization: Bearer ${AUTH[tollgate-key]}" "${URL[tollgate]}/key/info" |
        sed -n 's/.*"spend_nano_usd":\([0-9]*\).*/\1/p')
    [[ ${spent:-0} -gt 0 ]] || die "the virtual key's verification requests were not metered (spend ${spent:-?})"
fi

# ---------------------------------------------------------------------------------------------
# Load
# ---------------------------------------------------------------------------------------------
launch_wrk() { # target mode conc seconds outfile; starts wrk on the load core, sets WRK_PID
    local target=$1 mode=$2 conc=$3 secs=$4 out=$5 stream=0
    [[ $mode == stream ]] && stream=1
    BENCH_STREAM=$stream BENCH_KEY=${AUTH[$target]} taskset -c "$LOAD_CORE" \
        wrk -t1 -c"$conc" -d"${secs}s" --latency --timeout 10s -s "$HERE/chat.lua" "${URL[$target]}" \
        >"$out" 2>&1 &
    WRK_PID=$!
    PIDS+=("$WRK_PID")
}

await_wrk() { # target mode conc outfile pid; waits in the background so that Ctrl-C / SIGTERM
    # reach the trap at once
    local target=$1 mode=$2 conc=$3 out=$4 wpid=$5 rc=0
    wait "$wpid" || rc=$?
    reaped "$wpid"
    ((rc == 0)) || die "wrk failed against $target ($mode, c=$conc), exit $rc:
$(cat "$out")"
    grep -q '^BENCH ' "$out" || die "wrk printed no summary against $target ($mode, c=$conc):
$(cat "$out")"
    kill -0 "${PID[$target]}" 2>/dev/null || die "$target (pid ${PID[$target]}) died during the run (logs in $WORK)"
}

# run_wrk TARGET... MODE CONC SECONDS: one wrk per target, all at once, each writing
# $WORK/wrk-TARGET.txt; CPU_BEFORE[target] holds each target's CPU time (ns) at the start.
declare -A CPU_BEFORE WRK_PIDS
run_wrk() {
    local n=$(($# - 3)) target
    local -a targets=("${@:1:n}")
    local mode=${*:n+1:1} conc=${*:n+2:1} secs=${*:n+3:1}
    for target in "${targets[@]}"; do CPU_BEFORE[$target]=$(cpu_ns "${PID[$target]}"); done
    for target in "${targets[@]}"; do
        launch_wrk "$target" "$mode" "$conc" "$secs" "$WORK/wrk-$target.txt"
        WRK_PIDS[$target]=$WRK_PID
    done
    for target in "${targets[@]}"; do
        await_wrk "$target" "$mode" "$conc" "$WORK/wrk-$target.txt" "${WRK_PIDS[$target]}"
    done
}

field() { sed -n "s/.*[[:space:]]$1=\([0-9]*\).*/\1/p" <<<"$2"; }

median() { # numbers... -> the middle one (the lower middle for an even count)
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

declare -A RPS P50 P99 NON2XX SOCK RSS CPU_US ALL_RPS ALL_P50 ALL_P99 ALL_CPU
nruns=0
for _ in $MODES; do for _ in $CONCURRENCY; do for _ in $TARGETS; do nruns=$((nruns + ROUNDS)); done; done; done
ntargets=$(wc -w <<<"$TARGETS")
log "$nruns runs of ${DURATION}s (+${WARMUP}s warm-up before each target's first round)" \
    "$( ((SIMULTANEOUS)) && echo "in groups of $ntargets run at once"):" \
    "about $(( (SIMULTANEOUS ? nruns / ntargets : nruns) * (DURATION + 1) / 60 + 1)) min"

# account TARGET MODE CONC ROUND: records a finished run of TARGET from $WORK/wrk-TARGET.txt.
account() {
    local target=$1 mode=$2 conc=$3 round=$4 k="$2|$3|$1" line reqs dur rps p50 p99 cpu ns
    ns=$(($(cpu_ns "${PID[$target]}") - CPU_BEFORE[$target]))
    RSS[$k]=$(rss_kb "${PID[$target]}")
    cp "$WORK/wrk-$target.txt" "$WORK/run-$mode-$conc-$target-$round.txt"
    line=$(grep -m1 '^BENCH ' "$WORK/wrk-$target.txt")
    reqs=$(field requests "$line")
    dur=$(field duration_us "$line")
    rps=$(awk -v r="$reqs" -v d="$dur" 'BEGIN { printf "%.0f", (d > 0 ? r / (d / 1e6) : 0) }')
    p50=$(awk -v u="$(field p50_us "$line")" 'BEGIN { printf "%.3f", u / 1000 }')
    p99=$(awk -v u="$(field p99_us "$line")" 'BEGIN { printf "%.3f", u / 1000 }')
    cpu=$(awk -v ns="$ns" -v r="$reqs" 'BEGIN { printf "%.1f", (r > 0 ? ns / 1000 / r : 0) }')
    ALL_CPU[$k]+="$cpu "
    ALL_RPS[$k]+="$rps "
    ALL_P50[$k]+="$p50 "
    ALL_P99[$k]+="$p99 "
    NON2XX[$k]=$((${NON2XX[$k]:-0} + $(field non2xx "$line")))
    SOCK[$k]=$((${SOCK[$k]:-0} + $(field connect "$line") + $(field read "$line") +
        $(field write "$line") + $(field timeout "$line")))
    log "[$run/$nruns] $mode c=$conc $target (round $round): $rps req/s, p50 $p50 ms," \
        "p99 $p99 ms, non-2xx ${NON2XX[$k]}, socket errors ${SOCK[$k]}," \
        "RSS $(kb_to_mb "${RSS[$k]}") MB, CPU $cpu µs/request"
}

run=0
for mode in $MODES; do
    for conc in $CONCURRENCY; do
        for ((round = 1; round <= ROUNDS; round++)); do
            # The targets loaded together: all of them at once, or one after another.
            if ((SIMULTANEOUS)); then groups=("$TARGETS"); else read -r -a groups <<<"$TARGETS"; fi
            fresh=0
            if ((RESTART && round > 1 && ${#VARIANTS[@]} > 0)); then
                restart_variants
                fresh=1
            fi
            for group in "${groups[@]}"; do
                # shellcheck disable=SC2086 # word splitting intended: the group's targets
                ((WARMUP > 0 && (round == 1 || fresh))) && run_wrk $group "$mode" "$conc" "$WARMUP"
                # shellcheck disable=SC2086
                run_wrk $group "$mode" "$conc" "$DURATION"
                for target in $group; do
                    run=$((run + 1))
                    account "$target" "$mode" "$conc" "$round"
                done
            done
        done
        for target in $TARGETS; do
            k="$mode|$conc|$target"
            # shellcheck disable=SC2086 # word splitting intended: the rounds' values
            RPS[$k]=$(median ${ALL_RPS[$k]})
            # shellcheck disable=SC2086
            P50[$k]=$(median ${ALL_P50[$k]})
            # shellcheck disable=SC2086
            P99[$k]=$(median ${ALL_P99[$k]})
            # shellcheck disable=SC2086
            CPU_US[$k]=$(median ${ALL_CPU[$k]})
        done
    done
done

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
CPU=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
[[ -n $CPU ]] || CPU=$(awk -F': *' '/^(Hardware|cpu model|uarch)/ { print $2; exit }' /proc/cpuinfo)
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)

errors_cell() { # key
    local k=$1 cell=${NON2XX[$1]}
    ((SOCK[$k] > 0)) && cell+=" (+${SOCK[$k]} socket)"
    ((NON2XX[$k] > 0 || SOCK[$k] > 0)) && cell="**$cell**"
    echo "$cell"
}
has() { [[ -n ${RPS[$1]:-} ]]; }
# The median over rounds of key1's req/s ÷ key2's in the same round (runs minutes apart on a
# drifting VM compare worse than neighbours in one round).
ratio() { # key1 key2
    local -a a b
    read -r -a a <<<"${ALL_RPS[$1]}"
    read -r -a b <<<"${ALL_RPS[$2]}"
    local i out=()
    for i in "${!a[@]}"; do
        out+=("$(awk -v x="${a[$i]}" -v y="${b[$i]:-0}" 'BEGIN { printf "%.4f", (y > 0 ? x / y : 0) }')")
    done
    awk -v v="$(median "${out[@]}")" 'BEGIN { printf "%.2f", v }'
}
clean() { ((NON2XX[$1] == 0 && SOCK[$1] == 0)); }

report() {
    echo "# Tollgate gateway benchmark"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC') · nproc $NPROC · CPU: ${CPU:-unknown} · commit $COMMIT ·" \
        "loadavg at end $LOADAVG"
    echo
    echo "wrk -t1, ${DURATION}s per run, $ROUNDS interleaved rounds per cell (every target once per" \
        "round), median round shown; ${WARMUP}s warm-up before each target's first round; gateway" \
        "(nginx/tollgate) on core $GATEWAY_CORE, mock provider and wrk on core $LOAD_CORE; body: 1 user" \
        "message, max_tokens 16. non-2xx counts all rounds. RSS is the process under test (direct:" \
        "the mock; nginx: master + worker) right after its last run. CPU is the process under test's" \
        "user + system time during the run per request served (median round); at c=32/128 the" \
        "gateway's core is saturated, so it is the cost that bounds throughput, with less noise."
    if ((SIMULTANEOUS)); then
        echo
        echo "**Simultaneous rounds**: in each round every target was loaded at the same time, all" \
            "sharing the gateway core; compare targets by their ratios (CPU cost per request), not" \
            "by absolute req/s."
    fi
    echo
    echo "| mode | concurrency | target | req/s | p50 ms | p99 ms | non-2xx | RSS MB | CPU µs/req |"
    echo "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    local mode conc target k
    for mode in $MODES; do
        for conc in $CONCURRENCY; do
            for target in $TARGETS; do
                k="$mode|$conc|$target"
                echo "| $mode | $conc | $target | ${RPS[$k]} | ${P50[$k]} | ${P99[$k]} | $(errors_cell "$k") | $(kb_to_mb "${RSS[$k]}") | ${CPU_US[$k]} |"
            done
        done
    done
    echo
    local idle=""
    for target in $TARGETS; do
        idle+="${idle:+, }$target $(kb_to_mb "${IDLE_KB[$target]}") MB"
    done
    echo "Idle RSS before load: $idle."
    if wants tollgate-otel || wants tollgate-otel10; then
        echo
        echo "OTLP sink (in the mock, decoding each batch only as far as its span list): $(mock_spans) spans received."
    fi
    echo
    echo "## Ratios"
    echo
    echo "Throughput ratios are the median over rounds of the two targets' ratio within a round."
    echo
    echo "| check | value | target | result |"
    echo "| --- | ---: | --- | --- |"
    local t n d v verdict any=0 mode conc variant what
    # ratio_row TARGET BASELINE MINIMUM LABEL: one throughput-ratio row, when both ran.
    ratio_row() {
        has "$1" && has "$2" || return 0
        any=1
        v=$(ratio "$1" "$2")
        verdict=$(awk -v v="$v" -v min="$3" 'BEGIN { print (v >= min ? "PASS" : "FAIL") }')
        clean "$1" || verdict="FAIL (${1##*|} had errors)"
        echo "| $4 | $v | ≥ $3 | $verdict |"
    }
    for mode in $MODES; do
        for conc in 32 128; do
            ratio_row "$mode|$conc|tollgate" "$mode|$conc|nginx" 0.6 \
                "$mode c=$conc: tollgate req/s ÷ nginx req/s"
        done
        t="$mode|1|tollgate" n="$mode|1|nginx" d="$mode|1|direct"
        if has "$t" && has "$d"; then
            any=1
            v=$(awk -v a="${P50[$t]}" -v b="${P50[$d]}" 'BEGIN { printf "%.3f", a - b }')
            verdict=$(awk -v v="$v" 'BEGIN { print (v <= 0.15 ? "PASS" : "FAIL") }')
            clean "$t" || verdict="FAIL (tollgate had errors)"
            echo "| $mode c=1: tollgate p50 − direct p50 | $v ms | ≤ 0.15 ms | $verdict |"
        fi
        if has "$n" && has "$d"; then
            any=1
            v=$(awk -v a="${P50[$n]}" -v b="${P50[$d]}" 'BEGIN { printf "%.3f", a - b }')
            echo "| $mode c=1: nginx p50 − direct p50 | $v ms | (reference) | – |"
        fi
    done
    for mode in $MODES; do
        for conc in $CONCURRENCY; do
            ratio_row "$mode|$conc|tollgate-key" "$mode|$conc|tollgate" 0.9 \
                "$mode c=$conc: virtual key (budget, rpm, tpm) req/s ÷ master key req/s"
        done
    done
    for variant in tollgate-metrics tollgate-otel tollgate-otel10; do
        case $variant in
        tollgate-metrics) what="metrics, no traces" ;;
        tollgate-otel) what="metrics + OTLP traces (every request traced)" ;;
        *) what="metrics + OTLP traces (1 in 10 requests traced)" ;;
        esac
        for mode in $MODES; do
            for conc in $CONCURRENCY; do
                ratio_row "$mode|$conc|$variant" "$mode|$conc|tollgate-bare" 0.95 \
                    "$mode c=$conc: $what ÷ both off, req/s"
                # The same comparison as CPU time per request where the gateway's core is
                # saturated: reported beside the throughput check, not a check of its own.
                t="$mode|$conc|$variant" d="$mode|$conc|tollgate-bare"
                ((conc > 1)) && has "$t" && has "$d" || continue
                v=$(awk -v a="${CPU_US[$t]}" -v b="${CPU_US[$d]}" \
                    'BEGIN { printf "%.2f", (a > 0 ? b / a : 0) }')
                echo "| $mode c=$conc: both off ÷ $what, CPU µs per request (${CPU_US[$d]} ÷ ${CPU_US[$t]}) | $v | (cost) | – |"
            done
        done
    done
    ((any)) || echo "| (no ratio: needs tollgate with nginx at c=32/128, or with direct at c=1) | | | |"
}

mkdir -p "$ROOT/bench-results"
report | tee "$ROOT/bench-results/latest.md"
log "written to bench-results/latest.md"
