#!/usr/bin/env python
"""Train a Continuous Autoregressive Model (CAM, arXiv 2411.18447) with 🤗 Accelerate.

    # a latent dataset made by examples/encode_dataset.py (or an audio dataset: encoded once, then cached)
    accelerate launch examples/train.py --dataset_dir data/cam-music21-mel --output_dir runs/cam-small \\
        --preset small --conditioning instrument --max_train_steps 20000 --report_to tensorboard
    # one process on this machine, no `accelerate config` needed:
    python examples/train.py --dataset_dir data/cam-music21-mel --output_dir runs/cam-small --preset tiny
    # continue exactly where a run stopped (killed, out of time, ...):
    python examples/train.py ... --resume_from_checkpoint latest
    # fine-tune a saved pipeline on your own music (encoded with that pipeline's autoencoder):
    python examples/train.py --pretrained_model_name_or_path models/cam-music21-small \\
        --dataset_dir data/my-music-latents --output_dir runs/my-cam --max_train_steps 2000 \\
        --learning_rate 1e-4

What a step does: draw a crop of up to the Backbone's context from each clip (clips are read from the
dataset's memory-mapped files; every crop begins with the learned start vector, as the pipeline's sliding
window does at generation), corrupt the Backbone's inputs with noise k ~ U(0, k_max), and train the Sampler
with rectified flow on the clean next frames (`cam_hf.CAMForTraining`).

Exact resume: the data order is Accelerate's seedable sampler, a permutation seeded by (seed, epoch); crops,
noise levels, noises, flow times and label dropout come from a generator seeded by (seed, micro-step,
process). `save_state` keeps the model, optimizer, LR scheduler, RNG states and EMA; `skip_first_batches`
re-enters the epoch at the right batch. A run killed at any point and resumed logs the same losses, step for
step, as a run never stopped. A corrupt checkpoint is named, kept, and passed over for the newest whole one.

Output folder: `checkpoint-STEP/` (Accelerate states), `train_log.jsonl` (one line per optimiser step),
`validation/` (WAV + spectrogram PNG), `logs/` (TensorBoard), and at the end the trained `CAMPipeline` (loads
with `CAMPipeline.from_pretrained(output_dir)`) with its model card. See docs/training.md.
"""

import argparse
import json
import os
import sys

import torch
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.logging import get_logger
from accelerate.utils import ProjectConfiguration, set_seed
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm
from transformers.optimization import get_wsd_schedule

from cam_hf import CAMForTraining, CAMPipeline
from cam_hf.data import check_same_autoencoder, load_or_encode_latent_dataset
from cam_hf.training import (
    FINE_TUNING_BACKBONE_FIELDS,
    SHORT_CONTEXT_FIELDS,
    LatentClips,
    StepLog,
    check_weights_in_sync,
    choose_precision,
    collate_clips,
    data_seed,
    few_step_fields,
    find_checkpoint,
    fine_tuning_backbone_and_sampler,
    hardware_name,
    list_checkpoints,
    new_backbone_and_sampler,
    parse_training_args,
    random_crops,
    resolve_training_defaults,
    resume_from_checkpoint,
    run_validation,
    save_checkpoint,
    save_trained_pipeline,
    step_generator,
    stop_if_not_finite,
    summarize_run,
    training_details,
)

logger = get_logger(__name__)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return parse_training_args(argv, description=__doc__)


def load_pretrained(path: str | None) -> CAMPipeline | None:
    if path is None:
        return None
    try:
        return CAMPipeline.from_pretrained(path)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"--pretrained_model_name_or_path {path!r} is not a saved CAMPipeline ({error}): "
            "pass a folder written by CAMPipeline.save_pretrained (e.g. "
            "models/cam-music21-small) or a Hub id."
        ) from error


def training_instruments(args: argparse.Namespace, split, pretrained: CAMPipeline | None) -> list[str] | None:
    """The instrument labels the model is conditioned on: the pipeline's when fine-tuning, else the data's."""
    has_column = args.instrument_column in split.column_names
    if pretrained is None:
        if args.conditioning != "instrument":
            return None
        if not has_column:
            raise ValueError(
                f"--conditioning instrument needs the column {args.instrument_column!r}; the "
                f"dataset has {split.column_names}."
            )
        return sorted(split.unique(args.instrument_column))
    names = pretrained.backbone.config.instrument_names
    if names is not None and not has_column:
        logger.info(
            f"The dataset has no {args.instrument_column!r} column: its clips train as 'no "
            "instrument' (the unconditional model).",
            main_process_only=True,
        )
    return names


