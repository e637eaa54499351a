#!/usr/bin/env python3
"""Lint and render the readygate Helm chart with the Helm Go library.

There is no helm binary here; the Helm library is on PyPI as the helm-sdkpy
wheel (a cgo build of Helm with a C interface). This script calls it through
ctypes, so it needs neither cffi nor the wheel's Python 3.12 wrapper:

1. ``helm_sdkpy_lint``: Helm's own chart linter (Chart.yaml, values against
   values.schema.json, every template rendered with the default values).
   Any message of severity ERROR fails, and so does WARNING (like
   ``helm lint --strict``). The library serialises each message's error as
   ``{}``, so only the file is known; step 2 then shows the real message.

2. ``helm_sdkpy_install`` (the library has no dry-run/template entry point)
   against a throw-away, in-process fake Kubernetes API server on 127.0.0.1:
   the fake answers discovery, accepts every object and stores nothing
   outside this process. Helm renders the chart with the given values exactly
   as ``helm install`` would, validates them against values.schema.json, and
   returns the rendered manifest, which is then checked here: the ConfigMap
   carries every setting, the Secret the URLs, and above all the startupProbe
   outlasts the retry budget for defaults, non-default values and a grid of
   generated settings. Values the schema must refuse (DB_MAX_RETRIES "0",
   CACHE_TYPE "disk", ...) must make the install fail.

With ``--save-manifests DIR``, every manifest rendered in step 2 is also
written to DIR (one file per render) for validate_manifests.py, which holds
them against Kubernetes' own OpenAPI schemas.

Usage: lint_chart.py [--lib PATH/libhelm_sdkpy.so] [--save-manifests DIR] [CHART_DIR]
The library is found from --lib, $HELMPY_LIBRARY_PATH, or the helm_sdkpy
package on sys.path (PYTHONPATH=DIR after `pip install --target DIR`).
Exit status: 0 when everything passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import base64
import copy
import ctypes
import http.server
import importlib.util
import json
import os
import platform
import random
import re
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
DEFAULT_CHART = HERE / "readygate"

SEVERITY = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}

# The program's settings: 37 in the ConfigMap (the empty ones left out), 2 in the Secret.
CONFIG_VARS = [
    "DB_POOL_SIZE", "DB_POOL_TIMEOUT_MS",
    "DB_MAX_RETRIES", "DB_RETRY_INTERVAL_MS", "DB_RETRY_BACKOFF", "DB_RETRY_MULTIPLIER",
    "DB_RETRY_MAX_INTERVAL_MS", "DB_RETRY_JITTER", "DB_CONNECT_TIMEOUT_MS", "DB_STARTUP_TIMEOUT_MS",
    "CACHE_TYPE", "CACHE_REQUIRED",
    "REDIS_MAX_RETRIES", "REDIS_RETRY_INTERVAL_MS", "REDIS_RETRY_BACKOFF", "REDIS_RETRY_MULTIPLIER",
    "REDIS_RETRY_MAX_INTERVAL_MS", "REDIS_RETRY_JITTER", "REDIS_CONNECT_TIMEOUT_MS", "REDIS_STARTUP_TIMEOUT_MS",
    "REDIS_SENTINEL_NODES", "REDIS_SENTINEL_MASTER", "REDIS_SENTINEL_PASSWORD", "REDIS_SENTINEL_PASSWORD_FILE",
    "REDIS_CLUSTER_NODES", "WAIT_FOR", "WAIT_FOR_OPTIONAL", "WAIT_FOR_MAX_RETRIES", "WAIT_FOR_RETRY_INTERVAL_MS", "WAIT_FOR_CONNECT_TIMEOUT_MS",
    "DATABASE_URL_FILE", "REDIS_URL_FILE", "REDIS_TLS_CA_CERT", "REDIS_TLS_CLIENT_CERT",
    "REDIS_TLS_CLIENT_KEY", "REDIS_TLS_INSECURE", "HEALTH_CHECK_INTERVAL_MS", "SHUTDOWN_DELAY_MS", "SHUTDOWN_TIMEOUT_MS", "HOST", "PORT", "LOG_LEVEL", "LOG_FORMAT",
]
SECRET_VARS = ["DATABASE_URL", "REDIS_URL"]
# The CACHE_TYPEs that use Redis (and REDIS_URL's credentials).
REDIS_CACHES = ("redis", "redis-sentinel", "redis-cluster")


class Failure(Exception):
    pass


# --------------------------------------------------------------- library ----

def find_library(explicit: str | None) -> str:
    if explicit:
        return explicit
    env = os.environ.get("HELMPY_LIBRARY_PATH")
    if env:
        return env
    spec = importlib.util.find_spec("helm_sdkpy")  # locates, does not import
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("helm_sdkpy not found: pass --lib, set HELMPY_LIBRARY_PATH, or put it on PYTHONPATH")
    machine = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    pkg = Path(list(spec.submodule_search_locations)[0])
    lib = pkg / "_lib" / f"linux-{machine}" / "libhelm_sdkpy.so"
    if not lib.exists():
        raise SystemExit(f"no Helm library at {lib}")
    return str(lib)


class Helm:
    """The few C entry points of libhelm_sdkpy used here."""

    def __init__(self, path: str):
        lib = ctypes.CDLL(path)  # CDLL releases the GIL during calls: the fake API server keeps running
        lib.helm_sdkpy_version_string.restype = ctypes.c_char_p
        lib.helm_sdkpy_last_error.restype = ctypes.c_char_p
        lib.helm_sdkpy_config_create.argtypes = [ctypes.c_char_p] * 4 + [ctypes.POINTER(ctypes.c_ulonglong)]
        lib.helm_sdkpy_config_create.restype = ctypes.c_int
        lib.helm_sdkpy_config_destroy.argtypes = [ctypes.c_ulonglong]
        lib.helm_sdkpy_lint.argtypes = [ctypes.c_ulonglong, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
        lib.helm_sdkpy_lint.restype = ctypes.c_int
        lib.helm_sdkpy_install.argtypes = [ctypes.c_ulonglong] + [ctypes.c_char_p] * 5 + [ctypes.POINTER(ctypes.c_void_p)]
        lib.helm_sdkpy_install.restype = ctypes.c_int
        lib.helm_sdkpy_free.argtypes = [ctypes.c_void_p]
        self.lib = lib

    def version(self) -> str:
        return self.lib.helm_sdkpy_version_string().decode()

    def _error(self) -> str:
        err = self.lib.helm_sdkpy_last_error()
        return err.decode() if err else "unknown error"

    def _take(self, ptr: ctypes.c_void_p) -> str:
        if not ptr.value:
            return ""
        try:
            return ctypes.string_at(ptr.value).decode()
        finally:
            self.lib.helm_sdkpy_free(ptr)

    def config(self, kubeconfig: str | None) -> int:
        handle = ctypes.c_ulonglong()
        rc = self.lib.helm_sdkpy_config_create(
            b"default", kubeconfig.encode() if kubeconfig else None, None, b"{}", ctypes.byref(handle))
        if rc != 0:
            raise Failure(f"helm config: {self._error()}")
        return handle.value

    def lint(self, chart: str) -> dict[str, Any]:
        handle = self.config(None)
        try:
            out = ctypes.c_void_p()
            rc = self.lib.helm_sdkpy_lint(handle, chart.encode(), ctypes.byref(out))
            if rc != 0:
                raise Failure(f"helm lint: {self._error()}")
            return json.loads(self._take(out))
        finally:
            self.lib.helm_sdkpy_config_destroy(handle)

    def install(self, kubeconfig: str, release: str, chart: str, values: dict[str, Any]) -> tuple[bool, Any]:
        """(True, release dict) or (False, error message)."""
        handle = self.config(kubeconfig)
        try:
            out = ctypes.c_void_p()
            options = {
                "wait": False, "timeout_seconds": 30, "create_namespace": False,
                "disable_openapi_validation": True, "skip_schema_validation": False,
                "server_side_apply": "false",
            }
            rc = self.lib.helm_sdkpy_install(
                handle, release.encode(), chart.encode(), json.dumps(values).encode(), b"",
                json.dumps(options).encode(), ctypes.byref(out))
            if rc != 0:
                return False, self._error()
            return True, json.loads(self._take(out))
        finally:
            self.lib.helm_sdkpy_config_destroy(handle)


# ------------------------------------------------ fake Kubernetes API server ----

RESOURCES = {
    "v1": [("configmaps", "ConfigMap"), ("secrets", "Secret"), ("services", "Service"),
           ("serviceaccounts", "ServiceAccount"), ("pods", "Pod"),
           ("persistentvolumeclaims", "PersistentVolumeClaim")],
    "apps/v1": [("deployments", "Deployment"), ("replicasets", "ReplicaSet"), ("statefulsets", "StatefulSet")],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget")],
    "batch/v1": [("jobs", "Job")],
}


def _resource_list(group_version: str) -> dict[str, Any]:
    return {
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
        "resources": [{"name": n, "singularName": "", "namespaced": True, "kind": k,
                       "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}
                      for n, k in RESOURCES[group_version]],
    }


class FakeApi(http.server.BaseHTTPRequestHandler):
    """Just enough of the Kubernetes API for `helm install --wait=false`."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle and
    # delayed ACKs add about 40 ms to every request.
    disable_nagle_algorithm = True
    store: dict[str, Any] = {}
    lock = threading.Lock()

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _send(self, code: int, obj: Any) -> None:
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        if path == "/version":
            return self._send(200, {"major": "1", "minor": "31", "gitVersion": "v1.31.0", "platform": "linux/amd64"})
        if path == "/api":
            return self._send(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
        if path == "/apis":
            groups = [gv for gv in RESOURCES if "/" in gv]
            return self._send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": gv.split("/")[0], "versions": [{"groupVersion": gv, "version": gv.split("/")[1]}],
                 "preferredVersion": {"groupVersion": gv, "version": gv.split("/")[1]}} for gv in groups]})
        if path == "/api/v1":
            return self._send(200, _resource_list("v1"))
        m = re.fullmatch(r"/apis/([^/]+/[^/]+)", path)
        if m and m.group(1) in RESOURCES:
            return self._send(200, _resource_list(m.group(1)))
        with self.lock:
            if self.command == "GET":
                if path in self.store:
                    return self._send(200, self.store[path])
                if re.search(r"/namespaces/[^/]+/[a-z]+$", path):
                    return self._send(200, {"kind": "List", "apiVersion": "v1", "metadata": {}, "items": []})
                return self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                        "reason": "NotFound", "code": 404})
            if self.command in ("POST", "PUT", "PATCH"):
                code = 201 if self.command == "POST" else 200
                if "protobuf" in (self.headers.get("Content-Type") or ""):
                    # Helm's release record (a Secret, sent as protobuf): acknowledged, not kept.
                    return self._send(code, {"kind": "Secret", "apiVersion": "v1", "metadata": {
                        "name": "release", "namespace": "default", "resourceVersion": "1"}})
                obj = json.loads(body or b"{}")
                if self.command == "POST":
                    path = f"{path}/{obj.get('metadata', {}).get('name', 'x')}"
                obj.setdefault("metadata", {}).update(resourceVersion="1", uid="00000000")
                self.store[path] = obj
                return self._send(code, obj)
            return self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


