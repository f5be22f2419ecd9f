#!/usr/bin/env python3
"""Kill PostgreSQL under write load and report what Bunker's clients saw.

Starts a throwaway PostgreSQL 15 cluster (initdb as `postgres`, TCP on 127.0.0.1, trust
authentication) and `bunker init` + `bunker serve` against it, with a generated wrapping key and root
token. Then 16 keep-alive clients send `UserCreate` for ~20 s: after 5 s PostgreSQL is stopped with
`pg_ctl -m immediate stop`, 5 s later it is started again, and the load goes on 10 s more. Every
request's status, whether its body was a JSON object with `status`, and the token of each 200 (an
acknowledged write) are recorded. Once the database is back, every acknowledged token is read back
with `UserGet` (mode `token`) and its profile compared with the one sent.

It prints the requests and status codes per phase (before, during and after the outage), the
requests that got no answer, the non-JSON answers, the slowest answer per phase, the acknowledged
writes and how many of them read back missing, different or not at all. It exits 1 if there was any
500, any answer without the JSON envelope, any request without an answer, any acknowledged write
not read back intact, or if the server exited. All processes and temporary directories are removed
however it ends (except by SIGKILL).

Requirements: Python 3.11 standard library only; PostgreSQL 15 server binaries in
/usr/lib/postgresql/15/bin; run as root (PostgreSQL then runs as `postgres` through runuser).

Usage: python3 tests/fuzz/outage_under_load.py [--binary PATH] [--clients N]
       [--before S] [--outage S] [--after S] [--log-dir DIR]
"""

import argparse
import collections
import concurrent.futures
import contextlib
import http.client
import itertools
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
import uuid
from dataclasses import dataclass
from pathlib import Path

DEFAULT_BINARY = "/root/.cache/bunker/target/debug/bunker"
PG_BINDIR = Path("/usr/lib/postgresql/15/bin")
REQUEST_TIMEOUT = 30
READ_BACK_ATTEMPTS = 3
PHASES = ("before", "outage", "after")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def has_status_envelope(body: bytes) -> bool:
    """Whether a response body is a JSON object with a `status` field, as every Bunker answer must be."""
    try:
        value = json.loads(body)
    except ValueError:
        return False
    return isinstance(value, dict) and "status" in value


def wait_until(condition, timeout: float) -> bool:
    """Polls `condition` until it holds (True) or `timeout` seconds have passed (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


class PostgresCluster:
    """A throwaway cluster under `root/pg`, its socket in `root/sock`, listening on 127.0.0.1:port."""

    def __init__(self, root: Path, log_path: Path):
        self.data_dir = root / "pg"
        self.socket_dir = root / "sock"
        self.log_path = log_path
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/bunker"

    def as_postgres(self, *command: str) -> list[str]:
        """PostgreSQL refuses to run as root: run its tools as `postgres` then."""
        return (["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []) + list(command)

    def pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = self.as_postgres(str(PG_BINDIR / "pg_ctl"), "-D", str(self.data_dir), *args)
        return subprocess.run(command, check=check, capture_output=True, start_new_session=True)

    def initdb(self) -> None:
        for directory in (self.data_dir, self.socket_dir):
            directory.mkdir(mode=0o700)
            if os.geteuid() == 0:
                shutil.chown(directory, "postgres", "postgres")
        command = self.as_postgres(str(PG_BINDIR / "initdb"), "-D", str(self.data_dir), "-A", "trust", "-U", "postgres")
        subprocess.run(command, check=True, capture_output=True)
        if os.geteuid() == 0:
            self.log_path.touch()
            shutil.chown(self.log_path, "postgres", "postgres")

    def start(self) -> None:
        options = f"-k {self.socket_dir} -p {self.port} -c listen_addresses=127.0.0.1"
        self.pg_ctl("-w", "-l", str(self.log_path), "-o", options, "start")

    def stop(self, mode: str) -> None:
        self.pg_ctl("-m", mode, "stop")

    def stop_if_running(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self.pg_ctl("-m", "immediate", "stop", check=False)

    def create_database(self) -> None:
        command = [str(PG_BINDIR / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "bunker"]
        subprocess.run(command, check=True, capture_output=True)


class BunkerServer:
    """`bunker init`, then `bunker serve` on a free port, against the cluster's database."""

    def __init__(self, binary: str, database_url: str, log_path: Path):
        self.binary = binary
        self.log_path = log_path
        self.port = free_port()
        self.root_token = str(uuid.uuid4())
        self.env = dict(
            os.environ,
            BUNKER_DATABASE_URL=database_url,
            BUNKER_WRAPPING_KEY=secrets.token_hex(32),
            BUNKER_ROOT_TOKEN=self.root_token,
            BUNKER_LISTEN=f"127.0.0.1:{self.port}",
        )
        self.process: subprocess.Popen | None = None

    def init(self) -> None:
        # Its output holds the recovery shares: kept out of the report and the logs.
        done = subprocess.run([self.binary, "init"], env=self.env, capture_output=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"bunker init exited with {done.returncode}: {done.stderr.decode(errors='replace')}")

    def start(self) -> None:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [self.binary, "serve"], env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        if not self.wait_ready(60):
            raise RuntimeError(f"bunker serve did not get ready:\n{self.log_tail()}")

    def wait_ready(self, timeout: float) -> bool:
        """Waits until the server answers /ready with 200; False if it exits or the time runs out."""
        wait_until(lambda: self.is_ready() or not self.is_running(), timeout)
        return self.is_running() and self.is_ready()

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

    def stop(self) -> None:
        if not self.is_running():
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 20) -> str:
        """The end of the server's log (it never holds bodies, headers or tokens)."""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Outcome:
    """One request: when it started (seconds from the load's start), its status (None: no answer),
    whether its body had the JSON envelope, and for a 200 the token returned for the login sent."""

    started: float
    seconds: float
    status: int | None
    envelope: bool
    login: str
    token: str | None


