#!/usr/bin/env python
"""Train the mel codec's learned decoder (`MelVocoder`, Vocos-style) on an audio dataset, with 🤗 Accelerate.

    # the built-in dataset's audio (examples/make_dataset.py) and the shipped model's codec:
    python examples/train_vocoder.py --dataset_dir data/cam-music21-3k \\
        --autoencoder_path models/cam-music21-small/autoencoder --output_dir runs/vocoder \\
        --max_train_steps 20000
    # continue exactly where a run stopped:
    python examples/train_vocoder.py ... --resume_from_checkpoint latest

What a step does: draw `--train_batch_size` clips and a random segment of `--segment_seconds` from each, make
the log-mel frames the codec's `decode` would give the vocoder for that audio (by default through the
latents: encode, PCA and back, with optional noise on the latents), decode them with the vocoder, and
minimise the codec's mel L1 plus a multi-resolution STFT loss (`cam_hf/autoencoders/vocoder_losses.py`)
against the original segment. AdamW, a cosine schedule, an EMA of the weights (`diffusers`' `EMAModel`).

Exact resume: the clips and segments of step s are drawn from a generator seeded by (seed, s, process) and the
latent noise from another (`cam_hf.training.step_generator`), so a step's batch depends on nothing before it;
`save_state` keeps the model, optimizer, LR scheduler, RNG states and EMA. A run killed and resumed logs the
same losses as a run never stopped.

Validation (every `--validation_steps` and at the end): whole held-out clips of `--validation_split` are
encoded and decoded by the codec with the vocoder (its EMA weights) and with Griffin-Lim, and the spectral
convergence, log-spectral distance (`cam_hf.autoencoders.metrics.spectral_metrics`) and mel L1 of each against
the original are logged side by side.

Output folder: `checkpoint-STEP/`, `train_log.jsonl` (one line per step, and validation lines), and at the
end `autoencoder/`: the codec with the trained vocoder attached (`MelAutoencoder.from_pretrained` loads it;
copy it over a pipeline's `autoencoder/` to decode with it). See docs/autoencoders.md.
"""

import argparse
import io
import json
import math
import os
import sys

import datasets
import numpy as np
import soundfile as sf
import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import ProjectConfiguration, set_seed
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from cam_hf.autoencoders import MelAutoencoder, MelVocoder
from cam_hf.autoencoders.metrics import spectral_metrics
from cam_hf.autoencoders.vocoder_losses import STFT_LOSS_FFT_SIZES, mel_loss, multi_resolution_stft_loss
from cam_hf.data import decode_audio
from cam_hf.training import (
    StepLog,
    find_checkpoint,
    list_checkpoints,
    resume_from_checkpoint,
    save_checkpoint,
    step_generator,
    stop_if_not_finite,
)

logger = get_logger(__name__)

