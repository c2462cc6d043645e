"""Sharing a CAMPipeline: its model card and the upload of a saved folder to the Hugging Face Hub.

`CAMPipeline` takes `model_card`, `save_pretrained` and `push_to_hub` from `PipelineSharingMixin` here: saving
writes the card, and both ways of uploading (`push_to_hub`, `save_pretrained(push_to_hub=True)`) upload
through here, so the Hub always gets this card rather than diffusers' generic one.
"""

from __future__ import annotations

import importlib
import os
import tempfile

from huggingface_hub import ModelCard, create_repo, upload_folder

from .sampler import DEFAULT_NUM_INFERENCE_STEPS

# The Hub has no pipeline tag for unconditional audio generation; `audio-to-audio` (continuing an audio
# prompt) is the task it has that fits. `text-to-audio` would promise a text prompt, which the model lacks.
MODEL_CARD_TEMPLATE = """---
library_name: cam_hf
tags:
- audio-generation
- unconditional-audio-generation
- audio-continuation
- music-generation
- music
- continuous-autoregressive
- cam
pipeline_tag: audio-to-audio
---

# {title}

A Continuous Autoregressive Model (CAM, [Pasini et al., 2024](https://arxiv.org/abs/2411.18447)) \
that generates
audio one latent frame at a time, without discrete tokens. \
A causal transformer (the Backbone) reads the latent
frames so far; a small rectified-flow MLP (the Sampler) draws the next frame; \
the autoencoder turns frames into
sound. The Backbone was trained on inputs corrupted with random noise so that, \
at generation, it tolerates its own
errors instead of drifting.

## Components

| component | class | size |
|---|---|---|
| Backbone | `{backbone_class}` | \
{backbone_params} parameters, {layers} layers x {hidden} wide, context {context} frames |
| Sampler | `{sampler_class}` | \
{sampler_params} parameters, {blocks} blocks x {width}, predicts `{prediction}`{few_step} |
| scheduler | `{scheduler_class}` | {default_steps} steps per frame by default |
| autoencoder | `{autoencoder_class}` | \
{sample_rate} Hz, {channels} channel(s), {latent_dim}-dim latents at {frame_rate:.2f} frames/s |

Noise augmentation in training: k ~ U(0, {max_training_noise}) drawn {noise_sampling}, \
`{noise_mixing}` mixing.
Inference noise k_inf = {inference_noise}.
{conditioning}
## Training

{training_details}

## Generate

```python
import soundfile as sf
import torch
from cam_hf import CAMPipeline

pipe = CAMPipeline.from_pretrained("{repo_id}")
audio = pipe(audio_length_in_s=10.0, \
{instrument_argument}generator=torch.Generator().manual_seed(0)).audios[0]
sf.write("sample.wav", audio.T, pipe.sample_rate)
```

Continue a recording with `pipe(audio=waveform, sample_rate=sr, audio_length_in_s=20)`; stream with
`for chunk in pipe.stream(...)`. See the cam_hf documentation (`docs/pipeline.md`).
"""

NOT_RECORDED = "Not recorded: pass `training_details` to `save_pretrained`."
# Keyword arguments of `save_pretrained(push_to_hub=True)` that are about the upload, as diffusers takes them.
HUB_KWARGS = ("repo_id", "commit_message", "private", "token", "create_pr")
# Keyword arguments of `from_pretrained` that say where to find `model_index.json` (see `load_config`).
LOCATION_KWARGS = ("cache_dir", "force_download", "proxies", "local_files_only", "token", "revision")


def model_card(
    pipeline, repo_id: str = "path/to/this/folder", training_details: str | None = None
) -> ModelCard:
    """
    The model card of a [`CAMPipeline`]: what the model is, its components' sizes, its noise settings, how it
    was trained and how to generate with it.

    Args:
        pipeline ([`CAMPipeline`]): the pipeline to describe.
        repo_id (`str`): the Hub repository (or folder) the card's usage snippet loads from; its last part is
            the title.
        training_details (`str`, *optional*): how the model was trained (data, steps, hardware).

    Returns:
        `huggingface_hub.ModelCard`.
    """
    backbone, sampler = pipeline.backbone.config, pipeline.sampler.config
    text = MODEL_CARD_TEMPLATE.format(
        title=repo_id.split("/")[-1],
        repo_id=repo_id,
        backbone_class=type(pipeline.backbone).__name__,
        backbone_params=f"{sum(p.numel() for p in pipeline.backbone.parameters()):,}",
        layers=backbone.num_hidden_layers,
        hidden=backbone.hidden_size,
        context=pipeline.context_frames,
        sampler_class=type(pipeline.sampler).__name__,
        sampler_params=f"{sum(p.numel() for p in pipeline.sampler.parameters()):,}",
        blocks=sampler.num_blocks,
        width=sampler.width,
        prediction=sampler.prediction_type,
        few_step=(
            f", trained for few steps (`{sampler['few_step_objective']}`)"
            if sampler.get("few_step_objective")
            else ""
        ),
        scheduler_class=type(pipeline.scheduler).__name__,
        default_steps=sampler.get("num_inference_steps", DEFAULT_NUM_INFERENCE_STEPS),
        autoencoder_class=type(pipeline.autoencoder).__name__,
        sample_rate=pipeline.sample_rate,
        channels=pipeline.autoencoder.audio_channels,
        latent_dim=pipeline.autoencoder.latent_dim,
        frame_rate=pipeline.frame_rate,
        max_training_noise=backbone.max_training_noise,
        noise_sampling="per frame" if backbone.noise_sampling == "per_frame" else "per sequence",
        noise_mixing=backbone.noise_mixing,
        inference_noise=backbone.inference_noise,
        training_details=training_details or NOT_RECORDED,
        conditioning=_conditioning(backbone.instrument_names),
        instrument_argument=(
            f'instrument="{backbone.instrument_names[0]}", ' if backbone.instrument_names else ""
        ),
    )
    return ModelCard(text)


