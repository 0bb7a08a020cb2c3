"""Both ASR engines on real speech: accuracy, agreement, options, progress and cancellation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aisubs.asr import ASREngine, ASROptions, load_asr_engine
from aisubs.asr.faster_whisper_engine import FasterWhisperEngine
from aisubs.asr.openai_whisper_engine import OpenAIWhisperEngine
from aisubs.asr.scoring import normalize, wer
from aisubs.errors import Cancelled, InvalidRequest, ModelNotFound
from aisubs.media import SAMPLE_RATE, decode_audio
from aisubs.settings import ASRSettings, MediaSettings
from aisubs.transcript import Transcript
from tests.asr.long_audio import build_long_audio
from tests.support.paths import DATA

JFK_REF = (DATA / "asr" / "jfk.txt").read_text()
ENGLISH_CLIPS = ["jfk.flac", "librispeech-61-70968-0000.flac", "picovoice.wav"]


def _clip(name: str) -> np.ndarray:
    return decode_audio(DATA / "asr" / name, MediaSettings())


def _words_ok(t: Transcript) -> None:
    """Structural contract: ordered segments, words inside the audio, non-empty text."""
    last = 0.0
    for seg in t.segments:
        assert seg.text.strip()
        assert 0 <= seg.start <= seg.end <= t.duration + 0.5
        for w in seg.words:
            assert w.start <= w.end and w.start >= last - 0.5
            assert 0 <= w.probability <= 1
            last = w.start


def test_factory_builds_the_configured_engine(
    fw_tiny: ASREngine, ow_base: ASREngine, fw_base: ASREngine
) -> None:
    assert isinstance(fw_tiny, FasterWhisperEngine) and isinstance(fw_tiny, ASREngine)
    assert isinstance(ow_base, OpenAIWhisperEngine) and isinstance(ow_base, ASREngine)
    assert (fw_base.name, fw_base.model_name) == ("faster-whisper", "base")
    assert fw_base.compute_type == "int8"  # type: ignore[attr-defined]


def test_factory_refuses_a_missing_model(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="AISUBS_ASR__MODEL"):
        load_asr_engine(ASRSettings(model="small", cache_dir=tmp_path))


def test_options_defaults_come_from_settings() -> None:
    settings = ASRSettings(beam_size=2, vad_filter=False, temperatures=[0.0, 0.5])
    opts = ASROptions.from_settings(settings, language="fr")
    assert (opts.beam_size, opts.vad_filter, opts.temperatures, opts.language) == (
        2,
        False,
        (0.0, 0.5),
        "fr",
    )
    with pytest.raises(InvalidRequest):
        ASROptions.from_settings(settings, task="summarize")


@pytest.mark.slow
def test_jfk_word_perfect_with_base(fw_base: ASREngine, jfk_audio, default_options) -> None:
    t = fw_base.transcribe(jfk_audio, default_options)
    assert normalize(t.text) == normalize(JFK_REF)
    assert t.language == "en" and t.language_probability is not None
    assert t.language_probability > 0.5
    assert t.duration == pytest.approx(11.0)
    words = [w for s in t.segments for w in s.words]
    assert len(words) == len(JFK_REF.split())
    # "ask not" is said around 3.5 s..4.5 s in the recording
    ask_not = next(w for w in words if w.word.strip().lower().startswith("not"))
    assert 3.0 < ask_not.start < 5.5
    _words_ok(t)


@pytest.mark.slow
def test_both_engines_agree_on_jfk(
    fw_base: ASREngine, ow_base: ASREngine, jfk_audio, default_options
) -> None:
    fast = fw_base.transcribe(jfk_audio, default_options)
    ref = ow_base.transcribe(jfk_audio, default_options)
    # Same words; punctuation may differ (the two decoders' float paths differ by build).
    assert normalize(ref.text) == normalize(fast.text)
    assert ref.language == "en"
    fast_words = [w for s in fast.segments for w in s.words]
    ref_words = [w for s in ref.segments for w in s.words]
    assert [normalize(w.word) for w in ref_words] == [normalize(w.word) for w in fast_words]
    for a, b in zip(fast_words, ref_words, strict=True):
        # A word after a pause may take some of the pause in one engine's alignment (seen:
        # ' ask' at 2.76 vs 3.30 s, both ending 3.74 s): its end, and the overlap, must agree.
        assert abs(a.end - b.end) < 0.5 and min(a.end, b.end) > max(a.start, b.start), (a, b)
    _words_ok(ref)


@pytest.mark.slow
def test_english_clips_mean_wer(fw_base: ASREngine, default_options) -> None:
    scores = {}
    for name in ENGLISH_CLIPS:
        ref = (DATA / "asr" / name).with_suffix(".txt").read_text()
        scores[name] = wer(ref, fw_base.transcribe(_clip(name), default_options).text)
    assert sum(scores.values()) / len(scores) <= 0.08, scores


@pytest.mark.slow
def test_detects_language_and_translates(fw_base: ASREngine, default_options) -> None:
    from dataclasses import replace

    audio = _clip("picovoice_es.wav")
    spanish = fw_base.transcribe(audio, default_options)
    assert spanish.language == "es" and (spanish.language_probability or 0) > 0.5
    assert wer((DATA / "asr" / "picovoice_es.txt").read_text(), spanish.text, "es") < 0.5
    english = fw_base.transcribe(audio, replace(default_options, task="translate"))
    assert english.language == "es"
    assert english.text.strip() and english.text != spanish.text
    assert english.text.isascii()


def test_english_only_model_ignores_other_languages(fw_tiny: ASREngine, jfk_audio) -> None:
    t = fw_tiny.transcribe(jfk_audio, ASROptions(language="de", task="translate", beam_size=1))
    assert t.language == "en"
    assert wer(JFK_REF, t.text) < 0.2


def test_silence_gives_no_words(fw_tiny: ASREngine) -> None:
    silence = np.zeros(5 * SAMPLE_RATE, dtype=np.float32)
    t = fw_tiny.transcribe(silence, ASROptions(beam_size=1))
    assert t.segments == [] and t.duration == 5.0


def test_progress_is_monotonic_and_completes(fw_tiny: ASREngine, jfk_audio) -> None:
    seen: list[float] = []
    fw_tiny.transcribe(jfk_audio, ASROptions(beam_size=1, vad_filter=False), progress=seen.append)
    assert seen and seen[-1] == 1.0
    assert seen == sorted(seen) and all(0 <= p <= 1 for p in seen)


@pytest.mark.parametrize("engine", ["fw_tiny", "ow_base"])
def test_cancel_before_start(engine: str, request: pytest.FixtureRequest, jfk_audio) -> None:
    asr: ASREngine = request.getfixturevalue(engine)
    with pytest.raises(Cancelled):
        asr.transcribe(jfk_audio, ASROptions(beam_size=1), should_cancel=lambda: True)


@pytest.mark.slow
def test_cancel_between_segments(fw_tiny: ASREngine) -> None:
    audio = np.concatenate([_clip("jfk.flac")] * 3)
    calls = 0

    def should_cancel() -> bool:
        nonlocal calls
        calls += 1
        return calls > 2  # let the first segment finish, then stop

    segments_done: list[float] = []
    with pytest.raises(Cancelled):
        fw_tiny.transcribe(
            audio,
            ASROptions(beam_size=1, vad_filter=False),
            progress=segments_done.append,
            should_cancel=should_cancel,
        )
    assert len(segments_done) == 1  # stopped after one segment, long before the end
    assert segments_done[0] < 0.5


def test_rejects_non_mono_input(fw_tiny: ASREngine) -> None:
    with pytest.raises(InvalidRequest):
        fw_tiny.transcribe(np.zeros((2, 16000), dtype=np.float32), ASROptions())


def _longest_unheard_speech(t: Transcript, audio: np.ndarray, tolerance: float = 0.3) -> float:
    """Longest stretch (s) inside VAD speech regions that no recognised word covers.

    Lost speech shows up as seconds of speech without words; a missed short word does not.
    """
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    step = 0.01
    speech = np.zeros(int(audio.size / SAMPLE_RATE / step) + 1, dtype=bool)
    for r in get_speech_timestamps(audio, VadOptions(min_silence_duration_ms=300)):
        speech[int(r["start"] / SAMPLE_RATE / step) : int(r["end"] / SAMPLE_RATE / step)] = True
    for seg in t.segments:
        for w in seg.words:
            speech[int(max(0, w.start - tolerance) / step) : int((w.end + tolerance) / step)] = 0
    longest = run = 0
    for unheard in speech:
        run = run + 1 if unheard else 0
        longest = max(longest, run)
    return longest * step


@pytest.fixture(scope="module")
def long_audio() -> tuple[np.ndarray, str, list[tuple[float, float]]]:
    return build_long_audio()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("batched", "piece_s"),
    [(False, None), (True, None), (False, 50.0)],
    ids=["sequential", "batched", "sequential-in-pieces"],
)
def test_long_audio_neither_loses_nor_invents_speech(
    fw_base: ASREngine,
    long_audio,
    default_options,
    batched: bool,
    piece_s: float | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """3 minutes of real speech with silent gaps: every speech region is transcribed,
    nothing appears in the gaps, and the text stays close to the references.

    Measured failure modes this guards against: the batched pipeline dropping the rest of a
    window after its first sentence, and sequential decoding repeating text at the end.
    """
    from dataclasses import replace

    from aisubs.asr import faster_whisper_engine

    if piece_s is not None:  # what a recording longer than PIECE_S goes through
        monkeypatch.setattr(faster_whisper_engine, "PIECE_S", piece_s)
    audio, reference, gaps = long_audio
    t = fw_base.transcribe(audio, replace(default_options, batched=batched))
    hyp_words = normalize(t.text).split()
    ref_words = normalize(reference).split()
    assert 0.93 * len(ref_words) <= len(hyp_words) <= 1.05 * len(ref_words), (
        len(hyp_words),
        len(ref_words),
    )
    assert wer(reference, t.text) <= 0.13
    assert _longest_unheard_speech(t, audio) < 1.5
    words = [w for s in t.segments for w in s.words]
    in_gaps = [w for w in words if any(a + 0.3 < (w.start + w.end) / 2 < b - 0.3 for a, b in gaps)]
    assert in_gaps == []
    _words_ok(t)
