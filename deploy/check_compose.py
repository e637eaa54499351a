#!/usr/bin/env python3
"""Structural checks of deploy/docker-compose.yml (no Docker engine needed).

The compose-spec JSON schema check is done by check-jsonschema in
.ci/lint-deploy; this adds what the schema cannot say:
- no `depends_on` waits on a health condition (readygate's own retries handle
  the start order): neither `condition: service_healthy` nor any condition but
  `service_started`;
- the readygate service is built from deploy/Dockerfile with the repository
  root as context, publishes 4444, uses CACHE_TYPE=redis, sets the four retry
  variables (and the timeouts) explicitly as whole numbers >= 1, and points
  DATABASE_URL / REDIS_URL at the compose services.

Usage: check_compose.py [--project-directory DIR] [COMPOSE_FILE]
Relative paths resolve against DIR, by default the file's directory (as with
`docker compose --project-directory`). Exit status 0 when all checks pass.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
RETRY_VARS = ["DB_MAX_RETRIES", "DB_RETRY_INTERVAL_MS", "REDIS_MAX_RETRIES", "REDIS_RETRY_INTERVAL_MS"]
TIMEOUT_VARS = ["DB_CONNECT_TIMEOUT_MS", "REDIS_CONNECT_TIMEOUT_MS"]


def env_map(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["KEY=value", ...]
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description="Structural checks of a compose file.")
    parser.add_argument("file", nargs="?", default=str(HERE / "docker-compose.yml"))
    parser.add_argument("--project-directory", help="base of relative paths (default: the file's directory)")
    args = parser.parse_args()
    path = Path(args.file)
    project_dir = Path(args.project_directory) if args.project_directory else path.parent
    text = path.read_text()
    problems: list[str] = []

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        print(f"FAIL {path}: not well-formed YAML: {e}")
        return 1
    if not isinstance(doc, dict) or not isinstance(doc.get("services"), dict):
        print(f"FAIL {path}: no services mapping")
        return 1
    services: dict[str, Any] = doc["services"]

    # Also textual, so a commented-out example cannot sneak back in unnoticed.
    if re.search(r"condition\s*:\s*['\"]?service_healthy", text):
        problems.append("the file contains `condition: service_healthy`")
    for name, svc in services.items():
        deps = (svc or {}).get("depends_on")
        if isinstance(deps, dict):
            for dep, spec in deps.items():
                cond = (spec or {}).get("condition", "service_started")
                if cond != "service_started":
                    problems.append(f"{name}.depends_on.{dep} waits on `{cond}`")
        elif deps is not None and not isinstance(deps, list):
            problems.append(f"{name}.depends_on is neither a list nor a mapping")

    gw = services.get("readygate")
    if not isinstance(gw, dict):
        problems.append("no `readygate` service")
    else:
        build = gw.get("build") or {}
        context = (project_dir / build.get("context", ".")).resolve()
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        if not (context / "Cargo.toml").exists():
            problems.append(f"build context {context} is not the repository root (no Cargo.toml)")
        if dockerfile.resolve() != (HERE / "Dockerfile").resolve():
            problems.append(f"readygate is built from {dockerfile}, not deploy/Dockerfile")
        env = env_map(gw)
        if env.get("CACHE_TYPE") != "redis":
            problems.append(f"CACHE_TYPE is {env.get('CACHE_TYPE')!r}, not 'redis'")
        for var in RETRY_VARS + TIMEOUT_VARS:
            if not re.fullmatch(r"[1-9][0-9]*", env.get(var, "")):
                problems.append(f"{var} is not set to a whole number >= 1 ({env.get(var)!r})")
        db_url, redis_url = env.get("DATABASE_URL", ""), env.get("REDIS_URL", "")
        if not re.match(r"postgres(ql)?://[^@/]*@?postgres[:/]", db_url) or "postgres" not in services:
            problems.append(f"DATABASE_URL {db_url!r} does not point at the postgres service")
        if not re.match(r"redis://([^@/]*@)?redis[:/]", redis_url) or "redis" not in services:
            problems.append(f"REDIS_URL {redis_url!r} does not point at the redis service")
        if env.get("HOST", "0.0.0.0") != "0.0.0.0":
            problems.append("HOST must be 0.0.0.0 for the published port to reach the gateway")
        ports = [str(p) for p in gw.get("ports") or []]
        if not any(re.fullmatch(r"(\S+:)?4444:4444(/tcp)?", p) for p in ports):
            problems.append(f"port 4444 is not published ({ports})")

    if problems:
        for p in problems:
            print(f"FAIL {path.name}: {p}")
        return 1
    print(f"ok   {path.name}: well-formed; {len(services)} services; no depends_on health condition; "
          "readygate: CACHE_TYPE=redis, retry variables set, URLs at the services, 4444 published")
    return 0


if __name__ == "__main__":
    sys.exit(main())