def read_json(path: str | None) -> dict:
    if path is None:
        return {}
    with open(path) as f:
        return json.load(f)


def build_model(
    args: argparse.Namespace,
    latent_dim: int,
    instrument_names: list[str] | None,
    pretrained: CAMPipeline | None,
) -> CAMForTraining:
    kept_steps = pretrained.sampler.config.num_inference_steps if pretrained is not None else None
    few_step = few_step_fields(
        args.few_step_objective, args.default_inference_steps, args.max_shortcut_steps, kept_steps
    )
    sampler_fields = {"time_distribution": args.time_distribution, **few_step}
    if args.default_temperature is not None:
        sampler_fields["temperature"] = args.default_temperature
    noise_fields = {name: getattr(args, name) for name in FINE_TUNING_BACKBONE_FIELDS}
    short_context = {name: getattr(args, name) for name in SHORT_CONTEXT_FIELDS}
    if pretrained is not None:
        backbone, sampler = fine_tuning_backbone_and_sampler(
            pretrained.backbone,
            pretrained.sampler,
            args.context_frames,
            noise_fields,
            sampler_fields,
            short_context if args.short_context_frames else None,
        )
    else:
        short_context["short_context_frames"] = args.short_context_frames or 0
        backbone_fields = {
            **read_json(args.backbone_config),
            **noise_fields,
            **short_context,
            "instrument_names": instrument_names,
            "condition_on_noise_level": args.condition_on_noise_level,
        }
        sizes = {"width": args.sampler_width, "num_blocks": args.sampler_blocks}
        sampler_fields = {
            "prediction_type": args.prediction_type,
            **sampler_fields,
            **read_json(args.sampler_config),
            **{name: v for name, v in sizes.items() if v},
        }
        backbone, sampler = new_backbone_and_sampler(
            latent_dim, args.preset, args.context_frames, backbone_fields, sampler_fields
        )
    if args.gradient_checkpointing:
        backbone.gradient_checkpointing_enable()
    if args.freeze_backbone:
        backbone.requires_grad_(False)
    return CAMForTraining(
        backbone.train(),
        sampler.train(),
        sampler_batch_mul=args.sampler_batch_mul,
        instrument_dropout=args.instrument_dropout,
        shortcut_fraction=args.shortcut_fraction,
    )


