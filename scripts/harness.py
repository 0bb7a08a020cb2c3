"""A whole AI-Subs service in a subprocess, for the verification scripts and their tests.

``start_service`` runs ``scripts/serve.py`` (what ``make serve`` runs) with its own data
directory, ``RAY_TMPDIR`` and ports, so it never collides with another Ray cluster on the
machine, and waits for ``/readyz``. :class:`ServiceProcess` can stop it politely (SIGINT)
or kill the whole cluster at once (SIGKILL to every process of that Ray session), and find
the pid of a Serve replica from its process title (``ray::ServeReplica:<app>:<name>``).
Also here: an async API client that tolerates an outage (polls through 503s and refused
connections), percentiles, and the duplicate check the failover scenarios share.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SERVE_PY = ROOT / "scripts" / "serve.py"
APP = "aisubs"
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
# Real speech clips the simulated users upload (all short, so a run stays minutes).
CLIPS = (
    DATA / "asr" / "jfk.flac",
    DATA / "asr" / "librispeech-61-70968-0000.flac",
    DATA / "asr" / "picovoice.wav",
    DATA / "diarization" / "sample.wav",
    DATA / "misc" / "stereo_diarization.wav",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(values: list[float], digits: int = 2) -> dict[str, float | None]:
    def r(v: float | None) -> float | None:
        return None if v is None else round(v, digits)

    return {
        "p50": r(pct(values, 0.5)),
        "p99": r(pct(values, 0.99)),
        "max": r(max(values) if values else None),
    }


@functools.cache
def _serve_option(name: str) -> bool:
    """Whether scripts/serve.py takes the option ``name`` (it gains options over time)."""
    done = subprocess.run([sys.executable, str(SERVE_PY), "--help"], capture_output=True,
                          text=True, env=dict(os.environ, COLUMNS="200"))  # fmt: skip
    return name in done.stdout


def service_env(data_dir: Path, model: str, port: int, extra: Mapping[str, str]) -> dict[str, str]:
    """Environment of a service keeping everything under ``data_dir``."""
    env = dict(os.environ)
    env.update(
        {
            "AISUBS_STORE__SQLITE_PATH": str(data_dir / "queue.sqlite3"),
            "AISUBS_MEDIA__STORAGE_URL": str(data_dir / "media"),
            "AISUBS_MEDIA__RESULTS_URL": str(data_dir / "results"),
            "AISUBS_ASR__MODEL": model,
            "AISUBS_ASR__CACHE_DIR": str(ROOT / "var" / "models"),
            "AISUBS_SERVE__PORT": str(port),
            "RAY_AUTH_MODE": "disabled",
            "RAY_USAGE_STATS_ENABLED": "0",
            "HF_HUB_OFFLINE": "1",
        }
    )
    env.update(extra)
    return env


@dataclass
class ServiceProcess:
    """One ``scripts/serve.py`` process and the Ray cluster it started."""

    data_dir: Path
    env: dict[str, str]
    port: int
    dashboard_port: int
    proc: subprocess.Popen[bytes] | None = None
    ray_tmp: Path | None = None
    starts: int = 0
    last_start_s: float = 0.0
    log_paths: list[Path] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_timeout: float = 600) -> float:
        """Start the service (again, on the same store); seconds until ``/readyz`` said 200."""
        self.starts += 1
        # Short on purpose: Ray's AF_UNIX socket paths live under it (107 bytes at most).
        self.ray_tmp = Path(tempfile.mkdtemp(prefix="aray", dir="/tmp"))
        home = self.data_dir / "home"
        home.mkdir(exist_ok=True)
        env = dict(self.env, RAY_TMPDIR=str(self.ray_tmp), HOME=str(home))
        log_path = self.data_dir / f"serve{self.starts}.log"
        self.log_paths.append(log_path)
        started = time.perf_counter()
        args = [sys.executable, str(SERVE_PY), "--dashboard-port", str(self.dashboard_port)]
        if _serve_option("--metrics-port"):  # a fixed default would collide
            args += ["--metrics-port", str(free_port())]
        self.proc = subprocess.Popen(
            args,
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
            stderr=log_path.open("wb"), start_new_session=True,
        )  # fmt: skip
        while True:
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200:
                    self.last_start_s = time.perf_counter() - started
                    return self.last_start_s
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited ({self.proc.returncode}); see {log_path}")
            if time.perf_counter() - started > ready_timeout:
                self.kill()
                raise RuntimeError(f"service not ready after {ready_timeout:.0f} s; see {log_path}")
            time.sleep(0.5)

    def cluster_processes(self) -> list[psutil.Process]:
        """Every live process of this service's Ray session (they share its RAY_TMPDIR)."""
        found = []
        for p in psutil.process_iter():
            try:
                if p.environ().get("RAY_TMPDIR") == str(self.ray_tmp):
                    found.append(p)
            except (psutil.Error, OSError):
                continue
        return found

    def replica_pids(self, deployment: str, app: str = APP) -> list[int]:
        """Pids of the running replicas of ``deployment`` (from their process titles)."""
        title = f"ServeReplica:{app}:{deployment}"
        pids = []
        for p in self.cluster_processes():
            try:
                if any(title in part for part in p.cmdline()):
                    pids.append(p.pid)
            except (psutil.Error, OSError):
                continue
        return pids

    def kill(self) -> None:
        """SIGKILL the whole cluster at once: serve.py, GCS, raylet, every replica."""
        victims = self.cluster_processes()
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        for p in victims:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(victims, timeout=30)
        if self.proc is not None:
            self.proc.wait(30)
        if self.ray_tmp is not None:
            shutil.rmtree(self.ray_tmp, ignore_errors=True)

    def stop(self, timeout: float = 90) -> bool:
        """SIGINT (what ``make serve`` expects); SIGKILL whatever is left. True if clean."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc is not None and self.proc.returncode == 0
        self.proc.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout)
        clean = self.proc.poll() == 0
        self.kill()
        return clean


def start_service(
    data_dir: Path, model: str, extra_env: Mapping[str, str] | None = None
) -> ServiceProcess:
    """A started service on a fresh ``data_dir`` (see :class:`ServiceProcess`)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    svc = ServiceProcess(data_dir, service_env(data_dir, model, port, extra_env or {}), port,
                         free_port())  # fmt: skip
    svc.start()
    return svc


