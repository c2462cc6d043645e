"""Validation during a training run: the loss on the validation clips with fixed noise (comparable across
steps), and audio from fixed prompts and seeds, written as WAV files and spectrograms.
"""

from __future__ import annotations

import json
import os

import numpy as np
import torch
from accelerate import Accelerator

from ..listening import plot_spectrograms
from ..pipeline_cam import CAMPipeline
from .latent_clips import LatentClips, collate_clips
from .models import training_pipeline
from .objective import CAMForTraining
from .step_log import LOG_FILE


@torch.no_grad()
def validation_loss(
    model: CAMForTraining, clips: LatentClips, context_frames: int, batch_size: int, seed: int
) -> float:
    """Mean loss over the clips' first `context_frames` frames, with fixed noise: comparable across steps."""
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for start in range(0, len(clips), batch_size):
        batch = collate_clips(clips.__getitems__(list(range(start, min(start + batch_size, len(clips))))))
        lengths = batch["lengths"].clamp(max=context_frames)
        latents = batch["latents"][:, : int(lengths.max())].float().to(device)
        mask = (torch.arange(latents.shape[1])[None] < lengths[:, None]).long().to(device)
        ids = batch.get("instrument_ids")
        output = model(
            latents,
            attention_mask=mask,
            generator=generator,
            instrument_ids=ids.to(device) if ids is not None else None,
        )
        total += output.frame_losses.sum().item()
        count += output.frame_losses.numel()
    model.train()
    return total / max(count, 1)


def run_validation(
    accelerator: Accelerator,
    model: CAMForTraining,
    ema,
    autoencoder,
    clips: LatentClips,
    output_dir: str,
    step: int,
    batch_size: int,
    seed: int,
    audio_options: dict | None = None,
    tracker=None,
) -> None:
    r"""
    Validation on the main process: the loss (logged to `train_log.jsonl` and the trackers) and, with
    `audio_options`, the audio of `write_validation_audio` in `output_dir/validation/step-STEP`. With the EMA
    weights when kept (the raw weights are restored after); the training random state is untouched.

    Args:
        accelerator (`Accelerator`): the run's.
        model ([`CAMForTraining`]): the unwrapped model being trained.
        ema (`EMAModel`, *optional*): the EMA of its weights.
        autoencoder (`AudioAutoencoderMixin`): the codec of the latents.
        clips ([`LatentClips`]): the validation clips.
        output_dir (`str`): the run's folder.
        step (`int`): the optimiser step.
        batch_size (`int`), seed (`int`): of the validation loss.
        audio_options (`dict`, *optional*): the `num_prompts`, `num_samples`, `seconds` and
            `num_inference_steps` of `write_validation_audio`; `None` writes no audio.
        tracker (*optional*): a TensorBoard `SummaryWriter` for the audio and figures.
    """
    if accelerator.is_main_process:
        with torch.random.fork_rng(devices=[]):
            if ema is not None:
                ema.store(model.parameters())
                ema.copy_to(model.parameters())
            context_frames = model.backbone.config.max_position_embeddings - 1
            loss = validation_loss(model, clips, context_frames, batch_size, seed)
            with open(os.path.join(output_dir, LOG_FILE), "a") as f:
                f.write(json.dumps({"step": step, "validation_loss": loss}) + "\n")
            accelerator.log({"validation_loss": loss}, step=step)
            if audio_options:
                pipe = training_pipeline(model, autoencoder)
                pipe.set_progress_bar_config(disable=True)
                folder = os.path.join(output_dir, "validation", f"step-{step:07d}")
                write_validation_audio(
                    pipe, clips, folder, **audio_options, seed=seed, tracker=tracker, step=step
                )
                model.train()
            if ema is not None:
                ema.restore(model.parameters())
    accelerator.wait_for_everyone()


@torch.no_grad()
def write_validation_audio(
    pipe: CAMPipeline,
    clips: LatentClips,
    folder: str,
    num_prompts: int,
    num_samples: int,
    seconds: float,
    num_inference_steps: int,
    seed: int,
    tracker=None,
    step: int = 0,
) -> list[str]:
    r"""
    Continuations of fixed validation prompts and samples from scratch, as WAV files and spectrogram PNGs.

    Args:
        pipe ([`CAMPipeline`]): the model being trained.
        clips ([`LatentClips`]): validation clips; the model continues the first half of each of the
            first `num_prompts`.
        folder (`str`): where the files go.
        num_prompts (`int`), num_samples (`int`): how many continuations and samples (one per instrument in
            turn for a conditioned model).
        seconds (`float`): the length generated each time.
        num_inference_steps (`int`): Sampler steps per frame.
        seed (`int`): the generations' seeds are `seed + i` (prompts) and `seed + 1000 + i` (samples).
        tracker (*optional*): a TensorBoard `SummaryWriter` that also gets the audio and the figures.
        step (`int`, defaults to 0): the training step, for the tracker.

    Returns:
        `list[str]`: the files written.
    """
    import matplotlib.pyplot as plt
    import soundfile as sf

    os.makedirs(folder, exist_ok=True)
    rate, written = pipe.sample_rate, []
    num_frames = max(1, round(seconds * pipe.frame_rate))
    config = pipe.backbone.config

    def write(name: str, rows: list[tuple[str, np.ndarray]], marker_s: float | None = None) -> None:
        sf.write(os.path.join(folder, f"{name}.wav"), np.clip(rows[-1][1], -1, 1), rate)
        figure = plot_spectrograms(rows, rate, marker_s)
        figure.savefig(os.path.join(folder, f"{name}.png"), dpi=80)
        written.extend([os.path.join(folder, f"{name}.wav"), os.path.join(folder, f"{name}.png")])
        if tracker is not None:
            tracker.add_audio(
                f"validation/{name}", torch.from_numpy(rows[-1][1])[None], step, sample_rate=rate
            )
            tracker.add_figure(f"validation/{name}", figure, step)
        plt.close(figure)

    for i in range(min(num_prompts, len(clips))):
        clip = clips[i]
        real = clip["latents"].float()[None]
        prompt = real[:, : max(1, real.shape[1] // 2)]
        kwargs = (
            {"instrument": clip["instrument_id"]}
            if config.num_instruments and "instrument_id" in clip
            else {}
        )
        continuation = pipe(
            prompt_latents=prompt,
            num_frames=num_frames,
            output_type="latent",
            num_inference_steps=num_inference_steps,
            generator=torch.Generator().manual_seed(seed + i),
            **kwargs,
        ).audios
        real_audio = pipe.autoencoder.decode(real).float()[0, 0].numpy()
        generated = (
            pipe.autoencoder.decode(torch.cat([prompt, continuation.float()], dim=1)).float()[0, 0].numpy()
        )
        rows = [
            ("real clip (through the autoencoder)", real_audio),
            ("prompt, then the model's continuation", generated),
        ]
        write(f"prompt-{i}", rows, marker_s=prompt.shape[1] / pipe.frame_rate)
    for i in range(num_samples):
        kwargs, title = {}, "unconditional sample"
        if config.num_instruments:
            kwargs["instrument"] = i % config.num_instruments
            title = f"sample, instrument {config.instrument_names[kwargs['instrument']]!r}"
        audio = pipe(
            num_frames=num_frames,
            num_inference_steps=num_inference_steps,
            generator=torch.Generator().manual_seed(seed + 1000 + i),
            **kwargs,
        ).audios[0, 0]
        write(f"sample-{i}", [(title, audio)])
    return written


__all__ = ["run_validation", "validation_loss", "write_validation_audio"]
