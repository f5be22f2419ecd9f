#!/usr/bin/env python3
"""Step `examples` of tests/openapi/check.py: every request-body example of the document is sent and accepted.

Runs in the openapi-spec-validator venv (openapi-schema-validator judges the answers). An example is the
request body's `example`, each of its `examples` (`value`), or the `example` of the body's schema (after one
`$ref`); `--samples FILE` ({"Command": [body, ...]}) adds bodies that are not in the document, counted apart.
Each example runs in a fresh tenant (TenantCreate as root) seeded with what its placeholders name (the
convention is in check.py's docstring; SEEDS, UUID_SEEDS and PREREQUISITES below are the whole of it), is sent
with the root token and `X-Bunker-Tenant` (no token to a command whose `security` is empty), and the tenant is
deleted afterwards.

An example fails on a 5xx, on a 400, 401, 413 or 422 (the body, or the script's set-up, was refused), and
when the answer does not match the schema its operation documents for that status. 2xx, 403, 404 and 409 pass.
A document with no example at all fails too (issue 19 asks for examples of the main commands).

Usage: send_examples.py --spec spec.json --base-url URL --token ROOT [--samples FILE] --result result.json
"""

import argparse
import copy
from dataclasses import dataclass
import http.client
import json
import secrets
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urljoin

from openapi_schema_validator import OAS30Validator

USER_PLACEHOLDER = "11111111-1111-4111-8111-111111111111"
UNLOCK_PLACEHOLDER = "22222222-2222-4222-8222-222222222222"
TOKEN_PLACEHOLDER = "33333333-3333-4333-8333-333333333333"
SESSION_PLACEHOLDER = "44444444-4444-4444-8444-444444444444"
REQUEST_PLACEHOLDER = "55555555-5555-4555-8555-555555555555"
FILE_PLACEHOLDER = "66666666-6666-4666-8666-666666666666"
SHARED_RECORD_PLACEHOLDER = "77777777-7777-4777-8777-777777777777"
AUDIT_EVENT_PLACEHOLDER = "88888888-8888-4888-8888-888888888888"
TENANT_NAME_PLACEHOLDER = "acme"
TENANT_ID_PLACEHOLDER = 2
DEMO_USER = {"email": "jane@example.com", "phone": "+44 7911 123456", "login": "jane", "name": "Jane Doe"}
DEMO_IDENTITIES = {DEMO_USER["email"], DEMO_USER["phone"], DEMO_USER["login"]}
JANE = {"mode": "token", "identity": USER_PLACEHOLDER}
ID_PLACEHOLDER = 1  # under `groupid`, `roleid` or `policyid`: the id of the seeded group, role or policy


@dataclass
class Seed:
    """An object made when an example names it (by one of `keys`: (key, value) pairs), except by `command` itself.

    `scope` "installation" is for roles and policies, which are not per tenant: their placeholder names become
    names of this run's own (`support` -> `support-<run>`) everywhere, the creating command included, and each
    is made once per run."""

    keys: tuple
    command: str
    body: dict
    id_key: str | None = None  # the answer's field holding the id, also the example's key for the id placeholder
    scope: str = "tenant"


SEEDS = [
    Seed((("groupname", "staff"), ("groupid", ID_PLACEHOLDER)), "GroupCreate",
         {"groupname": "staff", "groupdesc": "Staff"}, "groupid"),
    Seed((("rolename", "support"), ("Role", "support"), ("roleid", ID_PLACEHOLDER)), "RoleCreate",
         {"rolename": "support", "roledesc": "Support desk"}, "roleid", "installation"),
    Seed((("policyname", "support-read"), ("policyid", ID_PLACEHOLDER)), "PolicyCreate",
         {"policyname": "support-read", "policy": {"Effect": "Allow", "Principal": {"Role": "support"},
                                                   "Action": ["UserGet"], "Resource": ["users.profile.name"]}},
         "policyid", "installation"),
    Seed((("brief", "marketing"),), "LegalBasisCreate",
         {"brief": "marketing", "shortdesc": "Marketing", "usercontrol": True}),
    Seed((("activity", "newsletter"),), "ProcessingActivityCreate", {"activity": "newsletter", "title": "Newsletter"}),
    Seed((("appname", "shop"),), "AppdataCreate", {**JANE, "appname": "shop", "appdata": {"cart": ["book"]}}),
]
# Commands that act on a link between seeded objects: the link is made first, by this command with the
# example's own (substituted) body, plus these fields.
PREREQUISITES = {
    "GroupDeleteUser": ("GroupAddUser", {}),
    "AgreementGet": ("AgreementAccept", {"status": "yes"}),
    "AgreementCancel": ("AgreementAccept", {"status": "yes"}),
    "AgreementCancelRequest": ("AgreementAccept", {"status": "yes"}),
    "ProcessingActivityUnlinkLegalBasis": ("ProcessingActivityLinkLegalBasis", {}),
}
# Placeholder uuid -> (command that makes the object, its body, the answer's field holding the uuid).
UUID_SEEDS = {
    SESSION_PLACEHOLDER: ("SessionUpsert", {"sessionuuid": SESSION_PLACEHOLDER, "sessiondata": {"token": USER_PLACEHOLDER}}, None),
    REQUEST_PLACEHOLDER: ("UserUpdateRequest", {**JANE, "profile": {"name": "Jane D."}}, "requestuuid"),
    FILE_PLACEHOLDER: ("FileCreate", {**JANE, "filename": "note.txt", "filedata": "aGVsbG8=", "tags": ["demo"]}, "fileuuid"),
    SHARED_RECORD_PLACEHOLDER: ("SharedRecordCreate", {**JANE, "fields": "name", "partner": "courier"}, "recorduuid"),
    AUDIT_EVENT_PLACEHOLDER: ("AuditListUserEvents", JANE, "rows.0.auditeventuuid"),
}
FAILING_STATUSES = {400, 401, 413, 422}
SHOWN = 40


