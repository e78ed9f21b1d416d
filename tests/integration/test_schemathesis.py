"""Schemathesis against the real ``rsb serve``: generated requests, on a bounded budget.

Every operation of the document the broker serves gets ``EXAMPLES`` generated requests, valid
and invalid ones, sent to a broker process on 127.0.0.1 with a real SQLite file, as an
administrator. The checks: no 5xx, every status and content type is one the document declares,
every body matches its declared schema, and what the document calls invalid is refused (the
server is no looser than the document).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import PASSWORD, REPO
from tests.integration.conftest import WAIT_UNIT
from tests.log_check import TokenLogCheck

EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]

REFUSED_BY_SIZE = [check for check in CHECKS if check is not negative_data_rejection]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path, token_log_check: TokenLogCheck) -> Iterator[str]:
    """A real ``rsb serve`` with an admin user; yields its base URL."""
    db = tmp_path / "rsb.db"
    env = {**os.environ, "RSB_ARGON2_TIME_COST": "1", "RSB_ARGON2_MEMORY_KIB": "8192"}
    cli = [sys.executable, "-m", "broker.cli"]
    subprocess.run(
        [*cli, "users", "add", "ada", "--role", "admin", "--password-stdin", "--db", str(db)],
        input=PASSWORD + "\n",
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    port = _free_port()
    # Output to a file, not a pipe: nobody reads a pipe until the end, and a full one (64 KiB
    # of access log) blocks the broker's next log write, and with it every request.
    log_path = tmp_path / "serve.log"
    log_file = log_path.open("w")
    proc = subprocess.Popen(
        [*cli, "serve", "--port", str(port), "--db", str(db)],
        cwd=REPO,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30 * WAIT_UNIT
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=15 * WAIT_UNIT)
        log_file.close()
        output = log_path.read_text()
        token_log_check.scan_text(output, "rsb serve under schemathesis")
        assert "Traceback" not in output, output[-3000:]


def _login(base: str) -> dict[str, str]:
    request = urllib.request.Request(
        f"{base}/api/v1/login",
        data=json.dumps({"username": "ada", "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return {"Authorization": f"Bearer {json.load(resp)['token']}"}


def test_the_api_conforms_to_its_document(served: str) -> None:
    schema = schemathesis.openapi.from_url(f"{served}/api/openapi.json")
    headers = _login(served)
    failures: list[str] = []
    statuses: dict[int, int] = {}
    operations = 0
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the document itself is valid
        operation: Any = result.ok()
        operations += 1
        strategy = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(
            GenerationMode.NEGATIVE
        )

        @given(case=strategy)
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,  # the same requests every run: a failure is reproducible
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            # Always the administrator's token (schemathesis would send a made-up one).
            response = case.call(base_url=served, headers={**(case.headers or {}), **headers})
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            # A body over the size limit is refused with 413 before it is parsed: a refusal
            # of invalid data, though not one of the statuses schemathesis expects for it.
            checks = CHECKS if response.status_code != 413 else REFUSED_BY_SIZE
            case.validate_response(response, checks=checks)

        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {exc}")
    assert operations >= 20, operations
    assert not failures, "\n\n".join(failures)
    # Not vacuous: requests were sent, some accepted and some refused.
    assert sum(statuses.values()) >= operations * 5, statuses
    assert any(200 <= s < 300 for s in statuses), statuses
    assert any(400 <= s < 500 for s in statuses), statuses
    print("schemathesis statuses:", dict(sorted(statuses.items())))
