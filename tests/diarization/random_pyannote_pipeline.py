"""Build a pyannote.audio speaker-diarization pipeline directory from random weights.

The layout is the one pyannote.audio 4 reads from the hub or disk
(``Pipeline.from_pretrained(directory)``)::

    config.yaml                    pipeline class, ``$model/<subfolder>`` references, params
    segmentation/pytorch_model.bin Lightning checkpoint of a PyanNet (powerset, 3 speakers)
    embedding/pytorch_model.bin    Lightning checkpoint of a WeSpeaker ResNet34
    plda/xvec_transform.npz, plda/plda.npz

Random weights give meaningless speakers but exercise every step of the real loading and
inference code, offline.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import yaml

from aisubs.diarization.torchaudio_compat import import_torchaudio


def _save_checkpoint(model: torch.nn.Module, path: Path) -> None:
    import lightning

    checkpoint = {
        "state_dict": model.state_dict(),
        "hyper_parameters": dict(model.hparams),  # type: ignore[attr-defined]
        "pytorch-lightning_version": lightning.__version__,
    }
    model.on_save_checkpoint(checkpoint)  # type: ignore[operator]  # adds pyannote.audio metadata
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)


def _save_plda(directory: Path, dimension: int, lda_dimension: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    lda, _ = np.linalg.qr(rng.standard_normal((dimension, dimension)))
    np.savez(
        directory / "xvec_transform.npz",
        mean1=rng.standard_normal(dimension) * 0.01,
        mean2=rng.standard_normal(lda_dimension) * 0.01,
        lda=lda[:, :lda_dimension],
    )
    np.savez(
        directory / "plda.npz",
        mu=np.zeros(lda_dimension),
        tr=np.eye(lda_dimension),
        psi=np.linspace(2.0, 0.5, lda_dimension),
    )


def build_random_pipeline(directory: Path, *, seed: int = 0, chunk_s: float = 5.0) -> Path:
    """Write a randomly initialised pyannote SpeakerDiarization pipeline to ``directory``."""
    import_torchaudio()
    from pyannote.audio.core.task import Problem, Resolution, Specifications
    from pyannote.audio.models.embedding import WeSpeakerResNet34
    from pyannote.audio.models.segmentation import PyanNet

    torch.manual_seed(seed)
    segmentation = PyanNet(sample_rate=16_000)
    segmentation.specifications = Specifications(
        problem=Problem.MONO_LABEL_CLASSIFICATION,
        resolution=Resolution.FRAME,
        duration=chunk_s,
        classes=["speaker#1", "speaker#2", "speaker#3"],
        powerset_max_classes=2,
        permutation_invariant=True,
    )
    segmentation.build()
    _save_checkpoint(segmentation, directory / "segmentation" / "pytorch_model.bin")

    embedding = WeSpeakerResNet34(sample_rate=16_000)
    embedding.specifications = Specifications(
        problem=Problem.REPRESENTATION, resolution=Resolution.CHUNK, duration=chunk_s
    )
    _save_checkpoint(embedding, directory / "embedding" / "pytorch_model.bin")
    _save_plda(directory / "plda", dimension=256, lda_dimension=128, seed=seed)

    config = {
        "dependencies": {"pyannote.audio": "4.0.7"},
        "pipeline": {
            "name": "pyannote.audio.pipelines.SpeakerDiarization",
            "params": {
                "segmentation": "$model/segmentation",
                "embedding": "$model/embedding",
                "plda": "$model/plda",
                "clustering": "AgglomerativeClustering",
                "segmentation_step": 0.5,
                "embedding_batch_size": 16,
                "segmentation_batch_size": 16,
            },
        },
        "params": {
            "segmentation": {"min_duration_off": 0.0},
            "clustering": {"method": "centroid", "min_cluster_size": 2, "threshold": 0.7},
        },
    }
    (directory / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return directory
