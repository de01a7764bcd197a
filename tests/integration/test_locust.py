"""FuscoUser under Locust: request events, gevent, and a distributed run of real processes.

``import locust`` monkey-patches its process with gevent, so nothing here
imports it: the in-process checks (``locust_cases.py``, with Locust's
``Environment``) each run in a fresh interpreter, and the distributed test runs
the ``locust`` command itself: one ``--master --expect-workers 2`` and two
``--worker`` processes on loopback, against the embedded server in a process
of its own. Every process is started in a session of its own and its whole
group is killed at the end, whatever happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from fusco_actor._server_process import ServerProcess
from tests.integration.realservers import Certificates, UvicornServer, free_port

ROOT = Path(__file__).resolve().parents[2]
CASE_TIMEOUT = 60.0  # seconds for one case's interpreter
RUN_SECONDS = 3  # the distributed run's --run-time
DISTRIBUTED_TIMEOUT = 50.0  # seconds for the master to finish (workers start, run, report)

integration = pytest.mark.integration


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    """The embedded server, in a child process (it has a GIL of its own)."""
    with ServerProcess() as server:
        yield server.url


def run_case(name: str, *args: str) -> str:
    """Run ``locust_cases.py``'s case ``name`` in a fresh interpreter; return its stdout."""
    proc = subprocess.run(
        [sys.executable, "-m", "tests.integration.locust_cases", name, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=CASE_TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, f"case {name} failed:\n{proc.stdout}\n{proc.stderr}"
    assert f"case {name}: ok" in proc.stdout
    return proc.stdout


@integration
def test_request_events_carry_name_method_length_time_and_errors(server_url: str) -> None:
    run_case("events", server_url)


@integration
def test_catch_response_decides_success_and_failure(server_url: str) -> None:
    run_case("catch_response", server_url)


@integration
def test_start_options_are_user_attributes(server_url: str) -> None:
    run_case("options", server_url)


@integration
def test_waiting_users_yield_to_each_other_and_the_hub_keeps_ticking(server_url: str) -> None:
    run_case("greenlets_yield", server_url)


@integration
def test_a_local_run_counts_requests_and_leaves_no_actor_or_thread(server_url: str) -> None:
    run_case("runner", server_url)


@integration
def test_under_gevent_the_scheduler_is_a_hubless_os_thread(server_url: str) -> None:
    run_case("gevent_core", server_url)


@integration
def test_ssl_context_attribute_over_tls(tls_server: UvicornServer, certs: Certificates) -> None:
    cafile = certs.directory / "locust-ca.pem"
    certs.ca.cert_pem.write_to_path(str(cafile))
    run_case("tls", tls_server.url, str(cafile))


@contextlib.contextmanager
def process_groups() -> Iterator[list[subprocess.Popen[str]]]:
    """Collect started processes; on the way out kill each one's whole process group."""
    procs: list[subprocess.Popen[str]] = []
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10.0)


def start_locust(args: list[str], out: IO[str], err: IO[str], env: dict[str, str]) -> Any:
    """Start ``python -m locust ARGS`` in a session of its own (so its group can be killed)."""
    return subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", "tests/integration/locust_distributed.py", *args],
        cwd=ROOT,
        stdout=out,
        stderr=err,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,
    )


@integration
@pytest.mark.slow
def test_master_and_two_workers_run_one_load_test(server_url: str, tmp_path: Path) -> None:
    port = str(free_port())
    reports = tmp_path / "worker-reports.jsonl"
    env = {**os.environ, "FUSCO_LOCUST_REPORTS": str(reports)}
    logs = {
        name: (tmp_path / f"{name}.out", tmp_path / f"{name}.err") for name in ("m", "w1", "w2")
    }
    with contextlib.ExitStack() as files, process_groups() as procs:
        opened = {
            name: (files.enter_context(out.open("w")), files.enter_context(err.open("w")))
            for name, (out, err) in logs.items()
        }
        master_args = [
            "--headless", "--master", "--master-bind-host", "127.0.0.1",
            "--master-bind-port", port, "--expect-workers", "2",
            "--expect-workers-max-wait", "30", "-u", "8", "-r", "8",
            "--run-time", f"{RUN_SECONDS}s", "--host", server_url, "--json", "--only-summary",
        ]  # fmt: skip
        worker_args = ["--worker", "--master-host", "127.0.0.1", "--master-port", port]
        master = start_locust(master_args, *opened["m"], env)
        procs.append(master)
        for name in ("w1", "w2"):
            procs.append(start_locust(worker_args, *opened[name], env))
        try:
            code = master.wait(timeout=DISTRIBUTED_TIMEOUT)
        except subprocess.TimeoutExpired:
            code = None
    outputs = {name: (out.read_text(), err.read_text()) for name, (out, err) in logs.items()}
    assert code == 0, (
        f"master exited {code}:\n{outputs['m'][1][-3000:]}\n{outputs['w1'][1][-2000:]}"
    )
    stats = json.loads(outputs["m"][0])
    requests = sum(entry["num_requests"] for entry in stats)
    failures = sum(entry["num_failures"] for entry in stats)
    assert requests > 0 and failures == 0, stats
    assert {entry["name"] for entry in stats} == {"/", "/bytes/[n]", "/echo"}
    noted = [json.loads(line) for line in reports.read_text().splitlines()]
    workers = {note["worker"] for note in noted}
    assert len(workers) == 2, noted  # both workers ran users and reported requests
    for name in ("w1", "w2"):
        assert "Traceback" not in outputs[name][1], outputs[name][1]
