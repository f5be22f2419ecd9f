#!/usr/bin/env python3
"""Bunker's own rules for its Helm chart, checked on the manifests render_chart.py rendered (one YAML stream per
value set) and on the chart's template sources. kubernetes-validate checks that the manifests are valid Kubernetes;
these check that they are the deployment docs/deploy-aws.md promises.

    python check_chart.py CHART RENDERED_DIR              # every rule on every rendered value set
    python check_chart.py --self-test CHART RENDERED_DIR  # each rule must fail on a copy broken on purpose
"""

from __future__ import annotations

import copy
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

# Template functions that make secrets up. A chart that generates the wrapping key or a password makes a new one at
# every upgrade (upstream's chart did: the vault became unreadable).
SECRET_GENERATORS = re.compile(
    r"\b(randAlphaNum|randAlpha|randNumeric|randAscii|randBytes|randInt|uuidv4|genPrivateKey|genCA|genCAWithKey"
    r"|genSelfSignedCert|genSelfSignedCertWithKey|genSignedCert|genSignedCertWithKey|derivePassword|htpasswd)\b"
)
SMTP_EGRESS = {(587, "TCP"), (465, "TCP")}
ALLOWED_EGRESS = {(53, "UDP"), (53, "TCP"), (5432, "TCP"), (443, "TCP")}
POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "Pod"}
API_PORT = 3000

# --- Loading ---------------------------------------------------------------------------------------------------


@dataclass
class Chart:
    """One rendered value set, with the chart's sources (templates and values.yaml) it came from."""

    name: str
    docs: list[dict]
    sources: dict[str, str]


def load(chart: Path, rendered: Path) -> list[Chart]:
    sources = {str(p.relative_to(chart)): p.read_text() for p in sorted(chart.rglob("*")) if p.is_file()}
    streams = sorted(rendered.glob("*.yaml"))
    if not streams:
        raise SystemExit(f"no rendered value sets under {rendered}")
    return [Chart(p.stem, [d for d in yaml.safe_load_all(p.read_text()) if d], sources) for p in streams]


# --- Helpers ---------------------------------------------------------------------------------------------------


def of_kind(chart: Chart, kind: str) -> list[dict]:
    return [d for d in chart.docs if d.get("kind") == kind]


def name(doc: dict) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def pod_spec(doc: dict) -> dict:
    return doc["spec"] if doc.get("kind") == "Pod" else doc.get("spec", {}).get("template", {}).get("spec", {})


def pod_labels(doc: dict) -> dict:
    return doc.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})


def containers(doc: dict) -> list[dict]:
    spec = pod_spec(doc)
    return spec.get("initContainers", []) + spec.get("containers", [])


def hooks(doc: dict) -> set[str]:
    value = doc.get("metadata", {}).get("annotations", {}).get("helm.sh/hook", "")
    return {h.strip() for h in value.split(",") if h.strip()}


def hook_weight(doc: dict) -> int:
    return int(doc.get("metadata", {}).get("annotations", {}).get("helm.sh/hook-weight", "0"))


def env_secret(container: dict, variable: str) -> str | None:
    for env in container.get("env", []):
        if env.get("name") == variable:
            return env.get("valueFrom", {}).get("secretKeyRef", {}).get("name")
    return None


def env_value(container: dict, variable: str) -> str | None:
    return next((e.get("value") for e in container.get("env", []) if e.get("name") == variable), None)


def secrets_used(doc: dict) -> set[str]:
    """Every Secret a pod template names: env, envFrom, volumes (projected ones included)."""
    used = set()
    for container in containers(doc):
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                used.add(ref.get("name"))
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                used.add(source["secretRef"].get("name"))
    for volume in pod_spec(doc).get("volumes", []):
        if "secret" in volume:
            used.add(volume["secret"].get("secretName"))
        for source in volume.get("projected", {}).get("sources", []):
            if "secret" in source:
                used.add(source["secret"].get("name"))
    return used


def config_maps_used(doc: dict) -> set[str]:
    used = {v["configMap"].get("name") for v in pod_spec(doc).get("volumes", []) if "configMap" in v}
    for container in containers(doc):
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("configMapKeyRef")
            if ref:
                used.add(ref.get("name"))
    return used