# Source samples decoded beyond each side of a training segment and dropped after resampling, where the
# resampling filter would see the cut: `resample_poly`'s reaches 10 * max(up, down) samples of the upsampled
# signal either side, about 20 source samples at 44.1 or 48 kHz -> 22.05 kHz.
RESAMPLING_MARGIN = 64


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    data = parser.add_argument_group("data").add_argument
    data("--dataset_dir", required=True, help="An audio DatasetDict saved by examples/make_dataset.py.")
    data(
        "--autoencoder_path",
        required=True,
        help="A fitted mel codec's folder (MelAutoencoder.save_pretrained), e.g. a pipeline's autoencoder/. "
        "If it has a vocoder already, training starts from it (fine-tuning), unless --new_vocoder.",
    )
    data("--audio_column", default="audio")
    data("--train_split", default="train")
    data("--validation_split", default="validation")
    data(
        "--segment_seconds",
        type=float,
        default=1.0,
        help="Length of each training segment (rounded down to whole latent frames).",
    )
    data(
        "--vocoder_input",
        default="latents",
        choices=["latents", "log_mel"],
        help="latents: the log-mel frames through the codec's latents and back (PCA), what decode gives the "
        "vocoder; log_mel: the audio's own log-mel frames.",
    )
    data(
        "--latent_noise_std",
        type=float,
        default=0.0,
        help="Gaussian noise added to the (normalised) latents of the input, for robustness to generated "
        "latents; with --vocoder_input latents.",
    )
    data("--dataloader_num_workers", type=int, default=1, help="Processes preparing the next batches.")

    model = parser.add_argument_group("vocoder (MelVocoder; ignored when fine-tuning the codec's)")
    model = model.add_argument
    model(
        "--new_vocoder",
        action="store_true",
        help="Train a new vocoder of the sizes below even when the codec has one (its vocoder is then not "
        "used; the saved codec gets the new one).",
    )
    model(
        "--keep_blocks",
        type=int,
        nargs="+",
        default=None,
        help="Fine-tune a shallower copy of the codec's vocoder that keeps these ConvNeXt blocks (increasing "
        "indices, e.g. 0 2 3 4 5 7 of 8): faster to decode (MelVocoder.keep_blocks).",
    )
    model("--dim", type=int, default=256)
    model("--intermediate_dim", type=int, default=768)
    model("--num_blocks", type=int, default=8)
    model(
        "--magnitude_prior",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Predict the log-magnitude as a correction to the mel pseudo-inverse's.",
    )

    optim = parser.add_argument_group("optimisation").add_argument
    optim("--train_batch_size", type=int, default=16, help="Segments per process per step.")
    optim("--max_train_steps", type=int, default=20000, help="The length of the run and of its LR schedule.")
    optim(
        "--stop_after_steps",
        type=int,
        default=None,
        help="End the run after this step (checkpoint and codec) on the LR schedule of --max_train_steps: "
        "the same command without it later resumes and continues (the CPU is shared with the model's "
        "training).",
    )
    optim("--learning_rate", type=float, default=5e-4)
    optim(
        "--lr_scheduler", default="cosine", choices=["cosine", "linear", "constant", "constant_with_warmup"]
    )
    optim("--lr_warmup_steps", type=int, default=0)
    optim("--adam_beta1", type=float, default=0.8, help="Vocos' betas: (0.8, 0.9).")
    optim("--adam_beta2", type=float, default=0.9)
    optim("--adam_weight_decay", type=float, default=0.01)
    optim("--max_grad_norm", type=float, default=1.0)
    optim("--mel_loss_weight", type=float, default=1.0)
    optim("--stft_loss_weight", type=float, default=1.0)
    optim("--mixed_precision", default="no", choices=["no", "fp16", "bf16"])
    optim(
        "--use_ema",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Keep an EMA of the weights: validated and saved.",
    )
    optim("--ema_decay", type=float, default=0.999)
    optim("--seed", type=int, default=0)

    run = parser.add_argument_group("logging, validation, checkpoints").add_argument
    run("--output_dir", required=True)
    run("--report_to", default="none", choices=["none", "tensorboard", "wandb", "all"])
    run("--logging_dir", default="logs", help="TensorBoard folder, inside --output_dir.")
    run("--validation_steps", type=int, default=1000, help="Validate every N steps (and at the end).")
    run("--num_validation_clips", type=int, default=8, help="Whole clips spread over the validation split.")
    run("--checkpointing_steps", type=int, default=1000)
    run("--checkpoints_total_limit", type=int, default=None, help="Keep only the newest N checkpoints.")
    run(
        "--resume_from_checkpoint",
        default=None,
        help="`latest` (the newest whole checkpoint in --output_dir) or a checkpoint-STEP folder.",
    )
    args = parser.parse_args(argv)
    for name in (
        "train_batch_size",
        "max_train_steps",
        "stop_after_steps",
        "validation_steps",
        "checkpointing_steps",
        "checkpoints_total_limit",
        "dim",
        "intermediate_dim",
        "num_blocks",
    ):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ValueError(f"--{name} must be a positive integer, got {getattr(args, name)}.")
    for name in ("num_validation_clips", "dataloader_num_workers", "lr_warmup_steps"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name} must be an integer >= 0, got {getattr(args, name)}.")
    if args.learning_rate <= 0 or not math.isfinite(args.learning_rate):
        raise ValueError(f"--learning_rate must be a positive number, got {args.learning_rate}.")
    if args.keep_blocks is not None and args.new_vocoder:
        raise ValueError(
            "--keep_blocks takes blocks of the codec's vocoder: it cannot go with --new_vocoder."
        )
    if args.latent_noise_std < 0 or (args.latent_noise_std > 0 and args.vocoder_input != "latents"):
        raise ValueError(
            f"--latent_noise_std must be >= 0 and needs --vocoder_input latents, got "
            f"{args.latent_noise_std} with --vocoder_input {args.vocoder_input}."
        )
    return args


