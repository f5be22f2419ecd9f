#!/usr/bin/env python3
"""Fuzz every operation of Bunker's /openapi.json with schemathesis and count what the server got wrong.

Starts its own throwaway server (`bunker demo` in a fresh temporary directory, root token `DEMO`),
creates the tenant `fuzz`, then runs `schemathesis run` twice over every operation but TenantRevokeToken,
TenantRotateToken and TenantUpdate (which would end the token a pass runs with, or rename its tenant away): with
the tenant's admin token in its tenant, and with the root token in the default tenant; then those three as root in
the fuzz tenant. Rate limits are off on that server. Every answer schemathesis
receives is recorded (this file is also the schemathesis hooks module, loaded through
SCHEMATHESIS_HOOKS), and the script prints, per token kind: the number of requests, the answers with
a 5xx status, the answers whose body is not a JSON object with a `status` field, the requests that
got no answer at all, the status codes seen and a few failing commands (command and status, never a
body). It exits 1 if any of those failure counts is non-zero, and stops the server (SIGINT) and
removes the temporary directory however it ends.

`--schema-conformance` adds schemathesis's `response_schema_conformance` check and judges it too: the
hooks validate every answer against the schema its operation documents for that status (as the check
does) and the script prints the mismatches by operation (count, and each distinct reason: status, where
in the body, what the schema says, e.g. `TenantGet 200 /webhookurl: null, schema says type "string"`); any
mismatch fails the run. `--ci` is the bounded run for CI (about 2-3 minutes on 2 cores): schema
conformance on, CI_MAX_EXAMPLES examples per operation, the fixed seed CI_SEED unless `--seed` is given,
and `--continue-on-failure`, so that one run lists every distinct failure of an operation.

Requirements (a venv at /root/.venvs/bunker-fuzz; the script itself needs only the standard library):

    python3.11 -m venv /root/.venvs/bunker-fuzz
    /root/.venvs/bunker-fuzz/bin/pip install 'schemathesis==4.32.5'

Usage: python3 tests/fuzz/schemathesis_run.py [--binary PATH] [--ci] [--schema-conformance] [--max-examples N]
       [--workers N] [--seed N] [--port N] [--extra-checks CHECKS] [--log-dir DIR]
"""

import argparse
import collections
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_BINARY = "/root/.cache/bunker/target/debug/bunker"
DEFAULT_SCHEMATHESIS = "/root/.venvs/bunker-fuzz/bin/schemathesis"
PG_BINDIR = "/usr/lib/postgresql/15/bin"
DEMO_ROOT_TOKEN = "DEMO"
FUZZ_TENANT = "fuzz"
# Operations that end or move the credentials a pass runs with: revoking or rotating its token, and renaming its
# tenant away from the X-Bunker-Tenant it sends (the document's tenant-name pattern makes valid names likely).
CREDENTIAL_PATHS = "Tenant(Revoke|Rotate)Token$|TenantUpdate$"
# The checks behind the two acceptance figures: 5xx answers, and answers without the JSON envelope.
ACCEPTANCE_CHECKS = ["not_a_server_error", "status_envelope"]
# With --schema-conformance (and --ci): answers must also match the schema documented for their status.
SCHEMA_CHECK = "response_schema_conformance"
# Tells the hooks to validate every answer against its documented schema and record the mismatches.
CONFORMANCE_ENV = "BUNKER_FUZZ_CONFORMANCE"
# --ci: examples per operation and the seed, chosen so that the three passes take about 2-3 minutes on 2 cores.
CI_MAX_EXAMPLES = 100
CI_SEED = 20261202
# Reasons quoted per operation in the mismatch report (the count covers them all).
REASONS_SHOWN = 6
REASON_WIDTH = 160
# Where the hooks (running inside schemathesis) append one JSON line per request.
RECORD_ENV = "BUNKER_FUZZ_RECORD"
FAILING_EXAMPLES_SHOWN = 8


# --- Inside schemathesis: the hooks module -----------------------------------------------------


def has_status_envelope(body: bytes) -> bool:
    """Whether a response body is a JSON object with a `status` field, as every Bunker answer must be."""
    try:
        value = json.loads(body)
    except ValueError:
        return False
    return isinstance(value, dict) and "status" in value