class Server:
    def __init__(self, base_url: str, api_url: str, root_token: str):
        self.base_url = base_url
        self.api_url = api_url
        self.root_token = root_token

    def post(self, path: str, body, token: str | None, tenant: str | None) -> tuple[int, object, str]:
        """POST a JSON body; returns the status, the decoded answer (None if not JSON) and its content type."""
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["X-Bunker-Token"] = token
        if tenant is not None:
            headers["X-Bunker-Tenant"] = tenant
        request = urllib.request.Request(
            self.api_url + path, data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, raw, content_type = response.status, response.read(), response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as error:
            status, raw, content_type = error.code, error.read(), error.headers.get("Content-Type", "")
        except (OSError, http.client.HTTPException) as error:
            return 0, f"no answer: {error}", ""
        try:
            return status, json.loads(raw), content_type
        except ValueError:
            return status, None, content_type

    def root(self, command: str, body: dict, tenant: str | None = None) -> dict:
        status, answer, _ = self.post(f"/{command}", body, self.root_token, tenant)
        if status != 200 or not isinstance(answer, dict):
            raise RuntimeError(f"set-up {command} answered {status} {json.dumps(answer)[:200]}")
        return answer


def collect_examples(spec: dict) -> list[tuple[str, str, str, object]]:
    """(command, path, where the example is, body) for every request-body example of the document."""
    schemas = spec.get("components", {}).get("schemas", {})
    found = []
    for path, item in spec.get("paths", {}).items():
        for method, operation in item.items():
            if method != "post":
                continue
            command = path.rstrip("/").split("/")[-1]
            for media_name, media in operation.get("requestBody", {}).get("content", {}).items():
                if "example" in media:
                    found.append((command, path, f"requestBody {media_name} example", media["example"]))
                for name, example in media.get("examples", {}).items():
                    found.append((command, path, f"requestBody {media_name} examples.{name}", example.get("value")))
                schema = media.get("schema", {})
                label = "inline schema"
                if "$ref" in schema:
                    label = f"schema {schema['$ref'].split('/')[-1]}"
                    schema = schemas.get(schema["$ref"].split("/")[-1], {})
                if "example" in schema:
                    found.append((command, path, f"{label} example", schema["example"]))
                for index, example in enumerate(schema.get("examples", []) if isinstance(schema.get("examples"), list) else []):
                    found.append((command, path, f"{label} examples[{index}]", example))
    return found


def strings_in(value, key=None):
    """(key, value) of every scalar in a JSON value, with the key it sits under."""
    if isinstance(value, dict):
        for name, item in value.items():
            yield from strings_in(item, name)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item, key)
    else:
        yield key, value


def substitute(value, mapping: dict, key=None):
    """The value with every placeholder replaced; a placeholder is a whole scalar (`(key, value)` or `value`)."""
    if isinstance(value, dict):
        return {name: substitute(item, mapping, name) for name, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, mapping, key) for item in value]
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        if (key, value) in mapping:
            return mapping[(key, value)]
        if value in mapping and isinstance(value, str):
            return mapping[value]
    return value


