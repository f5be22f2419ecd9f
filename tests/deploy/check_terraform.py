#!/usr/bin/env python3
"""Structural checks of Bunker's Terraform (terraform/), offline: parses every .tf file with python-hcl2 and holds
the security settings docs/deploy-aws.md promises to what the files say. `terraform validate` needs the providers,
which cannot be fetched here; checkov covers the generic rules; these are Bunker's own.

    python check_terraform.py [ROOT]        # ROOT defaults to terraform/
    python check_terraform.py --self-test   # each check must fail on a copy of the tree broken on purpose
"""

from __future__ import annotations

import copy
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import hcl2

# --- Parsing ---------------------------------------------------------------------------------------------------


def unquote(value: Any) -> Any:
    """python-hcl2 8 keeps the quotes of strings and block labels; the checks compare bare values."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def clean(node: Any) -> Any:
    """Drops the parser's markers (__is_block__, __comments__) and unquotes keys and strings."""
    if isinstance(node, dict):
        return {unquote(k): clean(v) for k, v in node.items() if not (isinstance(k, str) and k.startswith("__"))}
    if isinstance(node, list):
        return [clean(v) for v in node]
    return unquote(node)


@dataclass
class Tree:
    """Every block of every .tf file under a root, by kind: resources and data by (type, name)."""

    resources: dict[tuple[str, str], dict] = field(default_factory=dict)
    data: dict[tuple[str, str], dict] = field(default_factory=dict)
    data_directories: dict[tuple[str, str], str] = field(default_factory=dict)  # (type, name) -> directory
    variables: dict[tuple[str, str], dict] = field(default_factory=dict)  # (directory, name)
    modules: dict[tuple[str, str], dict] = field(default_factory=dict)
    outputs: dict[tuple[str, str], dict] = field(default_factory=dict)  # (directory, name)
    terraform_blocks: dict[str, list[dict]] = field(default_factory=dict)  # directory -> blocks
    directories: set[str] = field(default_factory=set)


def load(root: Path) -> Tree:
    tree = Tree()
    files = sorted(p for p in root.rglob("*.tf") if ".terraform" not in p.parts)
    if not files:
        raise SystemExit(f"no .tf files under {root}")
    for path in files:
        directory = str(path.parent.relative_to(root))
        tree.directories.add(directory)
        with path.open() as handle:
            parsed = clean(hcl2.load(handle))
        for block in parsed.get("resource", []):
            for rtype, named in block.items():
                for name, body in named.items():
                    tree.resources[(rtype, name)] = body
        for block in parsed.get("data", []):
            for dtype, named in block.items():
                for name, body in named.items():
                    tree.data[(dtype, name)] = body
                    tree.data_directories[(dtype, name)] = directory
        for block in parsed.get("variable", []):
            for name, body in block.items():
                tree.variables[(directory, name)] = body
        for block in parsed.get("module", []):
            for name, body in block.items():
                tree.modules[(directory, name)] = body
        for block in parsed.get("output", []):
            for name, body in block.items():
                tree.outputs[(directory, name)] = body
        tree.terraform_blocks.setdefault(directory, []).extend(parsed.get("terraform", []))
    return tree


# --- Helpers ---------------------------------------------------------------------------------------------------


def of_type(tree: Tree, rtype: str) -> dict[str, dict]:
    return {name: body for (t, name), body in tree.resources.items() if t == rtype}


def is_true(value: Any) -> bool:
    return value is True or value == "true"


def reference(value: Any, prefix: str) -> str | None:
    """`${data.aws_iam_policy_document.x.json}` -> `x` for prefix `data.aws_iam_policy_document`."""
    if isinstance(value, str) and value.startswith("${" + prefix + ".") and value.endswith("}"):
        name = value[len(prefix) + 3 : -1].split(".")[0]
        return name.split("[")[0]
    return None


def variable_default(tree: Tree, value: Any) -> Any:
    """The default of `${var.x}` in any directory that declares it, or the value itself if it is no variable."""
    name = reference(value, "var")
    if name is None:
        return value
    defaults = [body.get("default") for (_, n), body in tree.variables.items() if n == name]
    return defaults[0] if defaults else None