def register_schemathesis_hooks() -> None:
    """Registers the envelope check and the hooks that record every request schemathesis makes."""
    import schemathesis

    # Open for the life of the schemathesis process; line-buffered, so every request is on disk when it ends.
    record = open(os.environ[RECORD_ENV], "a", buffering=1, encoding="utf-8")  # noqa: SIM115
    lock = threading.Lock()

    conformance = os.environ.get(CONFORMANCE_ENV) == "1"

    def write(command: str, status: int | None, envelope: bool, mismatches: list[str] | None = None) -> None:
        entry = {"command": command, "status": status, "envelope": envelope}
        if mismatches:
            entry["mismatches"] = mismatches
        line = json.dumps(entry)
        with lock:
            record.write(line + "\n")

    @schemathesis.check
    def status_envelope(ctx, response, case):
        """Every answer is a JSON object with a `status` field."""
        if not has_status_envelope(response.content):
            raise AssertionError("The answer is not a JSON object with a `status` field")

    @schemathesis.hook
    def after_call(context, case, response):
        mismatches = schema_mismatches(case, response) if conformance else None
        write(case.operation.path.lstrip("/"), response.status_code, has_status_envelope(response.content), mismatches)

    @schemathesis.hook
    def after_network_error(context, case, request):
        write(case.operation.path.lstrip("/"), None, False)


def schema_mismatches(case, response) -> list[str]:
    """What `response_schema_conformance` would find wrong with this answer, one short reason per failure.

    The same validation as the check (and skipped where the check is: schemathesis's request-shape probes);
    a reason names the status, the place in the body and what the schema says, and quotes no value longer
    than a few characters (answers may echo what the fuzzer sent)."""
    from schemathesis.core.failures import Failure, FailureGroup
    from schemathesis.specs.openapi.checks import is_unexpected_http_status_case

    if is_unexpected_http_status_case(case):
        return []
    try:
        case.operation.validate_response(response, case=case)
    except FailureGroup as group:
        failures = list(group.exceptions)
    except Failure as failure:
        failures = [failure]
    except Exception as error:  # noqa: BLE001 - a broken validation is a finding too, not a crash of the hooks
        return [f"{response.status_code} validation raised {type(error).__name__}"]
    else:
        return []
    return [f"{response.status_code} {describe_failure(failure)}"[:REASON_WIDTH] for failure in failures]


def describe_failure(failure) -> str:
    """`/rows/*/created: string, schema says type "integer"`, `(body): "token" is a required property`, ..."""
    instance_path = getattr(failure, "instance_path", None)
    schema_path = getattr(failure, "schema_path", None)
    if instance_path is None or schema_path is None:
        first_line = str(failure.message).splitlines()[0] if failure.message else ""
        return f"{failure.title}: {first_line}"
    where = "/" + "/".join("*" if isinstance(part, int) else str(part) for part in instance_path)
    where = "(body)" if where == "/" else where
    keyword = str(schema_path[-1]) if schema_path else ""
    instance = failure.instance
    shown = json.dumps(instance, separators=(",", ":"), ensure_ascii=False)
    if len(shown) > 24:
        shown = json_type(instance)
    if keyword in ("type", "enum", "const", "format", "pattern", "minLength", "maxLength", "minimum", "maximum",
                   "minItems", "maxItems"):
        expected = _schema_value(failure)
        return f"{where}: {shown}, schema says {keyword} {expected}"
    # required, additionalProperties, oneOf, ...: the validator's message names properties, rarely values.
    raw = str(getattr(failure, "_raw_message", failure.title))
    return f"{where}: {_without_instance(raw, instance)}"


def _schema_value(failure) -> str:
    """The value of the failing keyword in the schema, as JSON (`"object"`, `["ok"]`)."""
    from schemathesis.core.transforms import UNRESOLVABLE, resolve_path

    value = resolve_path(getattr(failure, "_root_schema", {}), list(failure.schema_path))
    if value is UNRESOLVABLE:
        # The path runs through a `$ref`; the validator's own message says what was expected.
        raw = str(getattr(failure, "_raw_message", ""))
        return _without_instance(raw, failure.instance)
    return json.dumps(value)[:60]


def _without_instance(message: str, instance) -> str:
    rendered = json.dumps(instance, separators=(",", ":"), ensure_ascii=False)
    if len(rendered) > 24:
        message = message.replace(rendered, f"<{json_type(instance)}>")
    return message


