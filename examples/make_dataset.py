#!/usr/bin/env python
"""Build a single-instrument music dataset for cam_hf, offline.

Built-in dataset (melodies of the music21 corpus rendered one General MIDI instrument at a time):

    python examples/make_dataset.py --output_dir data/cam-music21 --max_pieces 200

Your own audio (a folder of wav/flac/ogg files, any sample rate and channel count):

    python examples/make_dataset.py --output_dir data/my-music --audio_dir ~/music

The result is a `datasets.DatasetDict` saved with `save_to_disk` (load it with `datasets.load_from_disk`),
with a dataset card (README.md) and a build summary (build_summary.json) listing every skipped item.
"""

import argparse

from cam_hf.data import (
    AudioBuildConfig,
    CorpusBuildConfig,
    build_audio_dataset,
    build_corpus_dataset,
    push_to_hub,
)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the examples above as written and shows each option's default."""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=_HelpFormatter)
    parser.add_argument(
        "--output_dir", required=True, help="Where to save the dataset (must be empty or absent)."
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--audio_dir",
        default=None,
        help="Build from your own audio files in this folder instead of the music21 corpus.",
    )
    source.add_argument(
        "--hf_dataset",
        default=None,
        help="Build from a `datasets` dataset instead: a folder saved with save_to_disk, or a Hub id "
        "(needs network).",
    )
    parser.add_argument("--audio_column", default="audio", help="Audio column of --hf_dataset.")
    parser.add_argument("--clip_seconds", type=float, default=10.0, help="Length of every clip in seconds.")
    parser.add_argument("--sample_rate", type=int, default=44100, help="Sample rate of the clips in Hz.")
    parser.add_argument(
        "--num_workers", type=int, default=1, help="Worker processes that parse, render and encode."
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="Seeds tempi, instruments, velocities and splits."
    )
    parser.add_argument(
        "--validation_fraction", type=float, default=0.05, help="Share of pieces (or files) in validation."
    )
    parser.add_argument(
        "--test_fraction", type=float, default=0.05, help="Share of pieces (or files) in test."
    )
    parser.add_argument(
        "--max_silence",
        type=float,
        default=0.5,
        help="Drop clips with more than this fraction of silent 50 ms frames.",
    )
    parser.add_argument(
        "--push_to_hub", default=None, metavar="REPO_ID", help="Upload the result to this Hub dataset repo."
    )

    corpus = parser.add_argument_group("built-in dataset (music21 corpus)")
    corpus.add_argument(
        "--max_pieces", type=int, default=None, help="Use only the first N pieces: a quick subset."
    )
    corpus.add_argument(
        "--instruments",
        nargs="+",
        default=None,
        help="General MIDI programs or names, e.g. `40 violin 'french horn'`. "
        "Default: twelve from nine families.",
    )
    corpus.add_argument(
        "--instruments_per_melody", type=int, default=1, help="Different instruments rendering each melody."
    )
    corpus.add_argument(
        "--max_clips_per_melody", type=int, default=3, help="Clips kept per rendering (from its start)."
    )
    corpus.add_argument(
        "--min_tempo", type=float, default=60.0, help="Lowest tempo, quarter notes per minute."
    )
    corpus.add_argument(
        "--max_tempo", type=float, default=140.0, help="Highest tempo, quarter notes per minute."
    )
    corpus.add_argument(
        "--no_transpose",
        action="store_true",
        help="Do not transpose melodies by octaves into the instrument's range.",
    )
    corpus.add_argument(
        "--polyphony",
        choices=["reduce", "skip"],
        default="reduce",
        help="Parts with chords or overlapping notes: keep their top line, or skip them.",
    )
    corpus.add_argument(
        "--renderer",
        choices=["auto", "tinysoundfont", "fluidsynth"],
        default="auto",
        help="auto: the fluidsynth command with Debian's FluidR3_GM.sf2 when installed, else tinysoundfont "
        "with pretty_midi's TimGM6mb.sf2.",
    )
    corpus.add_argument("--soundfont", default=None, help="Path of an .sf2 SoundFont to render with.")
    corpus.add_argument(
        "--sources",
        nargs="+",
        default=None,
        help="Globs relative to the music21 corpus (e.g. 'bach/*' 'essenFolksong/*') or score files. "
        "Default: all.",
    )

    user = parser.add_argument_group("your own audio (--audio_dir, --hf_dataset)")
    user.add_argument(
        "--stereo", action="store_true", help="Keep the channels instead of mixing down to mono."
    )
    user.add_argument(
        "--max_clips_per_file", type=int, default=None, help="Keep at most this many clips per file."
    )
    user.add_argument("--no_normalize", action="store_true", help="Keep the original loudness of each clip.")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    shared = dict(
        clip_seconds=args.clip_seconds,
        sample_rate=args.sample_rate,
        seed=args.seed,
        validation_fraction=args.validation_fraction,
        test_fraction=args.test_fraction,
        max_silence=args.max_silence,
    )
    if args.audio_dir or args.hf_dataset:
        config = AudioBuildConfig(
            mono=not args.stereo,
            max_clips_per_file=args.max_clips_per_file,
            normalize=not args.no_normalize,
            audio_column=args.audio_column,
            **shared,
        )
        build_audio_dataset(
            args.audio_dir or args.hf_dataset, args.output_dir, config, num_workers=args.num_workers
        )
    else:
        config = CorpusBuildConfig(
            instruments=args.instruments,
            instruments_per_melody=args.instruments_per_melody,
            max_clips_per_melody=args.max_clips_per_melody,
            min_tempo=args.min_tempo,
            max_tempo=args.max_tempo,
            transpose=not args.no_transpose,
            polyphony=args.polyphony,
            renderer=args.renderer,
            soundfont=args.soundfont,
            sources=args.sources,
            max_pieces=args.max_pieces,
            **shared,
        )
        build_corpus_dataset(args.output_dir, config, num_workers=args.num_workers)
    if args.push_to_hub:
        print(f"Pushed: {push_to_hub(args.output_dir, args.push_to_hub)}")


if __name__ == "__main__":
    main()