def create_keys(env: Mapping[str, str], owners: list[str], max_priority: int = 9) -> list[str]:
    """API keys written straight into the service's store (what ``aisubs apikey`` does)."""
    from aisubs.queue import open_store
    from aisubs.settings import Settings

    store_env = {k[len("AISUBS_STORE__") :].lower(): v for k, v in env.items()
                 if k.startswith("AISUBS_STORE__")}  # fmt: skip
    settings = Settings(store=store_env)
    with open_store(settings) as store:
        return [store.create_api_key(owner, max_priority)[1] for owner in owners]


class Client:
    """Async API client for one owner that rides out outages (refused connections, 5xx)."""

    def __init__(
        self,
        base_url: str,
        key: str,
        latencies: list[float] | None = None,
        by_kind: dict[str, list[float]] | None = None,
    ):
        self.http = httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=120
        )
        self.latencies = latencies if latencies is not None else []
        self.by_kind = by_kind if by_kind is not None else {}

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        t = time.perf_counter()
        r = await self.http.request(method, url, **kwargs)
        ms = (time.perf_counter() - t) * 1000
        self.latencies.append(ms)
        kind = "submit" if method == "POST" else "download" if "/subtitles." in url else "read"
        self.by_kind.setdefault(kind, []).append(ms)
        return r

    async def submit(self, clip: Path, **fields: Any) -> httpx.Response:
        return await self.request(
            "POST", "/v1/jobs", files={"file": (clip.name, clip.read_bytes())},
            data={k: str(v) for k, v in fields.items()},
        )  # fmt: skip

    async def job(self, job_id: str) -> dict[str, Any] | None:
        """The job, or None while the service cannot answer (down, store unavailable)."""
        try:
            r = await self.request("GET", f"/v1/jobs/{job_id}")
        except httpx.HTTPError:
            return None
        if r.status_code >= 500:
            return None
        r.raise_for_status()
        return dict(r.json())

    async def wait(self, job_id: str, deadline: float, poll_s: float = 1.0) -> dict[str, Any]:
        """Poll until the job is terminal or ``deadline`` (monotonic) passes."""
        last: dict[str, Any] = {"id": job_id, "state": "unknown"}
        while time.monotonic() < deadline:
            job = await self.job(job_id)
            if job is not None:
                last = job
                if job["state"] in TERMINAL:
                    return job
            await asyncio.sleep(poll_s)
        return last

    async def completed_events(self, job_id: str) -> int:
        r = await self.request("GET", f"/v1/jobs/{job_id}/events")
        r.raise_for_status()
        return sum(1 for e in r.json()["events"] if e["kind"] == "completed")


