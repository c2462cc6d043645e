#!/usr/bin/env python
"""Encode an audio dataset into the latent dataset CAM trains on.

The built-in dataset (or one made from your audio by make_dataset.py) with the default mel codec:

    python examples/make_dataset.py --output_dir data/cam-music21-3k --max_pieces 3000 --num_workers 2
    python examples/encode_dataset.py --dataset_dir data/cam-music21-3k --output_dir data/cam-music21-3k-mel

With Music2Latent (the paper's autoencoder; `pip install cam_hf[music2latent]`, weights from the Hub or a
local music2latent.pt):

    python examples/encode_dataset.py --dataset_dir DIR --output_dir OUT --autoencoder music2latent \\
        --autoencoder_path path/to/music2latent.pt

The result is a DatasetDict of the same splits (load it with `cam_hf.data.load_latent_dataset(OUT)`): one row
per clip, `latents` [frames, dims], `num_frames`, and the clip's metadata; the fitted autoencoder is saved in
OUT/autoencoder, its statistics fitted on a sample of the TRAIN split only. An interrupted run resumes where
it stopped when started again with the same options; clips that fail to decode or encode are skipped and
listed in OUT/encode_summary.json.
"""

import argparse

from cam_hf.autoencoders.loading import AUTOENCODERS, DEFAULT_WEIGHTS
from cam_hf.data import encode_audio_dataset
from cam_hf.data.encode import LATENT_DTYPES, LATENT_NORMALIZATIONS


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the examples above as written and shows each option's default."""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=_HelpFormatter)
    parser.add_argument(
        "--dataset_dir", required=True, help="The audio dataset (a folder saved with save_to_disk)."
    )
    parser.add_argument(
        "--output_dir",
        required=True,
        help="Where to save the latent dataset: absent, empty, or an unfinished run to resume.",
    )
    parser.add_argument(
        "--autoencoder",
        choices=sorted(AUTOENCODERS),
        default="mel",
        help="mel: the weight-free log-mel codec (works offline); the others need their pretrained weights.",
    )
    parser.add_argument(
        "--autoencoder_path",
        default=None,
        help="A folder saved by the autoencoder's save_pretrained (a fitted codec, e.g. a trained "
        "pipeline's `autoencoder` folder: its statistics are kept), or pretrained weights in their own "
        "format. Defaults: "
        + ", ".join(f"{name}: {hub_id}" for name, hub_id in DEFAULT_WEIGHTS.items())
        + " (Hub ids: need network).",
    )
    parser.add_argument(
        "--batch_size",
        type=int,
        default=4,
        help="Clips encoded together (on CPU larger batches are slower; raise it for a GPU).",
    )
    parser.add_argument(
        "--fit_seconds",
        type=float,
        default=3600.0,
        help="Seconds of train audio, drawn at random, to fit the statistics on.",
    )
    parser.add_argument(
        "--latent_normalization",
        choices=LATENT_NORMALIZATIONS,
        default="per_channel",
        help="per_channel: every latent component to unit variance (the mel codec's PCA components: "
        "whitened). global: one scale for all components, which keep their relative sizes (mel codec only).",
    )
    parser.add_argument(
        "--refit_statistics",
        action="store_true",
        help="Fit the statistics even when --autoencoder_path holds a codec that has them.",
    )
    parser.add_argument(
        "--dtype",
        choices=LATENT_DTYPES,
        default="float16",
        help="Storage of the latents; float16 costs nothing measurable in reconstruction (docs/training.md).",
    )
    parser.add_argument("--seed", type=int, default=0, help="Seeds the sample the statistics are fitted on.")
    parser.add_argument(
        "--num_workers",
        type=int,
        default=1,
        help="Worker processes decoding and encoding (each loads the autoencoder).",
    )
    parser.add_argument(
        "--shard_size", type=int, default=256, help="Clips per shard: the unit of work and of resumption."
    )
    parser.add_argument("--audio_column", default="audio", help="The audio column of the dataset.")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    encode_audio_dataset(
        args.dataset_dir,
        args.output_dir,
        autoencoder=args.autoencoder,
        autoencoder_path=args.autoencoder_path,
        batch_size=args.batch_size,
        fit_seconds=args.fit_seconds,
        latent_normalization=args.latent_normalization,
        refit_statistics=args.refit_statistics,
        dtype=args.dtype,
        seed=args.seed,
        num_workers=args.num_workers,
        shard_size=args.shard_size,
        audio_column=args.audio_column,
    )


if __name__ == "__main__":
    main()