def json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return {float: "number", str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


# --- The harness ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(port: int, command: str, body: dict, token: str) -> tuple[int, dict]:
    """One `POST /v2/<command>` in the default tenant; returns the status and the decoded answer."""
    headers = {"Content-Type": "application/json", "X-Bunker-Token": token}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", f"/v2/{command}", json.dumps(body), headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


class DemoServer:
    """`bunker demo` on a free port, its PostgreSQL cluster under `workdir/data`."""

    def __init__(self, binary: str, workdir: Path, log_path: Path, port: int | None = None):
        self.binary = binary
        self.data_dir = workdir / "data"
        self.log_path = log_path
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None
        self.kms: subprocess.Popen | None = None

    def kms_env(self) -> dict:
        """A local AWS KMS stand-in (moto's server, as the suite's KMS tests use) for the tenant-key commands, so
        that a fuzzed key id is refused by a KMS instead of waiting on AWS; none if moto is not installed."""
        moto = shutil.which("moto_server")
        if moto is None:
            return {}
        port = free_port()
        self.kms = subprocess.Popen(
            [moto, "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        return dict(
            BUNKER_KMS_ENDPOINT=f"http://127.0.0.1:{port}",
            AWS_ACCESS_KEY_ID="test",
            AWS_SECRET_ACCESS_KEY="test",
            AWS_REGION="us-east-1",
        )

    def start(self, timeout: float = 120) -> None:
        env = dict(
            os.environ,
            **self.kms_env(),
            BUNKER_DATA_DIR=str(self.data_dir),
            BUNKER_LISTEN=f"127.0.0.1:{self.port}",
            BUNKER_LIST_USERS="true",
            # The fuzzer looks for wrong answers, not for limits (the suite tests those): a 429 is a
            # request that reached nothing.
            **{f"BUNKER_RATE_{kind}": "off" for kind in ("TENANT", "TOKEN", "IP", "PUBLIC", "COSTLY")},
        )
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [self.binary, "demo"],
                cwd=self.data_dir.parent,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the harness only, which then stops the demo
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.is_running():
                raise RuntimeError(f"bunker demo exited with {self.process.returncode}:\n{self.log_tail()}")
            if self.is_ready():
                return
            time.sleep(0.3)
        raise RuntimeError(f"bunker demo not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def is_ready(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/ready")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def log_tail(self, lines: int = 20) -> str:
        """The end of the server's log (it never holds bodies, headers or tokens)."""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Ctrl-C, upon which the demo stops its cluster cleanly; a demo that hangs is killed, and a cluster
        left running by a demo that died is stopped."""
        if self.is_running():
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        pg_data = self.data_dir / "pg"
        if (pg_data / "postmaster.pid").exists():
            as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
            pg_ctl = [f"{PG_BINDIR}/pg_ctl", "-D", str(pg_data), "-m", "immediate", "stop"]
            subprocess.run(as_postgres + pg_ctl, check=False, capture_output=True)
        if self.kms is not None and self.kms.poll() is None:
            self.kms.kill()
            self.kms.wait()


@dataclass
class TokenPass:
    """One schemathesis run: which token, in which tenant."""

    kind: str
    token: str
    tenant: str | None
    # Only these operations (a path regex), or, when None, every operation but them.
    only: str | None = None


@dataclass
class Figures:
    """What one pass's requests got back."""

    requests: int = 0
    server_errors: int = 0
    bad_envelopes: int = 0
    no_answer: int = 0
    statuses: collections.Counter = field(default_factory=collections.Counter)
    failures: collections.Counter = field(default_factory=collections.Counter)  # (command, status) -> count
    # Answers that do not match their documented schema (recorded only with --schema-conformance).
    mismatched: int = 0
    mismatched_by_command: collections.Counter = field(default_factory=collections.Counter)
    reasons: dict = field(default_factory=lambda: collections.defaultdict(collections.Counter))  # command -> reasons

    @property
    def failed(self) -> bool:
        return self.server_errors + self.bad_envelopes + self.no_answer + self.mismatched > 0 or self.requests == 0


def read_figures(record_path: Path) -> Figures:
    figures = Figures()
    if not record_path.exists():
        return figures
    with open(record_path, encoding="utf-8") as record:
        for line in record:
            entry = json.loads(line)
            status = entry["status"]
            shown = "no answer" if status is None else status
            figures.requests += 1
            figures.statuses[shown] += 1
            if status is None:
                figures.no_answer += 1
            else:
                figures.server_errors += status >= 500
                figures.bad_envelopes += not entry["envelope"]
            if status is None or status >= 500 or not entry["envelope"]:
                figures.failures[(entry["command"], shown)] += 1
            if entry.get("mismatches"):
                figures.mismatched += 1
                figures.mismatched_by_command[entry["command"]] += 1
                figures.reasons[entry["command"]].update(entry["mismatches"])
    return figures


def run_schemathesis(args, port: int, token_pass: TokenPass, workdir: Path, output_path: Path) -> tuple[Figures, int]:
    """Runs schemathesis over every operation with one token; returns the figures and its exit code."""
    record_path = workdir / f"record-{token_pass.kind}.jsonl"
    checks = ACCEPTANCE_CHECKS + ([SCHEMA_CHECK] if args.schema_conformance else [])
    checks += [c for c in args.extra_checks.split(",") if c and c not in checks]
    # fmt: off
    command = [
        args.schemathesis, "run", f"http://127.0.0.1:{port}/openapi.json",
        "--max-examples", str(args.max_examples),
        "--workers", str(args.workers),
        "--checks", ",".join(checks),
        "--seed", str(args.seed),
        "--generation-database", "none",
        "--request-timeout", "30",
        "--no-color",
        "-H", f"X-Bunker-Token: {token_pass.token}",
    ]
    # fmt: on
    if args.continue_on_failure:
        command += ["--continue-on-failure"]
    if token_pass.tenant:
        command += ["-H", f"X-Bunker-Tenant: {token_pass.tenant}"]
    # Revoking and rotating access tokens would end the token a pass runs with: they get a pass of
    # their own, last, as root in the fuzz tenant.
    if token_pass.only:
        command += ["--include-path-regex", token_pass.only]
    else:
        command += ["--exclude-path-regex", CREDENTIAL_PATHS]
    env = dict(
        os.environ,
        SCHEMATHESIS_HOOKS=os.path.abspath(__file__),
        **{RECORD_ENV: str(record_path), CONFORMANCE_ENV: "1" if args.schema_conformance else "0"},
    )
    with open(output_path, "wb") as output:
        finished = subprocess.run(command, cwd=workdir, env=env, stdout=output, stderr=subprocess.STDOUT, check=False)
    return read_figures(record_path), finished.returncode


def print_figures(
    token_pass: TokenPass, figures: Figures, exit_code: int, seconds: float, output_path: Path, conformance: bool
) -> None:
    where = f"tenant {token_pass.tenant}" if token_pass.tenant else "default tenant"
    print(f"\n== {token_pass.kind} token ({where}): {seconds:.0f} s, schemathesis exit code {exit_code} ==")
    print(f"requests:                                 {figures.requests}")
    print(f"5xx answers:                              {figures.server_errors}")
    print(f"answers not a JSON object with `status`:  {figures.bad_envelopes}")
    print(f"requests with no answer:                  {figures.no_answer}")
    if conformance:
        print(f"answers not matching their schema:        {figures.mismatched}")
    codes = sorted(figures.statuses.items(), key=lambda item: str(item[0]))
    print("status codes: " + ", ".join(f"{code}: {count}" for code, count in codes))
    if figures.failures:
        print("failing requests (command status: count):")
        for (command, status), count in figures.failures.most_common(FAILING_EXAMPLES_SHOWN):
            print(f"    {command} {status}: {count}")
        if len(figures.failures) > FAILING_EXAMPLES_SHOWN:
            print(f"    ... and {len(figures.failures) - FAILING_EXAMPLES_SHOWN} more command/status pairs")
    if figures.mismatched:
        print("schema mismatches by operation (answers; distinct reasons: count):")
        for command, count in sorted(figures.mismatched_by_command.items()):
            reasons = figures.reasons[command]
            print(f"    {command}: {count} answers, {len(reasons)} distinct")
            for reason, times in reasons.most_common(REASONS_SHOWN):
                print(f"        {reason}: {times}")
            if len(reasons) > REASONS_SHOWN:
                print(f"        ... and {len(reasons) - REASONS_SHOWN} more")
    if figures.requests == 0:
        tail = output_path.read_text(errors="replace").splitlines()[-15:]
        print("schemathesis made no request; the end of its output:\n" + "\n".join(tail))


def create_fuzz_tenant(port: int) -> str:
    status, answer = post(port, "TenantCreate", {"tenantname": FUZZ_TENANT, "tenantorg": FUZZ_TENANT}, DEMO_ROOT_TOKEN)
    if status != 200 or "xtoken" not in answer:
        raise RuntimeError(f"TenantCreate answered {status}")
    return answer["xtoken"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default=DEFAULT_BINARY, help="the bunker binary (default: %(default)s)")
    parser.add_argument(
        "--schemathesis", default=DEFAULT_SCHEMATHESIS, help="the schemathesis CLI (default: %(default)s)"
    )
    parser.add_argument(
        "--ci",
        action="store_true",
        help=f"the bounded CI run: --schema-conformance, {CI_MAX_EXAMPLES} examples per operation, seed {CI_SEED} "
        "(unless given), --continue-on-failure",
    )
    parser.add_argument(
        "--schema-conformance",
        action="store_true",
        help=f"also run {SCHEMA_CHECK} and fail on any answer that does not match its documented schema",
    )
    parser.add_argument(
        "--continue-on-failure",
        action="store_true",
        help="schemathesis goes on with an operation after its first failure (finds every distinct one)",
    )
    parser.add_argument("--max-examples", type=int, help="examples per operation (default: 200; --ci: CI_MAX_EXAMPLES)")
    parser.add_argument("--workers", type=int, default=2, help="schemathesis workers (default: %(default)s)")
    parser.add_argument("--seed", type=int, help="schemathesis seed (default: random; --ci: CI_SEED)")
    parser.add_argument("--port", type=int, help="the demo server's port (default: a free one)")
    parser.add_argument(
        "--extra-checks",
        default="",
        help="more schemathesis checks, comma-separated (e.g. status_code_conformance); their findings go to "
        "schemathesis's output and exit code only, not to the figures (response_schema_conformance here means "
        "--schema-conformance, which is judged)",
    )
    parser.add_argument("--log-dir", type=Path, help="keep the server log and schemathesis's output here")
    args = parser.parse_args()
    if args.ci:
        args.schema_conformance = args.continue_on_failure = True
    if SCHEMA_CHECK in args.extra_checks.split(","):
        args.schema_conformance = True
    if args.max_examples is None:
        args.max_examples = CI_MAX_EXAMPLES if args.ci else 200
    if args.seed is None:
        args.seed = CI_SEED if args.ci else secrets.randbelow(2**63)
    return args


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = Path(tempfile.mkdtemp(prefix="bunker-fuzz-", dir="/tmp"))
    workdir.chmod(0o755)  # the demo runs PostgreSQL as `postgres`, which must reach the data directory
    log_dir = args.log_dir or workdir
    log_dir.mkdir(parents=True, exist_ok=True)
    server = DemoServer(args.binary, workdir, log_dir / "server.log", args.port)
    failed = False
    try:
        server.start()
        started_all = time.monotonic()
        print(
            f"bunker demo on port {server.port}; {args.max_examples} examples per operation, "
            f"{args.workers} workers, seed {args.seed}"
            + (f", checks include {SCHEMA_CHECK}" if args.schema_conformance else "")
        )
        totals = Figures()
        passes = [
            TokenPass("tenant-admin", create_fuzz_tenant(server.port), FUZZ_TENANT),
            TokenPass("root", DEMO_ROOT_TOKEN, None),
            TokenPass("root-credentials", DEMO_ROOT_TOKEN, FUZZ_TENANT, only=CREDENTIAL_PATHS),
        ]
        for token_pass in passes:
            output_path = log_dir / f"schemathesis-{token_pass.kind}.log"
            started = time.monotonic()
            figures, exit_code = run_schemathesis(args, server.port, token_pass, workdir, output_path)
            print_figures(
                token_pass, figures, exit_code, time.monotonic() - started, output_path, args.schema_conformance
            )
            failed |= figures.failed
            totals.requests += figures.requests
            totals.server_errors += figures.server_errors
            totals.mismatched += figures.mismatched
            totals.bad_envelopes += figures.bad_envelopes
            totals.no_answer += figures.no_answer
            if not server.is_running():
                print(f"the server exited during the run:\n{server.log_tail()}")
                failed = True
                break
        print(
            f"\nall passes: {time.monotonic() - started_all:.0f} s, {totals.requests} requests, "
            f"{totals.server_errors} 5xx, {totals.bad_envelopes} without the envelope, {totals.no_answer} unanswered"
            + (f", {totals.mismatched} not matching their schema" if args.schema_conformance else "")
        )
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print("\nFAILED" if failed else "\nOK")
    return 1 if failed else 0


if __name__ == "_schemathesis_hooks":
    register_schemathesis_hooks()
elif __name__ == "__main__":
    sys.exit(main())