def selects(selector: dict, labels: dict) -> bool:
    """A label selector (matchLabels, matchExpressions with In, NotIn, Exists, DoesNotExist) against labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values", [])
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def deployment(chart: Chart) -> dict | None:
    found = of_kind(chart, "Deployment")
    return found[0] if len(found) == 1 else None


def jobs_running(chart: Chart, command: str) -> list[dict]:
    return [j for j in of_kind(chart, "Job") if any(c.get("args", [None])[0] == command for c in containers(j))]


def container_running(doc: dict, command: str) -> dict | None:
    return next((c for c in containers(doc) if c.get("args", [None])[0] == command), None)


# --- Checks ----------------------------------------------------------------------------------------------------

Problems = list[str]


def security_contexts(chart: Chart) -> Problems:
    problems = []
    pods = [d for d in chart.docs if d.get("kind") in POD_KINDS]
    if not pods:
        return ["no workload rendered"]
    for doc in pods:
        spec = pod_spec(doc)
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(flag):
                problems.append(f"{name(doc)}: {flag}")
        for volume in spec.get("volumes", []):
            if "hostPath" in volume or "emptyDir" in volume:
                problems.append(f"{name(doc)}: volume {volume.get('name')} is a hostPath or emptyDir (Bunker writes no files)")
        for container in containers(doc):
            where = f"{name(doc)} container {container.get('name')}"
            context = container.get("securityContext", {})
            capabilities = context.get("capabilities", {})
            if context.get("runAsNonRoot") is not True:
                problems.append(f"{where}: runAsNonRoot is not true")
            if context.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: readOnlyRootFilesystem is not true")
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if context.get("privileged"):
                problems.append(f"{where}: privileged")
            if "ALL" not in capabilities.get("drop", []) or capabilities.get("add"):
                problems.append(f"{where}: capabilities do not drop ALL (or add some)")
            if context.get("seccompProfile", {}).get("type") != "RuntimeDefault":
                problems.append(f"{where}: seccompProfile is not RuntimeDefault")
    return problems


def no_generated_secrets(chart: Chart) -> Problems:
    problems = []
    for path, text in chart.sources.items():
        for number, line in enumerate(text.splitlines(), 1):
            match = SECRET_GENERATORS.search(line)
            if match:
                problems.append(f"{path}:{number}: {match.group(1)} generates a secret")
    problems += [f"{name(d)}: the chart renders a Secret (it must only reference existing ones)" for d in of_kind(chart, "Secret")]
    return problems


def probes(chart: Chart) -> Problems:
    serving = deployment(chart)
    if serving is None:
        return ["not exactly one Deployment"]
    problems = []
    for container in pod_spec(serving).get("containers", []):
        where = f"{name(serving)} container {container.get('name')}"
        ports = {p.get("name"): p.get("containerPort") for p in container.get("ports", [])}
        for probe, path in (("livenessProbe", "/health"), ("readinessProbe", "/ready")):
            get = container.get(probe, {}).get("httpGet")
            if not get:
                problems.append(f"{where}: no HTTP {probe}")
                continue
            if get.get("path") != path:
                problems.append(f"{where}: {probe} is on {get.get('path')}, not {path}")
            port = ports.get(get.get("port"), get.get("port"))
            if port != API_PORT:
                problems.append(f"{where}: {probe} is on port {get.get('port')}, not the API port {API_PORT}")
    return problems


def database_urls(chart: Chart) -> Problems:
    serving = deployment(chart)
    migrate = jobs_running(chart, "migrate")
    if serving is None or len(migrate) != 1:
        return ["not exactly one Deployment and one migrations Job (args: [migrate])"]
    job = migrate[0]
    problems = []
    if not {"pre-install", "pre-upgrade"} <= hooks(job):
        problems.append(f"{name(job)}: not a pre-install and pre-upgrade hook ({sorted(hooks(job))})")
    owner = env_secret(container_running(job, "migrate") or {}, "BUNKER_DATABASE_URL")
    served = env_secret(pod_spec(serving).get("containers", [{}])[0], "BUNKER_DATABASE_URL")
    if not owner or not served:
        return problems + ["BUNKER_DATABASE_URL does not come from a Secret in both the Deployment and the migrations Job"]
    if owner == served:
        problems.append(f"the Deployment and the migrations Job share the database Secret {owner}")
    if owner in secrets_used(serving):
        problems.append(f"{name(serving)} can read the owner's Secret {owner}")
    for init in jobs_running(chart, "init"):
        if env_secret(container_running(init, "init") or {}, "BUNKER_DATABASE_URL") != owner:
            problems.append(f"{name(init)}: init does not use the owner's Secret {owner}")
    return problems


def hook_prerequisites(chart: Chart) -> Problems:
    """A pre-install hook Job runs before the release's ordinary resources exist: what it needs that the chart itself
    renders must be a hook of the same events with a lower weight (or come from outside the chart)."""
    problems = []
    providers: dict[tuple[str, str], dict] = {}
    for doc in chart.docs:
        kind, doc_name = doc.get("kind"), doc.get("metadata", {}).get("name")
        providers[(kind, doc_name)] = doc
        if kind == "ExternalSecret":
            providers[("Secret", doc.get("spec", {}).get("target", {}).get("name", doc_name))] = doc
    for job in of_kind(chart, "Job"):
        events = hooks(job) & {"pre-install", "pre-upgrade"}
        if not events:
            continue
        needed = [("ServiceAccount", pod_spec(job).get("serviceAccountName", "default"))]
        needed += [("Secret", s) for s in sorted(secrets_used(job))]
        needed += [("ConfigMap", c) for c in sorted(config_maps_used(job))]
        needed += [("NetworkPolicy", name(p).split("/", 1)[1]) for p in of_kind(chart, "NetworkPolicy")
                   if selects(p.get("spec", {}).get("podSelector", {}), pod_labels(job))]
        if of_kind(chart, "NetworkPolicy") and not any(kind == "NetworkPolicy" for kind, _ in needed):
            problems.append(f"{name(job)}: no NetworkPolicy of the chart selects its pods")
        for kind, needed_name in needed:
            provider = providers.get((kind, needed_name))
            if provider is None:
                continue  # made outside the chart, beforehand (docs/deploy-aws.md lists them)
            if not events <= hooks(provider) or hook_weight(provider) >= hook_weight(job):
                problems.append(
                    f"{name(job)} needs {kind} {needed_name}, which {name(provider)} provides but not as a "
                    f"{'/'.join(sorted(events))} hook of a lower weight: it would not exist yet"
                )
    return problems


def egress_limited(chart: Chart) -> Problems:
    policies = of_kind(chart, "NetworkPolicy")
    serving = deployment(chart)
    problems = []
    if serving is not None and not any(selects(p["spec"].get("podSelector", {}), pod_labels(serving)) for p in policies):
        problems.append(f"no NetworkPolicy selects the pods of {name(serving)}")
    for policy in policies:
        spec = policy.get("spec", {})
        if "Egress" not in spec.get("policyTypes", []):
            problems.append(f"{name(policy)}: egress is not restricted (policyTypes lacks Egress)")
        for number, rule in enumerate(spec.get("egress", []), 1):
            ports = {(p.get("port"), p.get("protocol", "TCP")) for p in rule.get("ports", [])}
            if not ports:
                problems.append(f"{name(policy)} egress rule {number}: any port")
            # The serving pods may also reach an SMTP relay (login codes); the Jobs never.
            smtp = SMTP_EGRESS if serving is not None and selects(spec.get("podSelector", {}), pod_labels(serving)) else set()
            for port in sorted(ports - ALLOWED_EGRESS - smtp, key=str):
                problems.append(f"{name(policy)} egress rule {number}: {port[0]}/{port[1]} is not DNS, PostgreSQL, 443 or (serving pods) SMTP")
            if any(p == 53 for p, _ in ports) and not {(53, "UDP"), (53, "TCP")} <= ports:
                problems.append(f"{name(policy)} egress rule {number}: DNS without both UDP and TCP")
    return problems


def replicas_and_budget(chart: Chart) -> Problems:
    serving = deployment(chart)
    if serving is None:
        return ["not exactly one Deployment"]
    problems = []
    replicas = serving["spec"].get("replicas")
    scalers = [h for h in of_kind(chart, "HorizontalPodAutoscaler")
               if h["spec"]["scaleTargetRef"].get("kind") == "Deployment"
               and h["spec"]["scaleTargetRef"].get("name") == serving["metadata"]["name"]]
    if replicas is not None and replicas < 2:
        problems.append(f"{name(serving)}: {replicas} replica(s)")
    if replicas is None and not any(h["spec"].get("minReplicas", 1) >= 2 for h in scalers):
        problems.append(f"{name(serving)}: no replicas and no autoscaler with minReplicas >= 2")
    budgets = [b for b in of_kind(chart, "PodDisruptionBudget") if selects(b["spec"].get("selector", {}), pod_labels(serving))]
    if not budgets:
        problems.append(f"no PodDisruptionBudget selects the pods of {name(serving)}")
    for budget in budgets:
        if str(budget["spec"].get("maxUnavailable", "1")) in ("0", "0%"):
            problems.append(f"{name(budget)}: maxUnavailable 0 blocks every node drain")
    return problems


def metrics_port(chart: Chart) -> Problems:
    """GET /metrics on a port of its own, and a ServiceMonitor (if any) scraping that port."""
    serving = deployment(chart)
    if serving is None:
        return ["not exactly one Deployment"]
    container = pod_spec(serving).get("containers", [{}])[0]
    listen = env_value(container, "BUNKER_METRICS_LISTEN")
    monitors = of_kind(chart, "ServiceMonitor")
    if listen is None:
        return [f"{name(m)}: metrics are off, yet a ServiceMonitor is rendered" for m in monitors]
    problems = []
    ports = {p.get("name"): p.get("containerPort") for p in container.get("ports", [])}
    port = int(listen.rsplit(":", 1)[-1])
    if ports.get("metrics") != port or port == API_PORT:
        problems.append(f"{name(serving)}: BUNKER_METRICS_LISTEN {listen} is not the container port named metrics")
    services = {s["metadata"]["name"]: s for s in of_kind(chart, "Service")}
    for monitor in monitors:
        targets = [s for s in services.values() if selects(monitor["spec"].get("selector", {}), s["metadata"].get("labels", {}))]
        for endpoint in monitor["spec"].get("endpoints", []):
            if endpoint.get("path", "/metrics") != "/metrics":
                problems.append(f"{name(monitor)}: scrapes {endpoint.get('path')}, not /metrics")
            if not any(p.get("name") == endpoint.get("port") and p.get("targetPort") in ("metrics", port)
                       for s in targets for p in s["spec"].get("ports", [])):
                problems.append(f"{name(monitor)}: port {endpoint.get('port')} is not the metrics port of a Service it selects")
    for service in services.values():
        if service["spec"].get("type", "ClusterIP") != "ClusterIP" and any(
            p.get("targetPort") in ("metrics", port) for p in service["spec"].get("ports", [])
        ):
            problems.append(f"{name(service)}: exposes the metrics port beyond the cluster")
    return problems


CHECKS: list[tuple[str, Callable[[Chart], Problems]]] = [
    ("security context on every container, the Jobs' included", security_contexts),
    ("no secret-generating template function, no Secret rendered", no_generated_secrets),
    ("probes: liveness GET /health, readiness GET /ready, on the API port", probes),
    ("migrations Job is a pre-install/pre-upgrade hook with the owner's URL; the Deployment has the serving URL only", database_urls),
    ("what a pre-install hook Job needs is a hook of lower weight or made beforehand", hook_prerequisites),
    ("NetworkPolicy egress limited to DNS (UDP and TCP), PostgreSQL and 443", egress_limited),
    ("at least 2 replicas, with a PodDisruptionBudget", replicas_and_budget),
    ("metrics on a port of their own, scraped there", metrics_port),
]


def run(charts: list[Chart], verbose: bool = True) -> dict[str, Problems]:
    results = {}
    for title, check in CHECKS:
        problems = [f"{c.name}: {p}" for c in charts for p in check(c)]
        results[title] = problems
        if verbose:
            print(f"{'ok  ' if not problems else 'FAIL'} {title}")
            for problem in problems:
                print(f"       {problem}")
    return results


# --- Self-test: each check must notice the mistake it exists for -----------------------------------------------


def first(chart: Chart, kind: str, where: Callable[[dict], bool] = lambda d: True) -> dict:
    return next(d for d in of_kind(chart, kind) if where(d))


def breakages() -> list[tuple[str, Callable[[Chart], None]]]:
    def job_writable(c: Chart) -> None:
        container_running(jobs_running(c, "migrate")[0], "migrate")["securityContext"]["readOnlyRootFilesystem"] = False

    def generated_key(c: Chart) -> None:
        c.sources["templates/deployment.yaml"] += '\n# wrapping key: {{ randAlphaNum 64 | b64enc }}\n'

    def ready_for_liveness(c: Chart) -> None:
        pod_spec(deployment(c))["containers"][0]["livenessProbe"]["httpGet"]["path"] = "/ready"

    def owner_served(c: Chart) -> None:
        owner = env_secret(container_running(jobs_running(c, "migrate")[0], "migrate"), "BUNKER_DATABASE_URL")
        serving = pod_spec(deployment(c))["containers"][0]
        next(e for e in serving["env"] if e["name"] == "BUNKER_DATABASE_URL")["valueFrom"]["secretKeyRef"]["name"] = owner

    def ordinary_service_account(c: Chart) -> None:
        job = jobs_running(c, "migrate")[0]
        account = first(c, "ServiceAccount", lambda d: d["metadata"]["name"] == pod_spec(job)["serviceAccountName"])
        account["metadata"].pop("annotations")

    def plain_http_out(c: Chart) -> None:
        policy = first(c, "NetworkPolicy", lambda d: not hooks(d))
        policy["spec"]["egress"].append({"ports": [{"port": 80, "protocol": "TCP"}]})

    def no_budget(c: Chart) -> None:
        c.docs = [d for d in c.docs if d.get("kind") != "PodDisruptionBudget"]

    def scrape_api(c: Chart) -> None:
        first(c, "ServiceMonitor")["spec"]["endpoints"][0]["port"] = "api"

    return [
        ("security context on every container, the Jobs' included", job_writable),
        ("no secret-generating template function, no Secret rendered", generated_key),
        ("probes: liveness GET /health, readiness GET /ready, on the API port", ready_for_liveness),
        ("migrations Job is a pre-install/pre-upgrade hook with the owner's URL; the Deployment has the serving URL only", owner_served),
        ("what a pre-install hook Job needs is a hook of lower weight or made beforehand", ordinary_service_account),
        ("NetworkPolicy egress limited to DNS (UDP and TCP), PostgreSQL and 443", plain_http_out),
        ("at least 2 replicas, with a PodDisruptionBudget", no_budget),
        ("metrics on a port of their own, scraped there", scrape_api),
    ]


def self_test(charts: list[Chart]) -> int:
    # The set with everything on has a ServiceMonitor, the init Job and the ExternalSecrets to break.
    full = next((c for c in charts if c.name == "full"), None)
    if full is None:
        raise SystemExit("the self-test needs the rendered full.yaml")
    missed = 0
    for title, breaks in breakages():
        broken = copy.deepcopy(full)
        breaks(broken)
        if not run([broken], verbose=False)[title]:
            print(f"FAIL self-test: {title} did not notice its breakage")
            missed += 1
    print(f"self-test: {len(breakages()) - missed} of {len(breakages())} breakages caught")
    return 1 if missed else 0


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--")]
    if len(args) != 2:
        print(__doc__)
        return 2
    charts = load(Path(args[0]), Path(args[1]))
    if "--self-test" in argv:
        return self_test(charts)
    results = run(charts)
    failed = sum(1 for p in results.values() if p)
    print(f"chart checks on {', '.join(c.name for c in charts)}: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
