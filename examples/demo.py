#!/usr/bin/env python
"""Listen to the trained CAM shipped in this repository: one folder of WAV files, spectrograms and an
`index.html`.

    python examples/demo.py                               # the shipped model, into outputs/demo
    python examples/demo.py --model runs/my-cam --seconds 120 --guidance_scale 2

What it makes (each as WAV + spectrogram PNG, all shown with audio players in `index.html`):

1. a melody of the built-in dataset's *test split* (music21 corpus, rendered here and now with the SoundFont
   the dataset used, never seen in training): its first `--prompt_seconds` are the prompt, and the model
   continues it for `--seconds`, several times its training context, through the pipeline's sliding window;
2. the real prompt beside the continuation, and the real melody as it goes on, to compare;
3. one sample per instrument in `--instruments`, generated from nothing but the instrument's label.

Nothing is downloaded: the model loads from a folder, the melody comes from the music21 package's corpus.
"""

import argparse
import os
import time

import numpy as np
import torch

from cam_hf import CAMPipeline
from cam_hf.data import CorpusBuildConfig
from cam_hf.data.build_from_corpus import render_test_melody
from cam_hf.listening import (
    ListeningItem,
    ListeningSection,
    save_spectrogram,
    write_listening_page,
    write_wav,
)

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED_MODEL = os.path.join(REPOSITORY, "models", "cam-music21-small")
DEFAULT_INSTRUMENTS = [
    "violin",
    "flute",
    "acoustic_grand_piano",
    "trumpet",
    "church_organ",
    "acoustic_guitar_nylon",
]
# The built-in dataset's build (Makefile `DATA`): a piece's split depends on these, not on the data on disk.
DATASET_PIECES = 3000
DATASET_SAMPLE_RATE = 44100
DEFAULT_GUIDANCE_SCALE = 1.0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default=SHIPPED_MODEL, help="A CAMPipeline folder or Hub id (default: shipped)."
    )
    parser.add_argument(
        "--output_dir", default="outputs/demo", help="Where the WAVs, PNGs and index.html go."
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="Length of the continuation, in seconds.")
    parser.add_argument(
        "--prompt_seconds", type=float, default=10.0, help="Length of the real prompt, in seconds."
    )
    parser.add_argument(
        "--piece",
        default=None,
        help="A test-split piece of the music21 corpus (as in the dataset's `piece` column); default: "
        "the first test piece long enough for the prompt.",
    )
    parser.add_argument(
        "--instruments",
        nargs="*",
        default=DEFAULT_INSTRUMENTS,
        help="Instruments to sample (names the model knows); none to skip.",
    )
    parser.add_argument(
        "--instrument_seconds", type=float, default=12.0, help="Length of each instrument's sample."
    )
    parser.add_argument(
        "--guidance_scale",
        type=float,
        default=DEFAULT_GUIDANCE_SCALE,
        help="Classifier-free guidance on the instrument (1 = none); see the model card.",
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="Sampler flow steps per frame (default: pipeline's)."
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice).")
    return parser.parse_args(argv)


def built_in_test_split() -> CorpusBuildConfig:
    """The options of the built-in dataset the shipped model was trained on: they fix its test split."""
    return CorpusBuildConfig(
        max_pieces=DATASET_PIECES, sample_rate=DATASET_SAMPLE_RATE, renderer="tinysoundfont"
    )


def save(
    folder: str,
    stem: str,
    audio: np.ndarray,
    sample_rate: int,
    title: str,
    note: str = "",
    marker_s: float | None = None,
) -> ListeningItem:
    write_wav(os.path.join(folder, stem + ".wav"), audio, sample_rate)
    save_spectrogram(os.path.join(folder, stem + ".png"), audio, sample_rate, title, marker_s=marker_s)
    print(f"  wrote {stem}.wav and {stem}.png")
    return ListeningItem(title, stem + ".wav", stem + ".png", note)


