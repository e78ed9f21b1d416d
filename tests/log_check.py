"""A check over the whole test session: no log line, at any level, carries a token.

``TokenLogCheck`` is a logging handler installed on the root logger at DEBUG for the whole
session (``tests/conftest.py`` registers it), so every record any code emits, the broker's,
aiohttp's, aiosqlite's or the agent's, is formatted and scanned. A record is a leak if it holds
something shaped like a JWT, or any part of a token the broker issued during the session (every
call of ``broker.auth.tokens.issue`` is recorded as it returns). The output of ``rsb serve``
child processes is scanned the same way by the tests that capture it (``scan_text``).

At the end of the session the check fails the run if it found a leak, if it was detached from
the root logger, or if it saw no records although tests served the broker (a check that saw
nothing proves nothing). ``tests/unit/test_log_check.py`` proves it catches a leak.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
"""Three base64url parts, the first a JSON object (``{"`` encodes as ``eyJ``)."""

_PREFIX = 16
_RUN = re.compile(r"[A-Za-z0-9_-]{16,}")
"""Runs of base64url text long enough to hold a token's payload or signature."""

_FORMAT = logging.Formatter("%(levelname)s %(name)s: %(message)s")


@dataclass(frozen=True)
class Leak:
    where: str
    text: str

    def __str__(self) -> str:
        return f"{self.where}: {self.text[:300]}"


class TokenLogCheck(logging.Handler):
    """Scans every formatted record (and captured child output) for tokens."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records = 0
        self.lines_scanned = 0
        self.broker_tests = 0
        self.leaks: list[Leak] = []
        self._parts: dict[str, str] = {}  # payload and signature of issued tokens, by prefix
        self._issued = 0
        self._expected: list[list[Leak]] = []
        self._guard = threading.Lock()

    # --- what it knows ------------------------------------------------------------------------

    @property
    def issued(self) -> int:
        return self._issued

    def add_token(self, token: str) -> None:
        """Remember a token the suite was given; any part of it in a log is a leak."""
        with self._guard:
            self._issued += 1
            # The header part is the same for every token of a key: only the rest identifies.
            for part in token.split(".")[1:] or [token]:
                if len(part) >= _PREFIX:
                    self._parts[part[:_PREFIX]] = part

    # --- scanning ------------------------------------------------------------------------------

    def find(self, text: str) -> str | None:
        """The first token-like or issued-token text in ``text``, if any."""
        match = JWT.search(text)
        if match:
            return match.group(0)
        with self._guard:
            parts = self._parts
            for run in _RUN.findall(text):
                # Every window of the run is looked up by prefix: linear in the text, however
                # many tokens were issued.
                for i in range(len(run) - _PREFIX + 1):
                    part = parts.get(run[i : i + _PREFIX])
                    if part is not None and run.startswith(part, i):
                        return part
        return None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = _FORMAT.format(record)
        except Exception:  # a record that cannot even be formatted is still counted and kept
            text = f"{record.name}: {record.msg!r} {record.args!r}"
        self.records += 1
        if self.find(text) is not None:
            self._report(Leak(f"log record {record.name} at {record.levelname}", text))

    def scan_text(self, text: str, where: str) -> None:
        """Scan the captured output of a child process, line by line."""
        for line in text.splitlines():
            self.lines_scanned += 1
            if self.find(line) is not None:
                self._report(Leak(where, line))

    def _report(self, leak: Leak) -> None:
        with self._guard:
            (self._expected[-1] if self._expected else self.leaks).append(leak)

    @contextmanager
    def expecting_leak(self) -> Iterator[list[Leak]]:
        """For the check's own test: leaks found inside are handed over, not reported."""
        found: list[Leak] = []
        with self._guard:
            self._expected.append(found)
        try:
            yield found
        finally:
            with self._guard:
                self._expected.remove(found)

    # --- the verdict ---------------------------------------------------------------------------

    def problems(self, root: logging.Logger) -> list[str]:
        out = [f"a token in the logs: {leak}" for leak in self.leaks]
        if self not in root.handlers:
            out.append("the token log check was removed from the root logger during the run")
        if self.broker_tests and not self.records:
            out.append(
                f"{self.broker_tests} tests served the broker, yet the token log check saw no "
                "log record: it is not seeing the logs, so it proves nothing"
            )
        return out

    def summary(self) -> str:
        return (
            f"token log check: {self.records} log records and {self.lines_scanned} lines of "
            f"rsb serve output scanned, {self.issued} tokens issued, {len(self.leaks)} leaks"
        )


class TokenLogPlugin:
    """The pytest side: install at configure, spy on token issue, judge at session end."""

    def __init__(self) -> None:
        self.check = TokenLogCheck()
        self._root_level = logging.WARNING
        self._restore: Callable[[], None] | None = None

    def pytest_configure(self, config: pytest.Config) -> None:
        root = logging.getLogger()
        self._root_level = root.level
        root.addHandler(self.check)
        root.setLevel(logging.DEBUG)  # records at every level are created, so all are seen
        self._restore = _record_issued_tokens(self.check)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        root = logging.getLogger()
        root.removeHandler(self.check)
        root.setLevel(self._root_level)
        if self._restore is not None:
            self._restore()

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        problems = self.check.problems(logging.getLogger())
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(self.check.summary())
            for problem in problems:
                reporter.write_line(f"FAILED {problem}", red=True)
        if problems and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _record_issued_tokens(check: TokenLogCheck) -> Callable[[], None]:
    """Wrap ``broker.auth.tokens.issue`` so every token it returns is known to the check.

    The wrapper returns exactly what ``issue`` returns; callers look ``tokens.issue`` up at
    call time, so they all go through it.
    """
    from broker.auth import tokens

    original = tokens.issue

    def issue(*args: Any, **kwargs: Any) -> str:
        token = original(*args, **kwargs)
        check.add_token(token)
        return token

    tokens.issue = issue

    def restore() -> None:
        tokens.issue = original

    return restore
