"""The dataset cards (`README.md` in the Hugging Face Hub's format) written beside every built audio dataset
and every latent dataset."""

from __future__ import annotations

import os
from collections import Counter

from datasets import DatasetDict
from huggingface_hub import DatasetCard, DatasetCardData

from .clips import PEAK_CEILING_DBFS, SILENCE_BELOW_DB, TARGET_RMS_DBFS
from .instruments import INSTRUMENTS
from .summary import BuildSummary

SOUNDFONT_LICENCES = {
    "TimGM6mb.sf2": "TimGM6mb by Tim Brechbill, shipped inside the `pretty_midi` wheel (MIT package); the "
    "SoundFont itself is distributed under the GPL-2.0 (as with MuseScore 1.x, which made it its default).",
    "FluidR3_GM.sf2": "FluidR3_GM by Frank Wen, MIT licence (Debian package `fluid-soundfont-gm`).",
}

CORPUS_LICENCE = (
    "The scores come from the corpus shipped with `music21` (BSD-3-Clause software). Per "
    "`music21/corpus/license.txt`, the encodings are distributed with the permission of their encoders and "
    "are believed to be out of copyright in the United States or licensed for use; some may not be used "
    "commercially, see the licences embedded in individual files and directories (e.g. the Essen folk songs, "
    "Ryan's Mammoth Collection, O'Neill's 1850)."
)


def _size_category(n: int) -> str:
    for limit, name in [
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
    ]:
        if n < limit:
            return name
    return "1M<n<10M"


