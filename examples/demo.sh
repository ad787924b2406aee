#!/usr/bin/env bash
# The README demo: install gitopsd, start the dev cluster, put examples/repo in a Git
# repository, then show a first sync, a drift made by hand, its diff and its correction.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install -q --disable-pip-version-check -e .
kubeconfig=$(python3 scripts/dev-cluster up | tail -n 1)
kubectl() { "$(python3 scripts/dev-cluster build 2>/dev/null | tail -n 1)/kubectl" --kubeconfig "$kubeconfig" "$@"; }

work=$(mktemp -d -t gitopsd-demo.XXXXXX)
cp -r examples/repo "$work/repo"
git -C "$work/repo" init -q -b main
git -C "$work/repo" add -A
git -C "$work/repo" -c user.name=demo -c user.email=demo@example.com commit -q -m "sample app"

cat > "$work/gitopsd.yaml" <<YAML
state_dir: state
interval: 10s
targets:
  - name: demo
    repo: repo
    branch: main
    kubeconfig: $kubeconfig
    namespace: demo
    inventory_namespace: default
YAML
gitopsd() { command gitopsd --config "$work/gitopsd.yaml" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "first sync: gitopsd --once"
gitopsd --once --log-level warning
kubectl -n demo get configmap,deployment,service

step "a drift made by hand: kubectl patch"
kubectl -n demo patch configmap web-config --type merge -p '{"data":{"greeting":"edited by hand"}}'
kubectl -n demo scale deployment web --replicas 5

step "what gitopsd would change: gitopsd diff (exit code 3: differences)"
gitopsd diff --log-level warning || [ $? -eq 3 ]

step "the correction: gitopsd --once"
gitopsd --once --log-level warning
kubectl -n demo get configmap web-config -o jsonpath='{.data.greeting}{"\n"}'
kubectl -n demo get deployment web -o jsonpath='{.spec.replicas}{"\n"}'

step "the journal: gitopsd history"
gitopsd history

step "a kustomize overlay as a second target: examples/kustomize, path overlays/prod"
cp -r examples/kustomize "$work/kustomize"
git -C "$work/kustomize" init -q -b main
git -C "$work/kustomize" add -A
git -C "$work/kustomize" -c user.name=demo -c user.email=demo@example.com commit -q -m "overlays"
kustomize=$(python3 scripts/dev-cluster build 2>/dev/null | grep '/kustomize$')
cat >> "$work/gitopsd.yaml" <<YAML
  - name: demo-prod
    repo: kustomize
    branch: main
    path: overlays/prod             # render: auto finds kustomization.yaml
    kubeconfig: $kubeconfig
    inventory_namespace: default
    substitute: {REGION: us-east-1}  # replaces \${REGION:=eu-west-1} in the overlay
    tools: {kustomize: $kustomize}
YAML
gitopsd validate
gitopsd --once --log-level warning
kubectl -n demo-prod get configmap web-config -o jsonpath='{.data}{"\n"}'
kubectl -n demo-prod get deployment web -o jsonpath='{.spec.replicas}{"\n"}'

echo
echo "configuration and state: $work (stop the cluster with: scripts/dev-cluster down)"