class FreshTenant:
    """A tenant of one example's own, seeded with what the example's placeholders name."""

    # Roles and policies made by this run (installation-wide): seed command -> id.
    installation_ids: dict = {}

    def __init__(self, server: Server, run_id: str, index: int):
        self.server = server
        self.run_id = run_id
        self.name = f"oapi-ex-{run_id}-{index}"
        self.extra_tenants: list[int] = []
        self.id = server.root("TenantCreate", {"tenantname": self.name, "tenantorg": self.name})["tenantid"]

    def installation_names(self) -> dict:
        """(key, placeholder name) -> this run's name, for the installation-wide seeds."""
        return {
            (key, value): f"{value}-{self.run_id}"
            for seed in SEEDS if seed.scope == "installation"
            for key, value in seed.keys if isinstance(value, str)
        }

    def prepare(self, command: str, body) -> object:
        """Seeds what the body names and returns it with the placeholders replaced."""
        scalars = list(strings_in(body))
        values = {value for _key, value in scalars if isinstance(value, str)}
        # A seed's own body may name further seeds (a policy names its role; app data, Jane): take them too.
        wanted: list[Seed] = []
        pending = [seed for seed in SEEDS if any(key in scalars for key in seed.keys)]
        while pending:
            seed = pending.pop(0)
            if seed.command == command or seed in wanted:
                continue
            wanted.append(seed)
            inner = list(strings_in(seed.body))
            pending += [other for other in SEEDS if other not in wanted and any(k in inner for k in other.keys)]
        uuids = [(uuid, seed) for uuid, seed in UUID_SEEDS.items() if uuid in values and seed[0] != command]
        bodies = json.dumps([seed.body for seed in wanted] + [seed[1] for _uuid, seed in uuids])
        mapping: dict = dict(self.installation_names())
        if (
            USER_PLACEHOLDER in values
            or USER_PLACEHOLDER in bodies
            or any(key == "identity" and value in DEMO_IDENTITIES for key, value in scalars)
        ):
            mapping[USER_PLACEHOLDER] = self.server.root("UserCreate", {"profile": DEMO_USER}, self.name)["token"]
        if UNLOCK_PLACEHOLDER in values:
            mapping[UNLOCK_PLACEHOLDER] = self.server.root("BulkListUnlock", {}, self.name)["unlockuuid"]
        if TOKEN_PLACEHOLDER in values:
            answer = self.server.root("TokenCreate", {"tokentype": "text", "record": "a demo value"}, self.name)
            mapping[TOKEN_PLACEHOLDER] = answer["tokenuuid"]
        # Installation-wide ones first (a policy needs its role), each once per run.
        for seed in sorted(wanted, key=lambda seed: seed.scope != "installation"):
            if seed.scope == "installation" and seed.command in self.installation_ids:
                made = self.installation_ids[seed.command]
            else:
                made = self.server.root(seed.command, substitute(seed.body, mapping), self.name).get(seed.id_key)
                if seed.scope == "installation":
                    self.installation_ids[seed.command] = made
            if seed.id_key:
                mapping[(seed.id_key, ID_PLACEHOLDER)] = made
                mapping[(seed.id_key, str(ID_PLACEHOLDER))] = made
        for uuid, (seed_command, seed_body, field) in uuids:
            answer = self.server.root(seed_command, substitute(seed_body, mapping), self.name)
            if field is not None:
                for part in field.split("."):
                    answer = answer[int(part)] if isinstance(answer, list) else answer[part]
                mapping[uuid] = answer
        new_name = f"{self.name}-new" if command == "TenantCreate" else self.name
        mapping[("tenantname", TENANT_NAME_PLACEHOLDER)] = new_name
        mapping[("tenantid", TENANT_ID_PLACEHOLDER)] = self.id
        mapping[("tenantid", str(TENANT_ID_PLACEHOLDER))] = self.id
        prepared = substitute(copy.deepcopy(body), mapping)
        if command in PREREQUISITES and isinstance(prepared, dict):
            pre_command, extra = PREREQUISITES[command]
            self.server.root(pre_command, {**prepared, **extra}, self.name)
        return prepared

    def note_created(self, command: str, answer) -> None:
        if not isinstance(answer, dict):
            return
        if command == "TenantCreate" and "tenantid" in answer:
            self.extra_tenants.append(answer["tenantid"])
        for seed in SEEDS:  # an example that made a role or policy of this run: later ones reuse it
            if seed.scope == "installation" and seed.command == command and seed.id_key in answer:
                self.installation_ids.setdefault(command, answer[seed.id_key])

    def delete(self) -> None:
        for tenant_id in [*self.extra_tenants, self.id]:
            self.server.post("/TenantDelete", {"tenantid": tenant_id}, self.server.root_token, None)


def documented_schema(spec: dict, operation: dict, status: int, content_type: str) -> dict | None:
    responses = operation.get("responses", {})
    response = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX") or responses.get("default")
    if response is None:
        return None
    content = response.get("content", {})
    base = content_type.split(";")[0].strip()
    for media_name, media in content.items():
        if media_name.split(";")[0].strip() == base:
            return media.get("schema")
    return None


