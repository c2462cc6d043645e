"""Generate audio with a CAMPipeline and write a WAV file and a spectrogram PNG per sample.

    python examples/generate.py --model path/or/org/cam-music --seconds 10 --output_dir outputs
    python examples/generate.py --model org/cam-music --prompt_audio intro.wav --seconds 20
    python examples/generate.py --random_tiny --output_dir outputs/demo     # no trained model needed

`--random_tiny` builds a small randomly initialised pipeline (and saves it next to the audio): it shows the whole
path from Backbone to WAV working, but its audio is noise-like, since nothing was trained.
"""

import argparse
import math
import os
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402

from cam_hf import CAMPipeline, MelAutoencoder  # noqa: E402
from cam_hf.sampler import DEFAULT_NUM_INFERENCE_STEPS  # noqa: E402
from cam_hf.testing_utils import random_pipeline  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="A saved CAMPipeline folder or a Hub id (needs network the first time).")
    source.add_argument("--random_tiny", action="store_true", help="Use a small randomly initialised pipeline.")
    parser.add_argument("--prompt_audio", help="An audio file (wav, flac, ogg) to continue.")
    parser.add_argument("--seconds", type=float, default=10.0, help="Length of the new audio, in seconds.")
    parser.add_argument("--num_waveforms", type=int, default=2, help="Waveforms to generate (per prompt).")
    parser.add_argument("--steps", type=int, default=DEFAULT_NUM_INFERENCE_STEPS,
                        help="Sampler flow steps per latent frame.")
    parser.add_argument("--inference_noise", type=float, default=None,
                        help="k_inf, noise mixed into each frame before it is fed back (default: the model's).")
    parser.add_argument("--seed", type=int, default=0, help="Seed; waveform i uses seed + i.")
    parser.add_argument("--output_dir", default="outputs", help="Where WAV and PNG files are written.")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                        help="dtype of the pipeline (the mel codec computes in float32 whatever it is cast to).")
    return parser.parse_args(argv)


def random_tiny_pipeline(seed: int) -> CAMPipeline:
    """A small pipeline with random weights on the default mel codec's full stacked latents (no PCA to fit)."""
    return random_pipeline(
        autoencoder=MelAutoencoder(n_mels=64, frames_per_latent=2, latent_dim=128),
        backbone_config=dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=384,
                             max_position_embeddings=128),
        sampler_config=dict(width=256, num_blocks=2),
        output_std=0.05,
        seed=seed,
    )


def load_prompt(path: str) -> tuple[np.ndarray, int]:
    if not os.path.isfile(path):
        raise ValueError(f"--prompt_audio {path!r} is not a file.")
    try:
        audio, sample_rate = sf.read(path, dtype="float32", always_2d=True)
    except Exception as error:  # soundfile raises several types for unreadable files
        raise ValueError(f"Could not read --prompt_audio {path!r} as audio: {error}") from error
    return audio.T, sample_rate  # [channels, samples]


def save_spectrogram(audio: np.ndarray, sample_rate: int, path: str, title: str) -> None:
    """A log-magnitude STFT of the first channel."""
    spectrum = torch.stft(torch.from_numpy(audio[0]), n_fft=1024, hop_length=256,
                          window=torch.hann_window(1024), return_complex=True).abs()
    decibels = 20 * torch.log10(spectrum.clamp(min=1e-5)).numpy()
    figure, axis = plt.subplots(figsize=(10, 4))
    duration = audio.shape[-1] / sample_rate
    image = axis.imshow(decibels, origin="lower", aspect="auto", cmap="magma",
                        extent=[0, duration, 0, sample_rate / 2000], vmin=decibels.max() - 80)
    axis.set(xlabel="time (s)", ylabel="frequency (kHz)", title=title)
    figure.colorbar(image, ax=axis, label="dB")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv=None) -> list[str]:
    args = parse_args(argv)
    os.makedirs(args.output_dir, exist_ok=True)
    if args.random_tiny:
        pipe = random_tiny_pipeline(args.seed)
        pipe.save_pretrained(os.path.join(args.output_dir, "random_tiny_pipeline"),
                             training_details="Not trained: random weights, for a smoke test.")
    else:
        pipe = CAMPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=False)
    if args.dtype != "float32":
        pipe.to(getattr(torch, args.dtype))

    prompt, prompt_rate = load_prompt(args.prompt_audio) if args.prompt_audio else (None, None)
    generators = [torch.Generator().manual_seed(args.seed + i) for i in range(args.num_waveforms)]
    start = time.perf_counter()
    audios = pipe(
        audio=prompt, sample_rate=prompt_rate, audio_length_in_s=args.seconds, num_inference_steps=args.steps,
        inference_noise=args.inference_noise, num_waveforms_per_prompt=args.num_waveforms, generator=generators,
    ).audios
    elapsed = time.perf_counter() - start
    print(f"Generated {args.num_waveforms} x {args.seconds:.1f} s in {elapsed:.1f} s "
          f"({args.num_waveforms * args.seconds / elapsed:.2f} s of audio per second).")

    written = []
    for i, audio in enumerate(audios):
        peak = float(np.abs(audio).max())
        if not math.isfinite(peak):
            raise ValueError(f"Waveform {i} holds NaN or inf samples: the model diverged.")
        if peak > 1.0:  # WAV holds [-1, 1]; an untrained model can exceed it
            print(f"waveform {i}: peak {peak:.2f} > 1, scaled down to fit the WAV range")
            audio = audio / peak
        stem = os.path.join(args.output_dir, f"sample_{i:02d}")
        sf.write(stem + ".wav", audio.T, pipe.sample_rate)
        save_spectrogram(audio, pipe.sample_rate, stem + ".png", f"sample {i} (seed {args.seed + i})")
        written += [stem + ".wav", stem + ".png"]
        print(f"wrote {stem}.wav and {stem}.png")
    return written


if __name__ == "__main__":
    main()