def statements(document: dict) -> list[dict]:
    """A policy document's statements, those made by `dynamic "statement"` blocks included."""
    found = list(document.get("statement", []))
    for dynamic in document.get("dynamic", []):
        for label, body in dynamic.items():
            if label == "statement":
                found.extend(body.get("content", []))
    return found


def as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


# --- Checks ----------------------------------------------------------------------------------------------------

Problems = list[str]


def kms_rotation(tree: Tree) -> Problems:
    keys = of_type(tree, "aws_kms_key")
    if not keys:
        return ["no aws_kms_key found"]
    return [f"aws_kms_key.{n}: enable_key_rotation is not true" for n, k in keys.items() if not is_true(k.get("enable_key_rotation"))]


def kms_policy_principals(tree: Tree) -> Problems:
    problems = []
    for name, key in of_type(tree, "aws_kms_key").items():
        doc_name = reference(key.get("policy"), "data.aws_iam_policy_document")
        if doc_name is None:
            problems.append(f"aws_kms_key.{name}: policy is not an aws_iam_policy_document (so it cannot be checked)")
            continue
        document = tree.data.get(("aws_iam_policy_document", doc_name))
        if document is None:
            problems.append(f"aws_kms_key.{name}: policy document {doc_name} not found")
            continue
        for statement in statements(document):
            principals = as_list(statement.get("principals"))
            if not principals:
                problems.append(f"{doc_name} ({statement.get('sid')}): a statement without principals")
            for principal in principals:
                identifiers = as_list(principal.get("identifiers"))
                if principal.get("type") == "*" or "*" in identifiers or not identifiers:
                    problems.append(f"{doc_name} ({statement.get('sid')}): principal \"*\" or none in a key policy")
    return problems


def aurora_encrypted(tree: Tree) -> Problems:
    clusters = of_type(tree, "aws_rds_cluster")
    if not clusters:
        return ["no aws_rds_cluster found"]
    problems = []
    for name, cluster in clusters.items():
        if not is_true(cluster.get("storage_encrypted")):
            problems.append(f"aws_rds_cluster.{name}: storage_encrypted is not true")
        if reference(cluster.get("kms_key_id"), "aws_kms_key") is None:
            problems.append(f"aws_rds_cluster.{name}: kms_key_id is not one of this module's KMS keys")
        if not is_true(cluster.get("manage_master_user_password")):
            problems.append(f"aws_rds_cluster.{name}: manage_master_user_password is not true")
    for name, instance in of_type(tree, "aws_rds_cluster_instance").items():
        if is_true(instance.get("performance_insights_enabled")) and reference(
            instance.get("performance_insights_kms_key_id"), "aws_kms_key"
        ) is None:
            problems.append(f"aws_rds_cluster_instance.{name}: Performance Insights without this module's KMS key")
        if is_true(instance.get("publicly_accessible")):
            problems.append(f"aws_rds_cluster_instance.{name}: publicly_accessible")
    return problems


def aurora_force_ssl(tree: Tree) -> Problems:
    problems = []
    groups = of_type(tree, "aws_rds_cluster_parameter_group")
    for name, cluster in of_type(tree, "aws_rds_cluster").items():
        group_name = reference(cluster.get("db_cluster_parameter_group_name"), "aws_rds_cluster_parameter_group")
        group = groups.get(group_name or "")
        if group is None:
            problems.append(f"aws_rds_cluster.{name}: no cluster parameter group of this module")
            continue
        values = {p.get("name"): str(p.get("value")) for p in as_list(group.get("parameter"))}
        if values.get("rds.force_ssl") != "1":
            problems.append(f"aws_rds_cluster_parameter_group.{group_name}: rds.force_ssl is not 1")
    return problems


def aurora_iam_auth(tree: Tree) -> Problems:
    return [
        f"aws_rds_cluster.{n}: iam_database_authentication_enabled is not true"
        for n, c in of_type(tree, "aws_rds_cluster").items()
        if not is_true(c.get("iam_database_authentication_enabled"))
    ]


