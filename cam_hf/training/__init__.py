"""Training a CAM: the objective (`CAMForTraining`), the models a run starts from, and the parts of a run
that `examples/train.py` puts together: options, data, checkpoints, validation, step log and summary.
"""

from .args import check_training_args, parse_training_args, resolve_training_defaults
from .checkpoints import (
    check_checkpoint,
    find_checkpoint,
    list_checkpoints,
    resume_from_checkpoint,
    save_checkpoint,
)
from .latent_clips import LatentClips, collate_clips, random_crops
from .models import (
    DEFAULT_TRAINING_SETTINGS,
    FINE_TUNING_BACKBONE_FIELDS,
    FINE_TUNING_SAMPLER_FIELDS,
    MODEL_PRESETS,
    SHORT_CONTEXT_FIELDS,
    few_step_fields,
    fine_tuning_backbone_and_sampler,
    new_backbone_and_sampler,
    trained_settings,
    training_pipeline,
    with_short_context,
)
from .objective import CAMForTraining, CAMTrainingOutput
from .precision import choose_precision
from .run_checks import check_weights_in_sync, stop_if_not_finite
from .seeds import data_seed, step_generator
from .step_log import LOG_FILE, StepLog, read_log
from .summary import hardware_name, save_trained_pipeline, summarize_run, training_details
from .validation import run_validation, validation_loss, write_validation_audio

__all__ = [
    "DEFAULT_TRAINING_SETTINGS",
    "FINE_TUNING_BACKBONE_FIELDS",
    "FINE_TUNING_SAMPLER_FIELDS",
    "LOG_FILE",
    "MODEL_PRESETS",
    "SHORT_CONTEXT_FIELDS",
    "CAMForTraining",
    "CAMTrainingOutput",
    "LatentClips",
    "StepLog",
    "check_checkpoint",
    "check_training_args",
    "check_weights_in_sync",
    "choose_precision",
    "collate_clips",
    "data_seed",
    "few_step_fields",
    "find_checkpoint",
    "fine_tuning_backbone_and_sampler",
    "hardware_name",
    "list_checkpoints",
    "new_backbone_and_sampler",
    "parse_training_args",
    "random_crops",
    "read_log",
    "resolve_training_defaults",
    "resume_from_checkpoint",
    "run_validation",
    "save_checkpoint",
    "save_trained_pipeline",
    "step_generator",
    "stop_if_not_finite",
    "summarize_run",
    "trained_settings",
    "training_details",
    "training_pipeline",
    "validation_loss",
    "with_short_context",
    "write_validation_audio",
]
