"""Benchmark faster-whisper against openai-whisper on the same weights and audio.

    python scripts/bench_asr.py --audio FILE [--seconds N] [--reference TXT] [--model base] --json

Each engine runs in its own subprocess so its peak RSS is its own. Wall time covers
transcription only (model loading is reported apart as load_s); rtf is audio seconds per
wall second; wer (null without a reference) is scored with Whisper's text normaliser;
speedup is openai-whisper wall time / faster-whisper wall time (cpu_speedup the same for
CPU seconds, steadier on a shared machine). The reference must match the audio actually used
(mind --seconds).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ENGINES = ("faster-whisper", "openai-whisper")


def _child(args: argparse.Namespace) -> None:
    """Load one engine, transcribe once, print one JSON line."""
    from aisubs.asr import ASROptions, load_asr_engine
    from aisubs.media import SAMPLE_RATE, decode_audio
    from aisubs.settings import ASRSettings, MediaSettings

    audio = decode_audio(Path(args.audio), MediaSettings())
    if args.seconds:
        audio = audio[: int(args.seconds * SAMPLE_RATE)].copy()
    settings = ASRSettings(
        engine=args.child,
        model=args.model,
        cache_dir=Path(args.cache_dir),
        cpu_threads=args.threads,
        beam_size=args.beam_size,
    )
    t0 = time.perf_counter()
    engine = load_asr_engine(settings)
    load_s = time.perf_counter() - t0
    options = ASROptions.from_settings(settings, language=args.language)
    t0 = time.perf_counter()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    transcript = engine.transcribe(audio, options)
    wall_s = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        json.dumps(
            {
                "audio_s": audio.size / SAMPLE_RATE,
                "load_s": round(load_s, 2),
                "wall_s": round(wall_s, 2),
                "cpu_s": round(cpu_s, 2),
                "peak_rss_mb": round(peak_kb / 1024, 1),
                "text": transcript.text,
                "language": transcript.language,
            }
        )
    )


def _run_engine(engine: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        engine,
        "--audio",
        args.audio,
        "--model",
        args.model,
        "--cache-dir",
        args.cache_dir,
        "--threads",
        str(args.threads),
        "--beam-size",
        str(args.beam_size),
    ]
    if args.seconds:
        cmd += ["--seconds", str(args.seconds)]
    if args.language:
        cmd += ["--language", args.language]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(args.threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{engine} failed:\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--audio", required=True)
    parser.add_argument("--seconds", type=float, default=None, help="use only the first N s")
    parser.add_argument("--reference", default=None, help="reference transcript (text file)")
    parser.add_argument("--model", default="base")
    parser.add_argument("--language", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--beam-size", type=int, default=5)
    default_cache = os.environ.get("AISUBS_ASR__CACHE_DIR", "var/models")
    parser.add_argument("--cache-dir", default=default_cache)
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    parser.add_argument("--child", choices=ENGINES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args)
        return 0

    logging.basicConfig(level=logging.WARNING)
    from aisubs.asr.scoring import wer

    reference = Path(args.reference).read_text() if args.reference else None
    report: dict[str, Any] = {}
    for engine in args.engines.split(","):
        raw = _run_engine(engine, args)
        report[engine] = {
            "rtf": round(raw["audio_s"] / raw["wall_s"], 2) if raw["wall_s"] else None,
            "wall_s": raw["wall_s"],
            "load_s": raw["load_s"],
            "cpu_s": raw["cpu_s"],
            "peak_rss_mb": raw["peak_rss_mb"],
            "wer": round(wer(reference, raw["text"]), 4) if reference is not None else None,
            "audio_s": round(raw["audio_s"], 2),
        }
        if not args.json:
            print(f"{engine}: {report[engine]}\n  {raw['text'][:200]}", file=sys.stderr)
    fast, ref = report.get("faster-whisper"), report.get("openai-whisper")
    report["speedup"] = round(ref["wall_s"] / fast["wall_s"], 2) if fast and ref else None
    # CPU seconds are less disturbed than wall time when other work shares the machine.
    report["cpu_speedup"] = round(ref["cpu_s"] / fast["cpu_s"], 2) if fast and ref else None
    report["model"] = args.model
    report["threads"] = args.threads
    print(json.dumps(report, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
