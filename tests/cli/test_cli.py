"""The ``tether`` command: --version, --help of every subcommand, config, unknown variables."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from services.cli import COMMANDS, SIMULATORS
from services.config_command import known_variables, unknown_variable_warnings

NESTED = [
    ["topics", "provision"],
    ["topics", "list"],
    ["replay", "stage"],
    ["replay", "deadletters"],
    ["tenants", "erase"],
]
EVERY_COMMAND = [[name] for name in COMMANDS] + [["simulate", name] for name in SIMULATORS] + NESTED


def tether(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.mark.parametrize("command", EVERY_COMMAND, ids=" ".join)
def test_help_works_for_every_subcommand(command: list[str]) -> None:
    done = tether(*command, "--help")
    assert done.returncode == 0, done.stderr
    assert "usage" in done.stdout.lower()


def test_version() -> None:
    done = tether("--version")
    assert done.returncode == 0
    assert done.stdout.startswith("tether ")
    assert done.stdout.split()[1][0].isdigit()


def test_a_misspelt_variable_is_named_with_the_closest_known_one() -> None:
    warnings = unknown_variable_warnings(
        {
            "TETHER_KAFKA_BOOTSTRAP_SERVER": "x",
            "TETHER_TOPIC_PREFIX": "ok",
            "PATH": "/bin",
            "TETHER_WHATEVER_ELSE_ENTIRELY_XYZ": "1",
        }
    )
    assert warnings[0].endswith("did you mean TETHER_KAFKA_BOOTSTRAP_SERVERS?")
    assert "TETHER_WHATEVER_ELSE_ENTIRELY_XYZ is not a Tether setting" in warnings[1]
    assert len(warnings) == 2
    assert {"TETHER_SECRETS_DIR", "TETHER_POSTGRES_DSN", "TETHER_WIX_API_KEY"} <= known_variables()


def test_every_run_warns_about_unknown_variables_on_standard_error() -> None:
    env = {**os.environ, "TETHER_POSTGRES_DNS": "postgresql://x"}
    done = tether("config", "mapper", env=env)
    assert done.returncode == 0, done.stderr
    assert "TETHER_POSTGRES_DNS is not a Tether setting" in done.stderr
    assert "did you mean TETHER_POSTGRES_DSN?" in done.stderr


def test_config_prints_the_effective_configuration_with_secrets_masked() -> None:
    secret = "s3cr3t-subscription-key-value"
    env = {
        **os.environ,
        "TETHER_POWEROFFICE_SUBSCRIPTION_KEY": secret,
        "TETHER_POSTGRES_DSN": f"postgresql://tether:{secret}@db/tether",
        "TETHER_TOPIC_PREFIX": "acme",
        "TETHER_CONSOLE_TOKENS": f"alice:operator:{secret}",
    }
    done = tether("config", env=env)
    assert done.returncode == 0, done.stderr
    assert secret not in done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert set(report) == {"extractor", "mapper", "loader", "verify", "console"}
    assert report["verify"]["postgres_dsn"] == "**********"
    assert report["console"]["console_tokens"] == "**********"
    assert report["loader"]["poweroffice_subscription_key"] == "**********"
    assert report["mapper"]["postgres_dsn"] == "**********"
    assert report["extractor"]["topic_prefix"] == "acme"


def test_config_names_an_invalid_value() -> None:
    done = tether("config", "mapper", env={**os.environ, "TETHER_TOPIC_PARTITIONS": "zero"})
    assert done.returncode == 2
    assert "topic_partitions" in done.stderr