def aurora_deletion_protection(tree: Tree) -> Problems:
    problems = []
    for name, cluster in of_type(tree, "aws_rds_cluster").items():
        value = cluster.get("deletion_protection")
        if not is_true(variable_default(tree, value)):
            problems.append(f"aws_rds_cluster.{name}: deletion_protection ({value}) does not default to true")
        if is_true(variable_default(tree, cluster.get("skip_final_snapshot"))):
            problems.append(f"aws_rds_cluster.{name}: skip_final_snapshot defaults to true")
        retention = variable_default(tree, cluster.get("backup_retention_period"))
        if not isinstance(retention, int) or retention < 7:
            problems.append(f"aws_rds_cluster.{name}: backup retention defaults to {retention}, under 7 days")
    return problems


def s3_public_access_blocked(tree: Tree) -> Problems:
    buckets = of_type(tree, "aws_s3_bucket")
    blocks = of_type(tree, "aws_s3_bucket_public_access_block")
    problems = []
    flags = ["block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"]
    for name, block in blocks.items():
        problems += [f"aws_s3_bucket_public_access_block.{name}: {f} is not true" for f in flags if not is_true(block.get(f))]
    for name in buckets:
        if not any(reference(b.get("bucket"), "aws_s3_bucket") == name for b in blocks.values()):
            problems.append(f"aws_s3_bucket.{name}: no public access block")
    return problems


def s3_encrypted_and_kept(tree: Tree) -> Problems:
    problems = []
    for name in of_type(tree, "aws_s3_bucket"):

        def attached(rtype: str) -> list[dict]:
            return [b for b in of_type(tree, rtype).values() if reference(b.get("bucket"), "aws_s3_bucket") == name]

        sse = [r for b in attached("aws_s3_bucket_server_side_encryption_configuration") for r in as_list(b.get("rule"))]
        defaults = [d for r in sse for d in as_list(r.get("apply_server_side_encryption_by_default"))]
        if not any(d.get("sse_algorithm") == "aws:kms" and reference(d.get("kms_master_key_id"), "aws_kms_key") for d in defaults):
            problems.append(f"aws_s3_bucket.{name}: no SSE-KMS with this module's key")
        versioning = [v for b in attached("aws_s3_bucket_versioning") for v in as_list(b.get("versioning_configuration"))]
        if not any(v.get("status") == "Enabled" for v in versioning):
            problems.append(f"aws_s3_bucket.{name}: versioning is not enabled")
        rules = [r for b in attached("aws_s3_bucket_lifecycle_configuration") for r in as_list(b.get("rule"))]
        if not any(r.get("status") == "Enabled" and r.get("abort_incomplete_multipart_upload") for r in rules):
            problems.append(f"aws_s3_bucket.{name}: no lifecycle rule aborting incomplete multipart uploads")
        policies = attached("aws_s3_bucket_policy")
        docs = [tree.data.get(("aws_iam_policy_document", reference(p.get("policy"), "data.aws_iam_policy_document") or "")) for p in policies]
        denies_plain = any(
            s.get("effect") == "Deny"
            and any(c.get("variable") == "aws:SecureTransport" and as_list(c.get("values")) == ["false"] for c in as_list(s.get("condition")))
            for d in docs
            if d
            for s in statements(d)
        )
        if not denies_plain:
            problems.append(f"aws_s3_bucket.{name}: the bucket policy does not deny requests without TLS")
    return problems


# A KMS key ARN a validation must accept, and what it must refuse: wildcards anywhere, other resource types, aliases
# (an alias can be re-pointed) and anything around a valid ARN (an unanchored pattern).
KEY_ARN = "arn:aws:kms:eu-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
NOT_KEY_ARNS = [
    "*",
    "arn:aws:kms:eu-west-2:111122223333:key/*",
    "arn:aws:kms:eu-west-2:111122223333:*",
    "arn:aws:kms:*:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "arn:aws:kms:eu-west-2:*:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "arn:aws:kms:eu-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890a?",
    "arn:aws:kms:eu-west-2:111122223333:alias/tenant",
    "arn:aws:iam::111122223333:role/tenant",
    KEY_ARN + "*",
    "*" + KEY_ARN,
]