def answer_mismatches(spec: dict, operation: dict, status: int, answer, content_type: str) -> list[str]:
    responses = operation.get("responses", {})
    if not any(code in responses for code in (str(status), f"{str(status)[0]}XX", "default")):
        return [f"status {status} is not documented"]
    schema = documented_schema(spec, operation, status, content_type)
    if schema is None:
        return [f"{status}: content type {content_type!r} not documented"]
    if answer is None:  # not JSON: bytes (FileGet raw) or a page; judged by the content type alone
        json_declared = "json" in content_type.split(";")[0]
        return [f"{status}: the answer is not JSON, as {content_type!r} says"] if json_declared else []
    validator = OAS30Validator(
        {**schema, "components": spec.get("components", {})}, format_checker=OAS30Validator.FORMAT_CHECKER
    )
    errors = sorted(validator.iter_errors(answer), key=lambda error: [str(part) for part in error.path])
    paths = [tuple(error.path) for error in errors]
    return [
        f"{status} /{'/'.join(map(str, error.path))}: {error.message[:140]}"
        for error in errors
        # A null where the schema has a type gives two errors; keep the one that names the type.
        if not (error.message.endswith("for not nullable") and paths.count(tuple(error.path)) > 1)
    ]


def is_public(spec: dict, operation: dict) -> bool:
    requirements = operation.get("security", spec.get("security", []))
    return not requirements or any(not requirement for requirement in requirements)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--samples", type=Path)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args()
    spec = json.loads(args.spec.read_text())
    base_url = args.base_url.rstrip("/")
    servers = spec.get("servers") or [{"url": "/"}]
    server = Server(base_url, urljoin(base_url + "/", servers[0]["url"]).rstrip("/"), args.token)
    paths = {path.rstrip("/").split("/")[-1]: path for path in spec.get("paths", {})}

    examples = [("document", *entry) for entry in collect_examples(spec)]
    if args.samples:
        for command, bodies in json.loads(args.samples.read_text()).items():
            if command.startswith("_"):
                continue  # comments
            for index, body in enumerate(bodies):
                examples.append(("sample", command, paths.get(command, f"/{command}"), f"sample {index}", body))

    run_id = secrets.token_hex(3)
    failures: list[str] = []
    statuses: dict[str, dict] = {"document": {}, "sample": {}}
    failed = {"document": 0, "sample": 0}
    for index, (source, command, path, where, body) in enumerate(examples):
        operation = spec.get("paths", {}).get(path, {}).get("post")
        if operation is None:
            failures.append(f"{source} {command}: no such operation in the document")
            failed[source] += 1
            continue
        try:
            tenant = FreshTenant(server, run_id, index)
        except RuntimeError as error:
            failures.append(f"{source} {command} ({where}): {error}")
            failed[source] += 1
            continue
        try:
            sent = tenant.prepare(command, body)
            token = None if is_public(spec, operation) else server.root_token
            status, answer, content_type = server.post(path, sent, token, tenant.name)
            tenant.note_created(command, answer)
        except (RuntimeError, KeyError, IndexError) as error:
            print(f"FAIL {command:32} set-up: {error}")
            failures.append(f"{source} {command} ({where}): set-up failed: {error}")
            failed[source] += 1
            continue
        finally:
            tenant.delete()
        counts = statuses[source]
        counts[status] = counts.get(status, 0) + 1
        problems = []
        if status == 0 or status >= 500 or status in FAILING_STATUSES:
            message = answer.get("message") if isinstance(answer, dict) else answer
            problems.append(f"{status} {str(message)[:160]}")
        if status:
            problems += answer_mismatches(spec, operation, status, answer, content_type)
        print(f"{'FAIL' if problems else 'ok  '} {command:32} {status} ({where})")
        if problems:
            failed[source] += 1
            failures += [f"{command} ({where}): {problem}" for problem in problems]

    document_count = sum(1 for entry in examples if entry[0] == "document")
    with_examples = len({entry[1] for entry in examples if entry[0] == "document"})
    if document_count == 0:
        failures.insert(0, "the document has no request-body example")
    figures = {
        "operations": len(paths),
        "operations with examples": with_examples,
        "examples sent": document_count,
        "examples failed": failed["document"],
        "statuses": ", ".join(f"{code}: {n}" for code, n in sorted(statuses["document"].items())) or "-",
    }
    if args.samples:
        figures["samples sent"] = len(examples) - document_count
        figures["samples failed"] = failed["sample"]
        figures["sample statuses"] = ", ".join(f"{c}: {n}" for c, n in sorted(statuses["sample"].items()))
    shown = failures[:SHOWN] + ([f"... and {len(failures) - SHOWN} more"] if len(failures) > SHOWN else [])
    args.result.write_text(json.dumps({"ok": not failures, "figures": figures, "failures": shown}))
    print(", ".join(f"{key} {value}" for key, value in figures.items()))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