def _conditioning(instrument_names: list[str] | None) -> str:
    if not instrument_names:
        return ""
    names = ", ".join(f"`{name}`" for name in instrument_names)
    return (
        f"\nConditioned on the instrument ({len(instrument_names)} labels, stored in the Backbone's config): "
        f"{names}. "
        "Ask for one with `instrument=` (name or id, one per waveform), with classifier-free guidance "
        "`guidance_scale=` (1 = none); without `instrument` it generates unconditionally.\n"
    )


def write_model_card(pipeline, folder: str | os.PathLike, repo_id: str, training_details: str | None) -> None:
    """Writes the pipeline's card to `folder/README.md`, unless the folder already has a README (a card
    written by hand, or by an earlier save, is kept)."""
    card_path = os.path.join(folder, "README.md")
    if not os.path.exists(card_path):
        model_card(pipeline, repo_id, training_details).save(card_path)


def create_model_repo(repo_id: str, private: bool | None = None, token: str | None = None) -> str:
    """Creates `repo_id` on the Hub if it does not exist; returns its full id (with the namespace)."""
    return create_repo(repo_id, private=private, token=token, exist_ok=True).repo_id


def upload_pipeline_folder(
    folder: str | os.PathLike,
    repo_id: str,
    commit_message: str | None = None,
    token: str | None = None,
    create_pr: bool = False,
) -> str:
    """Uploads a saved pipeline folder (model card included) to `repo_id`; returns the commit's URL."""
    return upload_folder(
        repo_id=repo_id,
        folder_path=folder,
        commit_message=commit_message or "Upload CAMPipeline",
        token=token,
        create_pr=create_pr,
    )


__all__ = [
    "MODEL_CARD_TEMPLATE",
    "create_model_repo",
    "model_card",
    "upload_pipeline_folder",
    "write_model_card",
]


class PipelineSharingMixin:
    """`DiffusionPipeline`'s loading, saving and upload, for a pipeline made of cam_hf components with this
    module's model card: mixed into `CAMPipeline` in front of `DiffusionPipeline`."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs):
        """`DiffusionPipeline.from_pretrained`, after importing the cam_hf modules that `model_index.json`
        names: diffusers finds a component's class only in modules already imported, and cam_hf imports its
        optional autoencoders (EnCodec, Oobleck, Music2Latent) only when they are used."""
        location = {key: kwargs[key] for key in LOCATION_KWARGS if key in kwargs}
        package = __name__.split(".")[0]
        for entry in cls.load_config(pretrained_model_name_or_path, **location).values():
            if isinstance(entry, list | tuple) and entry and str(entry[0]).split(".")[0] == package:
                importlib.import_module(entry[0])
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    def model_card(self, repo_id: str = "path/to/this/folder", training_details: str | None = None):
        """A model card describing this pipeline's components, how to generate, and `training_details` (see
        `cam_hf.hub_utils.model_card`)."""
        return model_card(self, repo_id, training_details)

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        safe_serialization: bool = True,
        variant: str | None = None,
        max_shard_size: int | str | None = None,
        push_to_hub: bool = False,
        training_details: str | None = None,
        **kwargs,
    ):
        """
        `DiffusionPipeline.save_pretrained` (safetensors, one folder per component), plus this pipeline's
        model card (`README.md`) unless the folder already has one. With `push_to_hub=True` the folder, card
        included, is uploaded to `repo_id` (default: the folder's name; `kwargs`: `repo_id`, `commit_message`,
        `private`, `token`, `create_pr`), as `push_to_hub` does.
        """
        if not push_to_hub:
            super().save_pretrained(save_directory, safe_serialization, variant, max_shard_size, **kwargs)
            write_model_card(self, save_directory, str(save_directory), training_details)
            return None
        hub_kwargs = {key: kwargs.pop(key) for key in HUB_KWARGS if key in kwargs}
        repo_id = hub_kwargs.pop("repo_id", os.path.basename(os.path.normpath(save_directory)))
        repo_id = create_model_repo(repo_id, hub_kwargs.pop("private", None), hub_kwargs.get("token"))
        super().save_pretrained(save_directory, safe_serialization, variant, max_shard_size, **kwargs)
        write_model_card(self, save_directory, repo_id, training_details)
        return upload_pipeline_folder(save_directory, repo_id, **hub_kwargs)

    def push_to_hub(
        self,
        repo_id: str,
        commit_message: str | None = None,
        private: bool | None = None,
        token: str | None = None,
        create_pr: bool = False,
        safe_serialization: bool = True,
        variant: str | None = None,
        training_details: str | None = None,
    ) -> str:
        """Saves the pipeline with its model card to a temporary folder and uploads it to `repo_id` on the
        Hub."""
        repo_id = create_model_repo(repo_id, private, token)
        with tempfile.TemporaryDirectory() as folder:
            super().save_pretrained(folder, safe_serialization=safe_serialization, variant=variant)
            write_model_card(self, folder, repo_id, training_details)
            return upload_pipeline_folder(folder, repo_id, commit_message, token, create_pr)
