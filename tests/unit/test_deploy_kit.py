"""deploy/: the Kubernetes manifests keep the properties a replicated pair needs, and the kit's config,
secrets, alerts and dashboard stay in step with the application (settings, secret files, metric names)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from replicator.config import SECRET_FIELDS, load_config
from replicator.daemon import LIVENESS_PATH, Daemon, Metrics
from replicator.metrics_pair import pair_label

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
STATE_DIR = "/var/lib/scim-replicator"
SECRETS_DIR = "/run/secrets"


def documents(name: str) -> list[dict[str, Any]]:
    with open(KUBE / name, encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


def one(name: str, kind: str) -> dict[str, Any]:
    found = [doc for doc in documents(name) if doc["kind"] == kind]
    assert len(found) == 1, f"{name}: expected one {kind}, found {len(found)}"
    return found[0]


def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text(encoding="utf-8")


def check_pod(pod: dict[str, Any], *, where: str) -> dict[str, Any]:
    """The properties every pod of the kit must have; returns its one container."""
    (container,) = pod["containers"]
    security = pod["securityContext"]
    uid = re.search(r"^USER (\d+):(\d+)$", dockerfile(), re.M)
    assert uid, "Dockerfile: no USER uid:gid line"
    assert security["runAsNonRoot"] is True and security["runAsUser"] == int(uid.group(1)), where
    assert security["fsGroup"] == int(uid.group(2)), f"{where}: the state and secret files must be readable by the image's group"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True, where
    assert container["securityContext"]["allowPrivilegeEscalation"] is False, where
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "persistentVolumeClaim" in volumes[mounts[STATE_DIR]], f"{where}: the state path is not on a PVC"
    assert f"SCIMREP_STATE={STATE_DIR}/state.db" in dockerfile(), "the image's state path moved: move the mount too"
    assert "emptyDir" in volumes[mounts["/tmp"]], f"{where}: SQLite's scratch files need a writable /tmp"
    secret_volume = volumes[mounts[SECRETS_DIR]]
    assert secret_volume["secret"]["secretName"] == one("secret.yaml", "Secret")["metadata"]["name"], where
    for variable in container.get("env", []):  # credentials come as files only: no literal, no secretKeyRef
        assert "valueFrom" not in variable, f"{where}: {variable['name']} from a reference: mount it as a file"
        secretish = any(f in variable["name"].lower() for f in ("token", "password", "secret"))
        assert not secretish or variable["name"].endswith(("_FILE", "_SECRETS_DIR")), f"{where}: {variable['name']} is a literal"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"]) & set(container["resources"]["limits"]), where
    return container


def test_deployment_is_one_recreated_replica_with_probes_state_and_secret_files() -> None:
    """One replica, Recreate, liveness on /livez (503 while unhealthy) and readiness on /readyz on 8080,
    both paths the daemon serves, PVC at the state path, non-root, secrets as files."""
    deployment = one("deployment.yaml", "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    container = check_pod(pod, where="deployment.yaml")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    served = {resource.canonical for resource in Daemon(load_config(environ={}, need_endpoints=False)).make_app().router.resources()}
    for probe, path in (("livenessProbe", LIVENESS_PATH), ("readinessProbe", "/readyz")):
        assert set(container[probe]) & {"exec", "grpc", "tcpSocket"} == set(), f"{probe}: an httpGet probe only"
        get = container[probe]["httpGet"]
        assert get["path"] == path and path in served and ports.get(get["port"], get["port"]) == 8080, probe
    assert "SCIMREP_LISTEN=0.0.0.0:8080" in dockerfile()
    claim = {v["name"]: v for v in pod["volumes"]}["state"]["persistentVolumeClaim"]["claimName"]
    assert claim == one("pvc.yaml", "PersistentVolumeClaim")["metadata"]["name"]


def test_cronjob_runs_full_alone_on_its_own_state() -> None:
    """The CronJob runs `run --full` with concurrencyPolicy Forbid, never retried into overlap, on a PVC of its own."""
    cronjob = one("cronjob.yaml", "CronJob")
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    container = check_pod(pod, where="cronjob.yaml")
    assert container["args"] == ["run", "--full"]
    claim = {v["name"]: v for v in pod["volumes"]}["state"]["persistentVolumeClaim"]["claimName"]
    assert claim == one("cronjob.yaml", "PersistentVolumeClaim")["metadata"]["name"]
    assert claim != one("pvc.yaml", "PersistentVolumeClaim")["metadata"]["name"], "must not share the Deployment's state"
    kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text(encoding="utf-8"))
    assert "cronjob.yaml" not in kustomization["resources"], "the CronJob is an alternative to the Deployment, not beside it"
    assert all((KUBE / name).is_file() for name in kustomization["resources"])


def load_kit_config(tmp: Path) -> Any:
    """The Config the image builds from the kit: its ConfigMap as the TOML, its Secret as files, its env."""
    toml = tmp / "replicator.toml"
    toml.write_text(one("configmap.yaml", "ConfigMap")["data"]["replicator.toml"], encoding="utf-8")
    secrets = tmp / "secrets"
    secrets.mkdir()
    for key, value in one("secret.yaml", "Secret")["stringData"].items():
        (secrets / key).write_text(value, encoding="utf-8")
    environ = dict(re.findall(r"^\s+(SCIMREP_\w+)=(\S+)", dockerfile(), re.M))
    (container,) = one("deployment.yaml", "Deployment")["spec"]["template"]["spec"]["containers"]
    environ |= {v["name"]: v["value"] for v in container["env"] if v["name"].startswith("SCIMREP_")}
    assert environ["SCIMREP_CONFIG"] == "/etc/scim-replicator/replicator.toml"
    environ |= {"SCIMREP_CONFIG": str(toml), "SCIMREP_SECRETS_DIR": str(secrets)}
    return load_config(environ=environ)


def test_the_kit_configures_the_replicator(tmp_path: Path) -> None:
    """The ConfigMap's TOML, the Secret's files (scimrep_<side>_<field>) and the env load with no unknown key."""
    names = set(one("secret.yaml", "Secret")["stringData"])
    assert names and all(re.fullmatch(rf"scimrep_(source|destination)_({'|'.join(SECRET_FIELDS)})", n) for n in names)
    config = load_kit_config(tmp_path)
    assert config.source.client_secret == "CHANGE-ME" and config.destination.client_secret == "CHANGE-ME"
    assert config.source.url.startswith("https://scim-api.pingone.") and config.state == f"{STATE_DIR}/state.db"
    assert config.listen == "0.0.0.0:8080"
    (container,) = one("deployment.yaml", "Deployment")["spec"]["template"]["spec"]["containers"]
    mounted = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/etc/scim-replicator" in mounted
    pod = one("deployment.yaml", "Deployment")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > config.grace, "SIGTERM's drain must end before the kill"


def metric_names(text: str) -> set[str]:
    """scimrep_* names a rule or panel uses, as families (without _total, _bucket, _sum, _count)."""
    return {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in re.findall(r"\bscimrep_[a-z_]+", text)}


def test_alerts_and_dashboard_use_only_exported_metrics() -> None:
    """Every metric the alert rules and the dashboard query is one the daemon declares; the dashboard shows them all."""
    declared = {family.name for family in Metrics().registry.collect()}
    alerts = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text(encoding="utf-8"))
    exprs = " ".join(rule["expr"] for group in alerts["groups"] for rule in group["rules"])
    assert metric_names(exprs) <= declared, metric_names(exprs) - declared
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "scim-replicator.json").read_text(encoding="utf-8"))
    queries = " ".join(t["expr"] for panel in dashboard["panels"] for t in panel["targets"])
    assert metric_names(queries) <= declared, metric_names(queries) - declared
    assert declared <= metric_names(queries), f"not on the dashboard: {declared - metric_names(queries)}"


def dashboard() -> dict[str, Any]:
    return json.loads((ROOT / "deploy" / "grafana" / "scim-replicator.json").read_text(encoding="utf-8"))


def test_the_daemon_labels_every_sample_with_its_pair(tmp_path: Path) -> None:
    """The kit's daemon exports the ConfigMap's `pair` on every sample; without the setting, both URLs'
    host and path (no user, query or scheme): the same after a restart, another for another pair."""
    config = load_kit_config(tmp_path)
    assert config.pair
    exposition = Daemon(config).metrics.render().decode()
    sample_lines = [line for line in exposition.splitlines() if line.startswith("scimrep_")]
    assert sample_lines and all(f'pair="{config.pair}"' in line for line in sample_lines)
    unnamed = load_config(environ={"SCIMREP_SOURCE_URL": "https://idp.example.com/scim/v2?tenant=7",
                                   "SCIMREP_DESTINATION_URL": "https://apps.example.net:8443/scim/v2/"})
    assert pair_label(unnamed) == "idp.example.com/scim/v2 -> apps.example.net:8443/scim/v2"
    other = load_config(environ={"SCIMREP_SOURCE_URL": "https://idp.example.com/scim/v2",
                                 "SCIMREP_DESTINATION_URL": "https://crm.example.net/scim/v2"})
    assert pair_label(other) != pair_label(unnamed)
    assert 'pair="idp.example.com/scim/v2 -> apps.example.net:8443/scim/v2"' in Daemon(unnamed).metrics.render().decode()


def test_the_dashboard_and_the_alerts_tell_pairs_apart_by_pair_not_instance() -> None:
    """The dashboard's Pair variable is the `pair` label: every metric it queries is filtered by it, every
    sum keeps it, every legend names it, and `instance` is used nowhere; every alert rule over the
    daemon's metrics keeps `pair` and names it in its summary."""
    board = dashboard()
    (variable,) = [v for v in board["templating"]["list"] if v["type"] == "query"]
    assert variable["name"] == "pair" and variable["definition"] == "label_values(scimrep_ready, pair)"
    assert "instance" not in json.dumps(board)
    for target in (t for panel in board["panels"] for t in panel["targets"]):
        selectors = re.findall(r"\bscimrep_[a-z_]+(\{[^}]*\})?", target["expr"])
        assert selectors and all(s == '{pair=~"$pair"}' for s in selectors), target["expr"]
        assert all("pair" in by.split(", ") for by in re.findall(r"\bby \(([^)]*)\)", target["expr"])), target["expr"]
        assert target["legendFormat"].startswith("{{pair}}"), target
    alerts = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text(encoding="utf-8"))
    for rule in (r for group in alerts["groups"] for r in group["rules"] if "scimrep_" in r["expr"]):
        assert "{{ $labels.pair }}" in rule["annotations"]["summary"], rule["alert"]
        assert " by (" not in rule["expr"], f"{rule['alert']}: `sum by` drops pair; use `sum without`"
        assert all("pair" not in dropped for dropped in re.findall(r"without \(([^)]*)\)", rule["expr"])), rule["alert"]
