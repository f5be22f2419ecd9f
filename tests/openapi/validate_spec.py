#!/usr/bin/env python3
"""Step `spec` of tests/openapi/check.py: validates Bunker's OpenAPI document and checks what Bunker promises of it.

Runs in the openapi-spec-validator venv (it also provides openapi-schema-validator and jsonschema). Fails on:
- a document that is not OpenAPI 3.0.x, or that openapi-spec-validator rejects (every error is listed);
- an operation whose `operationId` is not its command name (`POST /UserCreate` -> `UserCreate`);
- no header API-key scheme for `X-Bunker-Token`, or none for `X-Bunker-Tenant`;
- a command that needs a token but whose `security` does not name the token scheme, or does not name the
  tenant scheme in any of its alternatives; a public command (PUBLIC_COMMANDS) whose `security` asks for a token;
- an `example` (of a schema, or of a media type's `example`/`examples`) that does not match its schema.
It also counts, without judging, how precise the schemas are (untyped properties, enums, string bounds).

Usage: validate_spec.py --spec spec.json --result result.json
"""

import argparse
import json
import sys
from pathlib import Path

from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import OpenAPIV30SpecValidator

TOKEN_HEADER = "X-Bunker-Token"
TENANT_HEADER = "X-Bunker-Tenant"
# The commands that answer without a token (issue 19: "the public commands marked as needing no token").
PUBLIC_COMMANDS = {
    "UserPrelogin", "UserLogin", "CaptchaCreate", "SharedRecordGet", "TenantGetUIConf",
    "UserExpirationRetain", "UserExpirationDelete",
}
SHOWN = 12  # failures of one kind listed before "... and N more"
SUBSCHEMA_KEYS = ("items", "additionalProperties", "not")
SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf")


def operations(spec: dict):
    """(command, method, operation) for every operation; the command is the path's last segment."""
    for path, item in spec.get("paths", {}).items():
        for method, operation in item.items():
            if method in ("get", "put", "post", "delete", "options", "head", "patch", "trace"):
                yield path.rstrip("/").split("/")[-1], method, operation


def header_schemes(spec: dict) -> dict[str, str]:
    """Header name -> name of the apiKey scheme sending it."""
    schemes = spec.get("components", {}).get("securitySchemes", {})
    return {
        scheme.get("name"): name
        for name, scheme in schemes.items()
        if scheme.get("type") == "apiKey" and scheme.get("in") == "header"
    }


def walk_schema(schema, where: str):
    """Every (location, schema) in a schema and its subschemas (properties, items, compositions, ...)."""
    if not isinstance(schema, dict):
        return
    yield where, schema
    for name, sub in schema.get("properties", {}).items():
        yield from walk_schema(sub, f"{where}.{name}")
    for key in SUBSCHEMA_KEYS:
        if isinstance(schema.get(key), dict):
            yield from walk_schema(schema[key], f"{where}/{key}")
    for key in SUBSCHEMA_LISTS:
        for index, sub in enumerate(schema.get(key, [])):
            yield from walk_schema(sub, f"{where}/{key}/{index}")


def media_types(spec: dict):
    """(location, media type object) of every request and response body."""
    for command, _method, operation in operations(spec):
        for media_name, media in operation.get("requestBody", {}).get("content", {}).items():
            yield f"{command} request {media_name}", media
        for status, response in operation.get("responses", {}).items():
            for media_name, media in response.get("content", {}).items():
                yield f"{command} {status} {media_name}", media


def example_mismatches(spec: dict) -> tuple[int, list[str]]:
    """Validates every example against its schema; returns the number of examples and the mismatches."""
    components = spec.get("components", {})

    def check(example, schema: dict, where: str) -> list[str]:
        # Local `$ref`s (#/components/...) resolve against the schema's root: give it the components.
        validator = OAS30Validator({**schema, "components": components}, format_checker=OAS30Validator.FORMAT_CHECKER)
        errors = sorted(validator.iter_errors(example), key=lambda error: list(error.path))
        return [f"{where}: example at /{'/'.join(map(str, e.path))}: {e.message[:150]}" for e in errors]

    count, mismatches = 0, []
    sources = [(f"schema {name}", schema) for name, schema in components.get("schemas", {}).items()]
    sources += [(where, media.get("schema", {})) for where, media in media_types(spec)]
    for source, root in sources:
        for where, schema in walk_schema(root, source):
            if "example" in schema:
                count += 1
                mismatches += check(schema["example"], schema, where)
    for where, media in media_types(spec):
        examples = [("example", media["example"])] if "example" in media else []
        examples += [(f"examples.{name}", value.get("value")) for name, value in media.get("examples", {}).items()]
        for name, example in examples:
            count += 1
            mismatches += check(example, media.get("schema", {}), f"{where} {name}")
    return count, mismatches