def load_codec(path: str) -> MelAutoencoder:
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise ValueError(
            f"--autoencoder_path {path!r} holds no config.json: pass a mel codec's folder, e.g. "
            "models/cam-music21-small/autoencoder."
        )
    with open(os.path.join(path, "config.json")) as f:
        name = json.load(f).get("_class_name")
    if name != MelAutoencoder.__name__:
        raise ValueError(
            f"--autoencoder_path {path!r} holds a {name}, not a MelAutoencoder: the vocoder decodes "
            "the mel codec's log-mel frames only."
        )
    codec = MelAutoencoder.from_pretrained(path).eval()
    codec.requires_grad_(False)
    if codec.needs_projection and not codec.config.pca_fitted:
        raise ValueError(
            f"The codec at {path!r} has no fitted PCA: fit it first (examples/encode_dataset.py "
            "does) or pass a trained pipeline's autoencoder/."
        )
    return codec


def load_splits(args: argparse.Namespace) -> tuple[datasets.Dataset, datasets.Dataset | None]:
    """The training split and the validation split (`None` when the dataset has none)."""
    try:
        dataset = datasets.load_from_disk(args.dataset_dir)
    except FileNotFoundError as error:
        raise ValueError(
            f"--dataset_dir {args.dataset_dir!r} is not a dataset saved with `save_to_disk` "
            f"({error}): build one with examples/make_dataset.py."
        ) from error
    if isinstance(dataset, datasets.Dataset):
        dataset = datasets.DatasetDict({args.train_split: dataset})
    if args.train_split not in dataset:
        raise ValueError(
            f"The dataset at {args.dataset_dir!r} has no {args.train_split!r} split; it has "
            f"{sorted(dataset)}: pass --train_split."
        )
    for name, split in dataset.items():
        if args.audio_column not in split.column_names:
            raise ValueError(
                f"Split {name!r} of {args.dataset_dir!r} has no column {args.audio_column!r} "
                f"(columns: {split.column_names}): pass --audio_column."
            )
    # Only the audio column is read: the bytes, undecoded, so that soundfile decodes them (no torchcodec).
    splits = {
        name: split.select_columns([args.audio_column]).cast_column(
            args.audio_column, datasets.Audio(decode=False)
        )
        for name, split in dataset.items()
    }
    return splits[args.train_split], splits.get(args.validation_split)


def read_segment(reader: MelAutoencoder, value: dict, fraction: float, samples: int) -> torch.Tensor:
    """
    `samples` samples of one clip at the codec's rate and channel count, starting `fraction` of the way into
    the clip (silence past its end), `[audio_channels, samples]`. Only that part of the file is decoded and
    resampled, not the whole clip: a 1 s segment of a 10 s clip costs a tenth.

    Args:
        reader (`MelAutoencoder`): a CPU codec (its `prepare_audio`: channels and resampling).
        value (`dict`): the clip's `Audio(decode=False)` value, `{"bytes": ..., "path": ...}`.
        fraction (`float`): in [0, 1).
        samples (`int`): at the codec's rate.
    """
    target = reader.sample_rate
    with sf.SoundFile(io.BytesIO(value["bytes"]) if value.get("bytes") else value["path"]) as file:
        rate, total = file.samplerate, file.frames
        # Resampling maps each block of `step` source samples to `out_step` target samples: the read starts
        # on a block, so that the segment's first sample falls on a target sample, and carries blocks on each
        # side that are dropped after resampling (they hold the resampling filter's edge).
        step, out_step = rate // math.gcd(rate, target), target // math.gcd(rate, target)
        margin = math.ceil(RESAMPLING_MARGIN / step) * step if rate != target else 0
        need = math.ceil(samples / out_step) * step
        start = int(fraction * max(total - need, 0)) // step * step
        first = max(start - margin, 0)
        file.seek(first)
        audio = file.read(start + need + margin - first, dtype="float32", always_2d=True)
    audio = np.pad(audio, ((0, start + need + margin - first - audio.shape[0]), (0, 0)))  # past the end
    resampled = reader.prepare_audio(torch.from_numpy(np.ascontiguousarray(audio.T))[None], sample_rate=rate)
    offset = (start - first) // step * out_step
    return resampled[0, :, offset : offset + samples]