def start_fake_api(workdir: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    kubeconfig = workdir / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: fake, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: fake, user: {token: fake}}]\n"
        "contexts: [{name: fake, context: {cluster: fake, user: fake, namespace: default}}]\n"
        "current-context: fake\n")
    return server, str(kubeconfig)


# ------------------------------------------------------------- the checks ----

def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def setting_text(v: Any) -> str:
    """A setting as the chart writes it for the program: whole numbers
    without a fraction or exponent, fractional ones (a multiplier, a jitter)
    as Go prints them, booleans as true/false."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def schedule_text(config: dict[str, Any], p: str) -> str:
    """One dependency's retry settings in words, as NOTES.txt prints them."""
    g = {k: setting_text(config[f"{p}_{k}"]) for k in (
        "MAX_RETRIES", "CONNECT_TIMEOUT_MS", "RETRY_INTERVAL_MS", "RETRY_BACKOFF", "RETRY_MULTIPLIER",
        "RETRY_MAX_INTERVAL_MS", "RETRY_JITTER", "STARTUP_TIMEOUT_MS")}
    out = f"{g['MAX_RETRIES']} attempts, {g['CONNECT_TIMEOUT_MS']} ms timeout"
    if g["RETRY_BACKOFF"].lower() == "exponential":
        out += (f", waits from {g['RETRY_INTERVAL_MS']} ms, x{g['RETRY_MULTIPLIER']} each time, "
                f"up to {g['RETRY_MAX_INTERVAL_MS']} ms")
    else:
        out += f", {g['RETRY_INTERVAL_MS']} ms apart"
    if thousandths(g["RETRY_JITTER"]):
        out += f", +-{g['RETRY_JITTER']} jitter"
    if int(g["STARTUP_TIMEOUT_MS"]):
        out += f", within {g['STARTUP_TIMEOUT_MS']} ms"
    return out