def security_failures(spec: dict, schemes: dict[str, str]) -> list[str]:
    token_scheme, tenant_scheme = schemes.get(TOKEN_HEADER), schemes.get(TENANT_HEADER)
    failures = []
    if not token_scheme:
        failures.append(f"no apiKey scheme in the header {TOKEN_HEADER}")
    if not tenant_scheme:
        failures.append(f"no apiKey scheme in the header {TENANT_HEADER} (e.g. `BunkerTenant`)")
    no_token, no_tenant, public_with_token = [], [], []
    for command, _method, operation in operations(spec):
        requirements = operation.get("security", spec.get("security", []))
        names = [set(requirement) for requirement in requirements]
        needs_token = bool(names) and all(token_scheme in requirement for requirement in names)
        if command in PUBLIC_COMMANDS:
            if needs_token:
                public_with_token.append(command)
            continue
        if token_scheme and not needs_token:
            no_token.append(command)
        if tenant_scheme and not any(tenant_scheme in requirement for requirement in names):
            no_tenant.append(command)
    for label, commands in (
        (f"needing a token but not requiring {token_scheme}", no_token),
        (f"whose security never names {tenant_scheme}", no_tenant),
        ("public but requiring a token", public_with_token),
    ):
        if commands:
            shown = ", ".join(commands[:SHOWN]) + (f", ... ({len(commands)} in all)" if len(commands) > SHOWN else "")
            failures.append(f"commands {label}: {shown}")
    return failures


def precision_figures(spec: dict) -> dict[str, int]:
    """How much the schemas say (counted, not judged): properties without a type, enums, string bounds."""
    untyped = enums = bounded = properties = 0
    for schema in spec.get("components", {}).get("schemas", {}).values():
        for _where, sub in walk_schema(schema, ""):
            enums += "enum" in sub
            bounded += any(key in sub for key in ("maxLength", "minLength", "pattern", "maximum", "minimum"))
        for sub in schema.get("properties", {}).values():
            properties += 1
            untyped += not any(key in sub for key in ("type", "$ref", "allOf", "anyOf", "oneOf"))
    return {"properties": properties, "untyped properties": untyped, "enums": enums, "bounded": bounded}


def listed(label: str, items: list[str]) -> list[str]:
    lines = [f"{label}: {item}" for item in items[:SHOWN]]
    if len(items) > SHOWN:
        lines.append(f"{label}: ... and {len(items) - SHOWN} more")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args()
    spec = json.loads(args.spec.read_text())
    failures: list[str] = []

    version = str(spec.get("openapi", ""))
    if not version.startswith("3.0."):
        failures.append(f"`openapi` is {version!r}, not 3.0.x")
    errors = list(OpenAPIV30SpecValidator(spec).iter_errors())
    print(f"openapi-spec-validator: {len(errors)} errors")
    failures += listed("openapi-spec-validator", [f"{'/'.join(map(str, e.path))}: {e.message[:200]}" for e in errors])

    ops = list(operations(spec))
    wrong_ids = [f"{command} has {operation.get('operationId')!r}" for command, _m, operation in ops
                 if operation.get("operationId") != command]
    print(f"operations: {len(ops)}, operationId not the command name: {len(wrong_ids)}")
    failures += listed("operationId", wrong_ids)

    schemes = header_schemes(spec)
    print(f"header API-key schemes: {', '.join(f'{n} ({h})' for h, n in schemes.items()) or 'none'}")
    failures += security_failures(spec, schemes)

    examples, mismatches = example_mismatches(spec)
    print(f"examples: {examples}, not matching their schema: {len(mismatches)}")
    failures += listed("example", mismatches)

    precision = precision_figures(spec)
    print("schemas: " + ", ".join(f"{key} {value}" for key, value in precision.items()))

    figures = {
        "validator errors": len(errors),
        "operations": len(ops),
        "wrong operationIds": len(wrong_ids),
        "examples": examples,
        "example mismatches": len(mismatches),
        **precision,
    }
    args.result.write_text(json.dumps({"ok": not failures, "figures": figures, "failures": failures}))
    for failure in failures:
        print(f"FAIL {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
