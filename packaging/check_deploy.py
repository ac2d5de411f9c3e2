"""Consistency checks of the deployment files that a schema cannot express.

Run by packaging/check.sh with the venv of packaging/tools.sh (PyYAML comes with
kubernetes-validate). The shell in the StatefulSet and the entrypoint of the image run
here with a stub `roster` on PATH that prints its arguments, so what is checked is the
command line the real pods and containers would run.
"""

import os
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)


def stub_run(argv, env):
    """Runs argv with a `roster` stub first on PATH; returns the arguments it got."""
    with tempfile.TemporaryDirectory() as d:
        stub = os.path.join(d, "roster")
        with open(stub, "w") as f:
            f.write('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
        os.chmod(stub, 0o755)
        full = {"PATH": d + ":/usr/bin:/bin", "TMPDIR": d}
        full.update(env)
        out = subprocess.run(argv, env=full, capture_output=True, text=True)
        if out.returncode != 0:
            failures.append(f"{argv[:2]} exited {out.returncode}: {out.stderr.strip()}")
            return []
        return out.stdout.splitlines()


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def kubernetes():
    with open(os.path.join(HERE, "kubernetes", "roster.yaml")) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    with open(os.path.join(HERE, "kubernetes", "secret.example.yaml")) as f:
        secret = yaml.safe_load(f)
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    sts = by_kind["StatefulSet"][0]
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    c = pod["containers"][0]
    env = env_of(c)
    services = {s["metadata"]["name"]: s for s in by_kind["Service"]}
    headless = services.get(spec["serviceName"])
    check(headless is not None, "serviceName names no Service")
    check(headless and headless["spec"].get("clusterIP") == "None", "the StatefulSet's Service is not headless")
    check(headless and headless["spec"].get("publishNotReadyAddresses") is True,
          "headless Service must publish not-ready addresses (members meet before any is ready)")
    clients = [s for s in services.values() if s["spec"].get("clusterIP") != "None"]
    check(len(clients) == 1, "want one client Service")
    for s in clients:
        check({p["port"] for p in s["spec"]["ports"]} >= {8848, 9848}, "client Service lacks 8848 or 9848")
    labels = spec["selector"]["matchLabels"]
    for s in services.values():
        check(s["spec"]["selector"] == labels, f"Service {s['metadata']['name']} selects other pods")
    check(spec.get("podManagementPolicy") == "Parallel", "podManagementPolicy must be Parallel for --bootstrap-expect")
    check(env.get("ROSTER_REPLICAS") == str(spec["replicas"]), "ROSTER_REPLICAS differs from spec.replicas")
    check(env.get("ROSTER_NODE_ID") == "$(POD_NAME)", "the node id is not the pod name")
    pod_name = [e for e in c["env"] if e["name"] == "POD_NAME"]
    check(pod_name and pod_name[0]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name", "POD_NAME is not metadata.name")
    check(c["readinessProbe"]["httpGet"]["path"] == "/readyz", "readiness is not /readyz")
    check("livenessProbe" in c, "no liveness probe")
    check({p["containerPort"] for p in c["ports"]} == {8848, 9848, 7848}, "container ports are not 8848/9848/7848")
    claims = {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    check(any(mounts.get(n) == env.get("ROSTER_DATA_DIR") for n in claims), "ROSTER_DATA_DIR is not on a volumeClaimTemplate")
    secrets = {v["name"]: v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v}
    keyfile = env.get("ROSTER_CLUSTER_KEY_FILE", "")
    check(any(os.path.dirname(keyfile) == mounts.get(n) and s == secret["metadata"]["name"]
              for n, s in secrets.items()), "ROSTER_CLUSTER_KEY_FILE is not in the cluster key Secret's mount")
    check(os.path.basename(keyfile) in secret["stringData"], "the Secret has no key named like ROSTER_CLUSTER_KEY_FILE")
    for v in pod.get("volumes", []):
        if "secret" in v:
            check(v["secret"].get("defaultMode", 0o644) & 0o007 == 0, "the key file would be readable by others (roster refuses it)")
    check(pod["securityContext"].get("runAsNonRoot") is True, "pods may run as root")
    pdbs = by_kind.get("PodDisruptionBudget", [])
    check(len(pdbs) == 1 and pdbs[0]["spec"]["selector"]["matchLabels"] == labels, "no PodDisruptionBudget over the pods")
    if pdbs:
        p = pdbs[0]["spec"]
        replicas = spec["replicas"]
        ok = p.get("maxUnavailable") == 1 or p.get("minAvailable") == replicas // 2 + 1
        check(ok, "the PodDisruptionBudget does not keep a quorum")
    # The pod's command line, from its own shell.
    ns, replicas = "prod", spec["replicas"]
    got = stub_run(c["command"] + c["args"], {"POD_NAME": "roster-1", "POD_NAMESPACE": ns, "ROSTER_REPLICAS": str(replicas)})
    host = lambda i: f"roster-{i}.{spec['serviceName']}.{ns}.svc.cluster.local:8848"
    want = ["server", "--join", ",".join(host(i) for i in range(replicas)), "--bootstrap-expect", str(replicas)]
    check(got == want, f"the pod runs {got}, want {want}")
    http = env.get("ROSTER_HTTP_ADDR", "").replace("$(POD_NAME)", "roster-1").replace("$(POD_NAMESPACE)", ns)
    check(http == host(1), f"ROSTER_HTTP_ADDR {http} is not the pod's name in the join list")
    print("kubernetes: consistent" if not failures else "kubernetes: inconsistent")


def compose():
    with open(os.path.join(HERE, "compose.yaml")) as f:
        doc = yaml.safe_load(f)
    services = doc["services"]
    check(len(services) == 3, "compose.yaml does not run three nodes")
    keys, volumes, ports = set(), set(), set()
    for name, svc in services.items():
        env = {k: str(v) for k, v in svc["environment"].items()}
        env["ROSTER_CLUSTER_KEY"] = "k" * 64  # what the compose file interpolates
        check(svc.get("hostname") == name, f"{name}: hostname must be the service name (peers dial it)")
        volumes.update(v.split(":")[0] for v in svc["volumes"])
        ports.update(p.split(":")[0] for p in svc["ports"])
        keys.add(svc["environment"].get("ROSTER_CLUSTER_KEY"))
        # The entrypoint's hostname is the container's; the stub dir has none, so the
        # node's name stands in through NACOS_SERVER_IP, which it equals in hostname mode.
        env["NACOS_SERVER_IP"] = name
        got = stub_run(["sh", os.path.join(HERE, "docker-entrypoint.sh")], env)
        joins = [a.split("=", 1)[1] for a in got if a.startswith("--join=")]
        check(joins and sorted(j.split(":")[0] for j in joins[0].split(",")) == sorted(services),
              f"{name}: the join list {joins} is not the three services")
        check(f"--bootstrap-expect={len(services)}" in got, f"{name}: --bootstrap-expect is not {len(services)}")
        check(f"--http-addr={name}:8848" in got, f"{name}: does not bind its own name: {got}")
        check(any(a.startswith("--cluster-key-file=") for a in got), f"{name}: no cluster key file")
    check(len(keys) == 1, "the nodes do not share one cluster key")
    check(len(volumes) == 3, "the nodes do not have a volume each")
    check(len(ports) == 6, "published ports collide")
    print("compose: consistent" if not failures else "compose: inconsistent")


kubernetes()
compose()
for f in failures:
    print("FAIL:", f)
sys.exit(1 if failures else 0)