def read_clip(reader: MelAutoencoder, split: datasets.Dataset, column: str, index: int) -> torch.Tensor:
    """Clip `index` at the codec's rate and channel count (`reader.prepare_audio`), `[audio_channels,
    samples]`, on the CPU."""
    audio, rate = decode_audio(split[index][column])
    channels_first = torch.from_numpy(np.ascontiguousarray(audio.T if audio.ndim == 2 else audio[None]))
    return reader.prepare_audio(channels_first[None], sample_rate=rate)[0]


class SegmentBatches(torch.utils.data.Dataset):
    """
    Item s is the batch of step s: `train_batch_size` clips and a random segment of each, drawn from
    `step_generator(seed, s, process_index, stream=0)` (a function of its arguments only, which is what makes
    a resume exact whatever the workers do). A clip shorter than the segment is padded with silence.

    Returns per item `{"audio": [batch, audio_channels, samples], "index": [batch]}`.
    """

    def __init__(
        self,
        reader: MelAutoencoder,
        split: datasets.Dataset,
        column: str,
        batch_size: int,
        samples: int,
        seed: int,
        process_index: int,
    ):
        self.reader, self.split, self.column = reader, split, column
        self.batch_size, self.samples = batch_size, samples
        self.seed, self.process_index = seed, process_index

    def __len__(self) -> int:
        return 2**62  # indexed by step, never iterated to the end

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        generator = step_generator(self.seed, step, self.process_index, stream=0)
        indices = torch.randint(len(self.split), (self.batch_size,), generator=generator)
        where = torch.rand(self.batch_size, generator=generator, dtype=torch.float64)
        segments = [
            read_segment(self.reader, self.split[index][self.column], fraction, self.samples)
            for index, fraction in zip(indices.tolist(), where.tolist(), strict=True)
        ]
        return {"audio": torch.stack(segments), "index": indices}


def vocoder_input(
    codec: MelAutoencoder, audio: torch.Tensor, noise_std: float | None, generator: torch.Generator
) -> torch.Tensor:
    """The log-mel frames the vocoder decodes for `audio` `[B, C, N]`: `[B * C, n_mels, frames]`. `noise_std`
    `None` means the audio's own log-mel (no latents)."""
    if noise_std is None:
        log_mel = codec.log_mel(audio)
    else:
        latents = codec.encode(audio)
        if noise_std > 0:
            noise = torch.randn(latents.shape, generator=generator, device=generator.device)
            latents = latents + noise_std * noise.to(latents.device)
        log_mel = codec.latents_to_log_mel(codec.denormalize_latents(latents))
    return log_mel.reshape(-1, *log_mel.shape[2:])


