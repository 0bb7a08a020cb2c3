"""One settings object, built at start-up and passed down.

Every value can be set from the environment with the ``AISUBS_`` prefix and ``__`` between
nested sections, e.g. ``AISUBS_STORE__BACKEND=postgres`` or ``AISUBS_ASR__MODEL=small``.
Nothing here is read at import time: call :func:`load_settings` (or build
:class:`Settings` directly in tests) and pass the object to whoever needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path("var")


class StoreSettings(BaseModel):
    """Where the durable job queue lives."""

    backend: Literal["sqlite", "postgres"] = "sqlite"
    sqlite_path: Path = DEFAULT_DATA_DIR / "aisubs.sqlite3"
    # Direct or pooled (Supabase / pgbouncer) connection string.
    postgres_dsn: str = "postgresql://postgres@127.0.0.1:5432/test"
    # Whether postgres_dsn goes through a transaction pooler (Supabase's pooler, PgBouncer
    # in transaction mode): prepared statements off, no session state. None: guess from the
    # DSN (port 6543 or a "pooler" host, as Supabase's pooler URLs have).
    pooled: bool | None = None
    # Shown in pg_stat_activity, so operators can tell the service's connections apart.
    application_name: str = Field("aisubs", max_length=63)
    pool_min_size: int = Field(1, ge=0)
    pool_max_size: int = Field(8, ge=1)
    connect_timeout_s: float = Field(5.0, gt=0)


class QueueSettings(BaseModel):
    """Queue rules: caps, leases and retry backoff (defaults from the seed)."""

    default_priority: int = Field(5, ge=1, le=10)
    max_running_per_owner: int = Field(2, ge=1)
    max_queued_per_owner: int = Field(100, ge=1)
    max_queued_total: int = Field(10_000, ge=1)
    lease_seconds: float = Field(120.0, gt=0)
    heartbeat_seconds: float = Field(20.0, gt=0)
    max_attempts: int = Field(3, ge=1)
    retry_min_seconds: float = Field(60.0, ge=0)
    retry_max_seconds: float = Field(3600.0, ge=0)
    retry_jitter: float = Field(0.1, ge=0, le=1)
    # Seconds of compute per second of audio assumed before any job has finished.
    default_compute_per_audio_second: float = Field(0.5, gt=0)
    metrics_sample_seconds: float = Field(60.0, gt=0)
    metrics_retention_days: float = Field(30.0, gt=0)
    # Retry-After (seconds) given with CapacityExceeded when a queued cap is hit.
    capacity_retry_after_s: float = Field(30.0, gt=0)
    # Audio length assumed for ETAs when a job's duration is unknown and none has finished.
    eta_default_audio_seconds: float = Field(300.0, gt=0)

    @model_validator(mode="after")
    def _check_timing(self) -> QueueSettings:
        if self.heartbeat_seconds >= self.lease_seconds:
            raise ValueError(
                f"heartbeat_seconds ({self.heartbeat_seconds}) must be shorter than "
                f"lease_seconds ({self.lease_seconds}), or every lease expires between beats"
            )
        if self.retry_min_seconds > self.retry_max_seconds:
            raise ValueError(
                f"retry_min_seconds ({self.retry_min_seconds}) is greater than "
                f"retry_max_seconds ({self.retry_max_seconds})"
            )
        return self


class MediaSettings(BaseModel):
    """Limits on what users may send, and where media and results are kept."""

    storage_url: str = str(DEFAULT_DATA_DIR / "media")  # local dir or fsspec URL (gs://, s3://)
    results_url: str = str(DEFAULT_DATA_DIR / "results")
    max_upload_bytes: int = Field(2 * 1024**3, gt=0)
    max_duration_s: float = Field(4 * 3600.0, gt=0)
    fetch_timeout_s: float = Field(60.0, gt=0)
    fetch_max_redirects: int = Field(5, ge=0)
    # CIDRs that URL sources may resolve to even though they are private/loopback.
    allow_networks: list[str] = Field(default_factory=list)
    decode_chunk_s: float = Field(30.0, gt=0)


class ASRSettings(BaseModel):
    """Speech recognition engine and its options."""

    engine: Literal["faster-whisper", "openai-whisper"] = "faster-whisper"
    # A model name ("base", "small", "tiny.en") or a local directory / checkpoint path.
    model: str = "base"
    # Where bundled weights are assembled and converted checkpoints are cached.
    cache_dir: Path = DEFAULT_DATA_DIR / "models"
    allow_download: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compute_type: str = "auto"  # int8 on CPU, float16 on GPU when "auto"
    cpu_threads: int = Field(2, ge=0)
    beam_size: int = Field(5, ge=1)
    # "windows": VAD speech regions cut into windows of at most window_s, decoded in batches
    # and each checked (no words, repetition loop) and re-decoded with fallbacks; what stays
    # empty is reported as an uncertain region. "sequential": the engine's own long-form
    # decoding (kept as an option; it skipped whole stretches of speech on real recordings).
    decoding: Literal["windows", "sequential"] = "windows"
    window_s: float = Field(30.0, ge=5, le=30)
    vad_filter: bool = True
    word_timestamps: bool = True
    batched: bool = False
    batch_size: int = Field(8, ge=1)
    condition_on_previous_text: bool = False
    temperatures: list[float] = Field(default_factory=lambda: [0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    # Skip silences longer than this around suspected hallucinations (needs word timestamps).
    hallucination_silence_threshold: float | None = Field(None, gt=0)


class DiarizationSettings(BaseModel):
    """Who-spoke-when backend."""

    backend: Literal["embedded", "pyannote"] = "embedded"
    # pyannote: a local pipeline directory (config.yaml + checkpoints) or a hub id with a token.
    pyannote_pipeline: str | None = None
    pyannote_token: str | None = None
    # Cap when a job gives no hint; long meetings and compilations hold well over 8 voices.
    max_speakers: int = Field(32, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Embedded backend (Silero VAD + Resemblyzer windows + Ward clustering); defaults were
    # chosen on the AMI train excerpts, see aisubs/diarization/embedded.py.
    # torch intra-op threads (0 leaves torch's default); one suffices for these small models
    # and leaves the other cores to ASR, which runs at the same time.
    cpu_threads: int = Field(1, ge=0)
    vad_threshold: float = Field(0.3, gt=0, lt=1)
    vad_min_speech_s: float = Field(0.2, ge=0)
    vad_min_silence_s: float = Field(0.15, ge=0)
    vad_pad_s: float = Field(0.1, ge=0)
    window_s: float = Field(1.5, gt=0)
    hop_s: float = Field(0.5, gt=0)
    cluster_threshold: float = Field(0.30, gt=0)
    max_cluster_windows: int = Field(3000, ge=2)
    # Long recordings are clustered in chunks of this length, then linked by voice.
    cluster_chunk_s: float = Field(30.0, gt=0)
    cluster_link_threshold: float = Field(0.5, gt=0)
    min_speaker_s: float = Field(2.0, ge=0)
    # Within-voice scatter of window embeddings: a split must beat what one voice's scatter
    # alone produces (keeps short single-speaker clips at one speaker).
    voice_scatter: float = Field(0.18, ge=0)
    min_turn_s: float = Field(0.3, ge=0)


class SubtitleSettings(BaseModel):
    """Cue rules (Netflix timed-text guide defaults)."""

    max_line_chars: int = Field(42, ge=10)
    max_lines: int = Field(2, ge=1)
    min_duration_s: float = Field(5 / 6, gt=0)
    max_duration_s: float = Field(7.0, gt=0)
    target_cps: float = Field(17.0, gt=0)
    max_cps: float = Field(20.0, gt=0)
    fps: float = Field(24.0, gt=0)
    min_gap_frames: int = Field(2, ge=0)
    # SRT/TXT-style players have no voice tag: prefix "SPEAKER_00:" to the first cue of each
    # speaker turn (only when there are two or more speakers). It counts toward line length
    # and reading speed; WebVTT names speakers with <v> tags either way.
    speaker_labels: bool = True


class ServeSettings(BaseModel):
    """Ray Serve application: HTTP edge, deployments and autoscaling."""

    host: str = "127.0.0.1"
    port: int = 8000
    transcriber_gpus: float = Field(0.25, ge=0)
    diarizer_gpus: float = Field(0.25, ge=0)
    # Logical CPUs each GPU replica reserves (a g2-standard-8 L4 node has 8).
    transcriber_cpus: float = Field(1.0, ge=0)
    diarizer_cpus: float = Field(1.0, ge=0)
    # OS niceness of the model replicas' processes (0: unchanged). Inference yields the CPU
    # to the API, the proxy, the dispatcher and the runner, so they answer in time even
    # when the models keep every core busy (deployments.common.lower_priority).
    model_niceness: int = Field(10, ge=0, le=19)
    # A remote stage that has not answered after base + per_audio_s * audio seconds is
    # treated as lost (its replica died: Serve leaves such a request hanging) and retried.
    stage_timeout_base_s: float = Field(300.0, gt=0)
    stage_timeout_per_audio_s: float = Field(2.0, ge=0)
    # True where the Ray autoscaler can add GPU nodes: /readyz then reports the models as
    # able to start even while the cluster has no GPU (scaled to zero).
    gpu_nodes_autoscale: bool = False
    # How often a GPU replica re-reads its job row to notice cancellation or a lost lease.
    cancel_check_s: float = Field(2.0, gt=0)
    min_replicas: int = Field(0, ge=0)
    max_replicas: int = Field(5, ge=1)
    jobs_per_replica: int = Field(2, ge=1)
    # The job runner takes every job the dispatcher claims (worker_slots of them at most)
    # and does their fetch/decode/storage work on worker_slots media threads; store calls
    # (heartbeats, progress, completion) run on this many threads of their own, so a lease
    # is never renewed late because media work holds every thread.
    runner_store_threads: int = Field(4, ge=1)
    # HTTP edge: replicas of the ingress and requests each one handles at once (Serve's
    # default of 5 queued 50 concurrent clients at the proxy for tens of seconds).
    ingress_replicas: int = Field(1, ge=1)
    ingress_max_ongoing_requests: int = Field(100, ge=1)
    dispatch_interval_s: float = Field(1.0, gt=0)
    # Backlog autoscaling (serve_app.autoscaling): how often the queue is read, how long
    # the backlog must stay low before replicas are removed.
    backlog_poll_s: float = Field(2.0, gt=0)
    downscale_delay_s: float = Field(300.0, ge=0)
    # Ask the Ray autoscaler for GPU nodes ahead of demand (request_resources), clamped to
    # what max_gpu_nodes nodes of gpu_node_cpus CPUs and one GPU can hold.
    request_resources: bool = False
    max_gpu_nodes: int = Field(5, ge=0)
    gpu_node_cpus: float = Field(8.0, gt=0)
    # Priority a key may use when it was created without --max-priority.
    default_max_priority: int = Field(5, ge=1, le=10)

    @property
    def worker_slots(self) -> int:
        """Jobs in flight the cluster can hold at its largest (replicas x jobs each): the
        dispatcher claims up to this and the runner accepts as many."""
        return self.max_replicas * self.jobs_per_replica


class ObservabilitySettings(BaseModel):
    """Logs and metrics (aisubs.observability): log line format, level, the /metrics route."""

    # "json": one JSON object per line (job_id, attempt, worker_instance on every line of
    # a job's life); "text": the classic human format with the same fields appended.
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # GET /metrics on the ingress: queue and replica gauges read from the store at scrape
    # time (Prometheus text format). Per-event metrics go through Ray's metrics agent.
    metrics_route: bool = True
    # Queue statistics behind /metrics are shared by all scrapes for this long (one store
    # query per interval however many scrapers ask).
    metrics_cache_s: float = Field(5.0, ge=0)
    # When set, /metrics answers only `Authorization: Bearer <token>` (401 otherwise).
    metrics_token: str | None = Field(None, min_length=16)
    # How often GPU replicas refresh their GPU-memory gauge (only when a GPU is visible).
    gpu_sample_s: float = Field(15.0, gt=0)


class Settings(BaseSettings):
    """All settings of the service, nested by concern."""

    model_config = SettingsConfigDict(
        env_prefix="AISUBS_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    store: StoreSettings = Field(default_factory=StoreSettings)
    queue: QueueSettings = Field(default_factory=QueueSettings)
    media: MediaSettings = Field(default_factory=MediaSettings)
    asr: ASRSettings = Field(default_factory=ASRSettings)
    diarization: DiarizationSettings = Field(default_factory=DiarizationSettings)
    subtitles: SubtitleSettings = Field(default_factory=SubtitleSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with explicit overrides taking precedence."""
    return Settings(**overrides)  # type: ignore[arg-type]
