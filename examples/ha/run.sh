#!/usr/bin/env bash
# Two hub replicas on one Postgres database, as plain processes on 127.0.0.1: what the
# Kubernetes manifests in kubernetes/ run as a Deployment of two pods.
#
#   examples/ha/run.sh           # start everything, check it, keep it running until Ctrl-C
#   examples/ha/run.sh --check   # start everything, check it, stop everything
#
# Binaries come from $BIN (default: the repository's target/debug; build them with
# `cargo build -p trellis-server`), files go to $WORK (default: a fresh temporary directory,
# removed at exit).
# With $DATABASE_URL (postgres://…) the replicas use that database; without it the script
# starts a throwaway Postgres from the local server binaries (initdb, pg_ctl) on a free port.
# Needs kubectl.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN="${BIN:-$HERE/../../target/debug}"
# A directory the script made is removed when it exits; one given in $WORK is kept.
OWN_WORK=false
[ -z "${WORK:-}" ] && OWN_WORK=true
WORK="${WORK:-$(mktemp -d)}"
CHECK_ONLY=false
[ "${1:-}" = "--check" ] && CHECK_ONLY=true
export PATH="$BIN:$PATH"
PIDS=()
PG_DATA=""
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$PG_DATA" ]; then as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast stop >/dev/null 2>&1 || true; fi
  if $OWN_WORK; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
# Waits up to $1 seconds for a command to succeed.
until_ok() {
  local limit=$1; shift
  for _ in $(seq $((limit * 4))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  echo "timed out: $*" >&2; return 1
}
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
  done
}

if [ -z "${DATABASE_URL:-}" ]; then
  step "Postgres (throwaway, in $WORK/pg)"
  PG_BIN="$(dirname "$(readlink -f "$(command -v initdb || ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")")"
  PG_PORT="$(free_port)"
  PG_DATA="$WORK/pg"
  mkdir -p "$PG_DATA"
  if [ "$(id -u)" = 0 ]; then chmod 755 "$WORK"; chown postgres "$PG_DATA"; fi
  as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U trellis -A trust --no-sync >"$WORK/initdb.log"
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DATA/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DATA -c fsync=off" start >/dev/null
  "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U trellis trellis
  DATABASE_URL="postgres://trellis@127.0.0.1:$PG_PORT/trellis"
fi
echo "database: $DATABASE_URL"

# Replica a creates the CA; replica b starts with a copy of it, so that one admin kubeconfig
# (a client certificate from the CA) works on both, as the Secret trellis-ca does on Kubernetes.
start_replica() {
  local name=$1
  trellis start --store "$DATABASE_URL" --data-dir "$WORK/$name" --listen 127.0.0.1:0 \
    >"$WORK/$name.log" 2>&1 & PIDS+=($!)
  until_ok 60 kubectl --kubeconfig "$WORK/$name/admin.kubeconfig" get --raw /readyz
}
server_of() {
  kubectl --kubeconfig "$WORK/$1/admin.kubeconfig" config view --minify \
    -o jsonpath='{.clusters[0].cluster.server}'
}
step "Two replicas on one database"
start_replica a
mkdir -p "$WORK/b"
cp "$WORK/a/ca.crt" "$WORK/a/ca.key" "$WORK/b/"
start_replica b
A="$(server_of a)"
B="$(server_of b)"
echo "replica a: $A"
echo "replica b: $B"
export KUBECONFIG="$WORK/a/admin.kubeconfig"
on() { local server=$1; shift; kubectl --server "$server" "$@"; }

step "A write through a reaches b; a write through b reaches a"
on "$A" create configmap written-via-a --from-literal=by=a
on "$B" get configmap written-via-a -o jsonpath='{.data.by}{"\n"}'
on "$B" create configmap written-via-b --from-literal=by=b
on "$A" get configmap written-via-b -o jsonpath='{.data.by}{"\n"}'
[ "$(on "$A" get configmap written-via-a -o jsonpath='{.metadata.resourceVersion}')" = \
  "$(on "$B" get configmap written-via-a -o jsonpath='{.metadata.resourceVersion}')" ]

step "The controllers run on one replica at a time (leader election on a Lease)"
until_ok 30 bash -c "[ -n \"\$(kubectl --server '$A' -n kube-system get lease trellis-controllers -o jsonpath='{.spec.holderIdentity}')\" ]"
on "$A" -n kube-system get lease trellis-controllers -o jsonpath='{.spec.holderIdentity}{"\n"}'

echo
echo "ha check passed"
if ! $CHECK_ONLY; then
  echo "replicas running; admin kubeconfig: $KUBECONFIG (server $A; use --server $B for b). Ctrl-C stops."
  wait
fi
