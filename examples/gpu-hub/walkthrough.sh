#!/usr/bin/env bash
# The README's walkthrough, as one script: a hub, two simulated GPU clusters with their
# syncers, a GPU pool, two tenants, a model deployment, and a failover when one cluster's
# syncer dies. Everything runs on 127.0.0.1 from the binaries in $BIN (default: the
# repository's target/debug; build them with
# `cargo build -p trellis-server -p trellis-edge -p trellis-syncer`), in $WORK (default: a
# fresh temporary directory), and is stopped when the script exits. Needs kubectl (1.30+).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN="${BIN:-$HERE/../../target/debug}"
WORK="${WORK:-$(mktemp -d)}"
export PATH="$BIN:$PATH"
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
# Runs and shows a command.
run() { printf '$ %s\n' "$*"; "$@"; }
# Waits up to $1 seconds for a command to succeed.
until_ok() {
  local limit=$1; shift
  for _ in $(seq $((limit * 4))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  echo "timed out: $*" >&2; return 1
}

step "1. The hub (embedded store in $WORK/hub)"
trellis start --data-dir "$WORK/hub" --listen 127.0.0.1:0 >"$WORK/hub.log" 2>&1 & PIDS+=($!)
export KUBECONFIG="$WORK/hub/admin.kubeconfig"
until_ok 60 kubectl get --raw /readyz
HUB="$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')"
HUB="${HUB%/clusters/*}"
# kubectl in a workspace (or `kubectl ws root:acme` to switch the kubeconfig there).
in_ws() { local ws=$1; shift; kubectl --server "$HUB/clusters/$ws" "$@"; }
run kubectl apply -f "$HERE/tenants.yaml"
for ws in platform acme globex; do until_ok 30 in_ws "root:$ws" get namespace default; done
run kubectl get workspaces

step "2. Two simulated GPU clusters, two nodes of eight H200s each"
for edge in eu-1 eu-2; do
  trellis-edge --listen 127.0.0.1:0 --data-dir "$WORK/$edge" --kubeconfig-out "$WORK/$edge.kubeconfig" \
    --nodes 2 --gpus-per-node 8 --pod-start-delay 1s --pod-ready-delay 1s >"$WORK/$edge.log" 2>&1 & PIDS+=($!)
done
for edge in eu-1 eu-2; do until_ok 60 kubectl --kubeconfig "$WORK/$edge.kubeconfig" get --raw /readyz; done
run kubectl --kubeconfig "$WORK/eu-1.kubeconfig" get nodes

step "3. Register them and start their syncers"
declare -A SYNCER
for edge in eu-1 eu-2; do
  run trellis synctarget create "$edge" --workspace root:platform -o "$WORK/$edge-syncer.kubeconfig" \
    --kubeconfig "$KUBECONFIG"
  trellis-syncer --hub-kubeconfig "$WORK/$edge-syncer.kubeconfig" --target "root:platform:$edge" \
    --kubeconfig "$WORK/$edge.kubeconfig" --heartbeat-interval 5s >"$WORK/$edge-syncer.log" 2>&1 & PIDS+=($!)
  SYNCER[$edge]=$!
done
for edge in eu-1 eu-2; do
  until_ok 60 in_ws root:platform wait --for=jsonpath='{.status.gpus[0].totalDevices}'=16 "synctarget/$edge" --timeout=1s
done
run in_ws root:platform get synctargets

step "4. The GPU pool, with quotas for acme and globex"
run in_ws root:platform apply -f "$HERE/pool.yaml"

step "5. acme deploys a model"
run in_ws root:acme apply -f "$HERE/llama.yaml"
run in_ws root:acme wait --for=condition=Ready modeldeployment/llama --timeout=60s
run in_ws root:acme get modeldeployments
HOME_TARGET="$(in_ws root:acme get modeldeployment llama -o jsonpath='{.status.placements[0].target}')"
OTHER_TARGET=eu-1; [ "$HOME_TARGET" = eu-1 ] && OTHER_TARGET=eu-2
echo "llama runs on $HOME_TARGET:"
run kubectl --kubeconfig "$WORK/$HOME_TARGET.kubeconfig" get deployments -A -l app.kubernetes.io/managed-by=trellis-syncer
# globex sees none of it.
run in_ws root:globex get modeldeployments -A

step "6. $HOME_TARGET's syncer dies: after the hub's 40 s heartbeat timeout and the 10 s toleration, llama moves to $OTHER_TARGET"
run kill "${SYNCER[$HOME_TARGET]}"
until_ok 120 bash -c "[ \"\$(kubectl --server '$HUB/clusters/root:acme' get modeldeployment llama -o jsonpath='{.status.placements[*].target}')\" = $OTHER_TARGET ]"
run in_ws root:acme wait --for=condition=Ready modeldeployment/llama --timeout=60s
run in_ws root:acme get modeldeployment llama -o jsonpath='{.status.placements[*].target}{"\n"}'
run kubectl --kubeconfig "$WORK/$OTHER_TARGET.kubeconfig" get deployments -A -l app.kubernetes.io/managed-by=trellis-syncer
echo
echo "walkthrough complete"