class Timeline:
    """When the outage began and ended, to tell the phase of each request."""

    def __init__(self):
        self.origin = time.monotonic()
        self.outage_began: float | None = None
        self.outage_ended: float | None = None

    def now(self) -> float:
        return time.monotonic() - self.origin

    def phase(self, started: float) -> str:
        if self.outage_began is None or started < self.outage_began:
            return "before"
        if self.outage_ended is None or started < self.outage_ended:
            return "outage"
        return "after"


def post(conn: http.client.HTTPConnection, command: str, body: dict, token: str) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json", "X-Bunker-Token": token}
    conn.request("POST", f"/v2/{command}", json.dumps(body), headers)
    response = conn.getresponse()
    return response.status, response.read()


def user_create_client(
    port: int, token: str, timeline: Timeline, stop: threading.Event, numbers, outcomes: list
) -> None:
    """One keep-alive client sending UserCreate until `stop`; appends an Outcome per request."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    try:
        while not stop.is_set():
            login = f"u{next(numbers)}"
            body = {"profile": {"login": login, "email": f"{login}@example.com"}}
            started = timeline.now()
            try:
                status, answer = post(conn, "UserCreate", body, token)
            except (http.client.HTTPException, OSError):
                conn.close()
                outcomes.append(Outcome(started, timeline.now() - started, None, False, login, None))
                continue
            envelope = has_status_envelope(answer)
            acknowledged = json.loads(answer).get("token") if status == 200 and envelope else None
            outcomes.append(Outcome(started, timeline.now() - started, status, envelope, login, acknowledged))
    finally:
        conn.close()


def drive_load_through_outage(args, server: BunkerServer, cluster: PostgresCluster) -> tuple[list[Outcome], Timeline]:
    """Runs the clients; stops PostgreSQL after `before` seconds, starts it `outage` seconds later."""
    timeline, stop, numbers, outcomes = Timeline(), threading.Event(), itertools.count(), []
    clients = [
        threading.Thread(
            target=user_create_client, args=(server.port, server.root_token, timeline, stop, numbers, outcomes)
        )
        for _ in range(args.clients)
    ]
    for client in clients:
        client.start()
    try:
        time.sleep(args.before)
        timeline.outage_began = timeline.now()
        cluster.stop("immediate")
        time.sleep(args.outage)
        cluster.start()
        timeline.outage_ended = timeline.now()
        time.sleep(args.after)
    finally:
        stop.set()
        for client in clients:
            client.join()
    return outcomes, timeline


def read_back(port: int, token: str, outcome: Outcome) -> str:
    """Reads one acknowledged user: `intact`, `missing` (404), `different` or `unreadable`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    try:
        for _ in range(READ_BACK_ATTEMPTS):
            try:
                status, answer = post(conn, "UserGet", {"mode": "token", "identity": outcome.token}, token)
            except (http.client.HTTPException, OSError):
                conn.close()
                status = None
            if status == 404:
                return "missing"
            if status == 200:
                profile = json.loads(answer).get("profile") or {}
                return "intact" if profile.get("login") == outcome.login else "different"
            time.sleep(1)
        return "unreadable"
    finally:
        conn.close()


