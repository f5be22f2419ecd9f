#!/usr/bin/env python3
"""Step `client` of tests/openapi/check.py: a client generated from the document creates and reads a user in a tenant.

Runs in the openapi-python-client venv. Generates `bunker_client` with `openapi-python-client generate --path
spec.json --meta none` (any generator warning is a failure: a piece of the client may be missing), imports it,
and with it alone:

1. TenantCreate (root token, default tenant) -> the tenant's id and admin token;
2. UserCreate in that tenant with the admin token, profile {"email": ..., "name": ...} -> the user's token;
3. UserGet mode=token in that tenant -> the same profile;
4. UserGet mode=token as root in the default tenant -> not found (the tenant header really chose the tenant);
5. TenantDelete (root) of the tenant.

Operations are found by operationId: the module openapi-python-client names after it (`UserCreate` ->
`user_create`, under any tag). Bodies are built with the generated models' `from_dict`, so that free JSON and
typed objects both work. openapi-python-client ignores `securitySchemes` (its AuthenticatedClient sends one
token in one header), so the credentials go where the document's schemes say: the token scheme's header becomes
the client's `auth_header_name` (no prefix), the tenant scheme's header a client header; if an operation declares
the tenant header as a parameter instead, its generated argument is used. Whatever the document lacks (a scheme,
an operationId) is a failure; the round trip then goes on with the header names Bunker uses, to find what else
fails. Every call is made with `raise_on_unexpected_status=True`, so an undocumented status fails too.

Usage: client_roundtrip.py --spec spec.json --base-url URL --token ROOT --workdir DIR --generator PATH
       --result result.json
"""

import argparse
import importlib
import inspect
import json
import secrets
import subprocess
import sys
import traceback
import typing
from pathlib import Path
from urllib.parse import urljoin

from openapi_python_client import strings

PACKAGE = "bunker_client"
TOKEN_HEADER = "X-Bunker-Token"
TENANT_HEADER = "X-Bunker-Tenant"
FIELD_PREFIX = "field_"  # openapi-python-client's default `field_prefix`, used in its module names


class Roundtrip:
    def __init__(self, spec: dict, package_dir: Path, base_url: str, root_token: str):
        self.spec = spec
        self.package_dir = package_dir
        self.failures: list[str] = []
        self.steps_done: list[str] = []
        sys.path.insert(0, str(package_dir.parent))
        self.client_module = importlib.import_module(f"{PACKAGE}.client")
        self.server_url = self.resolve_server(base_url)
        schemes = self.spec.get("components", {}).get("securitySchemes", {})
        declared = {s.get("name") for s in schemes.values() if s.get("type") == "apiKey" and s.get("in") == "header"}
        if TOKEN_HEADER not in declared:
            self.failures.append(f"no apiKey scheme for the header {TOKEN_HEADER} (going on with it set by hand)")
        if TENANT_HEADER not in declared:
            self.failures.append(
                f"no apiKey scheme for the header {TENANT_HEADER}: a client reaches only the default tenant "
                "(going on with it set by hand)"
            )
        self.root_token = root_token

    def resolve_server(self, base_url: str) -> str:
        """The first `servers` URL, resolved against the base URL (Bunker declares the relative `/v2`)."""
        servers = self.spec.get("servers") or [{"url": "/"}]
        return urljoin(base_url + "/", servers[0]["url"]).rstrip("/")

    def client(self, token: str, tenant: str | None):
        headers = {}
        if tenant is not None:
            headers[TENANT_HEADER] = tenant
        return self.client_module.AuthenticatedClient(
            base_url=self.server_url,
            token=token,
            prefix="",
            auth_header_name=TOKEN_HEADER,
            headers=headers,
            raise_on_unexpected_status=True,
            timeout=30,
        )

    def operation(self, operation_id: str):
        """The generated module of an operation, by the name openapi-python-client derives from its operationId."""
        ids = {op.get("operationId") for item in self.spec.get("paths", {}).values() for op in item.values()}
        if operation_id not in ids:
            raise LookupError(f"no operation has the operationId {operation_id}")
        name = str(strings.PythonIdentifier(operation_id, FIELD_PREFIX))
        found = sorted((self.package_dir / "api").glob(f"**/{name}.py"))
        if len(found) != 1:
            raise LookupError(f"operationId {operation_id}: {len(found)} generated modules named {name}.py")
        relative = found[0].relative_to(self.package_dir).with_suffix("")
        return importlib.import_module(".".join((PACKAGE, *relative.parts)))

    def call(self, operation_id: str, client, body: dict, tenant: str | None = None):
        """Calls an operation with a body built by its generated model; returns (status, answer as a dict)."""
        module = self.operation(operation_id)
        parameters = inspect.signature(module.sync_detailed).parameters
        kwargs = {"client": client}
        if "body" in parameters:
            kwargs["body"] = self.body_model(parameters["body"].annotation).from_dict(body)
        elif body:
            raise LookupError(f"{operation_id}: the generated function takes no body")
        tenant_argument = [name for name in parameters if name.lower() == "x_bunker_tenant"]
        if tenant_argument and tenant is not None:
            kwargs[tenant_argument[0]] = tenant
        response = module.sync_detailed(**kwargs)
        parsed = response.parsed
        answer = parsed.to_dict() if hasattr(parsed, "to_dict") else parsed
        return int(response.status_code), answer

    @staticmethod
    def body_model(annotation):
        """The model class of the `body` argument (`UserCreateRequest | Unset` -> UserCreateRequest)."""
        for candidate in typing.get_args(annotation) or (annotation,):
            if hasattr(candidate, "from_dict"):
                return candidate
        raise LookupError(f"no model in the body annotation {annotation}")

    def expect(self, step: str, status: int, answer, wanted_status: int, *keys: str) -> dict:
        if status != wanted_status or not isinstance(answer, dict) or any(key not in answer for key in keys):
            raise AssertionError(f"{step}: status {status}, answer {json.dumps(answer)[:200]}")
        self.steps_done.append(step)
        return answer

    def run(self) -> None:
        name = f"oapi-client-{secrets.token_hex(4)}"
        email = f"{name}@example.com"
        root = self.client(self.root_token, None)
        status, answer = self.call("TenantCreate", root, {"tenantname": name, "tenantorg": name})
        created = self.expect("TenantCreate", status, answer, 200, "tenantid", "xtoken")
        tenant_id, admin_token = created["tenantid"], created["xtoken"]
        print(f"TenantCreate: {status}, tenant {name} id {tenant_id}")
        try:
            admin = self.client(admin_token, name)
            profile = {"email": email, "name": "Client Test"}
            status, answer = self.call("UserCreate", admin, {"profile": profile}, tenant=name)
            user_token = self.expect("UserCreate", status, answer, 200, "token")["token"]
            print(f"UserCreate in {name}: {status}")
            status, answer = self.call("UserGet", admin, {"mode": "token", "identity": user_token}, tenant=name)
            got = self.expect("UserGet", status, answer, 200, "profile")
            print(f"UserGet in {name}: {status}, profile {'matches' if got['profile'] == profile else 'DIFFERS'}")
            if got["profile"] != profile:
                self.failures.append(f"UserGet read back {json.dumps(got['profile'])[:200]}, not {profile}")
            status, answer = self.call("UserGet", root, {"mode": "token", "identity": user_token})
            print(f"UserGet as root in the default tenant: {status}")
            self.expect("UserGet (default tenant: not found)", status, answer, 404)
        finally:
            status, answer = self.call("TenantDelete", root, {"tenantid": tenant_id})
            print(f"TenantDelete: {status}")
            self.expect("TenantDelete", status, answer, 200)