def _table(header: tuple[str, ...], rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def make_card(
    dataset: DatasetDict, summary: BuildSummary | dict, pretty_name: str | None = None
) -> DatasetCard:
    """Write the card of a built dataset from its splits and its build summary.

    Args:
        dataset (`datasets.DatasetDict`): the built dataset.
        summary (`BuildSummary` or `dict`): the build's counts and options (a `dict` as in
            `build_summary.json`).
        pretty_name (`str`, *optional*): the title.

    Returns:
        `huggingface_hub.DatasetCard`
    """
    data = summary.to_dict() if isinstance(summary, BuildSummary) else summary
    options = data["options"]
    total = sum(len(split) for split in dataset.values())
    corpus = data["kind"] == "music21 corpus"
    pretty_name = pretty_name or (
        "cam_hf single-instrument music (music21 corpus, SoundFont-rendered)"
        if corpus
        else "cam_hf audio clips"
    )
    card_data = DatasetCardData(
        pretty_name=pretty_name,
        license="other",
        size_categories=_size_category(total),
        source_datasets=["original"],
        tags=["audio", "music", "single-instrument"] + (["synthetic", "midi", "music21"] if corpus else []),
    )
    split_rows = [
        (
            name,
            len(split),
            f"{data['hours_per_split'].get(name, 0):.2f}",
            data["pieces_per_split"].get(name, 0),
        )
        for name, split in dataset.items()
    ]
    sections = [f"# {pretty_name}", ""]
    if corpus:
        soundfonts = sorted({sf for split in dataset.values() for sf in set(split["soundfont"])}) or [
            os.path.basename(str(options.get("soundfont")))
        ]
        renderers = sorted({r for split in dataset.values() for r in set(split["renderer"])}) or [
            options.get("renderer")
        ]
        transposition = "not transposed"
        if options.get("transpose"):
            transposition = "transposed by octaves into the instrument's range"
        sections += [
            "Fixed-length clips of single instruments playing real melodies: the monophonic lines of the "
            "`music21` corpus (folk-tune collections, the single voices of Bach chorales and of Renaissance "
            "polyphony, ...) rendered one General MIDI instrument at a time with a SoundFont. Built offline "
            "by `cam_hf` (`python examples/make_dataset.py`) as training data for Continuous Autoregressive "
            "Models (arXiv 2411.18447).",
            "",
            "## How it was made",
            "",
            f"- Melodies: every part of every piece with at least {options.get('min_notes')} notes; parts "
            "with chords or overlapping notes "
            f"{'reduced to their top line' if options.get('polyphony') == 'reduce' else 'skipped'} (column "
            "`reduced_to_top_line`). Repeats are not expanded.",
            "- Tempo: the score's metronome mark when within "
            f"{options.get('min_tempo'):g}-{options.get('max_tempo'):g} quarter notes per minute, else drawn "
            "uniformly from that range (column `tempo_bpm`).",
            f"- Instruments: {options.get('instruments_per_melody')} per melody, drawn from the selection "
            f"below; melodies {transposition} (column `transpose`, semitones).",
            f"- Rendering: {', '.join(map(str, renderers))} with {', '.join(soundfonts)} at "
            f"{options.get('sample_rate')} Hz, mono.",
        ]
    else:
        sections += [
            f"Fixed-length clips cut from {data['kind']} by `cam_hf` (`python examples/make_dataset.py "
            "--audio_dir ...`).",
            "",
            "## How it was made",
            "",
            f"- Audio resampled to {options.get('sample_rate')} Hz, "
            f"{'mono' if options.get('mono', True) else 'channels kept'}.",
        ]
    sections += [
        f"- Clips: {options.get('clip_seconds'):g} s, consecutive, after trimming leading and trailing "
        f"silence (frames more than {SILENCE_BELOW_DB:g} dB under the recording's 95th-percentile level); "
        f"clips with more than {100 * options.get('max_silence', 0.5):g}% silent 50 ms frames dropped "
        f"({data['counts'].get('clips dropped: mostly silent', 0)} here).",
        f"- Loudness: each clip scaled to {TARGET_RMS_DBFS:g} dBFS RMS, peaks capped at "
        f"{PEAK_CEILING_DBFS:g} dBFS; stored as 16-bit FLAC bytes in an `Audio(decode=False)` column.",
        "- Splits by piece (no piece is in two splits), from a hash of the piece name and seed "
        f"{options.get('seed')}.",
        "",
        "## Contents",
        "",
        _table(("split", "clips", "hours", "pieces"), split_rows),
        "",
    ]
    if corpus:
        # Counted from the data itself, per split: what a user of the card wants to know.
        per_split = {name: Counter(split["instrument_program"]) for name, split in dataset.items()}
        programs = sorted(set().union(*per_split.values()))
        names = {i.program: i.name for i in INSTRUMENTS.values()}
        rows = [
            (
                f"{p} {names.get(p, '')}",
                *(per_split[name][p] for name in dataset),
                sum(c[p] for c in per_split.values()),
            )
            for p in programs
        ]
        sections += [_table(("instrument (GM program)", *dataset.keys(), "total"), rows), ""]
    if data["skips_per_cause"]:
        sections += [
            f"Skipped during the build ({len(data['skips'])}; every one is listed in `build_summary.json`):",
            "",
            _table(("cause", "count"), list(data["skips_per_cause"].items())),
            "",
        ]
    sections += [
        "## Usage",
        "",
        "```python",
        "from datasets import load_from_disk  # or load_dataset(<hub id>) once pushed",
        "from cam_hf.data import decode_audio",
        "",
        "ds = load_from_disk(PATH)",
        "audio, sample_rate = decode_audio(ds['train'][0]['audio'])  # soundfile: no torchcodec or ffmpeg "
        "needed",
        "```",
        "",
        "## Licences",
        "",
    ]
    if corpus:
        sections += [f"- Scores: {CORPUS_LICENCE}"]
        sections += [
            f"- SoundFont: {SOUNDFONT_LICENCES.get(sf, sf + ': see its own licence.')}" for sf in soundfonts
        ]
    else:
        sections += ["- The audio keeps the licence of its source files."]
    return DatasetCard(f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(sections) + "\n")


def write_card(output_dir: str, dataset: DatasetDict, summary: BuildSummary | dict) -> str:
    """Save the card as `output_dir/README.md` and return its path."""
    path = os.path.join(output_dir, "README.md")
    make_card(dataset, summary).save(path)
    return path


def make_latent_card(summary: dict, dataset_dir: str) -> DatasetCard:
    """The card of a latent dataset, from its encoding summary (`summarize_encoding`).

    Args:
        summary (`dict`): the encoding's summary, as in `encode_summary.json`.
        dataset_dir (`str`): the audio dataset encoded (only its folder name is written).

    Returns:
        `huggingface_hub.DatasetCard`
    """
    codec, options = summary["autoencoder"], summary["options"]
    name = os.path.basename(os.path.abspath(dataset_dir))
    rows = [
        (split, s["clips"], s["frames"], f"{s['hours']:.2f}", s["skipped"])
        for split, s in summary["splits"].items()
    ]
    text = f"""# Latents of {name}

Clips of the audio dataset `{name}` encoded by `cam_hf`'s {codec["class"]} (`python
examples/encode_dataset.py`): one row per clip, `latents` of shape `[num_frames, {codec["latent_dim"]}]`
({options["dtype"]}, {codec["frame_rate"]:.2f} frames per second of {codec["sample_rate"]} Hz audio), with the
clip's metadata. The fitted autoencoder is in `autoencoder/` (statistics {options["statistics"]};
normalisation {options["latent_normalization"]}): decode latents with it, train and generate with it.

{_table(("split", "clips", "frames", "hours", "skipped"), rows)}

```python
from cam_hf.data import load_latent_dataset

dataset, autoencoder = load_latent_dataset(PATH)
latents = dataset["train"].with_format("torch")[0]["latents"]   # [T, D]
audio = autoencoder.decode(latents[None])                         # [1, channels, T * hop_length]
```

The audio keeps the licence of its source dataset (see its card).
"""
    card_data = DatasetCardData(license="other", tags=["audio", "music", "latents", "cam_hf"])
    return DatasetCard(f"---\n{card_data.to_yaml()}\n---\n\n{text}")


def write_latent_card(output_dir: str, summary: dict, dataset_dir: str) -> str:
    """Save the card of a latent dataset as `output_dir/README.md` and return its path."""
    path = os.path.join(output_dir, "README.md")
    make_latent_card(summary, dataset_dir).save(path)
    return path