def arn_variable_problem(tree: Tree, directory: str, name: str) -> str | None:
    """A Resource taken from `var.<name>` is allowed when the variable's validation checks each entry with an
    anchored regex that accepts a KMS key ARN and refuses wildcards (tried here, Python's re standing in for RE2)."""
    body = tree.variables.get((directory, name))
    if body is None:
        return f"variable {name} is not declared in {directory}"
    for validation in as_list(body.get("validation")):
        condition = str(validation.get("condition", ""))
        if "for " not in condition or f"in var.{name}" not in condition or "alltrue(" not in condition:
            continue
        for raw in re.findall(r'regex\("((?:[^"\\]|\\.)*)"', condition):
            pattern = re.sub(r"\\(.)", r"\1", raw)
            try:
                compiled = re.compile(pattern)
            except re.error:
                continue
            if compiled.search(KEY_ARN) and not any(compiled.search(bad) for bad in NOT_KEY_ARNS):
                return None
    return f"variable {name} has no validation of each entry as a KMS key ARN without wildcards"


def irsa_role(tree: Tree) -> Problems:
    """The role assumed with web identity: trust limited to one service account, policy to named resources."""
    problems = []
    roles = {}
    for name, role in of_type(tree, "aws_iam_role").items():
        trust = tree.data.get(("aws_iam_policy_document", reference(role.get("assume_role_policy"), "data.aws_iam_policy_document") or ""))
        if trust and any("sts:AssumeRoleWithWebIdentity" in as_list(s.get("actions")) for s in statements(trust)):
            roles[name] = trust
    if not roles:
        return ["no IRSA role (a role assumed with sts:AssumeRoleWithWebIdentity) found"]
    for name, trust in roles.items():
        for statement in statements(trust):
            conditions = {c.get("variable", "").rsplit(":", 1)[-1]: c for c in as_list(statement.get("condition"))}
            subject = conditions.get("sub")
            if not subject or subject.get("test") != "StringEquals" or any(
                not str(v).startswith("system:serviceaccount:") and v != "${local.service_account_subject}" for v in as_list(subject.get("values"))
            ):
                problems.append(f"aws_iam_role.{name}: trust is not limited to one service account (StringEquals on :sub)")
            audience = conditions.get("aud")
            if not audience or as_list(audience.get("values")) != ["sts.amazonaws.com"]:
                problems.append(f"aws_iam_role.{name}: trust does not require the sts.amazonaws.com audience")
            federated = [p for p in as_list(statement.get("principals")) if p.get("type") == "Federated"]
            if not federated or any("*" in as_list(p.get("identifiers")) for p in federated):
                problems.append(f"aws_iam_role.{name}: trust's principal is not the cluster's OIDC provider")
        attached = [p for p in of_type(tree, "aws_iam_role_policy").values() if reference(p.get("role"), "aws_iam_role") == name]
        if not attached:
            problems.append(f"aws_iam_role.{name}: no inline policy found to check")
        for policy in attached:
            doc_name = reference(policy.get("policy"), "data.aws_iam_policy_document")
            document = tree.data.get(("aws_iam_policy_document", doc_name or ""))
            if document is None:
                problems.append(f"aws_iam_role.{name}: its policy is not an aws_iam_policy_document")
                continue
            for statement in statements(document):
                for resource in as_list(statement.get("resources")):
                    # Each resource names one of this module's resources (a path under it may end in /*), or comes
                    # from a variable whose validation admits only KMS key ARNs (tenants' own keys).
                    variable = reference(resource, "var")
                    if variable is not None and resource == "${var." + variable + "}":
                        problem = arn_variable_problem(tree, tree.data_directories.get(("aws_iam_policy_document", doc_name or ""), ""), variable)
                        if problem:
                            problems.append(f"{doc_name} ({statement.get('sid')}): Resource {resource!r}: {problem}")
                    elif resource == "*" or not str(resource).startswith("${aws_"):
                        problems.append(f"{doc_name} ({statement.get('sid')}): Resource {resource!r} is not a named resource")
                if statement.get("effect", "Allow") == "Allow" and any("*" in str(a).split(":", 1)[-1] for a in as_list(statement.get("actions"))):
                    problems.append(f"{doc_name} ({statement.get('sid')}): wildcard action")
    return problems