def main(argv=None) -> str:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.seconds <= 0 or args.prompt_seconds <= 0:
        raise ValueError(
            f"--seconds and --prompt_seconds must be > 0, got {args.seconds} and {args.prompt_seconds}."
        )
    if args.model == SHIPPED_MODEL and not os.path.isfile(os.path.join(SHIPPED_MODEL, "model_index.json")):
        raise ValueError(
            f"The shipped model is missing from {SHIPPED_MODEL}: check out the whole repository."
        )
    os.makedirs(args.output_dir, exist_ok=True)
    started = time.perf_counter()

    print(f"[1/4] loading {args.model}")
    pipe = CAMPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=False, leave=False)
    rate, frame_rate = pipe.sample_rate, pipe.autoencoder.frame_rate
    context_s = (pipe.backbone.config.max_position_embeddings - 1) / frame_rate
    guidance = args.guidance_scale if pipe.backbone.config.instrument_names else 1.0
    options = {"guidance_scale": guidance} | ({"num_inference_steps": args.steps} if args.steps else {})
    print(f"      Backbone context {context_s:.1f} s, {rate} Hz audio, guidance scale {guidance:g}")

    print("[2/4] rendering a test-split melody of the built-in dataset (music21 corpus + SoundFont)")
    rendering = render_test_melody(
        built_in_test_split(),
        args.piece,
        args.prompt_seconds + 2.0,
        args.prompt_seconds + args.seconds,
        pipe.backbone.config.instrument_names,
    )
    real = rendering.audio
    prompt = real[: int(args.prompt_seconds * rendering.sample_rate)]
    instrument = rendering.instrument.name
    where = (
        f"{rendering.melody.piece} ({rendering.melody.part_name}), {instrument}, {rendering.tempo_bpm:g} bpm"
    )
    print(f"      {where}: {len(real) / rendering.sample_rate:.1f} s rendered")

    print(
        f"[3/4] continuing its first {args.prompt_seconds:g} s for {args.seconds:g} s "
        f"({args.seconds / context_s:.1f}x the Backbone's context)"
    )
    tick = time.perf_counter()
    known = pipe.backbone.config.instrument_names
    continuation = pipe(
        audio=prompt,
        sample_rate=rendering.sample_rate,
        audio_length_in_s=args.seconds,
        instrument=instrument if known else None,
        generator=torch.Generator().manual_seed(args.seed),
        **options,
    ).audios[0]
    continuation_s = time.perf_counter() - tick
    print(
        f"      {args.seconds:g} s of audio in {continuation_s:.1f} s "
        f"({args.seconds / continuation_s:.1f}x real time)"
    )
    # The prompt as the codec renders it: the best the model's own audio can sound.
    prompt_here = (
        pipe.autoencoder.decode(
            pipe.autoencoder.encode(torch.from_numpy(prompt)[None, None], sample_rate=rendering.sample_rate)
        )
        .squeeze(0)
        .numpy()
    )

    folder = args.output_dir
    marker = args.prompt_seconds
    melody_items = [
        save(
            folder,
            "continuation",
            np.concatenate([prompt_here, continuation], axis=-1),
            rate,
            f"prompt (real, {args.prompt_seconds:g} s) + continuation (generated, {args.seconds:g} s)",
            "The dashed line is where the real prompt ends and the model takes over.",
            marker,
        ),
        save(
            folder,
            "prompt_real",
            _resample(real[: len(prompt)], rendering.sample_rate, rate)[None],
            rate,
            "the real prompt",
            "As rendered by the SoundFont, before the codec.",
        ),
        save(
            folder,
            "prompt_through_codec",
            prompt_here,
            rate,
            "the real prompt through the codec",
            "Encoded and decoded by the model's autoencoder: the best the model's audio can sound.",
        ),
        save(
            folder,
            "melody_real",
            _resample(real, rendering.sample_rate, rate)[None],
            rate,
            "the real melody as it goes on",
            "What the piece really does after the prompt (rendered).",
            marker,
        ),
    ]

    sections = [
        ListeningSection(
            "A test-split melody, continued",
            f"{where}. The model heard the first {args.prompt_seconds:g} s and generated the next "
            f"{args.seconds:g} s, conditioned on {instrument}.",
            melody_items,
        )
    ]
    if args.instruments and known:
        print(f"[4/4] one {args.instrument_seconds:g} s sample per instrument: {', '.join(args.instruments)}")
        tick = time.perf_counter()
        generators = [torch.Generator().manual_seed(args.seed + 1 + i) for i in range(len(args.instruments))]
        samples = pipe(
            batch_size=len(args.instruments),
            instrument=args.instruments,
            generator=generators,
            audio_length_in_s=args.instrument_seconds,
            **options,
        ).audios
        print(
            f"      {len(args.instruments)} x {args.instrument_seconds:g} s "
            f"in {time.perf_counter() - tick:.1f} s"
        )
        items = [
            save(
                folder,
                f"instrument_{name}",
                audio,
                rate,
                f"{name} (generated)",
                f"From the start vector and the label {name!r} only.",
            )
            for name, audio in zip(args.instruments, samples, strict=True)
        ]
        sections.append(
            ListeningSection("One sample per instrument", "No prompt: only the instrument label.", items)
        )
    else:
        print(
            "[4/4] skipped: " + ("no --instruments" if known else "this model has no instrument conditioning")
        )

    page = write_listening_page(
        folder,
        "cam_hf: a trained CAM, listened to",
        f"Model: {args.model}. Generated on {os.cpu_count()} CPU core(s) "
        f"in {time.perf_counter() - started:.0f} s.",
        sections,
    )
    print(f"Done in {time.perf_counter() - started:.0f} s. Open {os.path.abspath(page)} in a browser.")
    return page


def _resample(audio: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    from cam_hf.utils.audio import resample_audio

    return resample_audio(audio, orig_rate, target_rate, axis=0).astype(np.float32)


if __name__ == "__main__":
    main()