def read_back_all(args, server: BunkerServer, acknowledged: list[Outcome]) -> collections.Counter:
    with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
        results = pool.map(lambda outcome: read_back(server.port, server.root_token, outcome), acknowledged)
        return collections.Counter(results)


def print_report(outcomes: list[Outcome], timeline: Timeline, read_backs: collections.Counter | None) -> bool:
    """Prints the figures (`read_backs` None: the writes could not be read back); returns whether the run failed."""
    by_phase = collections.defaultdict(collections.Counter)
    slowest = collections.Counter()
    for outcome in outcomes:
        phase = timeline.phase(outcome.started)
        by_phase[phase]["no answer" if outcome.status is None else outcome.status] += 1
        slowest[phase] = max(slowest[phase], outcome.seconds)
    codes = sorted({code for counts in by_phase.values() for code in counts}, key=str)
    print(f"outage from {timeline.outage_began:.1f} s to {timeline.outage_ended:.1f} s of the load")
    print(f"{'':>22}" + "".join(f"{phase:>9}" for phase in PHASES) + f"{'total':>9}")
    print(f"{'requests':>22}" + "".join(f"{sum(by_phase[p].values()):>9}" for p in PHASES) + f"{len(outcomes):>9}")
    for code in codes:
        row = [by_phase[phase][code] for phase in PHASES]
        print(f"{f'status {code}':>22}" + "".join(f"{n:>9}" for n in row) + f"{sum(row):>9}")
    print(f"{'slowest answer (s)':>22}" + "".join(f"{slowest[p]:>9.2f}" for p in PHASES))

    server_errors = sum(1 for o in outcomes if o.status == 500)
    no_answer = sum(1 for o in outcomes if o.status is None)
    non_json = sum(1 for o in outcomes if o.status is not None and not o.envelope)
    acknowledged = sum(1 for o in outcomes if o.token)
    print(f"500 answers:                 {server_errors}")
    print(f"503 answers:                 {sum(1 for o in outcomes if o.status == 503)}")
    print(f"requests with no answer:     {no_answer}")
    print(f"non-JSON answers:            {non_json}")
    print(f"acknowledged writes:         {acknowledged}")
    if read_backs is None:
        print("acknowledged writes lost:    not checked: the server did not get ready after the outage")
        return True
    not_intact = sum(n for result, n in read_backs.items() if result != "intact")
    print(
        f"acknowledged writes lost:    {not_intact} "
        f"(missing {read_backs['missing']}, different {read_backs['different']}, unreadable {read_backs['unreadable']})"
    )
    return server_errors + no_answer + non_json + not_intact > 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default=DEFAULT_BINARY, help="the bunker binary (default: %(default)s)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent keep-alive clients (default: %(default)s)")
    parser.add_argument(
        "--before", type=float, default=5, help="seconds of load before the outage (default: %(default)s)"
    )
    parser.add_argument("--outage", type=float, default=5, help="seconds PostgreSQL stays down (default: %(default)s)")
    parser.add_argument(
        "--after", type=float, default=10, help="seconds of load after the restart (default: %(default)s)"
    )
    parser.add_argument("--log-dir", type=Path, help="keep the server's and PostgreSQL's logs here")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda number, _frame: sys.exit(128 + number))
    with contextlib.ExitStack() as cleanup:
        workdir = Path(tempfile.mkdtemp(prefix="bunker-outage-", dir="/tmp"))
        workdir.chmod(0o755)  # PostgreSQL runs as `postgres`, which must reach its directories
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        log_dir = args.log_dir or workdir
        log_dir.mkdir(parents=True, exist_ok=True)

        cluster = PostgresCluster(workdir, log_dir / "postgres.log")
        cluster.initdb()
        cleanup.callback(cluster.stop_if_running)
        cluster.start()
        cluster.create_database()

        server = BunkerServer(args.binary, cluster.url, log_dir / "server.log")
        server.init()
        cleanup.callback(server.stop)
        server.start()
        print(
            f"bunker serve on port {server.port}, PostgreSQL on port {cluster.port}; {args.clients} clients, "
            f"{args.before:g} s + {args.outage:g} s outage + {args.after:g} s"
        )

        outcomes, timeline = drive_load_through_outage(args, server, cluster)
        read_backs = None
        if server.wait_ready(60):
            time.sleep(3)
            read_backs = read_back_all(args, server, [o for o in outcomes if o.token])
        else:
            print(f"the server is not ready after the outage:\n{server.log_tail()}")
        failed = print_report(outcomes, timeline, read_backs)
        print("\nFAILED" if failed else "\nOK")
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