def generate(generator: str, spec_path: Path, package_dir: Path) -> list[str]:
    """Runs openapi-python-client; returns its warnings (its output when it says it met any)."""
    command = [generator, "generate", "--path", str(spec_path), "--meta", "none", "--output-path", str(package_dir)]
    finished = subprocess.run(command, capture_output=True, text=True, check=False)
    output = (finished.stdout + finished.stderr).strip()
    if finished.returncode != 0 or not (package_dir / "client.py").is_file():
        raise RuntimeError(f"openapi-python-client failed ({finished.returncode}):\n{output[-3000:]}")
    lines = [line for line in output.splitlines() if line.strip() and not line.startswith("Generating ")]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for flag in ("--base-url", "--token", "--generator"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args()
    spec = json.loads(args.spec.read_text())
    package_dir = args.workdir / "client" / PACKAGE
    failures: list[str] = []
    figures: dict = {}
    steps_done: list[str] = []
    try:
        warnings = generate(args.generator, args.spec, package_dir)
        modules = len([p for p in (package_dir / "api").glob("**/*.py") if p.name != "__init__.py"])
        models = len([p for p in (package_dir / "models").glob("*.py") if p.name != "__init__.py"])
        figures.update({"generated modules": modules, "models": models, "generator warnings": len(warnings)})
        print(f"generated {PACKAGE}: {modules} api modules, {models} models, {len(warnings)} warning lines")
        if warnings:
            failures.append("openapi-python-client warned: " + " | ".join(warnings)[:600])
        roundtrip = Roundtrip(spec, package_dir, args.base_url.rstrip("/"), args.token)
        try:
            roundtrip.run()
        finally:
            failures = roundtrip.failures + failures
            steps_done = roundtrip.steps_done
    except Exception as error:  # noqa: BLE001 - reported as the step's failure, with where it happened
        where = traceback.extract_tb(error.__traceback__)[-1]
        failures.append(f"{type(error).__name__}: {str(error)[:400]} (at {Path(where.filename).name}:{where.lineno})")
    figures["calls ok"] = f"{len(steps_done)}/5"
    args.result.write_text(json.dumps({"ok": not failures, "figures": figures, "failures": failures}))
    for failure in failures:
        print(f"FAIL {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
