"""Where the repository and the shared test data are, resolved once for every test.

``DATA`` is the shared data folder (real speech clips, diarization references) that lives
beside the repository (``../shared/data``; CI clones the repository elsewhere with
``../shared`` next to it). Candidates, in order: ``$AISUBS_TEST_DATA``,
``REPO.parent / "shared" / "data"``, ``REPO / "shared" / "data"``; the first holding
``asr/jfk.flac`` wins. When none does, ``DATA`` is still ``REPO.parent / "shared" / "data"``
so tests that need it fail with a plain file-not-found naming the expected path.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _find_data() -> Path:
    default = REPO.parent / "shared" / "data"
    env = os.environ.get("AISUBS_TEST_DATA")
    candidates = [Path(env)] if env else []
    candidates += [default, REPO / "shared" / "data"]
    for candidate in candidates:
        if (candidate / "asr" / "jfk.flac").is_file():
            return candidate
    return default


DATA = _find_data()
MODELS = REPO / "var" / "models"  # the model cache the tests share (cache_dir)

# Clips used in several places.
ASR = DATA / "asr"
JFK = ASR / "jfk.flac"
LIBRISPEECH = ASR / "librispeech-61-70968-0000.flac"
DIARIZATION = DATA / "diarization"
SAMPLE_WAV = DIARIZATION / "sample.wav"
SAMPLE_STM = DIARIZATION / "sample.stm"
SAMPLE_RTTM = DIARIZATION / "sample.rttm"
AMI = DIARIZATION / "ami"