def thousandths(value: Any) -> int:
    """A decimal setting ("1.5", 0.25, 2) in thousandths: 1500, 250, 2000."""
    whole, _, frac = str(value).partition(".")
    return int(whole) * 1000 + int((frac + "000")[:3])


def dependency_budget_ms(config: dict[str, Any], p: str) -> int:
    """One dependency's worst-case start-up, in ms: the program's
    RetryPolicy::worst_case_budget, written again here from docs/retry.md's rule
    (not from the chart's template) so that the two are checked against each
    other. Every attempt runs into its timeout; each of the attempts - 1 waits
    is at its longest, w + floor(w x jitter); the first w is the interval, each
    next one ceil(w x multiplier) capped (exponential) or the same (fixed); the
    whole is at most the start-up deadline when there is one."""
    attempts, timeout = int(config[f"{p}_MAX_RETRIES"]), int(config[f"{p}_CONNECT_TIMEOUT_MS"])
    w, jitter = int(config[f"{p}_RETRY_INTERVAL_MS"]), thousandths(config[f"{p}_RETRY_JITTER"])
    multiplier, cap = 1000, w
    if str(config[f"{p}_RETRY_BACKOFF"]).lower() == "exponential":
        multiplier = thousandths(config[f"{p}_RETRY_MULTIPLIER"])
        cap = max(w, int(config[f"{p}_RETRY_MAX_INTERVAL_MS"]))
    total = attempts * timeout
    waits = []
    for _ in range(attempts - 1):
        waits.append(w + w * jitter // 1000)
        nxt = min(cap, -(-w * multiplier // 1000))
        if nxt == w:
            waits.extend([waits[-1]] * (attempts - 1 - len(waits)))
            break
        w = nxt
    total += sum(waits)
    deadline = int(config[f"{p}_STARTUP_TIMEOUT_MS"])
    return min(total, deadline) if deadline > 0 else total


def retry_budget_ms(config: dict[str, Any]) -> int:
    """The start-up budget of the pod: the dependencies are attempted
    concurrently, so the largest of the required ones': the database; Redis
    when CACHE_TYPE is redis (or redis-sentinel, redis-cluster) and
    CACHE_REQUIRED is not false; WAIT_FOR's entries whenever WAIT_FOR is set,
    each with its own WAIT_FOR_<NAME>_* settings where given, else the shared
    WAIT_FOR_* (a fixed interval, the database's back-off defaults)."""
    budget = dependency_budget_ms(config, "DB")
    if str(config["CACHE_TYPE"]).lower() in REDIS_CACHES and str(config["CACHE_REQUIRED"]).lower() != "false":
        budget = max(budget, dependency_budget_ms(config, "REDIS"))
    if str(config["WAIT_FOR"]) != "":
        shared = {
            "MAX_RETRIES": config["WAIT_FOR_MAX_RETRIES"],
            "RETRY_INTERVAL_MS": config["WAIT_FOR_RETRY_INTERVAL_MS"],
            "CONNECT_TIMEOUT_MS": config["WAIT_FOR_CONNECT_TIMEOUT_MS"],
            "RETRY_BACKOFF": "fixed", "RETRY_MULTIPLIER": "2", "RETRY_MAX_INTERVAL_MS": "30000",
            "RETRY_JITTER": "0", "STARTUP_TIMEOUT_MS": "0",
        }
        for entry in str(config["WAIT_FOR"]).split(","):
            p = "WAIT_FOR_" + entry.split("=")[0].strip().upper().replace("-", "_")
            own = {f"{p}_{k}": config.get(f"{p}_{k}", "") for k in shared}
            entry_config = {k: (v if setting_text(v) != "" else shared[k[len(p) + 1:]]) for k, v in own.items()}
            budget = max(budget, dependency_budget_ms(entry_config, p))
    return budget


BUDGET_TABLE = HERE / "retry-budgets.json"


def budget_table() -> list[dict[str, Any]]:
    """The checked-in table of settings and budgets; tests/it/consistency.rs
    holds the program's worst_case_budget to the same table."""
    return json.loads(BUDGET_TABLE.read_text())["cases"]


def check_release(result: dict[str, Any], values: dict[str, Any]) -> str:
    """Checks one rendered release; returns a one-line summary."""
    docs = [d for d in yaml.safe_load_all(result["manifest"]) if d]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)

    def one(kind: str) -> dict[str, Any]:
        items = by_kind.get(kind, [])
        if len(items) != 1:
            raise Failure(f"expected one {kind}, got {len(items)}")
        return items[0]

    def expect(cond: bool, what: str) -> None:
        if not cond:
            raise Failure(what)

    config = values["config"]
    secret = values["secret"]
    uses_redis = config["CACHE_TYPE"].lower() in REDIS_CACHES

    cm = one("ConfigMap")
    # Numbers (as --set gives them) must reach the ConfigMap as text.
    text = setting_text
    # An empty value is an unset setting: left out (the program refuses "").
    # The program's settings, and any WAIT_FOR_<NAME>_<SETTING> of one entry.
    keys = CONFIG_VARS + sorted(k for k in config if k.startswith("WAIT_FOR_") and k not in CONFIG_VARS)
    config_data = {k: text(config[k]) for k in keys if text(config[k]) != ""}
    expect(cm["data"] == config_data,
           f"ConfigMap data {cm['data']} != config {config}")

    if secret["existingSecret"]:
        expect("Secret" not in by_kind, "a Secret was rendered although existingSecret is set")
        secret_name = secret["existingSecret"]
    else:
        sec = one("Secret")
        decoded = {k: base64.b64decode(v).decode() for k, v in sec["data"].items()}
        expect(decoded == {k: secret[k] for k in SECRET_VARS}, f"Secret data {decoded}")
        secret_name = sec["metadata"]["name"]

    expect(("PodDisruptionBudget" in by_kind) == values["podDisruptionBudget"]["enabled"], "PodDisruptionBudget presence")
    pvc_wanted = values["persistence"]["enabled"] and not values["persistence"]["existingClaim"]
    expect(("PersistentVolumeClaim" in by_kind) == pvc_wanted, "PersistentVolumeClaim presence")
    expect(("ServiceAccount" in by_kind) == values["serviceAccount"]["create"], "ServiceAccount presence")

    svc = one("Service")
    expect(svc["spec"]["ports"][0]["targetPort"] == "http", "Service targetPort is not the http port")

    dep = one("Deployment")
    pod = dep["spec"]["template"]
    spec = pod["spec"]
    (ctr,) = spec["containers"]
    port = int(config["PORT"])
    expect(ctr["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}], f"ports {ctr['ports']}")

    # A URL read from a file (X_FILE) is not passed as X too (both is exit 78).
    env_vars = [v for v in SECRET_VARS if text(config[f"{v}_FILE"]) == ""]

    def check_env(c: dict[str, Any]) -> None:
        expect(c["envFrom"] == [{"configMapRef": {"name": cm["metadata"]["name"]}}], f"{c['name']}: envFrom")
        env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c.get("env") or []}
        expect(set(env) == set(env_vars), f"{c['name']}: env {sorted(env)}")
        for var in env_vars:
            expect(env[var]["name"] == secret_name and env[var]["key"] == var, f"{c['name']}: {var} secretKeyRef")
        if "DATABASE_URL" in env:
            expect(env["DATABASE_URL"].get("optional", False) is False, "DATABASE_URL must not be optional")
        if "REDIS_URL" in env:
            expect(env["REDIS_URL"].get("optional") is (not uses_redis), "REDIS_URL optional iff Redis unused")
        expect(set(cm["data"]) | set(env) == set(config_data) | set(env_vars), "not every setting reaches the container")
        expect(c["workingDir"] == "/data", f"{c['name']}: workingDir")
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        expect(mounts.get("/data") == "data" and mounts.get("/tmp") == "tmp", f"{c['name']}: mounts {mounts}")
        tls = values["tlsFiles"]
        wants_tls = bool(tls["secretName"] or tls["configMapName"])
        expect((mounts.get(tls["mountPath"]) == "tls-files") == wants_tls, f"{c['name']}: TLS files mount {mounts}")
        files = values["secretFiles"]
        expect((mounts.get(files["mountPath"]) == "secret-files") == bool(files["secretName"]),
               f"{c['name']}: secret files mount {mounts}")
        expect(not any("subPath" in m for m in c["volumeMounts"]), f"{c['name']}: a subPath mount is never updated")
        sc = c.get("securityContext", {})
        expect(sc.get("readOnlyRootFilesystem") is True and sc.get("runAsNonRoot") is True
               and sc.get("allowPrivilegeEscalation") is False, f"{c['name']}: securityContext {sc}")

    check_env(ctr)
    expect(spec["securityContext"].get("runAsNonRoot") is True, "pod securityContext runAsNonRoot")
    vols = {v["name"]: v for v in spec["volumes"]}
    if values["persistence"]["enabled"]:
        want = values["persistence"]["existingClaim"] or dep["metadata"]["name"]
        expect(vols["data"].get("persistentVolumeClaim", {}).get("claimName") == want, "data volume claim")
    else:
        expect("emptyDir" in vols["data"], "data volume is not an emptyDir")
    tls = values["tlsFiles"]
    if tls["secretName"]:
        expect(vols.get("tls-files", {}).get("secret", {}).get("secretName") == tls["secretName"], "TLS files from the Secret")
    elif tls["configMapName"]:
        expect(vols.get("tls-files", {}).get("configMap", {}).get("name") == tls["configMapName"], "TLS files from the ConfigMap")
    else:
        expect("tls-files" not in vols, "a TLS files volume although tlsFiles names nothing")
    files = values["secretFiles"]
    if files["secretName"]:
        expect(vols.get("secret-files", {}).get("secret", {}).get("secretName") == files["secretName"],
               "secret files from the Secret")
    else:
        expect("secret-files" not in vols, "a secret files volume although secretFiles names nothing")

    inits = spec.get("initContainers", [])
    if values["initCheck"]["enabled"]:
        expect(len(inits) == 1 and inits[0]["args"] == ["check"] and inits[0]["image"] == ctr["image"],
               f"init container {inits}")
        expect(inits[0].get("command") == ctr.get("command"), f"init container command {inits[0].get('command')}")
        check_env(inits[0])
    else:
        expect(not inits, "init container rendered although initCheck.enabled is false")

    program = values["exec"]["command"]
    if program:
        expect(ctr.get("command") == [values["exec"]["path"]] and ctr.get("args") == ["exec", "--", *program],
               f"readygate exec: command {ctr.get('command')} args {ctr.get('args')}")
    else:
        expect("command" not in ctr and "args" not in ctr, "a command although exec.command is empty")

    for probe, path in (("startupProbe", "/health"), ("readinessProbe", "/ready"), ("livenessProbe", "/health")):
        expect(ctr[probe]["httpGet"] == {"path": path, "port": "http"}, f"{probe} {ctr[probe]['httpGet']}")

    # The point of the chart: the startupProbe outlasts the retry budget.
    startup = ctr["startupProbe"]
    period_ms = startup["periodSeconds"] * 1000
    window_ms = startup["failureThreshold"] * period_ms
    budget_ms = retry_budget_ms(config)
    margin_ms = values["probes"]["startup"]["marginSeconds"] * 1000
    expect(startup["periodSeconds"] == values["probes"]["startup"]["periodSeconds"], "startup periodSeconds")
    expect(window_ms > budget_ms + margin_ms,
           f"startupProbe window {window_ms} ms <= retry budget {budget_ms} ms + margin {margin_ms} ms")
    expect(window_ms - period_ms <= budget_ms + margin_ms,
           f"startupProbe failureThreshold {startup['failureThreshold']} is larger than needed")
    annotation = pod["metadata"]["annotations"].get("readygate/retry-budget-ms")
    expect(annotation == str(budget_ms), f"retry-budget annotation {annotation} != {budget_ms}")

    # The kubelet's SIGKILL must not cut readygate's own drain.
    drain_ms = int(config["SHUTDOWN_DELAY_MS"]) + int(config["SHUTDOWN_TIMEOUT_MS"])
    grace = -(-drain_ms // 1000) + values["terminationGrace"]["marginSeconds"]
    expect(spec["terminationGracePeriodSeconds"] == grace,
           f"terminationGracePeriodSeconds {spec['terminationGracePeriodSeconds']} != "
           f"ceil({drain_ms} ms) + margin = {grace}")
    expect(spec["terminationGracePeriodSeconds"] * 1000 >= drain_ms,
           "terminationGracePeriodSeconds does not outlast SHUTDOWN_DELAY_MS + SHUTDOWN_TIMEOUT_MS")

    notes = result.get("info", {}).get("notes", "")
    expect(f"Retry budget: {budget_ms} ms" in notes, "NOTES.txt does not show the retry budget")
    for p, label in (("DB", "Database: "), ("REDIS", "Redis:    ")):
        if p == "DB" or uses_redis:
            want_line = f"{label}{schedule_text(config, p)}"
            expect(want_line in notes, f"NOTES.txt lacks {want_line!r}:\n{notes}")

    return (f"budget {budget_ms} ms + margin {margin_ms // 1000} s -> "
            f"startupProbe {startup['failureThreshold']} x {startup['periodSeconds']} s = {window_ms // 1000} s")


def scenarios(rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = [
        ("defaults", {}),
        # libpq's multi-host form: several hosts, target_session_attrs.
        ("PostgreSQL primary and standbys, target_session_attrs=read-write", {"secret": {
            "DATABASE_URL": "postgres://app:pw@db-a:5432,db-b:5432,db-c/app"
                            "?target_session_attrs=read-write&sslmode=require"}}),
        ("redis, DB_MAX_RETRIES=10, intervals 5000 (DB slower)", {"config": {
            "CACHE_TYPE": "redis", "DB_MAX_RETRIES": "10", "DB_RETRY_INTERVAL_MS": "5000",
            "REDIS_RETRY_INTERVAL_MS": "5000"},
            "secret": {"REDIS_URL": "redis://:pw@redis:6379/0"}}),
        ("redis slower than the DB", {"config": {
            "CACHE_TYPE": "redis", "DB_MAX_RETRIES": "10", "DB_RETRY_INTERVAL_MS": "5000",
            "REDIS_MAX_RETRIES": "30", "REDIS_RETRY_INTERVAL_MS": "5000", "REDIS_CONNECT_TIMEOUT_MS": "10000"}}),
        ("TLS: rediss with CA and client files from a Secret, PostgreSQL verify-full", {
            "config": {"CACHE_TYPE": "redis", "REDIS_TLS_CA_CERT": "/etc/readygate/tls/ca.crt",
                       "REDIS_TLS_CLIENT_CERT": "/etc/readygate/tls/client.crt",
                       "REDIS_TLS_CLIENT_KEY": "/etc/readygate/tls/client.key", "REDIS_TLS_INSECURE": True},
            "secret": {"DATABASE_URL": "postgres://gw@db/gw?sslmode=verify-full&sslrootcert=/etc/readygate/tls/ca.crt",
                       "REDIS_URL": "rediss://redis:6380/0"},
            "tlsFiles": {"secretName": "readygate-tls"},
            "initCheck": {"enabled": True}}),
        ("readygate exec: the application's image runs its program under readygate", {
            "image": {"repository": "registry.example/shop-api", "tag": "1.4.2"},
            "exec": {"command": ["/app/server", "--port", "8080"], "path": "/usr/local/bin/readygate"},
            "initCheck": {"enabled": True}}),
        ("TLS files from a ConfigMap", {"tlsFiles": {"configMapName": "readygate-ca", "mountPath": "/certs"}}),
        ("rotating URLs: both from a mounted Secret (docs/rotation.md), certificates from cert-manager", {
            "config": {"CACHE_TYPE": "redis", "DATABASE_URL_FILE": "/var/run/secrets/readygate/DATABASE_URL",
                       "REDIS_URL_FILE": "/var/run/secrets/readygate/REDIS_URL"},
            "secretFiles": {"secretName": "readygate-urls"},
            "secret": {"existingSecret": "readygate-urls"},
            "tlsFiles": {"secretName": "readygate-tls"},
            "initCheck": {"enabled": True}}),
        ("the database URL from a file, Redis's from the environment", {
            "config": {"CACHE_TYPE": "redis", "DATABASE_URL_FILE": "/run/db/url"},
            "secretFiles": {"secretName": "db-url", "mountPath": "/run/db"}}),
        ("a long drain: SHUTDOWN_DELAY_MS=15000, SHUTDOWN_TIMEOUT_MS=45500, margin 2", {
            "config": {"SHUTDOWN_DELAY_MS": "15000", "SHUTDOWN_TIMEOUT_MS": "45500"},
            "terminationGrace": {"marginSeconds": 2}}),
        ("CACHE_TYPE=memory ignores slow Redis settings", {"config": {
            "CACHE_TYPE": "memory", "REDIS_MAX_RETRIES": "1000", "REDIS_RETRY_INTERVAL_MS": "60000"}}),
        ("CACHE_TYPE=none, smallest settings, no margin, period 1", {
            "config": {"CACHE_TYPE": "none", "DB_MAX_RETRIES": "1", "DB_RETRY_INTERVAL_MS": "1",
                       "DB_CONNECT_TIMEOUT_MS": "1"},
            "probes": {"startup": {"periodSeconds": 1, "marginSeconds": 0}}}),
        ("options: init check, PDB, PVC, existing Secret, no ServiceAccount, PORT 8080", {
            "config": {"PORT": "8080", "CACHE_TYPE": "redis", "LOG_FORMAT": "json"},
            "secret": {"existingSecret": "readygate-urls"},
            "initCheck": {"enabled": True},
            "podDisruptionBudget": {"enabled": True, "maxUnavailable": "50%"},
            "persistence": {"enabled": True},
            "serviceAccount": {"create": False},
            "strategy": {"type": "Recreate"}}),
        ("numbers instead of strings (as --set gives them), 1000000 retries", {"config": {
            "CACHE_TYPE": "redis", "DB_MAX_RETRIES": 10, "DB_RETRY_INTERVAL_MS": 86400000,
            "REDIS_MAX_RETRIES": 1000000, "PORT": 8080, "HEALTH_CHECK_INTERVAL_MS": 1500}}),
        ("exponential back-off with jitter and deadlines, numbers as a values file gives them", {"config": {
            "CACHE_TYPE": "redis",
            "DB_RETRY_BACKOFF": "exponential", "DB_RETRY_MULTIPLIER": 1.5, "DB_RETRY_JITTER": 0.25,
            "DB_MAX_RETRIES": 40, "DB_RETRY_MAX_INTERVAL_MS": 20000, "DB_STARTUP_TIMEOUT_MS": 120000,
            "REDIS_RETRY_BACKOFF": "exponential", "REDIS_RETRY_MULTIPLIER": 3, "REDIS_RETRY_JITTER": 1,
            "REDIS_MAX_RETRIES": "12", "REDIS_RETRY_INTERVAL_MS": "250"}}),
        ("existing claim, postgres URL", {
            "persistence": {"enabled": True, "existingClaim": "data-claim"},
            "secret": {"DATABASE_URL": "postgres://gw:secret@postgres:5432/gw"}}),
        ("mysql URL", {"secret": {"DATABASE_URL": "mysql://gw:secret@mysql:3306/gw"}}),
        ("mariadb URL", {"secret": {"DATABASE_URL": "mariadb://gw:secret@mariadb:3306/gw"}}),
    ]
    for n in range(20):
        cfg: dict[str, Any] = {"CACHE_TYPE": rng.choice(["memory", "redis", "none", "redis"])}
        for p in ("DB", "REDIS"):
            interval = rng.randint(1, 60000)
            cfg |= {
                f"{p}_MAX_RETRIES": str(rng.randint(1, 60)),
                f"{p}_RETRY_INTERVAL_MS": str(interval),
                f"{p}_CONNECT_TIMEOUT_MS": str(rng.randint(1, 30000)),
                f"{p}_RETRY_BACKOFF": rng.choice(["fixed", "exponential", "exponential"]),
                f"{p}_RETRY_MULTIPLIER": rng.choice(["1", "1.5", "2", "3.125", "10"]),
                f"{p}_RETRY_MAX_INTERVAL_MS": str(rng.randint(interval, 600000)),
                f"{p}_RETRY_JITTER": rng.choice(["0", "0.1", "0.25", "0.5", "1", "0.999"]),
                f"{p}_STARTUP_TIMEOUT_MS": str(rng.choice([0, 0, rng.randint(1, 3600000)])),
            }
        probes = {"startup": {"periodSeconds": rng.randint(1, 30), "marginSeconds": rng.randint(0, 120)}}
        out.append((f"generated #{n + 1}", {"config": cfg, "probes": probes}))
    return out


REJECTED = [
    ("DB_MAX_RETRIES \"0\"", {"config": {"DB_MAX_RETRIES": "0"}}),
    ("CACHE_TYPE \"disk\"", {"config": {"CACHE_TYPE": "disk"}}),
    ("DB_MAX_RETRIES 0 as a number", {"config": {"DB_MAX_RETRIES": 0}}),
    ("DB_RETRY_BACKOFF \"linear\"", {"config": {"DB_RETRY_BACKOFF": "linear"}}),
    ("REDIS_RETRY_MULTIPLIER \"0.5\" (below 1)", {"config": {"REDIS_RETRY_MULTIPLIER": "0.5"}}),
    ("DB_RETRY_MULTIPLIER 11 as a number", {"config": {"DB_RETRY_MULTIPLIER": 11}}),
    ("DB_RETRY_JITTER \"1.5\"", {"config": {"DB_RETRY_JITTER": "1.5"}}),
    ("REDIS_RETRY_JITTER \"0.2505\" (4 decimals)", {"config": {"REDIS_RETRY_JITTER": "0.2505"}}),
    ("DB_RETRY_JITTER \".5\"", {"config": {"DB_RETRY_JITTER": ".5"}}),
    ("DB_STARTUP_TIMEOUT_MS \"-1\"", {"config": {"DB_STARTUP_TIMEOUT_MS": "-1"}}),
    ("DB_MAX_RETRIES 2.5", {"config": {"DB_MAX_RETRIES": 2.5}}),
    ("DB_RETRY_INTERVAL_MS \"02000\" (leading zero)", {"config": {"DB_RETRY_INTERVAL_MS": "02000"}}),
    ("CACHE_TYPE as a number", {"config": {"CACHE_TYPE": 1}}),
    ("REDIS_CONNECT_TIMEOUT_MS \"\" (empty)", {"config": {"REDIS_CONNECT_TIMEOUT_MS": ""}}),
    ("DB_CONNECT_TIMEOUT_MS above one day", {"config": {"DB_CONNECT_TIMEOUT_MS": "86400001"}}),
    ("misspelt key DB_MAX_RETRY", {"config": {"DB_MAX_RETRY": "3"}}),
    ("misspelt per-entry key WAIT_FOR_AUTH_MAX_RETRY", {"config": {"WAIT_FOR_AUTH_MAX_RETRY": "3"}}),
    ("WAIT_FOR_AUTH_MAX_RETRIES \"three\"", {"config": {"WAIT_FOR_AUTH_MAX_RETRIES": "three"}}),
    ("WAIT_FOR_AUTH_RETRY_BACKOFF \"linear\"", {"config": {"WAIT_FOR_AUTH_RETRY_BACKOFF": "linear"}}),
    ("LOG_LEVEL \"verbose\"", {"config": {"LOG_LEVEL": "verbose"}}),
    ("PORT \"0\"", {"config": {"PORT": "0"}}),
    ("DATABASE_URL mssql://", {"secret": {"DATABASE_URL": "mssql://h/db"}}),
    ("probes.startup.periodSeconds 0", {"probes": {"startup": {"periodSeconds": 0}}}),
]


# Must fail to render, with this text in the error.
RENDER_FAILS = [
    ("an exponential cap below the interval", "is below config.DB_RETRY_INTERVAL_MS", {"config": {
        "DB_RETRY_BACKOFF": "exponential", "DB_RETRY_INTERVAL_MS": "5000", "DB_RETRY_MAX_INTERVAL_MS": "1000"}}),
    ("a startupProbe failureThreshold beyond int32", "exceeds the int32 range", {"config": {
        "DB_MAX_RETRIES": "1000000", "DB_RETRY_INTERVAL_MS": "86400000", "DB_CONNECT_TIMEOUT_MS": "86400000"}}),
]

# Values documented as one row (passed to the pod spec as they are).
WHOLE_VALUES = {
    "resources", "podSecurityContext", "securityContext", "strategy", "affinity", "nodeSelector",
    "tolerations", "imagePullSecrets", "podAnnotations", "podLabels", "service.annotations",
    "serviceAccount.annotations", "initCheck.resources", "persistence.accessModes", "exec.command",
}


def check_readme_table(chart: Path, defaults: dict[str, Any]) -> str:
    """The chart README's values table: one row per value, with its default."""
    rows = dict(re.findall(r"^\| `([^`]+)` \| `(.*)` \|", (chart / "README.md").read_text(), re.M))
    leaves: dict[str, Any] = {}

    def walk(value: Any, path: str) -> None:
        if path in WHOLE_VALUES or not isinstance(value, dict) or not value:
            leaves[path] = value
            return
        for key, sub in value.items():
            walk(sub, f"{path}.{key}" if path else key)

    walk(defaults, "")
    problems = [f"{k}: not in the README table" for k in leaves if k not in rows]
    problems += [f"{k}: in the README table but not in values.yaml" for k in rows if k not in leaves]
    problems += [f"{k}: README says {rows[k]}, values.yaml {json.dumps(v)}"
                 for k, v in leaves.items() if k in rows and rows[k] != json.dumps(v)]
    if problems:
        raise Failure("; ".join(problems))
    return f"{len(leaves)} values, each with its default"


def leaf_key(override: dict[str, Any]) -> str:
    """The one key a REJECTED case changes (the schema error must name it)."""
    key, value = next(iter(override.items()))
    return leaf_key(value) if isinstance(value, dict) else key


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chart", nargs="?", default=str(DEFAULT_CHART))
    parser.add_argument("--lib", help="path to libhelm_sdkpy.so")
    parser.add_argument("--save-manifests", metavar="DIR", type=Path,
                        help="also write every rendered manifest into DIR")
    args = parser.parse_args()
    chart = str(Path(args.chart).resolve())
    if args.save_manifests:
        args.save_manifests.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="readygate-helm-") as tmp:
        return run(chart, args.lib, Path(tmp), args.save_manifests)


def save_manifest(into: Path | None, name: str, manifest: str) -> None:
    """Writes one render as INTO/NNN-name.yaml (nothing without INTO)."""
    if into is None:
        return
    n = len(list(into.glob("*.yaml")))
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()[:60]
    (into / f"{n:03d}-{slug}.yaml").write_text(manifest)


def run(chart: str, lib: str | None, work: Path, manifests: Path | None = None) -> int:
    # Keep Helm's cache/config/data out of the real home: the library creates
    # $HOME/.cache/helm, .config/helm and .local/share/helm when it loads,
    # whatever HELM_*_HOME say, so this process gets a throw-away HOME.
    os.environ["HOME"] = str(work)
    for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        os.environ[var] = str(work / var.lower())

    helm = Helm(find_library(lib))
    print(f"Helm library: {helm.version()}")
    failures: list[str] = []

    # 1. helm lint
    report = helm.lint(chart)
    worst = 0
    for msg in report.get("Messages") or []:
        sev = msg.get("Severity", 0)
        worst = max(worst, sev)
        detail = json.dumps(msg.get("Err")) if msg.get("Err") else ""
        print(f"  lint {SEVERITY.get(sev, sev)}: {msg.get('Path')} {detail}")
    if worst >= 2 or report.get("Errors"):
        failures.append(f"helm lint: {SEVERITY.get(worst, worst)} (the message is in the render below)")
        print("FAIL helm lint")
    else:
        print(f"ok   helm lint: {report.get('TotalChartsLinted')} chart, no warning or error")

    defaults = yaml.safe_load((Path(chart) / "values.yaml").read_text())
    try:
        print(f"ok   README.md values table: {check_readme_table(Path(chart), defaults)}")
    except Failure as e:
        failures.append(f"README.md values table: {e}")
        print(f"FAIL README.md values table: {e}")

    # 2. renders against the fake API server
    server, kubeconfig = start_fake_api(work)
    try:
        rng = random.Random(20240607)  # fixed: the same cases on every run
        for n, (name, override) in enumerate(scenarios(rng)):
            ok, result = helm.install(kubeconfig, f"rg{n}", chart, override)
            if not ok:
                failures.append(f"render '{name}': {result}")
                print(f"FAIL render '{name}': {result}")
                continue
            try:
                summary = check_release(result, deep_merge(defaults, override))
                save_manifest(manifests, name, result["manifest"])
                print(f"ok   render '{name}': {summary}")
            except (Failure, KeyError, TypeError, ValueError) as e:
                failures.append(f"render '{name}': {e!r}")
                print(f"FAIL render '{name}': {e!r}")

        # The table the program's tests check too: rendered, the chart's
        # budget and this script's formula must both give the table's number.
        for n, case in enumerate(budget_table()):
            name, want = f"budget table: {case['name']}", case["budget_ms"]
            # A period long enough for the startupProbe's int32 threshold.
            period = max(5, (want + 15000) // (1000 * (2**31 - 2)) + 2)
            override = {"config": case["config"], "probes": {"startup": {"periodSeconds": period}}}
            ok, result = helm.install(kubeconfig, f"table{n}", chart, override)
            try:
                if not ok:
                    raise Failure(result)
                pod = next(d for d in yaml.safe_load_all(result["manifest"]) if d and d["kind"] == "Deployment")
                rendered = int(pod["spec"]["template"]["metadata"]["annotations"]["readygate/retry-budget-ms"])
                formula = retry_budget_ms(deep_merge(defaults, override)["config"])
                if (rendered, formula) != (want, want):
                    raise Failure(f"chart {rendered} ms, formula {formula} ms, table {want} ms")
                check_release(result, deep_merge(defaults, override))
                save_manifest(manifests, name, result["manifest"])
                print(f"ok   {name}: {want} ms")
            except (Failure, KeyError, TypeError, ValueError, StopIteration) as e:
                failures.append(f"{name}: {e!r}")
                print(f"FAIL {name}: {e!r}")

        for n, (name, text, override) in enumerate(RENDER_FAILS):
            ok, result = helm.install(kubeconfig, f"fail{n}", chart, override)
            if ok or text not in result:
                failures.append(f"render '{name}' should fail with '{text}': {'accepted' if ok else result}")
                print(f"FAIL render '{name}' should fail with '{text}'")
            else:
                print(f"ok   render refused: {name}")

        for n, (name, override) in enumerate(REJECTED):
            ok, result = helm.install(kubeconfig, f"bad{n}", chart, override)
            if ok:
                failures.append(f"values {name} were accepted")
                print(f"FAIL rejected: {name} was ACCEPTED")
            elif "schema" not in result.lower() or leaf_key(override) not in result:
                failures.append(f"values {name} failed for another reason: {result}")
                print(f"FAIL rejected: {name}: not by the schema, or not for {leaf_key(override)}: {result}")
            else:
                print(f"ok   rejected by values.schema.json: {name}")
    finally:
        server.shutdown()

    if failures:
        print(f"\n{len(failures)} chart check(s) failed:")
        for f in failures:
            print(f"  - {f}")
        return 1
    print("chart: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
