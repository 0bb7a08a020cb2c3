"""Score the configured diarizer on the shared real-speech data; print DER per file and pooled.

    .venv/bin/python scripts/eval_diarization.py [--data shared/data] [--json out.json]

Settings come from the environment (``AISUBS_DIARIZATION__...``) like the service itself,
so a threshold change can be evaluated without editing code. DER: pyannote.metrics,
collar 0.25 s, overlap scored, restricted to the UEM.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from aisubs.diarization import load_diarizer
from aisubs.diarization.scoring import load_uem, pooled_der, references_for
from aisubs.settings import load_settings


def _read(path: Path) -> np.ndarray:
    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    if rate != 16_000:
        raise SystemExit(f"{path}: expected 16 kHz audio, got {rate} Hz")
    return audio.mean(axis=1)


def default_data_dir() -> Path:
    for candidate in (Path("shared/data"), Path("../shared/data"), Path("/work/shared/data")):
        if candidate.is_dir():
            return candidate
    return Path("shared/data")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args(argv)
    root = args.data / "diarization"
    ami = root / "ami"

    diarizer = load_diarizer(load_settings().diarization)
    refs = references_for([root / "sample.rttm", ami / "train.rttm", ami / "development.rttm"])
    uems = {**load_uem(ami / "train.uem"), **load_uem(ami / "development.uem")}
    files = {"sample": root / "sample.wav"} | {uri: ami / f"{uri}.wav" for uri in sorted(uems)}

    hyps, seconds = {}, {}
    for uri, path in files.items():
        audio = _read(path)
        started = time.perf_counter()
        hyps[uri] = diarizer.diarize(audio)
        seconds[uri] = time.perf_counter() - started

    def pooled(uris: list[str]) -> tuple[float, list[float]]:
        return pooled_der((refs[u], hyps[u], uems.get(u)) for u in uris)

    results: dict[str, object] = {}
    per_file = {}
    for uri in files:
        der, _ = pooled([uri])
        per_file[uri] = der
        speakers = len({t.speaker for t in hyps[uri]})
        print(
            f"{uri:8s} DER {100 * der:6.1f} %  speakers {speakers} "
            f"(ref {len(refs[uri].labels())})  {seconds[uri]:.2f} s"
        )
    groups = {
        "sample": ["sample"],
        "ami_train": [u for u in files if u.startswith("trn")],
        "ami_dev": [u for u in files if u.startswith("dev")],
        "ami_pooled": [u for u in files if u != "sample"],
    }
    for name, uris in groups.items():
        results[name] = pooled(uris)[0]
        print(f"{name:10s} pooled DER {100 * float(results[name]):6.1f} %")  # type: ignore[arg-type]
    results["per_file"] = per_file
    results["seconds"] = seconds
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