def versions_pinned(tree: Tree) -> Problems:
    problems = []
    for directory in sorted(tree.directories):
        blocks = tree.terraform_blocks.get(directory, [])
        if not any(b.get("required_version") for b in blocks):
            problems.append(f"{directory}: no required_version")
        providers = [p for b in blocks for rp in as_list(b.get("required_providers")) for p in rp.items()]
        if not providers:
            problems.append(f"{directory}: no required_providers")
        for provider, spec in providers:
            version = spec.get("version", "") if isinstance(spec, dict) else ""
            if not version.startswith("~>"):
                problems.append(f"{directory}: provider {provider} is not pinned with ~> ({version or 'no version'})")
    for (directory, name), module in tree.modules.items():
        source = module.get("source", "")
        if not source.startswith((".", "/")) and not str(module.get("version", "")).startswith("~>"):
            problems.append(f"{directory}: module {name} ({source}) is not pinned with ~>")
    return problems


def variables_documented(tree: Tree) -> Problems:
    if not tree.variables:
        return ["no variables found"]
    problems = []
    for (directory, name), body in sorted(tree.variables.items()):
        if not str(body.get("description", "")).strip():
            problems.append(f"{directory}: variable {name} has no description")
        if "type" not in body:
            problems.append(f"{directory}: variable {name} has no type")
    return problems


def outputs_reexported(tree: Tree) -> Problems:
    """A root that calls a local module re-exports each of its outputs: the runbook reads them in that root."""
    problems = []
    callers = [(d, n, m) for (d, n), m in tree.modules.items() if str(m.get("source", "")).startswith(".")]
    if not callers:
        return ["no root calls a local module (terraform/aws/examples/complete should)"]
    for directory, name, module in callers:
        target = os.path.normpath(os.path.join(directory, module["source"]))
        offered = {n for (d, n) in tree.outputs if d == target}
        exported = {n for (d, n) in tree.outputs if d == directory}
        if not offered:
            problems.append(f"{directory}: module {name} ({target}) has no outputs")
        problems += [f"{directory}: does not re-export output {o} of module {name}" for o in sorted(offered - exported)]
    return problems


CHECKS: list[tuple[str, Callable[[Tree], Problems]]] = [
    ("KMS key rotation enabled on every aws_kms_key", kms_rotation),
    ("no \"*\" principal in any KMS key policy", kms_policy_principals),
    ("Aurora storage encrypted with a KMS key of the module", aurora_encrypted),
    ("rds.force_ssl = 1 in the cluster parameter group", aurora_force_ssl),
    ("IAM database authentication on", aurora_iam_auth),
    ("deletion protection defaults to true (and a final snapshot, backups)", aurora_deletion_protection),
    ("S3 public access block all true", s3_public_access_blocked),
    ("S3 SSE-KMS, versioning, multipart abort, TLS-only policy", s3_encrypted_and_kept),
    ("IRSA trust limited to one service account; no \"*\" Resource", irsa_role),
    ("provider and module versions pinned with ~>, required_version set", versions_pinned),
    ("every variable has a description and a type", variables_documented),
    ("the example root re-exports every output of the module", outputs_reexported),
]


def run(tree: Tree, verbose: bool = True) -> dict[str, Problems]:
    results = {}
    for title, check in CHECKS:
        problems = check(tree)
        results[title] = problems
        if verbose:
            print(f"{'ok  ' if not problems else 'FAIL'} {title}")
            for problem in problems:
                print(f"       {problem}")
    return results


# --- Self-test: each check must notice the mistake it exists for -----------------------------------------------


def first(tree: Tree, rtype: str) -> dict:
    return next(iter(of_type(tree, rtype).values()))


