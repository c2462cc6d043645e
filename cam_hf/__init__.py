"""cam_hf: Continuous Autoregressive Models (Pasini et al., arXiv 2411.18447) for audio generation.

`import cam_hf` imports nothing heavy: each name below is imported from its module on first use, as
transformers and diffusers import their own parts, so that a script pays only for the stacks it uses (torch,
transformers, diffusers, and an optional autoencoder's). When the Backbone's module is first imported through
this package, its classes are registered with transformers' `AutoConfig` / `AutoModel`. Loading a pipeline
imports the modules its `model_index.json` names (see `CAMPipeline.from_pretrained`).
"""

import importlib
import sys
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Public name -> the module (under cam_hf) that defines it.
_NAME_TO_MODULE = {
    "AudioAutoencoderMixin": "autoencoders.base",
    "EncodecAutoencoder": "autoencoders.encodec",
    "MelAutoencoder": "autoencoders.mel",
    "Music2LatentAutoencoder": "autoencoders.music2latent",
    "OobleckAutoencoder": "autoencoders.oobleck",
    "CAMConfig": "configuration_cam",
    "CAMModel": "modeling_cam",
    "CAMPreTrainedModel": "modeling_cam",
    "mix_noise": "modeling_cam",
    "CAMPipeline": "pipeline_cam",
    "CAMSampler": "sampler",
    "default_scheduler": "sampler",
    "sample_next_frame": "generation",
    "CAMForTraining": "training.objective",
    "CAMTrainingOutput": "training.objective",
}

if TYPE_CHECKING:
    from .autoencoders import (
        AudioAutoencoderMixin,
        EncodecAutoencoder,
        MelAutoencoder,
        Music2LatentAutoencoder,
        OobleckAutoencoder,
    )
    from .configuration_cam import CAMConfig
    from .generation import sample_next_frame
    from .modeling_cam import CAMModel, CAMPreTrainedModel, mix_noise
    from .pipeline_cam import CAMPipeline
    from .sampler import CAMSampler, default_scheduler
    from .training.objective import CAMForTraining, CAMTrainingOutput


def __getattr__(name: str):
    if name not in _NAME_TO_MODULE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_NAME_TO_MODULE[name]}", __name__), name)
    globals()[name] = value
    if f"{__name__}.modeling_cam" in sys.modules:
        _register_backbone_with_transformers()
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_NAME_TO_MODULE})


_registered = False


def _register_backbone_with_transformers() -> None:
    """Lets `AutoConfig` / `AutoModel` load `model_type="cam"` folders, and makes a saved Backbone carry its
    code and an `auto_map`, so that it loads with `trust_remote_code=True` without cam_hf."""
    global _registered
    if _registered:
        return
    from transformers import AutoConfig, AutoModel

    from .configuration_cam import CAMConfig
    from .modeling_cam import CAMModel

    AutoConfig.register("cam", CAMConfig, exist_ok=True)
    AutoModel.register(CAMConfig, CAMModel, exist_ok=True)
    CAMConfig.register_for_auto_class()
    CAMModel.register_for_auto_class("AutoModel")
    _registered = True


__all__ = [
    "AudioAutoencoderMixin",
    "CAMConfig",
    "CAMForTraining",
    "CAMModel",
    "CAMPipeline",
    "CAMPreTrainedModel",
    "CAMSampler",
    "CAMTrainingOutput",
    "EncodecAutoencoder",
    "MelAutoencoder",
    "Music2LatentAutoencoder",
    "OobleckAutoencoder",
    "default_scheduler",
    "mix_noise",
    "sample_next_frame",
]
