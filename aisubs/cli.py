"""The ``aisubs`` command line: offline transcription and operator chores.

``aisubs transcribe`` runs the same pipeline stages the service runs, in one process and
fully offline (bundled weights); ``aisubs apikey`` manages the API keys the HTTP ingress
accepts. Settings come from the environment (``AISUBS_*``) with flags overriding them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, cast

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from aisubs.errors import AisubsError
from aisubs.observability.logs import configure_logging
from aisubs.settings import Settings, load_settings

app = typer.Typer(help="AI-Subs: subtitles from speech.", no_args_is_help=True)
apikey_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(apikey_app, name="apikey")

err = Console(stderr=True)

Format = Literal["srt", "vtt", "json", "txt"]
Engine = Literal["faster-whisper", "openai-whisper"]


def _fail(exc: AisubsError) -> typer.Exit:
    err.print(f"[red]error[/red] ({exc.code}): {exc.message}")
    return typer.Exit(code=2)


@app.command()
def transcribe(
    input: Annotated[
        Path, typer.Argument(help="Audio or video file.", exists=True, dir_okay=False)
    ],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Output file (default: INPUT.FORMAT).")
    ] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="srt, vtt, json or txt.")] = "srt",
    language: Annotated[
        str | None, typer.Option(help="Spoken language code; detected if omitted.")
    ] = None,
    translate: Annotated[bool, typer.Option(help="Translate the subtitles to English.")] = False,
    num_speakers: Annotated[int | None, typer.Option(min=1)] = None,
    min_speakers: Annotated[int | None, typer.Option(min=1)] = None,
    max_speakers: Annotated[int | None, typer.Option(min=1)] = None,
    model: Annotated[
        str | None, typer.Option(help="Whisper model name or local path (default: settings).")
    ] = None,
    engine: Annotated[
        str | None, typer.Option(help="faster-whisper or openai-whisper (default: settings).")
    ] = None,
    diarize: Annotated[bool, typer.Option("--diarize/--no-diarize")] = True,
    prompt: Annotated[str | None, typer.Option(help="Initial prompt (names, jargon).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Transcribe INPUT to subtitles, offline."""
    if format not in ("srt", "vtt", "json", "txt"):
        raise typer.BadParameter(f"unknown format {format!r}; choose srt, vtt, json or txt")
    if engine is not None and engine not in ("faster-whisper", "openai-whisper"):
        raise typer.BadParameter(f"unknown engine {engine!r}")
    settings = load_settings()
    # Log lines as AISUBS_OBSERVABILITY__LOG_FORMAT says (text or json), on stderr.
    level = "INFO" if verbose else "WARNING"
    configure_logging(settings.observability.model_copy(update={"log_level": level}))
    asr_overrides: dict[str, object] = {}
    if model is not None:
        asr_overrides["model"] = model
    if engine is not None:
        asr_overrides["engine"] = cast(Engine, engine)
    if asr_overrides:
        settings = settings.model_copy(
            update={"asr": settings.asr.model_copy(update=asr_overrides)}
        )
    out_path = output or input.with_suffix(f".{format}")
    try:
        text = _transcribe(
            settings,
            input,
            format,
            language=language,
            translate=translate,
            diarize=diarize,
            num_speakers=num_speakers,
            min_speakers=min_speakers,
            max_speakers=max_speakers,
            prompt=prompt,
        )
    except AisubsError as exc:
        raise _fail(exc) from None
    out_path.write_text(text, encoding="utf-8")
    err.print(f"wrote {out_path}")


def _transcribe(
    settings: Settings,
    source: Path,
    fmt: str,
    *,
    language: str | None,
    translate: bool,
    diarize: bool,
    num_speakers: int | None,
    min_speakers: int | None,
    max_speakers: int | None,
    prompt: str | None,
) -> str:
    # Heavy imports here, not at module import: `aisubs --help` stays instant.
    from aisubs.asr import load_asr_engine
    from aisubs.pipeline import LocalPipeline
    from aisubs.queue.models import JobOptions

    options = JobOptions.parse(
        {
            "language": language,
            "translate_to": "en" if translate else None,
            "diarize": diarize,
            "num_speakers": num_speakers,
            "min_speakers": min_speakers,
            "max_speakers": max_speakers,
            "formats": [fmt],
            "prompt": prompt,
        }
    )
    columns = (
        TextColumn("{task.description:<12}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task("loading", total=1.0)
        asr = load_asr_engine(settings.asr)
        diarizer = None
        if diarize:
            from aisubs.diarization import load_diarizer

            diarizer = load_diarizer(settings.diarization)
        pipeline = LocalPipeline(settings, asr, diarizer)

        def progress(stage: str, fraction: float) -> None:
            bar.update(task, description=stage, completed=fraction)

        result = pipeline.run(source, options, progress=progress)
        bar.update(task, description="done", completed=1.0)
    return result.outputs[fmt]


@apikey_app.command("create")
def apikey_create(
    owner: Annotated[str, typer.Option(help="Owner the key's jobs belong to.")],
    max_priority: Annotated[
        int | None, typer.Option(min=1, max=10, help="Highest priority the key may ask for.")
    ] = None,
) -> None:
    """Create an API key; the key itself is printed alone on the last line (shown once)."""
    from aisubs.queue import open_store

    settings = load_settings()
    limit = max_priority if max_priority is not None else settings.serve.default_max_priority
    try:
        with open_store(settings) as store:
            key_id, key = store.create_api_key(owner, limit)
    except AisubsError as exc:
        raise _fail(exc) from None
    err.print(f"created key {key_id} for owner {owner!r} (max priority {limit}); store it now:")
    print(key)


@apikey_app.command("list")
def apikey_list(owner: Annotated[str, typer.Option()]) -> None:
    """List an owner's keys (never the keys themselves)."""
    from aisubs.queue import open_store

    with open_store(load_settings()) as store:
        for k in store.list_api_keys(owner):
            state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
            print(f"{k.key_id}\t{k.owner}\tmax_priority={k.max_priority}\t{state}")


@apikey_app.command("revoke")
def apikey_revoke(key_id: str) -> None:
    """Revoke a key by its id."""
    from aisubs.queue import open_store

    try:
        with open_store(load_settings()) as store:
            store.revoke_api_key(key_id)
    except AisubsError as exc:
        raise _fail(exc) from None
    err.print(f"revoked {key_id}")


if __name__ == "__main__":
    app()