def breakages() -> list[tuple[str, Callable[[Tree], None]]]:
    def no_rotation(t: Tree) -> None:
        first(t, "aws_kms_key")["enable_key_rotation"] = False

    def star_principal(t: Tree) -> None:
        doc = t.data[("aws_iam_policy_document", "wrapping_key")]
        statements(doc)[1]["principals"][0]["identifiers"] = ["*"]

    def unencrypted(t: Tree) -> None:
        first(t, "aws_rds_cluster")["storage_encrypted"] = False

    def ssl_optional(t: Tree) -> None:
        group = first(t, "aws_rds_cluster_parameter_group")
        group["parameter"] = [p for p in group["parameter"] if p["name"] != "rds.force_ssl"]

    def no_iam_auth(t: Tree) -> None:
        first(t, "aws_rds_cluster").pop("iam_database_authentication_enabled")

    def unprotected(t: Tree) -> None:
        for (directory, name), body in t.variables.items():
            if name == "db_deletion_protection":
                body["default"] = False

    def public_acls(t: Tree) -> None:
        first(t, "aws_s3_bucket_public_access_block")["ignore_public_acls"] = False

    def plain_http(t: Tree) -> None:
        doc = t.data[("aws_iam_policy_document", "files_bucket")]
        doc["statement"] = [s for s in doc["statement"] if s.get("sid") != "DenyWithoutTls"]

    def star_resource(t: Tree) -> None:
        t.data[("aws_iam_policy_document", "bunker")]["statement"][0]["resources"] = ["*"]

    def tenant_keys_unvalidated(t: Tree) -> None:
        t.variables[("aws", "tenant_kms_key_arns")].pop("validation")

    def tenant_keys_wildcard(t: Tree) -> None:
        # A pattern that looks right but lets "key/*" (any key of the account) through.
        for validation in t.variables[("aws", "tenant_kms_key_arns")]["validation"]:
            validation["condition"] = validation["condition"].replace(":key/(", ":key/(.*|")

    def floating_provider(t: Tree) -> None:
        next(iter(t.terraform_blocks.values()))[0]["required_providers"][0]["aws"]["version"] = ">= 6.0"

    def undocumented(t: Tree) -> None:
        next(iter(t.variables.values())).pop("description")

    def unexported(t: Tree) -> None:
        caller = next(d for (d, _), m in t.modules.items() if str(m.get("source", "")).startswith("."))
        t.outputs.pop(next(key for key in t.outputs if key[0] == caller))

    return [
        ("KMS key rotation enabled on every aws_kms_key", no_rotation),
        ("no \"*\" principal in any KMS key policy", star_principal),
        ("Aurora storage encrypted with a KMS key of the module", unencrypted),
        ("rds.force_ssl = 1 in the cluster parameter group", ssl_optional),
        ("IAM database authentication on", no_iam_auth),
        ("deletion protection defaults to true (and a final snapshot, backups)", unprotected),
        ("S3 public access block all true", public_acls),
        ("S3 SSE-KMS, versioning, multipart abort, TLS-only policy", plain_http),
        ("IRSA trust limited to one service account; no \"*\" Resource", star_resource),
        ("IRSA trust limited to one service account; no \"*\" Resource", tenant_keys_unvalidated),
        ("IRSA trust limited to one service account; no \"*\" Resource", tenant_keys_wildcard),
        ("provider and module versions pinned with ~>, required_version set", floating_provider),
        ("every variable has a description and a type", undocumented),
        ("the example root re-exports every output of the module", unexported),
    ]


def self_test(tree: Tree) -> int:
    missed = 0
    for title, breaks in breakages():
        broken = copy.deepcopy(tree)
        breaks(broken)
        if not run(broken, verbose=False)[title]:
            print(f"FAIL self-test: {title} did not notice its breakage")
            missed += 1
    print(f"self-test: {len(breakages()) - missed} of {len(breakages())} breakages caught")
    return 1 if missed else 0


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--")]
    root = Path(args[0] if args else "terraform")
    tree = load(root)
    if "--self-test" in argv:
        return self_test(tree)
    results = run(tree)
    failed = sum(1 for p in results.values() if p)
    print(f"structural checks: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
