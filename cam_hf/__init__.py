"""cam_hf: Continuous Autoregressive Models (Pasini et al., arXiv 2411.18447) for audio generation.

`import cam_hf` imports every component module: diffusers resolves the custom classes named in a pipeline's
`model_index.json` only among modules that are already imported.
"""

from transformers import AutoConfig, AutoModel

from .autoencoders import (
    AudioAutoencoderMixin,
    EncodecAutoencoder,
    MelAutoencoder,
    Music2LatentAutoencoder,
    OobleckAutoencoder,
)
from .configuration_cam import CAMConfig
from .modeling_cam import CAMModel, CAMPreTrainedModel, mix_noise
from .pipeline_cam import CAMPipeline
from .sampler import CAMSampler, default_scheduler, sample_next_frame
from .training import CAMForTraining, CAMTrainingOutput

__version__ = "0.1.0"

AutoConfig.register("cam", CAMConfig, exist_ok=True)
AutoModel.register(CAMConfig, CAMModel, exist_ok=True)
# Saved Backbones carry their code and an `auto_map`, so they load with `trust_remote_code=True` without cam_hf.
CAMConfig.register_for_auto_class()
CAMModel.register_for_auto_class("AutoModel")

__all__ = [
    "AudioAutoencoderMixin",
    "EncodecAutoencoder",
    "Music2LatentAutoencoder",
    "OobleckAutoencoder",
    "CAMConfig",
    "MelAutoencoder",
    "CAMForTraining",
    "CAMModel",
    "CAMPipeline",
    "CAMPreTrainedModel",
    "CAMSampler",
    "CAMTrainingOutput",
    "default_scheduler",
    "mix_noise",
    "sample_next_frame",
]
