#!/usr/bin/env python3
"""Hold rendered chart manifests against Kubernetes' own OpenAPI schemas.

The schemas are the JSON Schema form of each release's OpenAPI document, as
bundled by PyPI's kubernetes-validate; the "strict" variant refuses every
field Kubernetes does not know (a misspelt ``startupprobe`` fails, as the API
server's strict field validation would fail it). Every object of every file
in DIR is validated against every version given; unlike the
``kubernetes-validate`` command, a kind without a schema is a failure, not a
warning.

Before that, a self-test: objects that a real API server refuses (an unknown
field, a string where an integer belongs, a missing required field) must be
refused here too, so a validator that accepts anything cannot pass.

Usage: validate_manifests.py DIR VERSION...     (e.g. 1.25 1.37)
Exit status: 0 when every object is valid for every version, 1 otherwise.
"""

from __future__ import annotations

import copy
import functools
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml
import kubernetes_validate.utils
from kubernetes_validate.utils import VersionNotSupportedError

# kubernetes-validate reads and parses a version's schema files (the shared
# definitions are megabytes) on every call; they never change within a run,
# and the validator does not modify them.
kubernetes_validate.utils.schema_contents = functools.lru_cache(maxsize=None)(
    kubernetes_validate.utils.schema_contents)


def problem(obj: dict[str, Any], version: str) -> str | None:
    """Why `obj` is not valid for Kubernetes `version` (strict), or None."""
    try:
        kubernetes_validate.validate(obj, version, strict=True)
        return None
    except kubernetes_validate.ValidationError as e:
        path = ".".join(str(p) for p in e.path)
        return f"{path}: {e.message}"
    except (kubernetes_validate.SchemaNotFoundError, VersionNotSupportedError,
            kubernetes_validate.InvalidSchemaError) as e:
        return str(getattr(e, "message", e))


def name_of(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"


def self_test(sample: dict[str, Any], version: str) -> list[str]:
    """Broken copies of a valid Deployment must be refused."""
    failures = []
    container = ("spec", "template", "spec", "containers", 0)

    def at(obj: dict[str, Any], path: tuple[Any, ...]) -> Any:
        for p in path:
            obj = obj[p]
        return obj

    def unknown_field(obj: dict[str, Any]) -> None:
        c = at(obj, container)
        c["startupprobe"] = c.pop("startupProbe", {})

    def wrong_type(obj: dict[str, Any]) -> None:
        at(obj, container)["ports"][0]["containerPort"] = "http"

    def missing_required(obj: dict[str, Any]) -> None:
        del at(obj, container)["name"]

    if problem(sample, version) is not None:
        return [f"self-test: the sample {name_of(sample)} is not valid itself: {problem(sample, version)}"]
    for what, breaks in (("an unknown field (startupprobe)", unknown_field),
                         ("a string as containerPort", wrong_type),
                         ("a container without a name", missing_required)):
        broken = copy.deepcopy(sample)
        breaks(broken)
        why = problem(broken, version)
        if why is None:
            failures.append(f"self-test: {what} was ACCEPTED by the {version} schema")
        else:
            print(f"ok   refused as expected, {what}: {why}")
    return failures


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    folder, versions = Path(sys.argv[1]), sys.argv[2:]
    files = sorted(folder.glob("*.yaml"))
    objects = [(f, d) for f in files for d in yaml.safe_load_all(f.read_text()) if d]
    if not objects:
        print(f"FAIL no manifest in {folder}")
        return 1
    print(f"kubernetes-validate {kubernetes_validate.__version__}: "
          f"{len(objects)} objects from {len(files)} renders, Kubernetes {', '.join(versions)} (strict)")

    deployment = next((d for _, d in objects if d.get("kind") == "Deployment"), None)
    if deployment is None:
        print("FAIL no Deployment among the manifests")
        return 1
    failures = self_test(deployment, versions[-1])

    kinds: set[str] = set()
    for version in versions:
        bad = 0
        for f, obj in objects:
            kinds.add(f"{obj.get('apiVersion')} {obj.get('kind')}")
            why = problem(obj, version)
            if why is not None:
                bad += 1
                failures.append(f"{version} {f.name} {name_of(obj)}: {why}")
        print(f"{'ok  ' if bad == 0 else 'FAIL'} Kubernetes {version}: "
              f"{len(objects) - bad}/{len(objects)} objects valid")
    print(f"kinds: {', '.join(sorted(kinds))}")
    for f in failures:
        print(f"FAIL {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
