"""Checks that the Kubernetes manifests of one directory fit together.

Schema validation (kubernetes-validate) proves that each resource is well
formed on its own; this catches what is well formed but still broken: a
kustomization that misses a file, a Service or PodDisruptionBudget whose
selector matches no pod, a probe or Service aimed at a port the container
does not name, a ConfigMap mounted with subPath (such a mount never sees
updates, so the gateway's watch_config would never fire), or the admin port
9901 published through the Service.

Usage: python check_kubernetes.py DIR   (run by deploy/validate.sh, with the
PyYAML that kubernetes-validate brings). Exit 0 when consistent, 1 otherwise.
"""

import os
import sys

import yaml

ADMIN_PORT = 9901
errors = []


def error(msg):
    errors.append(msg)


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def port_exists(port, ports):
    """`port` (a name or a number) is one of the container's ports."""
    if isinstance(port, str) and not port.isdigit():
        return any(p.get("name") == port for p in ports)
    return any(p.get("containerPort") == int(port) for p in ports)


def main(directory):
    names = sorted(n for n in os.listdir(directory) if n.endswith((".yaml", ".yml")))
    kust_name = next((n for n in names if n in ("kustomization.yaml", "kustomization.yml")), None)
    manifests = [n for n in names if n != kust_name]
    if kust_name is None:
        error("no kustomization.yaml")
    else:
        (kust,) = load(os.path.join(directory, kust_name))
        if kust.get("apiVersion") != "kustomize.config.k8s.io/v1beta1" or kust.get("kind") != "Kustomization":
            error(f"{kust_name}: expected apiVersion kustomize.config.k8s.io/v1beta1, kind Kustomization")
        listed = kust.get("resources") or []
        for r in listed:
            if not os.path.isfile(os.path.join(directory, r)):
                error(f"{kust_name}: resource {r} does not exist")
        for m in manifests:
            if m not in listed:
                error(f"{kust_name}: {m} is not listed in resources, so `kubectl apply -k` skips it")

    docs = []
    for m in manifests:
        for d in load(os.path.join(directory, m)):
            if not isinstance(d, dict) or "kind" not in d:
                error(f"{m}: a document without kind")
                continue
            d["_file"] = m
            docs.append(d)

    def of_kind(kind):
        return [d for d in docs if d["kind"] == kind]

    configmaps = {d["metadata"]["name"]: d for d in of_kind("ConfigMap")}
    deployments = of_kind("Deployment")
    if not deployments:
        error("no Deployment")
    pods = []  # (template labels, containers, file)
    for dep in deployments:
        f, spec = dep["_file"], dep["spec"]
        tmpl = spec["template"]
        labels = tmpl.get("metadata", {}).get("labels", {})
        if not matches(spec["selector"].get("matchLabels", {}), labels):
            error(f"{f}: spec.selector.matchLabels does not match the pod template's labels")
        pod = tmpl["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for v in volumes.values():
            cm = v.get("configMap")
            if cm and cm.get("name") not in configmaps:
                error(f"{f}: volume {v['name']} names ConfigMap {cm.get('name')}, which is not in this directory")
        grace = pod.get("terminationGracePeriodSeconds", 30)
        for c in pod["containers"]:
            ports = c.get("ports", [])
            live = c.get("livenessProbe")
            if live and live.get("periodSeconds", 10) * live.get("failureThreshold", 3) <= grace:
                error(
                    f"{f}: container {c['name']} livenessProbe gives up within terminationGracePeriodSeconds "
                    f"({grace} s), but /healthz answers 503 for the whole drain: a draining pod would be killed"
                )
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                get = (c.get(probe) or {}).get("httpGet")
                if get and not port_exists(get["port"], ports):
                    error(f"{f}: container {c['name']} {probe} port {get['port']} is not a container port")
            for mount in c.get("volumeMounts", []):
                vol = volumes.get(mount["name"])
                if vol is None:
                    error(f"{f}: container {c['name']} mounts undefined volume {mount['name']}")
                elif vol.get("configMap") and mount.get("subPath"):
                    error(
                        f"{f}: container {c['name']} mounts ConfigMap volume {mount['name']} with subPath: "
                        "such a mount never receives ConfigMap updates (watch_config would never see a change)"
                    )
        pods.append((labels, pod["containers"], f))

    for svc in of_kind("Service"):
        f, spec = svc["_file"], svc["spec"]
        selected = [p for p in pods if matches(spec.get("selector", {}), p[0])]
        if not selected:
            error(f"{f}: Service {svc['metadata']['name']} selects no pod of this directory")
        for p in spec.get("ports", []):
            target = p.get("targetPort", p["port"])
            for labels, containers, _ in selected:
                if not any(port_exists(target, c.get("ports", [])) for c in containers):
                    error(f"{f}: Service port {p['port']} targets {target}, which no selected container has")
                if any(
                    cp.get("containerPort") == ADMIN_PORT and (cp.get("name") == target or target == ADMIN_PORT)
                    for c in containers
                    for cp in c.get("ports", [])
                ):
                    error(f"{f}: Service port {p['port']} exposes the admin API ({ADMIN_PORT})")

    for pdb in of_kind("PodDisruptionBudget"):
        f, spec = pdb["_file"], pdb["spec"]
        selector = spec.get("selector", {}).get("matchLabels", {})
        owners = [d for d in deployments if matches(selector, d["spec"]["template"]["metadata"].get("labels", {}))]
        if not owners:
            error(f"{f}: PodDisruptionBudget selects no pod of this directory")
        for d in owners:
            replicas = d["spec"].get("replicas", 1)
            min_available = spec.get("minAvailable")
            if isinstance(min_available, int) and min_available >= replicas:
                error(f"{f}: minAvailable {min_available} >= replicas {replicas}: no node could ever be drained")

    for e in errors:
        print(f"ERROR {e}")
    if not errors:
        print(f"OK {len(docs)} resources in {directory} fit together")
    return 1 if errors else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: check_kubernetes.py DIR")
    sys.exit(main(sys.argv[1]))