def result_files(results_dir: Path, job_id: str) -> list[str]:
    """Artifact names stored for a job (``<results>/results/<id>/...``)."""
    folder = results_dir / "results" / job_id
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def result_sets(results_dir: Path, job_id: str) -> int:
    """How many attempts left artifacts for a job (each writes ``attempt-<n>/...``; the one
    that completed removes the others'): more than one after the job ended is a job that
    ran to the end twice."""
    return len({name.split("/", 1)[0] for name in result_files(results_dir, job_id)})


# Short leases, quick retries and one replica per model deployment, so a killed worker is
# noticed within seconds and "the" replica to kill is well defined (failover, chaos).
FAST_RECOVERY_ENV = {
    "AISUBS_QUEUE__LEASE_SECONDS": "10",
    "AISUBS_QUEUE__HEARTBEAT_SECONDS": "2",
    "AISUBS_QUEUE__RETRY_MIN_SECONDS": "1",
    "AISUBS_QUEUE__RETRY_MAX_SECONDS": "3",
    "AISUBS_QUEUE__MAX_RUNNING_PER_OWNER": "2",
    "AISUBS_ASR__BEAM_SIZE": "1",
    "AISUBS_SERVE__MIN_REPLICAS": "1",
    "AISUBS_SERVE__MAX_REPLICAS": "1",
    "AISUBS_SERVE__JOBS_PER_REPLICA": "2",
    "AISUBS_SERVE__TRANSCRIBER_CPUS": "0.5",
    "AISUBS_SERVE__DIARIZER_CPUS": "0.5",
    "AISUBS_SERVE__STAGE_TIMEOUT_BASE_S": "30",
    "AISUBS_SERVE__STAGE_TIMEOUT_PER_AUDIO_S": "1",
    "AISUBS_SERVE__DISPATCH_INTERVAL_S": "0.5",
    "AISUBS_SERVE__BACKLOG_POLL_S": "0.5",
    "AISUBS_SERVE__CANCEL_CHECK_S": "0.5",
}


def fast_recovery_env() -> dict[str, str]:
    """FAST_RECOVERY_ENV, where this process's own environment does not set the same names."""
    return {k: os.environ.get(k, v) for k, v in FAST_RECOVERY_ENV.items()}


PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _pg_admin(statement: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(statement)


@contextlib.contextmanager
def fresh_pg_database(prefix: str) -> Iterator[str]:
    """A new database on the local PostgreSQL (dropped at the end); yields its DSN."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def restart_postgres() -> dict[str, Any]:
    """Restart the machine's PostgreSQL cluster (``pg_ctlcluster``); what and how long."""
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    t = time.perf_counter()
    cmd = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"]
    subprocess.run(cmd, check=True, capture_output=True)
    return {
        "restarted": f"postgresql {version}/main",
        "restart_s": round(time.perf_counter() - t, 1),
    }
