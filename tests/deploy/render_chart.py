#!/usr/bin/env python3
"""Lints and renders charts/bunker offline with Helm's own engine (PyPI helm-python-sdk, Helm's Go SDK), and holds
values.schema.json and the templates' refusals to the invalid value sets. No cluster, no helm binary.

    python render_chart.py CHART VALUES_DIR OUT_DIR

- lint: `helm lint --strict` against Kubernetes v1.30.0 with each value set VALUES_DIR/*.yaml;
- render: each value set, as `helm install` would (hooks included), to OUT_DIR/<set>.yaml;
- refuse: each VALUES_DIR/invalid/*.yaml, layered over minimal.yaml, must fail to render, with the text its
  `# expect:` line names (a schema error or a template's `fail`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import helm_python as helm

KUBE_VERSION = "v1.30.0"
RELEASE = "bunker"
NAMESPACE = "bunker"
SEVERITY = {0: "unknown", 1: "info", 2: "warning", 3: "error"}


def load_values(path: Path) -> dict[str, Any]:
    """Parsed as `helm -f` parses a file (so a bare `off` is false, as it would be in a real install)."""
    return helm.values_from_yaml(path.read_text())


def layered(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = layered(merged[key], value)
        else:
            merged[key] = value
    return merged


def lint(chart: Path, sets: dict[str, dict[str, Any]]) -> int:
    failed = 0
    for name, values in sets.items():
        report = helm.lint(chart, values=values, strict=True, namespace=NAMESPACE, kube_version=KUBE_VERSION)
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        for message in report["messages"]:
            print(f"  lint {name}: [{SEVERITY.get(message['severity'])}] {message['path']}: {message['error'].strip()}")
        if problems or report["errors"]:
            failed += 1
        else:
            print(f"ok   lint with {name}.yaml (kube {KUBE_VERSION}): no warnings or errors")
    return failed


def render(chart: Path, values: dict[str, Any]) -> dict[str, str]:
    with helm.Chart.load(chart) as loaded:
        return loaded.render(values=values, name=RELEASE, namespace=NAMESPACE, is_install=True)


def as_stream(manifests: dict[str, str]) -> str:
    """The manifests as one YAML stream, as `helm template` prints it; templates that render nothing are left out."""
    documents = []
    for path in sorted(manifests):
        if path.endswith("NOTES.txt"):
            continue
        for document in manifests[path].split("\n---\n"):
            body = document.strip("\n")
            if body.strip() and not all(line.lstrip().startswith("#") for line in body.splitlines() if line.strip()):
                documents.append(f"---\n# Source: {path}\n{body}\n")
    return "".join(documents)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__)
        return 2
    chart, values_dir, out_dir = (Path(a) for a in argv)
    out_dir.mkdir(parents=True, exist_ok=True)
    sets = {p.stem: load_values(p) for p in sorted(values_dir.glob("*.yaml"))}
    if "minimal" not in sets:
        raise SystemExit(f"{values_dir}/minimal.yaml is missing (the invalid sets are layered over it)")
    print(f"helm SDK {helm.helm_sdk_version()}, value sets: {', '.join(sets)}")

    failed = lint(chart, sets)
    for name, values in sets.items():
        try:
            stream = as_stream(render(chart, values))
        except helm.HelmError as err:
            print(f"FAIL render {name}.yaml: {err}")
            failed += 1
            continue
        (out_dir / f"{name}.yaml").write_text(stream)
        print(f"ok   render {name}.yaml: {stream.count('---' + chr(10))} manifests -> {out_dir / (name + '.yaml')}")

    invalid = sorted((values_dir / "invalid").glob("*.yaml"))
    for path in invalid:
        expected = next((l.split(":", 1)[1].strip() for l in path.read_text().splitlines() if l.startswith("# expect:")), "")
        if not expected:
            print(f"FAIL refuse {path.name}: no `# expect:` line")
            failed += 1
            continue
        try:
            render(chart, layered(sets["minimal"], load_values(path)))
        except (helm.HelmValuesError, helm.HelmRenderError) as err:
            if expected in str(err):
                print(f"ok   refuse {path.name}: {expected}")
            else:
                print(f"FAIL refuse {path.name}: refused, but not with {expected!r}: {err}")
                failed += 1
            continue
        print(f"FAIL refuse {path.name}: rendered; it should have been refused ({expected})")
        failed += 1
    print(f"chart: {len(sets)} value sets linted and rendered, {len(invalid)} invalid sets tried, {failed} failures")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
