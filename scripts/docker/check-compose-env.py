#!/usr/bin/python3
"""Checks that docker-compose.yml takes every tutti option from .env.

docker compose reads .env only to fill the ${...} placeholders of the compose
file: a variable that docker-compose.yml does not pass on never reaches tutti.
With `docker-compose config` (no Docker engine needed) this checks that

1. every option tutti reads from the environment (the `env = "TUTTI_..."`
   attributes in src/config.rs) appears in .env.example, set or as a commented
   `# TUTTI_X=example` line;
2. with .env.example as the .env, every variable it sets reaches the service's
   environment with its value;
3. with every option set to a value of its own (the commented examples too),
   each reaches the service's environment with that value, so none is forgotten
   or hard-wired in docker-compose.yml.

Options compose does not take from .env, with the reason, are in NOT_FROM_ENV.
Run from anywhere: scripts/docker/check-compose-env.py (CI runs it).
Uses Debian's python3, whose yaml module docker-compose depends on.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVICE = "tutti"
# Every option comes from .env (tutti reads an empty value as "not set").
NOT_FROM_ENV = {}


def options():
    """The TUTTI_* variables the binary reads, from src/config.rs."""
    with open(os.path.join(ROOT, "src", "config.rs"), encoding="utf-8") as f:
        names = re.findall(r'env\s*=\s*"(TUTTI_[A-Z0-9_]+)"', f.read())
    if len(names) < 10:
        sys.exit(f"check-compose-env: found only {len(names)} options in src/config.rs")
    return sorted(set(names))


def sample():
    """.env.example's settings: {name: (value, set)}; `set` is False for a
    commented example."""
    found = {}
    with open(os.path.join(ROOT, ".env.example"), encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^(#\s*)?(TUTTI_[A-Z0-9_]+)=(.*)$", line.rstrip("\n"))
            if m:
                found[m.group(2)] = (m.group(3), m.group(1) is None)
    return found


def compose_environment(env_lines):
    """The service's environment as `docker-compose config` resolves it with
    env_lines as the .env file and no TUTTI_* variable in the shell."""
    if shutil.which("docker-compose"):
        compose = ["docker-compose"]
    else:
        compose = ["docker", "compose"]
    shell = {k: v for k, v in os.environ.items() if not k.startswith("TUTTI_")}
    with tempfile.NamedTemporaryFile("w", suffix=".env") as env_file:
        env_file.write("".join(f"{line}\n" for line in env_lines))
        env_file.flush()
        out = subprocess.run(
            compose + ["--env-file", env_file.name, "-f", "docker-compose.yml", "config"],
            cwd=ROOT,
            env=shell,
            capture_output=True,
            text=True,
            timeout=60,
        )
    if out.returncode != 0:
        sys.exit(f"check-compose-env: docker-compose config failed:\n{out.stderr}")
    environment = yaml.safe_load(out.stdout)["services"][SERVICE].get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {k: "" if v is None else str(v) for k, v in environment.items()}


def main():
    errors = []
    names = options()
    examples = sample()

    # 1. Every option is in the sample.
    for name in names:
        if name not in examples and name not in NOT_FROM_ENV:
            errors.append(f"{name} is a tutti option but .env.example does not mention it")
    for name in examples:
        if name not in names:
            errors.append(f".env.example sets {name}, which is not a tutti option")

    # 2. The sample as it is.
    active = {n: v for n, (v, is_set) in examples.items() if is_set}
    env = compose_environment([f"{n}={v}" for n, v in active.items()])
    for name, value in active.items():
        if env.get(name) != value:
            errors.append(f".env.example: {name}={value!r} reaches the container as {env.get(name)!r}")

    # 3. Every option, each with a value of its own.
    values = {n: f"check-{n.lower()}" for n in names}
    env = compose_environment([f"{n}={v}" for n, v in values.items()])
    for name, value in values.items():
        got = env.get(name)
        if name in NOT_FROM_ENV:
            if got == value:
                errors.append(f"{name} now reaches the container from .env: drop it from NOT_FROM_ENV")
        elif got != value:
            errors.append(f"{name} set in .env reaches the container as {got!r}, not {value!r}")

    if errors:
        print("check-compose-env: docker-compose.yml does not pass .env through:", file=sys.stderr)
        for e in errors:
            print(f"  {e}", file=sys.stderr)
        sys.exit(1)
    passed = len(names) - len(NOT_FROM_ENV)
    skipped = ", ".join(f"{n} ({why})" for n, why in NOT_FROM_ENV.items())
    tail = f"; not {skipped}" if skipped else ""
    print(f"check-compose-env: {passed} of {len(names)} options reach the container from .env{tail}")


if __name__ == "__main__":
    main()
