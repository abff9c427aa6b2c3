#!/usr/bin/env bash
# Checks of the deployable kit (deploy/), run by .ci/run inside its virtualenv: the Kubernetes manifests
# against the API schemas (kubernetes-validate, pinned), the Prometheus rules and their unit tests
# (promtool, from the Debian/Ubuntu package `prometheus`, installed once), the dashboard's JSON and its queries.
set -euo pipefail
cd "$(dirname "$0")/.."
KUBERNETES_VALIDATE=1.37.0

python -m pip install --quiet "kubernetes-validate==${KUBERNETES_VALIDATE}"
manifests=()
for file in deploy/kubernetes/*.yaml; do
  [ "$(basename "$file")" = kustomization.yaml ] || manifests+=("$file")  # not a Kubernetes resource
done
kubernetes-validate --strict --quiet "${manifests[@]}"

if ! command -v promtool >/dev/null 2>&1; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo ".ci/deploy-checks.sh: promtool is missing and apt-get is not available: install the package 'prometheus' (it has promtool)" >&2
    exit 1
  fi
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo ".ci/deploy-checks.sh: installing 'prometheus' needs root or sudo" >&2; exit 1; }
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq >/dev/null
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
promtool check rules deploy/prometheus/alerts.yml
(cd deploy/prometheus && promtool test rules alerts.test.yml)

python -m json.tool deploy/grafana/scim-replicator.json >/dev/null \
  || { echo ".ci/deploy-checks.sh: deploy/grafana/scim-replicator.json is not valid JSON" >&2; exit 1; }
# the dashboard's queries parse as PromQL: promtool checks them as the expressions of recording rules
# (Grafana's variables given a value: $pair all pairs, $__rate_interval 5m)
queries="$(mktemp)"
trap 'rm -f "$queries"' EXIT
python - deploy/grafana/scim-replicator.json >"$queries" <<'PY'
import json, sys
with open(sys.argv[1], encoding="utf-8") as handle:
    panels = json.load(handle)["panels"]
exprs = [target["expr"] for panel in panels for target in panel["targets"]]
rules = [{"record": f"dashboard:query_{i}", "expr": expr.replace("$__rate_interval", "5m").replace("$pair", ".*")}
         for i, expr in enumerate(exprs)]
json.dump({"groups": [{"name": "scim-replicator dashboard queries", "rules": rules}]}, sys.stdout)
PY
promtool check rules "$queries" \
  || { echo ".ci/deploy-checks.sh: a query of deploy/grafana/scim-replicator.json does not parse as PromQL (above)" >&2; exit 1; }
echo "deploy kit: manifests, alert rules and dashboard OK"
