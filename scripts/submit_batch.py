"""Submit a folder of media files (or a list of URLs) as jobs and collect the subtitles.

    ray job submit --working-dir . -- python scripts/submit_batch.py \
        --url http://127.0.0.1:8000 --key "$KEY" ./videos/
    python scripts/submit_batch.py --url ... --key ... urls.txt --out ./subs

Files get their subtitles written next to them (``talk.mp4`` -> ``talk.srt``); URL jobs
write into ``--out``. Progress is shown with one bar per job. Only needs httpx, rich and
typer, so it runs in a ``ray job submit`` working directory without the models.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

MEDIA_SUFFIXES = {
    ".mp4", ".mkv", ".webm", ".mov", ".mp3", ".m4a", ".aac", ".flac", ".wav", ".ogg", ".opus",
}  # fmt: skip
TERMINAL = {"succeeded", "failed", "cancelled"}
console = Console(stderr=True)


def collect(source: Path) -> tuple[list[Path], list[str]]:
    """Media files in a folder, or URLs listed one per line in a text file."""
    if source.is_dir():
        return sorted(p for p in source.rglob("*") if p.suffix.lower() in MEDIA_SUFFIXES), []
    if source.suffix.lower() in MEDIA_SUFFIXES:
        return [source], []
    urls = [line.strip() for line in source.read_text().splitlines() if line.strip()]
    return [], [u for u in urls if not u.startswith("#")]


def main(
    source: Path = typer.Argument(..., exists=True, help="Folder, media file or URL list."),
    url: str = typer.Option(os.environ.get("AISUBS_URL", "http://127.0.0.1:8000")),
    key: str = typer.Option(os.environ.get("AISUBS_API_KEY", ""), help="API key."),
    fmt: str = typer.Option("srt", "--format", help="srt, vtt, json or txt."),
    out: Path = typer.Option(Path("."), help="Where URL jobs' subtitles go."),
    priority: int = typer.Option(5, min=1, max=10),
    diarize: bool = typer.Option(True, "--diarize/--no-diarize"),
    timeout: float = typer.Option(6 * 3600, help="Give up after this many seconds."),
) -> None:
    if not key:
        console.print("[red]an API key is needed: --key or AISUBS_API_KEY[/red]")
        raise typer.Exit(2)
    files, urls = collect(source)
    if not files and not urls:
        console.print("nothing to submit")
        raise typer.Exit(1)
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
    fields = {"priority": str(priority), "formats": fmt, "diarize": str(diarize).lower()}
    jobs: dict[str, Path] = {}
    for path in files:
        with path.open("rb") as f:
            r = client.post(
                "/v1/jobs",
                files={"file": (path.name, f)},
                data=fields,
                headers={"Idempotency-Key": f"batch:{path.resolve()}:{path.stat().st_size}"},
            )
        if r.status_code not in (200, 202):
            console.print(f"[red]{path}: {r.status_code} {r.text}[/red]")
            continue
        jobs[r.json()["id"]] = path.with_suffix(f".{fmt}")
    for i, link in enumerate(urls):
        body = {
            "url": link,
            "priority": priority,
            "options": {"formats": [fmt], "diarize": diarize},
        }
        r = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": f"batch-url:{link}"})
        if r.status_code not in (200, 202):
            console.print(f"[red]{link}: {r.status_code} {r.text}[/red]")
            continue
        out.mkdir(parents=True, exist_ok=True)
        jobs[r.json()["id"]] = out / f"{i:04d}-{Path(link.split('?')[0]).stem or 'media'}.{fmt}"

    failures = 0
    columns = (
        TextColumn("{task.description:<40}"),
        BarColumn(),
        TextColumn("{task.fields[state]:<10}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as bar:
        tasks = {
            job_id: bar.add_task(dest.name[:40], total=1.0, state="queued")
            for job_id, dest in jobs.items()
        }
        pending = set(jobs)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for job_id in list(pending):
                r = client.get(f"/v1/jobs/{job_id}")
                if r.status_code != 200:
                    continue
                job = r.json()
                fraction = job.get("progress") or 0.0
                bar.update(tasks[job_id], completed=fraction, state=job["state"])
                if job["state"] not in TERMINAL:
                    continue
                pending.discard(job_id)
                if job["state"] == "succeeded":
                    sub = client.get(f"/v1/jobs/{job_id}/subtitles.{fmt}")
                    jobs[job_id].write_text(sub.text, encoding="utf-8")
                    bar.update(tasks[job_id], completed=1.0)
                else:
                    failures += 1
                    error = job.get("error") or {}
                    why = f"{error.get('code')}: {error.get('message')}"
                    console.print(f"[red]{jobs[job_id].name}: {why}[/red]")
            time.sleep(1.0)
    console.print(
        f"{len(jobs) - failures - len(pending)} done, {failures} failed, {len(pending)} unfinished"
    )
    sys.exit(1 if failures or pending else 0)


if __name__ == "__main__":
    typer.run(main)
