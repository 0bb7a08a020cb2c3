"""Quality on real data: WER per ASR clip, DER per diarization file, subtitle rule breaks.

    python scripts/evaluate.py --data ../shared/data --json

WER uses Whisper's English normaliser (basic normaliser for other languages); DER uses
pyannote.metrics with a 0.25 s collar, overlap scored, restricted to the UEM where given.
Subtitle cues are built from every transcript (with speakers on the diarization files)
and each rule's breaks are counted.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import typer

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _language_of(path: Path) -> str:
    stem = path.stem
    return stem.split("_", 1)[1] if stem.startswith("picovoice_") else "en"


def main(
    data: Path = typer.Option(Path("../shared/data"), help="The shared data folder."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
    model: str | None = typer.Option(None, help="Whisper model (default: settings)."),
    skip_asr: bool = typer.Option(False),
    skip_diarization: bool = typer.Option(False),
) -> None:
    from aisubs.asr import ASROptions, load_asr_engine
    from aisubs.asr.scoring import wer
    from aisubs.diarization import load_diarizer
    from aisubs.diarization.scoring import load_rttm, load_uem, pooled_der
    from aisubs.media.decode import decode_audio
    from aisubs.settings import load_settings
    from aisubs.subtitles import assign_speakers, build_cues, check_cues

    logging.basicConfig(level=logging.WARNING)
    settings = load_settings()
    if model:
        settings = settings.model_copy(
            update={"asr": settings.asr.model_copy(update={"model": model})}
        )
    report: dict[str, Any] = {"model": settings.asr.model, "engine": settings.asr.engine}
    rule_breaks: dict[str, int] = {}
    cue_count = 0

    def count_rules(transcript: Any) -> None:
        nonlocal cue_count
        cues = build_cues(transcript, settings.subtitles)
        cue_count += len(cues)
        for rule, n in check_cues(cues, settings.subtitles).items():
            rule_breaks[rule] = rule_breaks.get(rule, 0) + n

    engine = load_asr_engine(settings.asr)
    base_options = ASROptions.from_settings(settings.asr)
    started = time.perf_counter()
    if not skip_asr:
        clips: dict[str, Any] = {}
        for audio_path in sorted((data / "asr").glob("*")):
            if audio_path.suffix not in (".flac", ".wav"):
                continue
            reference = audio_path.with_suffix(".txt")
            if not reference.exists():
                continue
            language = _language_of(audio_path)
            audio = decode_audio(audio_path, settings.media)
            from dataclasses import replace

            transcript = engine.transcribe(audio, replace(base_options, language=language))
            count_rules(transcript)
            clips[audio_path.name] = {
                "language": language,
                "wer": round(wer(reference.read_text(), transcript.text, language), 4),
            }
        english = [c["wer"] for c in clips.values() if c["language"] == "en"]
        report["asr"] = {
            "clips": clips,
            "mean_wer_english": round(sum(english) / len(english), 4) if english else None,
            "jfk_word_perfect": clips.get("jfk.flac", {}).get("wer") == 0.0,
        }

    if not skip_diarization:
        diarizer = load_diarizer(settings.diarization)
        ddir = data / "diarization"
        results: dict[str, Any] = {}
        sample_ref = next(iter(load_rttm(ddir / "sample.rttm").values()))
        audio = decode_audio(ddir / "sample.wav", settings.media)
        turns = diarizer.diarize(audio)
        results["sample.wav"] = round(pooled_der([(sample_ref, turns, None)])[0], 4)
        transcript = engine.transcribe(audio, base_options)
        count_rules(assign_speakers(transcript, turns))

        ami: dict[str, float] = {}
        pooled_items = []
        for split, prefix in (("train", "trn"), ("development", "dev")):
            refs = load_rttm(ddir / "ami" / f"{split}.rttm")
            uems = load_uem(ddir / "ami" / f"{split}.uem")
            items = []
            for wav in sorted((ddir / "ami").glob(f"{prefix}*.wav")):
                ref = refs[wav.stem]
                turns = diarizer.diarize(decode_audio(wav, settings.media))
                items.append((ref, turns, uems.get(wav.stem)))
            split_pooled, per_file = pooled_der(items)
            for (ref, _, _), value in zip(items, per_file, strict=True):
                ami[str(ref.uri)] = round(value, 4)
            results[f"ami_{split}_pooled"] = round(split_pooled, 4)
            pooled_items.extend(items)
        results["ami_per_file"] = ami
        results["ami_pooled"] = round(pooled_der(pooled_items)[0], 4)
        report["diarization"] = results

    report["subtitles"] = {"cues": cue_count, "rule_breaks": rule_breaks}
    report["wall_s"] = round(time.perf_counter() - started, 1)
    if json_out:
        print(json.dumps(report))
    else:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    typer.run(main)
