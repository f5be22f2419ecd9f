#!/usr/bin/env python3
"""Check Bunker's OpenAPI document against a running server: it validates, a generated client works with it,
and the server accepts its examples.

Given the base URL of a running Bunker and its root token, runs three steps and prints a summary with figures:

1. spec: fetches `GET /openapi.json` and validates it with openapi-spec-validator (an OpenAPI 3.0.x document);
   then checks of its own (`validate_spec.py`): every operation's `operationId` is its command name, the
   document declares header API-key schemes for `X-Bunker-Token` and `X-Bunker-Tenant` and the operations use
   them (the public commands none), and every `example` matches the schema it is given for.
2. client: generates a client with openapi-python-client (`generate --path spec.json`), imports it and, with it
   alone, creates a tenant (TenantCreate, root token), creates a user in that tenant with the tenant's admin
   token (UserCreate, profile `email` and `name`) and reads it back (UserGet mode=token), checks that the user
   is not visible in the default tenant, and deletes the tenant (`client_roundtrip.py`). Operations are found by
   operationId (`UserCreate` -> module `user_create`) and credentials go where the security schemes say.
3. examples: every request-body example of the document (the media type's `example` and `examples`, and the
   `example` of the body's schema) is sent to its operation; it must get neither a 5xx nor a 400/401/413/422,
   and the answer must match the schema documented for its status (`send_examples.py`). 403, 404 and 409 pass
   (a missing or forbidden target, a duplicate). Each example runs in a fresh tenant, which the placeholders
   below fill first; the tenant is deleted afterwards.

Placeholders an example may use (whole JSON values; anything else is sent as written). Each example runs in a
tenant of its own, and what its placeholders name is made there first:

    "11111111-1111-4111-8111-111111111111"  a user's token: the demo user, profile {"email": "jane@example.com",
                                            "phone": "+44 7911 123456", "login": "jane", "name": "Jane Doe"}.
                                            She is made too when an `identity` is that email, phone or login
                                            (`{"mode":"email","identity":"jane@example.com"}` finds her).
    "22222222-2222-4222-8222-222222222222"  an `unlockuuid` (BulkListUnlock)
    "33333333-3333-4333-8333-333333333333"  a tokenization token (TokenCreate, `text`): its `tokenuuid`
    "44444444-4444-4444-8444-444444444444"  a session of Jane's (SessionUpsert with that `sessionuuid`)
    "55555555-5555-4555-8555-555555555555"  an open request of Jane's (UserUpdateRequest): its `requestuuid`
    "66666666-6666-4666-8666-666666666666"  a file of Jane's (FileCreate, tag `demo`): its `fileuuid`
    "77777777-7777-4777-8777-777777777777"  a shared record of Jane's name (SharedRecordCreate): its `recorduuid`
    "88888888-8888-4888-8888-888888888888"  an audit event of Jane's: its `auditeventuuid`
    tenantname "acme" / tenantid 2          the example's tenant (in TenantCreate: a new, unused name)
    groupname "staff", rolename "support",  a group, a role and a policy (linking the role to UserGet of
    policyname "support-read"; 1 under      users.profile.name); roles and policies are installation-wide,
    groupid / roleid / policyid             so those two are named `<name>-<run>` and made once per run
    brief "marketing", activity             a legal basis (usercontrol on), a processing activity, app data
    "newsletter", appname "shop"            `shop` of Jane's

The command that makes an object gets no seed of it (a UserCreate or GroupCreate example is sent as it is).
GroupDeleteUser, AgreementGet, AgreementCancel, AgreementCancelRequest and ProcessingActivityUnlinkLegalBasis
first make the link they act on (GroupAddUser, AgreementAccept, ProcessingActivityLinkLegalBasis, with the
example's own body). The whole convention is the tables at the top of send_examples.py.

Requests go with the root token and `X-Bunker-Tenant: <the fresh tenant>`, or with no token for operations
whose `security` is empty (the public commands).

Requirements: python3.11 (override with PYTHON=...) and PyPI. The tools are installed into venvs of their own
under ${XDG_CACHE_HOME:-$HOME/.cache}/bunker/venvs/ (made once, remade when a pin changes, as
tests/deploy/validate.sh does); this script itself needs only the standard library.

Usage: python3 tests/openapi/check.py --base-url http://127.0.0.1:3000 --token DEMO
       [--step spec,client,examples] [--samples FILE] [--keep DIR]

`--samples FILE` (e.g. tests/openapi/sample_requests.json: {"Command": [body, ...]}) sends more bodies, judged
as the document's examples and counted apart: request bodies proposed as examples, and a way to see today how
the answers to valid requests match their schemas. Exits 1 if any step fails.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
# PyPI pins: one venv per tool (the generated client runs in the generator's venv: it needs httpx and attrs,
# which openapi-python-client itself depends on).
OPENAPI_SPEC_VALIDATOR = "openapi-spec-validator==0.9.0"
OPENAPI_PYTHON_CLIENT = "openapi-python-client==0.29.1"
VENVS = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bunker" / "venvs"
PYTHON = os.environ.get("PYTHON", "python3.11")
STEPS = ("spec", "client", "examples")


def venv(name: str, requirement: str) -> Path:
    """A venv holding exactly that package, made or remade when the pin changes; returns its bin directory."""
    directory = VENVS / name
    marker = directory / ".installed"
    if not marker.is_file() or marker.read_text().strip() != requirement:
        print(f"Installing {requirement} into {directory}", flush=True)
        shutil.rmtree(directory, ignore_errors=True)
        subprocess.run([PYTHON, "-m", "venv", str(directory)], check=True)
        pip = [str(directory / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", requirement]
        subprocess.run(pip, check=True)
        marker.write_text(requirement + "\n")
    return directory / "bin"


def fetch_spec(base_url: str, path: Path) -> dict:
    with urllib.request.urlopen(f"{base_url}/openapi.json", timeout=30) as response:
        body = response.read()
    path.write_bytes(body)
    return json.loads(body)


def run_step(name: str, command: list[str], result_path: Path, env: dict | None = None) -> dict:
    """Runs one step's script (its output indented), then reads the result it wrote."""
    print(f"\n== {name}", flush=True)
    started = time.monotonic()
    finished = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, check=False)
    for line in finished.stdout.decode(errors="replace").splitlines():
        print(f"   {line}")
    result = {"ok": False, "figures": {}, "failures": []}
    if result_path.is_file():
        result = json.loads(result_path.read_text())
    elif finished.returncode == 0:
        result["failures"].append(f"{name} wrote no result")
    if finished.returncode != 0 and result.get("ok"):
        result["ok"] = False
    if finished.returncode != 0 and not result["failures"]:
        result["failures"].append(f"{name} exited with {finished.returncode}")
    result["seconds"] = time.monotonic() - started
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", required=True, help="where Bunker answers, e.g. http://127.0.0.1:3000")
    parser.add_argument("--token", required=True, help="the root token")
    parser.add_argument("--step", default=",".join(STEPS), help="which steps, comma-separated (default: all)")
    parser.add_argument("--samples", type=Path, help="more request bodies to send, {command: [body, ...]}")
    parser.add_argument("--keep", type=Path, help="keep the document, the generated client and results here")
    args = parser.parse_args()
    base_url = args.base_url.rstrip("/")
    steps = [step for step in args.step.split(",") if step]
    unknown = set(steps) - set(STEPS)
    if unknown:
        parser.error(f"unknown steps: {', '.join(sorted(unknown))}")

    workdir = Path(tempfile.mkdtemp(prefix="bunker-openapi-"))
    results: dict[str, dict] = {}
    started = time.monotonic()
    try:
        validator_bin = venv("openapi-spec-validator", OPENAPI_SPEC_VALIDATOR)
        client_bin = venv("openapi-python-client", OPENAPI_PYTHON_CLIENT) if "client" in steps else None
        spec_path = workdir / "spec.json"
        spec = fetch_spec(base_url, spec_path)
        print(
            f"{base_url}/openapi.json: OpenAPI {spec.get('openapi')}, {len(spec.get('paths', {}))} paths, "
            f"{spec_path.stat().st_size} bytes"
        )
        common = ["--spec", str(spec_path), "--base-url", base_url, "--token", args.token]
        if "spec" in steps:
            result_path = workdir / "spec-result.json"
            command = [str(validator_bin / "python"), str(HERE / "validate_spec.py"), "--spec", str(spec_path)]
            results["spec"] = run_step("spec", command + ["--result", str(result_path)], result_path)
        if "client" in steps:
            result_path = workdir / "client-result.json"
            command = [str(client_bin / "python"), str(HERE / "client_roundtrip.py"), *common]
            command += ["--workdir", str(workdir), "--generator", str(client_bin / "openapi-python-client")]
            # The generator runs ruff (its own dependency) over what it writes; it looks for it on PATH.
            env = dict(os.environ, PATH=f"{client_bin}{os.pathsep}{os.environ.get('PATH', '')}")
            results["client"] = run_step("client", command + ["--result", str(result_path)], result_path, env)
        if "examples" in steps:
            result_path = workdir / "examples-result.json"
            command = [str(validator_bin / "python"), str(HERE / "send_examples.py"), *common]
            if args.samples:
                command += ["--samples", str(args.samples)]
            results["examples"] = run_step("examples", command + ["--result", str(result_path)], result_path)
    finally:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            shutil.copytree(workdir, args.keep, dirs_exist_ok=True)
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\n== Summary ({time.monotonic() - started:.0f} s)")
    for name, result in results.items():
        figures = ", ".join(f"{key} {value}" for key, value in result.get("figures", {}).items())
        print(f"{'ok  ' if result['ok'] else 'FAIL'}  {name} ({result['seconds']:.1f} s): {figures}")
        for failure in result["failures"]:
            print(f"        - {failure}")
    failed = [name for name, result in results.items() if not result["ok"]]
    print(f"{len(failed)} of {len(results)} steps failed" if failed else f"all {len(results)} steps passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
