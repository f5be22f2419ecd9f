#!/usr/bin/env bash
# The module's input validations, run by terraform itself, offline: terraform/aws/variables.tf alone (no resource,
# so no provider to fetch) is planned with values that must be accepted and values that must be refused.
#
#   bash tests/deploy/check_variables.sh [MODULE_DIR]     # MODULE_DIR defaults to terraform/aws
set -euo pipefail
cd "$(dirname "$0")/../.."
MODULE="${1:-terraform/aws}"
export TF_CLI_CONFIG_FILE="${TF_CLI_CONFIG_FILE:-/dev/null}" TF_IN_AUTOMATION=1

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cp "$MODULE/variables.tf" "$WORK/"
terraform -chdir="$WORK" init -input=false -backend=false >/dev/null

KEY="1234abcd-12ab-34cd-56ef-1234567890ab"
# case_ EXPECT ARGS...: plans with name=bunker and ARGS; EXPECT is accept or refuse (by a validation).
failed=0
total=0
case_() {
  local expect="$1" status=0
  shift
  total=$((total + 1))
  terraform -chdir="$WORK" plan -input=false -lock=false -no-color -var name=bunker "$@" >"$WORK/out" 2>&1 || status=$?
  local as_expected=false
  if [[ "$expect" == accept ]]; then
    ((status == 0)) && as_expected=true
  elif ((status != 0)) && grep -q 'Invalid value for variable' "$WORK/out"; then
    as_expected=true # refused by a validation, not by some other error
  fi
  if $as_expected; then
    echo "ok   $expect $*"
  else
    echo "FAIL $expect $* (terraform exited $status)"
    sed 's/^/       /' "$WORK/out" | head -20
    failed=$((failed + 1))
  fi
}

case_ accept
case_ accept -var 'tenant_kms_key_arns=[]'
case_ accept -var "tenant_kms_key_arns=[\"arn:aws:kms:eu-west-2:444455556666:key/$KEY\"]"
case_ accept -var "tenant_kms_key_arns=[\"arn:aws:kms:eu-west-2:444455556666:key/$KEY\",\"arn:aws:kms:eu-west-2:777788889999:key/mrk-1234abcd12ab34cd56ef1234567890ab\"]"
case_ accept -var "tenant_kms_key_arns=[\"arn:aws-us-gov:kms:us-gov-west-1:444455556666:key/$KEY\"]"
case_ accept -var 'bunker_installation_id=0b5e7c1a-3f2d-4e6b-9a8c-1d2e3f4a5b6c' \
  -var "tenant_kms_key_arns=[\"arn:aws:kms:eu-west-2:444455556666:key/$KEY\"]"
case_ refuse -var 'tenant_kms_key_arns=["*"]'
case_ refuse -var 'tenant_kms_key_arns=["arn:aws:kms:eu-west-2:444455556666:key/*"]'
case_ refuse -var "tenant_kms_key_arns=[\"arn:aws:kms:*:444455556666:key/$KEY\"]"
case_ refuse -var "tenant_kms_key_arns=[\"arn:aws:kms:eu-west-2:4444555566:key/$KEY\"]"
case_ refuse -var 'tenant_kms_key_arns=["arn:aws:kms:eu-west-2:444455556666:alias/acme"]'
case_ refuse -var "tenant_kms_key_arns=[\"$KEY\"]"
case_ refuse -var "tenant_kms_key_arns=[\"arn:aws:kms:eu-west-2:444455556666:key/$KEY\",\"arn:aws:iam::444455556666:role/x\"]"
case_ refuse -var 'bunker_installation_id=not-a-uuid'

echo "variable validations: $((total - failed)) of $total cases as expected"
((failed == 0))
