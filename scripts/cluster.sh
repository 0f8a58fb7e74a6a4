#!/usr/bin/env bash
# Starts or stops the local control plane (kube-apiserver + embedded etcd, see
# test/controlplane) for manual use: `make cluster-up`, then `kubectl` with
# KUBECONFIG=.local/kubeconfig. Tests start control planes of their own (free port, own
# folder) and do not use this one.
#
#   scripts/cluster.sh up     start in the background and wait for /readyz (idempotent)
#   scripts/cluster.sh down   SIGTERM, wait, SIGKILL after a timeout (idempotent)
#   scripts/cluster.sh status
#
# CONTROLPLANE_PORT overrides the secure port (default 16443).
set -euo pipefail
cd "$(dirname "$0")/.."

LOCAL=$PWD/.local
BINARY=$LOCAL/bin/controlplane
KUBECTL=$LOCAL/bin/kubectl
STATE_DIR=$LOCAL/controlplane
KUBECONFIG_FILE=$LOCAL/kubeconfig
PID_FILE=$LOCAL/controlplane.pid
LOG_FILE=$LOCAL/controlplane.log
PORT=${CONTROLPLANE_PORT:-16443}
READY_TIMEOUT=${CONTROLPLANE_READY_TIMEOUT:-90}
STOP_TIMEOUT=${CONTROLPLANE_STOP_TIMEOUT:-30}

say() { printf '[cluster] %s\n' "$*"; }
die() { printf '[cluster] error: %s\n' "$*" >&2; exit 1; }

# The pid of our control plane, if it runs: from the pid file, checked against
# /proc so that a recycled pid is never signalled; else any process started with our
# (absolute, per-clone) state folder.
running_pid() {
  local pid
  if [ -f "$PID_FILE" ]; then
    pid=$(cat "$PID_FILE")
    if [[ $pid =~ ^[0-9]+$ ]] && [ -r "/proc/$pid/cmdline" ] &&
      tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "--dir=$STATE_DIR "; then
      echo "$pid"
      return 0
    fi
    rm -f "$PID_FILE"
  fi
  pid=$(pgrep -f -- "--dir=$STATE_DIR( |\$)" | head -n 1 || true)
  [ -n "$pid" ] && echo "$pid"
}

# Alive and not a zombie (an unreaped zombie still answers kill -0).
alive() {
  local state
  state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

ready() {
  "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" --request-timeout=2s get --raw /readyz >/dev/null 2>&1
}

now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

up() {
  [ -x "$BINARY" ] || die "$BINARY is missing; run make setup"
  [ -x "$KUBECTL" ] || die "$KUBECTL is missing; run make setup"
  local pid start
  start=$(now)
  pid=$(running_pid || true)
  if [ -n "$pid" ]; then
    if ready; then
      say "already up (pid $pid, KUBECONFIG=$KUBECONFIG_FILE)"
      return 0
    fi
    say "pid $pid is running but not ready yet; waiting"
  else
    mkdir -p "$LOCAL"
    : > "$LOG_FILE"
    # setsid: its own session, so a Ctrl-C in this terminal later does not reach it.
    # The shell writes its pid, then becomes the control plane (exec keeps the pid).
    setsid bash -c 'echo $$ > "$0"; exec "$@"' "$PID_FILE" \
      "$BINARY" --dir="$STATE_DIR" --port="$PORT" --kubeconfig="$KUBECONFIG_FILE" \
      < /dev/null >> "$LOG_FILE" 2>&1 &
    for _ in $(seq 50); do [ -s "$PID_FILE" ] && break; sleep 0.1; done
    pid=$(cat "$PID_FILE" 2>/dev/null || true)
    [ -n "$pid" ] || die "the control plane did not start; see $LOG_FILE"
    say "started pid $pid on https://127.0.0.1:$PORT (log: $LOG_FILE)"
  fi
  local deadline=$((SECONDS + READY_TIMEOUT))
  until ready; do
    if ! alive "$pid"; then
      rm -f "$PID_FILE"
      tail -n 20 "$LOG_FILE" >&2 || true
      die "the control plane exited before /readyz answered; see $LOG_FILE"
    fi
    if [ $SECONDS -ge $deadline ]; then
      die "/readyz did not answer within ${READY_TIMEOUT}s (pid $pid still runs; see $LOG_FILE)"
    fi
    sleep 0.2
  done
  say "ready in $(elapsed "$start")s; export KUBECONFIG=$KUBECONFIG_FILE"
}

down() {
  local pid start
  pid=$(running_pid || true)
  if [ -z "$pid" ]; then
    rm -f "$PID_FILE"
    say "not running"
    return 0
  fi
  start=$(now)
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while alive "$pid"; do
    if [ $SECONDS -ge $deadline ]; then
      say "pid $pid still runs after ${STOP_TIMEOUT}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      while alive "$pid"; do sleep 0.1; done
      break
    fi
    sleep 0.1
  done
  rm -f "$PID_FILE"
  say "stopped pid $pid in $(elapsed "$start")s"
}

status() {
  local pid
  pid=$(running_pid || true)
  if [ -z "$pid" ]; then
    say "not running"
    return 1
  fi
  if ready; then say "up (pid $pid, ready)"; else say "running (pid $pid, not ready)"; fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
