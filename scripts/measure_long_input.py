"""Peak memory and speed of the whole pipeline (ASR + diarization) on long input.

    python scripts/measure_long_input.py --minutes 30 --json

Builds a recording of at least ``--minutes`` from the real clips in ``../shared/data``
(concatenated, written as 16 kHz WAV), then runs decode -> ASR || diarization -> subtitles
in a child process and reports that child's peak RSS, so the number is the pipeline's own.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build_long_wav(data: Path, minutes: float, dest: Path) -> float:
    """Concatenate every clip in ``data`` (cycling) until ``minutes`` are reached."""
    import numpy as np

    from aisubs.media.decode import SAMPLE_RATE, decode_audio
    from aisubs.media.wav import write_wav
    from aisubs.settings import MediaSettings

    clips = [
        *sorted((data / "diarization" / "ami").glob("*.wav")),
        data / "diarization" / "sample.wav",
        data / "asr" / "jfk.flac",
        data / "asr" / "librispeech-61-70968-0000.flac",
        data / "asr" / "picovoice.wav",
    ]
    decoded = [decode_audio(c, MediaSettings()) for c in clips]
    target = int(minutes * 60 * SAMPLE_RATE)

    def cycle() -> Iterator[np.ndarray]:
        total, i = 0, 0
        while total < target:
            chunk = decoded[i % len(decoded)]
            yield chunk
            total += len(chunk)
            i += 1

    written = write_wav(dest, cycle())
    return written / SAMPLE_RATE


def child(path: str) -> None:
    from aisubs.asr import load_asr_engine
    from aisubs.diarization import load_diarizer
    from aisubs.pipeline import LocalPipeline
    from aisubs.queue.models import JobOptions
    from aisubs.settings import load_settings

    settings = load_settings()
    pipeline = LocalPipeline(
        settings, load_asr_engine(settings.asr), load_diarizer(settings.diarization)
    )
    started = time.perf_counter()
    result = pipeline.run(path, JobOptions())
    wall = time.perf_counter() - started
    print(
        json.dumps(
            {
                "wall_s": round(wall, 1),
                "timings": {k: round(v, 1) for k, v in result.timings.items()},
                "cues": len(result.cues),
                "speakers": len(result.transcript.speakers),
                "words": sum(len(s.words) for s in result.transcript.segments),
            }
        )
    )


def main(
    minutes: float = typer.Option(30.0),
    data: Path = typer.Option(ROOT.parent / "shared" / "data"),
    json_out: bool = typer.Option(False, "--json"),
    child_path: str | None = typer.Option(None, "--child", hidden=True),
) -> None:
    if child_path:
        child(child_path)
        return
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "long.wav"
        audio_s = build_long_wav(data, minutes, wav)
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(wav)],
            check=True,
            capture_output=True,
            text=True,
        )
    child_report = json.loads(out.stdout.strip().splitlines()[-1])
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    report = {
        "audio_s": round(audio_s, 1),
        "peak_rss_mb": round(peak_mb, 1),
        "rtf": round(audio_s / child_report["wall_s"], 2),
        **child_report,
    }
    print(json.dumps(report) if json_out else json.dumps(report, indent=2))


if __name__ == "__main__":
    typer.run(main)