@torch.no_grad()
def validate(
    codec: MelAutoencoder, vocoder: MelVocoder, clips: list[torch.Tensor], griffin_lim: dict | None
) -> dict:
    """Spectral convergence, log-spectral distance and mel L1 against the original clips: of the codec
    decoding with `vocoder`, and (`griffin_lim` None) with Griffin-Lim. Means over clips and channels."""

    def figures(decoder: MelVocoder | None) -> dict:
        codec.set_vocoder(decoder)
        rows = {"sc": [], "lsd": [], "mel_l1": []}
        for clip in clips:
            decoded = codec.decode(codec.encode(clip[None]))[0]
            rows["mel_l1"].append(
                mel_loss(codec, decoded, clip[:, : decoded.shape[-1]].to(decoded.device)).item()
            )
            for reference, channel in zip(clip.numpy(), decoded.cpu().numpy(), strict=True):
                sc, lsd = spectral_metrics(
                    reference, channel, codec.config.n_fft, codec.config.stft_hop_length
                )
                rows["sc"].append(sc)
                rows["lsd"].append(lsd)
        codec.set_vocoder(None)
        return {name: float(np.mean(values)) for name, values in rows.items()}

    training = vocoder.training
    result = {"vocoder": figures(vocoder), "griffin_lim": griffin_lim or figures(None)}
    vocoder.train(training)
    return result


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    accelerator = Accelerator(
        mixed_precision=args.mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=ProjectConfiguration(
            project_dir=args.output_dir, logging_dir=os.path.join(args.output_dir, args.logging_dir)
        ),
    )
    set_seed(args.seed)  # the vocoder's initialisation; a step's randomness has its own generators
    if accelerator.is_main_process:
        os.makedirs(args.output_dir, exist_ok=True)
        with open(os.path.join(args.output_dir, "train_args.json"), "w") as f:
            json.dump(vars(args), f, indent=1)

    # 1. The codec, its vocoder (new, or the one it has), the data.
    codec = load_codec(args.autoencoder_path)
    # The data is read on the CPU (in the loader's workers) by a copy: only its rate and channels count there.
    reader = MelAutoencoder.from_config(codec.config)
    vocoder = codec.vocoder
    codec.set_vocoder(None)  # the codec only encodes here; validation attaches the vocoder to decode
    codec.to(accelerator.device)
    if vocoder is None and args.keep_blocks is not None:
        raise ValueError(
            f"--keep_blocks keeps blocks of the codec's vocoder, and {args.autoencoder_path!r} has none: "
            "pass a codec with a vocoder (a run's OUTPUT_DIR/autoencoder), or leave --keep_blocks out."
        )
    if vocoder is None or args.new_vocoder:
        vocoder = MelVocoder.for_codec(
            codec,
            dim=args.dim,
            intermediate_dim=args.intermediate_dim,
            num_blocks=args.num_blocks,
            magnitude_prior=args.magnitude_prior,
        )
    else:
        logger.info(f"Fine-tuning the vocoder of {args.autoencoder_path}.", main_process_only=True)
        if args.keep_blocks is not None:
            vocoder = vocoder.keep_blocks(args.keep_blocks)
    vocoder.train().requires_grad_(True)
    train_split, validation_split = load_splits(args)
    samples = int(args.segment_seconds * codec.sample_rate) // codec.hop_length * codec.hop_length
    if samples <= max(STFT_LOSS_FFT_SIZES) // 2:
        raise ValueError(
            f"--segment_seconds {args.segment_seconds} gives segments of {samples} samples, too short for "
            f"the STFT loss's {max(STFT_LOSS_FFT_SIZES)}-point FFT: pass a longer segment (1 s is typical)."
        )
    batches = SegmentBatches(
        reader,
        train_split,
        args.audio_column,
        args.train_batch_size,
        samples,
        args.seed,
        accelerator.process_index,
    )
    noise_std = args.latent_noise_std if args.vocoder_input == "latents" else None

    # 2. Optimiser, schedule, EMA, and the checkpoint to continue from.
    optimizer = torch.optim.AdamW(
        vocoder.parameters(),
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        weight_decay=args.adam_weight_decay,
    )
    lr_scheduler = get_scheduler(
        args.lr_scheduler,
        optimizer,
        num_warmup_steps=args.lr_warmup_steps * accelerator.num_processes,
        num_training_steps=args.max_train_steps * accelerator.num_processes,
    )
    model, optimizer, lr_scheduler = accelerator.prepare(vocoder, optimizer, lr_scheduler)
    unwrapped = accelerator.unwrap_model(model)
    ema = EMAModel(unwrapped.parameters(), decay=args.ema_decay) if args.use_ema else None
    checkpoint = (
        find_checkpoint(accelerator, args.output_dir, args.resume_from_checkpoint, ema is not None)
        if args.resume_from_checkpoint
        else None
    )
    step = resume_from_checkpoint(accelerator, checkpoint, ema)
    last_step = min(args.max_train_steps, args.stop_after_steps or args.max_train_steps)
    if step > last_step:
        raise ValueError(
            f"The checkpoint resumed is at step {step}, past --stop_after_steps/--max_train_steps "
            f"{last_step}: resume {args.output_dir}/checkpoint-{last_step} (or a copy) instead."
        )
    log = StepLog(accelerator, args.output_dir, step)
    if accelerator.is_main_process and args.report_to != "none":
        accelerator.init_trackers(
            "cam_train_vocoder",
            config={k: v for k, v in vars(args).items() if isinstance(v, int | float | str | bool)},
        )
    validation_clips = []
    if validation_split is not None and args.num_validation_clips:
        picks = np.linspace(
            0, len(validation_split) - 1, min(args.num_validation_clips, len(validation_split))
        )
        validation_clips = [read_clip(reader, validation_split, args.audio_column, int(i)) for i in picks]
    griffin_lim = None  # its figures, measured at the first validation
    parameters = sum(p.numel() for p in unwrapped.parameters())
    logger.info(
        f"MelVocoder: {parameters:,} parameters ({4 * parameters / 1e6:.1f} MB in float32), receptive "
        f"field {unwrapped.receptive_field} mel frames; {len(train_split):,} training clips, "
        f"segments of {samples / codec.sample_rate:.2f} s.",
        main_process_only=True,
    )

    # 3. The loop: the sampler hands the dataset the numbers of the steps still to run.
    loader = torch.utils.data.DataLoader(
        batches,
        batch_size=None,
        sampler=range(step, last_step),
        num_workers=args.dataloader_num_workers,
    )
    progress = tqdm(total=last_step, initial=step, desc="training", disable=not accelerator.is_main_process)
    last_checkpoint = ([None] + [path for _, path in list_checkpoints(args.output_dir)])[-1]
    validation = None
    for batch in loader:
        audio = batch["audio"].to(accelerator.device)
        generator = step_generator(args.seed, step, accelerator.process_index, stream=1)
        with torch.no_grad():
            log_mel = vocoder_input(codec, audio, noise_std, generator)
        target = audio.reshape(-1, audio.shape[-1])
        with accelerator.autocast():
            decoded = model(log_mel)
        mel = mel_loss(codec, decoded, target)
        stft = multi_resolution_stft_loss(decoded, target)
        loss = args.mel_loss_weight * mel + args.stft_loss_weight * stft
        accelerator.backward(loss)
        grad_norm = accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        stop_if_not_finite(accelerator, loss, grad_norm, step + 1, last_checkpoint)
        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad()
        step += 1
        if ema is not None:
            ema.step(unwrapped.parameters())
        # The log counts latent frames of audio trained on, one row per channel.
        log.add_micro_batch(loss, torch.ones(target.shape[0], samples // codec.hop_length), batch["index"])
        epoch = step * args.train_batch_size * accelerator.num_processes // len(train_split)
        record = log.write_step(step, epoch, lr_scheduler.get_last_lr()[0], grad_norm)
        accelerator.log({"mel_l1": mel.item(), "mr_stft": stft.item()}, step=step)
        progress.update()
        progress.set_postfix(loss=f"{record['loss']:.4f}", mel=f"{mel.item():.3f}", stft=f"{stft.item():.3f}")
        if step % args.checkpointing_steps == 0 or step == last_step:
            last_checkpoint = save_checkpoint(
                accelerator, args.output_dir, step, args.checkpoints_total_limit
            )
        if validation_clips and (step % args.validation_steps == 0 or step == last_step):
            if ema is not None:
                ema.store(unwrapped.parameters())
                ema.copy_to(unwrapped.parameters())
            validation = validate(codec, unwrapped, validation_clips, griffin_lim)
            griffin_lim = validation["griffin_lim"]
            if ema is not None:
                ema.restore(unwrapped.parameters())
            if accelerator.is_main_process:
                with open(log.path, "a") as f:
                    f.write(json.dumps({"step": step, "validation": validation}) + "\n")
                logger.info(f"step {step}: {json.dumps(validation)}", main_process_only=True)
                accelerator.log(
                    {
                        f"validation/{decoder}/{name}": value
                        for decoder, row in validation.items()
                        for name, value in row.items()
                    },
                    step=step,
                )
        log.restart_clock()
    progress.close()

    # 4. The codec with the trained vocoder (EMA weights when kept).
    accelerator.wait_for_everyone()
    if ema is not None:
        ema.copy_to(unwrapped.parameters())
    losses = [record["loss"] for record in log.read() if "loss" in record]
    summary = {
        "steps": step,
        "final_train_loss": losses[-1] if losses else None,
        "validation": validation,
        "parameters": parameters,
    }
    if accelerator.is_main_process:
        codec.set_vocoder(unwrapped)
        codec.save_pretrained(os.path.join(args.output_dir, "autoencoder"))
        with open(os.path.join(args.output_dir, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
        print(
            f"Saved the codec with its vocoder to {os.path.join(args.output_dir, 'autoencoder')}: "
            f"{json.dumps(summary)}"
        )
    accelerator.end_training()
    return summary


if __name__ == "__main__":
    main()
