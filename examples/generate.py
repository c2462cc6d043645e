"""Generate audio with a CAMPipeline and write a WAV file and a spectrogram PNG per sample.

    python examples/generate.py --seconds 10               # the model shipped in models/, into outputs/
    python examples/generate.py --instrument cello flute --guidance_scale 2 --num_waveforms 2
    python examples/generate.py --model path/or/org/cam-music --prompt_audio intro.wav --seconds 20

`examples/demo.py` makes a whole listening page (a test melody continued, one sample per instrument) instead.
"""

import argparse
import os
import time

import numpy as np
import soundfile as sf
import torch

from cam_hf import CAMPipeline
from cam_hf.listening import save_spectrogram, write_wav

SHIPPED_MODEL = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models", "cam-music21-small"
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model",
        default=SHIPPED_MODEL,
        help="A saved CAMPipeline folder or a Hub id (needs network the first time); default: the "
        "model shipped in this repository.",
    )
    parser.add_argument("--prompt_audio", help="An audio file (wav, flac, ogg) to continue.")
    parser.add_argument("--seconds", type=float, default=10.0, help="Length of the new audio, in seconds.")
    parser.add_argument("--num_waveforms", type=int, default=2, help="Waveforms to generate (per prompt).")
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="Sampler steps per latent frame (default: the model's own, its sampler config's).",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="The Sampler's starting-noise variance tau (default: the model's own, its sampler config's).",
    )
    parser.add_argument(
        "--inference_noise",
        type=float,
        default=None,
        help="k_inf, noise mixed into each frame before it is fed back (default: the model's).",
    )
    parser.add_argument(
        "--instrument",
        nargs="+",
        default=None,
        help="Instrument name(s) or id(s) for a model trained with instrument conditioning: one for "
        "every waveform, or one per waveform.",
    )
    parser.add_argument(
        "--guidance_scale",
        type=float,
        default=1.0,
        help="Classifier-free guidance on the instrument (1 = none).",
    )
    parser.add_argument("--seed", type=int, default=0, help="Seed; waveform i uses seed + i.")
    parser.add_argument("--output_dir", default="outputs", help="Where WAV and PNG files are written.")
    parser.add_argument(
        "--dtype",
        choices=["float32", "bfloat16"],
        default="float32",
        help="dtype of the pipeline (the mel codec computes in float32 whatever it is cast to).",
    )
    return parser.parse_args(argv)


def load_prompt(path: str) -> tuple[np.ndarray, int]:
    if not os.path.isfile(path):
        raise ValueError(f"--prompt_audio {path!r} is not a file.")
    try:
        audio, sample_rate = sf.read(path, dtype="float32", always_2d=True)
    except Exception as error:  # soundfile raises several types for unreadable files
        raise ValueError(f"Could not read --prompt_audio {path!r} as audio: {error}") from error
    return audio.T, sample_rate  # [channels, samples]


def main(argv=None) -> list[str]:
    args = parse_args(argv)
    os.makedirs(args.output_dir, exist_ok=True)
    pipe = CAMPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=False)
    if args.dtype != "float32":
        pipe.to(getattr(torch, args.dtype))

    instrument = args.instrument
    if instrument is not None:
        instrument = [int(name) if name.isdigit() else name for name in instrument]
        if len(instrument) == 1:
            instrument = instrument * args.num_waveforms
    prompt, prompt_rate = load_prompt(args.prompt_audio) if args.prompt_audio else (None, None)
    generators = [torch.Generator().manual_seed(args.seed + i) for i in range(args.num_waveforms)]
    start = time.perf_counter()
    audios = pipe(
        audio=prompt,
        sample_rate=prompt_rate,
        audio_length_in_s=args.seconds,
        num_inference_steps=args.steps,
        temperature=args.temperature,
        inference_noise=args.inference_noise,
        num_waveforms_per_prompt=args.num_waveforms,
        generator=generators,
        instrument=instrument,
        guidance_scale=args.guidance_scale,
    ).audios
    elapsed = time.perf_counter() - start
    print(
        f"Generated {args.num_waveforms} x {args.seconds:.1f} s in {elapsed:.1f} s "
        f"({args.num_waveforms * args.seconds / elapsed:.2f} s of audio per second)."
    )

    written = []
    for i, audio in enumerate(audios):
        stem = os.path.join(args.output_dir, f"sample_{i:02d}")
        gain = write_wav(stem + ".wav", audio, pipe.sample_rate)
        if gain != 1.0:
            print(f"waveform {i}: peak above 1, scaled by {gain:.2f} to fit the WAV range")
        label = f", {instrument[i]}" if instrument is not None else ""
        save_spectrogram(stem + ".png", audio, pipe.sample_rate, f"sample {i} (seed {args.seed + i}{label})")
        written += [stem + ".wav", stem + ".png"]
        print(f"wrote {stem}.wav and {stem}.png")
    return written


if __name__ == "__main__":
    main()