def learning_rate_schedule(args: argparse.Namespace, optimizer: torch.optim.Optimizer, num_processes: int):
    """The --lr_scheduler. The prepared scheduler steps once per process at each optimiser step, as in
    diffusers' examples, so its lengths are counted in process steps."""
    warmup, total = args.lr_warmup_steps * num_processes, args.max_train_steps * num_processes
    if args.lr_scheduler == "warmup_stable_decay":
        decay = (args.lr_decay_steps or max(1, args.max_train_steps // 5)) * num_processes
        return get_wsd_schedule(
            optimizer, num_warmup_steps=warmup, num_decay_steps=decay, num_training_steps=total
        )
    return get_scheduler(args.lr_scheduler, optimizer, num_warmup_steps=warmup, num_training_steps=total)


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    pretrained = load_pretrained(args.pretrained_model_name_or_path)
    resolve_training_defaults(args, pretrained)
    precision, why = choose_precision(args.mixed_precision)
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=ProjectConfiguration(
            project_dir=args.output_dir, logging_dir=os.path.join(args.output_dir, args.logging_dir)
        ),
        # Each epoch's order: a permutation seeded by (seed, epoch), the same on every process and on resume.
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=data_seed(args.seed)),
    )
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != accelerator.num_processes:
        # Without this check each process would train alone, and all of them would write one output folder.
        raise RuntimeError(
            f"{launched} processes were launched but Accelerate sees "
            f"{accelerator.num_processes}: on CPUs, launch with `ACCELERATE_USE_CPU=1 "
            "accelerate launch --multi_gpu --num_processes N examples/train.py ...`."
        )
    logger.info(f"Precision: {'fp32' if precision == 'no' else precision} ({why}).", main_process_only=True)
    set_seed(args.seed)  # model initialisation; everything random in a step has its own generator
    if accelerator.is_main_process:
        os.makedirs(args.output_dir, exist_ok=True)
        with open(os.path.join(args.output_dir, "train_args.json"), "w") as f:
            json.dump(dict(vars(args), precision=precision), f, indent=1)

    # 1. Data: clips read from the memory-mapped latent dataset (an audio dataset is encoded first, once).
    codec = pretrained.autoencoder if pretrained is not None else args.autoencoder
    codec_name = "pretrained" if pretrained is not None else args.autoencoder
    cache = args.latent_cache_dir or f"{args.dataset_dir.rstrip('/')}-latents-{codec_name}"
    with accelerator.main_process_first():
        dataset, autoencoder, dataset_path = load_or_encode_latent_dataset(
            args.dataset_dir, cache, codec, args.autoencoder_path
        )
    if args.train_split not in dataset:
        raise ValueError(
            f"The dataset at {dataset_path!r} has no {args.train_split!r} split; it has {sorted(dataset)}."
        )
    if pretrained is not None:
        check_same_autoencoder(
            autoencoder, pretrained.autoencoder, dataset_path, args.pretrained_model_name_or_path
        )
        autoencoder = pretrained.autoencoder  # the same latents; the pipeline's decoding settings are kept
    train_split = dataset[args.train_split]
    instrument_names = training_instruments(args, train_split, pretrained)
    has_column = args.instrument_column in train_split.column_names
    column = args.instrument_column if instrument_names and has_column else None
    train_clips = LatentClips(train_split, column, instrument_names)
    validation_clips = (
        LatentClips(dataset[args.validation_split], column, instrument_names)
        if args.validation_split in dataset
        else None
    )
    dataloader = torch.utils.data.DataLoader(
        train_clips,
        batch_size=args.train_batch_size,
        shuffle=True,
        collate_fn=collate_clips,
        num_workers=args.dataloader_num_workers,
        drop_last=True,
    )
    if len(dataloader) == 0:
        raise ValueError(
            f"The train split has {len(train_clips)} clips, fewer than --train_batch_size "
            f"{args.train_batch_size}: lower the batch size."
        )

    # 2. Model, optimiser, schedule, EMA, and the checkpoint to continue from.
    model = build_model(args, autoencoder.latent_dim, instrument_names, pretrained)
    context_frames = model.backbone.config.max_position_embeddings - 1
    trainable = [p for p in model.parameters() if p.requires_grad]
    short_context = model.backbone.short_context
    short_context_params = set(short_context.parameters()) if short_context is not None else set()
    groups = [
        {"params": [p for p in trainable if p not in short_context_params]},
        {
            "params": [p for p in trainable if p in short_context_params],
            "lr": args.short_context_learning_rate or args.learning_rate,
        },
    ]
    optimizer = torch.optim.AdamW(
        [group for group in groups if group["params"]],
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        weight_decay=args.adam_weight_decay,
    )
    lr_scheduler = learning_rate_schedule(args, optimizer, accelerator.num_processes)
    model, optimizer, dataloader, lr_scheduler = accelerator.prepare(
        model, optimizer, dataloader, lr_scheduler
    )
    unwrapped = accelerator.unwrap_model(model)
    ema = EMAModel(unwrapped.parameters(), decay=args.ema_decay) if args.use_ema else None
    checkpoint = (
        find_checkpoint(accelerator, args.output_dir, args.resume_from_checkpoint, ema is not None)
        if args.resume_from_checkpoint
        else None
    )
    step = resume_from_checkpoint(accelerator, checkpoint, ema)
    log = StepLog(accelerator, args.output_dir, step)
    if accelerator.is_main_process and args.report_to != "none":
        accelerator.init_trackers(
            "cam_train",
            config={k: v for k, v in vars(args).items() if isinstance(v, int | float | str | bool)},
        )
    tracker = (
        accelerator.get_tracker("tensorboard", unwrap=True)
        if args.report_to in ("tensorboard", "all") and accelerator.is_main_process
        else None
    )
    logger.info(
        f"{sum(p.numel() for p in unwrapped.parameters()):,} parameters; {len(train_clips):,} "
        f"training clips; {len(dataloader)} micro-batches per epoch per process; "
        f"{accelerator.num_processes} process(es).",
        main_process_only=True,
    )

    # 3. The loop. `micro_step` counts micro-batches: the checkpoint of step s resumes at s * accumulation.
    micro_step = step * args.gradient_accumulation_steps
    last_step = min(args.max_train_steps, args.stop_after_steps or args.max_train_steps)
    if step > last_step:
        # Saving now would label a later model as the one at `last_step`.
        raise ValueError(
            f"The checkpoint resumed is at step {step}, past "
            f"--stop_after_steps/--max_train_steps {last_step}: resume from "
            f"{args.output_dir}/checkpoint-{last_step} (or a copy) instead."
        )
    audio_options = None
    if args.num_validation_prompts or args.num_validation_samples:
        audio_options = {
            "num_prompts": args.num_validation_prompts,
            "num_samples": args.num_validation_samples,
            "seconds": args.validation_seconds,
            "num_inference_steps": args.validation_inference_steps,
        }
    progress = tqdm(total=last_step, initial=step, desc="training", disable=not accelerator.is_main_process)
    last_checkpoint = ([None] + [path for _, path in list_checkpoints(args.output_dir)])[-1]
    model.train()
    while step < last_step:
        epoch, skip = divmod(micro_step, len(dataloader))
        dataloader.set_epoch(epoch)  # the seedable sampler's permutation of this epoch
        batches = accelerator.skip_first_batches(dataloader, skip) if skip else dataloader
        for batch in batches:
            crop_generator = step_generator(args.seed, micro_step, accelerator.process_index, stream=0)
            generator = step_generator(
                args.seed, micro_step, accelerator.process_index, stream=1, device=accelerator.device
            )
            crops, mask = random_crops(
                batch["latents"].cpu(),
                batch["lengths"].cpu(),
                context_frames,
                args.short_crop_fraction,
                crop_generator,
            )
            with accelerator.accumulate(model):
                output = model(
                    crops.to(accelerator.device),
                    attention_mask=mask.to(accelerator.device),
                    generator=generator,
                    instrument_ids=batch.get("instrument_ids"),
                )
                accelerator.backward(output.loss)
                grad_norm = None
                if accelerator.sync_gradients:
                    grad_norm = accelerator.clip_grad_norm_(trainable, args.max_grad_norm)
                    stop_if_not_finite(accelerator, output.loss, grad_norm, step + 1, last_checkpoint)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()
            micro_step += 1
            log.add_micro_batch(output.loss, mask, batch["index"])
            if not accelerator.sync_gradients:
                continue

            # One optimiser step done.
            step += 1
            if ema is not None:
                ema.step(unwrapped.parameters())
            record = log.write_step(step, epoch, lr_scheduler.get_last_lr()[0], grad_norm)
            progress.update()
            progress.set_postfix(
                loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}", fps=f"{record['frames_per_s']:.0f}"
            )
            if step % args.checkpointing_steps == 0 or step == last_step:
                last_checkpoint = save_checkpoint(
                    accelerator, args.output_dir, step, args.checkpoints_total_limit
                )
            if validation_clips is not None and (step % args.validation_steps == 0 or step == last_step):
                run_validation(
                    accelerator,
                    unwrapped,
                    ema,
                    autoencoder,
                    validation_clips,
                    args.output_dir,
                    step,
                    args.train_batch_size,
                    args.seed,
                    audio_options,
                    tracker,
                )
            log.restart_clock()
            if step >= last_step:
                break
    progress.close()

    # 4. The trained pipeline (EMA weights when kept), its model card, and the summary.
    accelerator.wait_for_everyone()
    check_weights_in_sync(accelerator, unwrapped)
    if ema is not None:
        ema.copy_to(unwrapped.parameters())
    summary = None
    if accelerator.is_main_process:
        batch_clips = args.train_batch_size * args.gradient_accumulation_steps
        summary = summarize_run(
            log.read(),
            train_clips,
            validation_clips,
            unwrapped,
            context_frames,
            autoencoder.frame_rate,
            batch_clips,
            hardware_name(accelerator),
        )
        details = training_details(
            summary,
            dataset_path,
            "python examples/train.py " + " ".join(argv),
            args.ema_decay if args.use_ema else None,
        )
        save_trained_pipeline(
            unwrapped,
            autoencoder,
            args.output_dir,
            summary,
            details,
            args.hub_model_id if args.push_to_hub else None,
            args.hub_token,
        )
        validation_loss = summary["final_validation_loss"]
        print(
            f"Saved the trained CAMPipeline to {args.output_dir}: final training loss "
            f"{summary['final_train_loss']:.4f}, validation loss "
            f"{'not measured' if validation_loss is None else validation_loss}."
        )
    # Free the DDP wrapper, wait, then end the process group, on every process together: left to interpreter
    # exit, freeing the wrapper's Reducer can deadlock with Gloo's worker thread over the GIL.
    model, optimizer, dataloader, lr_scheduler = accelerator.free_memory(
        model, optimizer, dataloader, lr_scheduler
    )
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return summary


if __name__ == "__main__":
    main()
