"""What a dataset build made and what it skipped (`build_summary.json`), and what an encoding into latents
made and skipped (`encode_summary.json`): both printed at the end and saved beside the dataset."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field

ENCODE_SUMMARY_FILE = "encode_summary.json"


@dataclass
class BuildSummary:
    """Counts of a build, every skip with its reason, and the clips per split and instrument.

    Args:
        kind (`str`): what the data came from (`"music21 corpus"`, `"audio folder"`, ...).
    """

    kind: str
    counts: Counter = field(default_factory=Counter)
    skips: list[tuple[str, str]] = field(default_factory=list)
    clips_per_split: Counter = field(default_factory=Counter)
    seconds_per_split: Counter = field(default_factory=Counter)
    clips_per_instrument: Counter = field(default_factory=Counter)
    pieces_per_split: dict[str, set] = field(default_factory=dict)
    options: dict = field(default_factory=dict)

    def add_clip(self, row: dict) -> None:
        """Count one written clip."""
        split = row["split"]
        self.clips_per_split[split] += 1
        self.seconds_per_split[split] += float(row["duration"])
        if "instrument_name" in row:
            self.clips_per_instrument[f"{row['instrument_program']} {row['instrument_name']}"] += 1
        self.pieces_per_split.setdefault(split, set()).add(row["piece"])

    @property
    def skips_per_cause(self) -> Counter:
        """Number of skips per cause (the reason up to its first colon)."""
        return Counter(reason.split(":")[0] for _, reason in self.skips)

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "options": self.options,
            "counts": {k: round(v, 2) if isinstance(v, float) else v for k, v in sorted(self.counts.items())},
            "clips_per_split": dict(self.clips_per_split),
            "hours_per_split": {k: round(v / 3600, 3) for k, v in self.seconds_per_split.items()},
            "pieces_per_split": {k: len(v) for k, v in self.pieces_per_split.items()},
            "clips_per_instrument": dict(
                sorted(self.clips_per_instrument.items(), key=lambda kv: int(kv[0].split()[0]))
            ),
            "skips_per_cause": dict(self.skips_per_cause.most_common()),
            "skips": [{"where": where, "reason": reason} for where, reason in self.skips],
        }

    def save(self, output_dir: str) -> str:
        """Write `build_summary.json` into `output_dir` and return its path."""
        path = os.path.join(output_dir, "build_summary.json")
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=1)
        return path

    def render(self, max_listed: int = 20) -> str:
        """A plain-text report: clips and hours per split, counts, skips per cause and the first skips."""
        data = self.to_dict()
        lines = [f"Built from {self.kind}:"]
        for split, clips in data["clips_per_split"].items():
            lines.append(
                f"  {split:<10} {clips:>7} clips  {data['hours_per_split'][split]:8.2f} h  "
                f"{data['pieces_per_split'][split]:>6} pieces"
            )
        lines += [f"  {k}: {v}" for k, v in data["counts"].items()]
        if self.clips_per_instrument:
            lines.append(
                "  clips per instrument: "
                + ", ".join(f"{k}: {v}" for k, v in data["clips_per_instrument"].items())
            )
        lines.append(
            f"Skipped {len(self.skips)}:"
            + "".join(f"\n  {v:>6}  {k}" for k, v in data["skips_per_cause"].items())
        )
        for where, reason in self.skips[:max_listed]:
            lines.append(f"    {where}: {reason}")
        if len(self.skips) > max_listed:
            lines.append(f"    ... and {len(self.skips) - max_listed} more, all listed in build_summary.json")
        return "\n".join(lines)


def read_summary(output_dir: str) -> dict:
    """Load the `build_summary.json` saved beside a built dataset."""
    with open(os.path.join(output_dir, "build_summary.json")) as f:
        return json.load(f)


def summarize_encoding(
    audio, records: dict, options: dict, reused: int, wall: float, fit_wall: float, autoencoder
) -> dict:
    r"""
    The summary of an encoding into latents (`encode_summary.json`).

    Args:
        audio (`datasets.DatasetDict`): the audio dataset encoded.
        records (`dict`): each shard's record, keyed by `(split, shard index)`.
        options (`dict`): the encoding's options.
        reused (`int`): shards done by an earlier, interrupted run.
        wall (`float`), fit_wall (`float`): seconds of the whole encoding and of fitting the codec's
            statistics.
        autoencoder (`AudioAutoencoderMixin`): the codec.

    Returns:
        `dict`: clips, frames, hours and skips per split and in total, time, and every skipped clip with its
            reason.
    """
    per_split = {}
    for name in audio:
        mine = [records[key] for key in sorted(records) if key[0] == name]
        per_split[name] = {
            "clips": sum(r["clips"] for r in mine),
            "frames": sum(r["frames"] for r in mine),
            "hours": round(sum(r["audio_seconds"] for r in mine) / 3600, 3),
            "skipped": sum(len(r["skips"]) for r in mine),
        }
    skips = [{"split": key[0], **skip} for key in sorted(records) for skip in records[key]["skips"]]
    encode_seconds = sum(r["encode_seconds"] for r in records.values())
    clips = sum(s["clips"] for s in per_split.values())
    return {
        "options": options,
        "autoencoder": {
            "class": type(autoencoder).__name__,
            "sample_rate": autoencoder.sample_rate,
            "latent_dim": autoencoder.latent_dim,
            "frame_rate": autoencoder.frame_rate,
        },
        "splits": per_split,
        "clips": clips,
        "frames": sum(s["frames"] for s in per_split.values()),
        "hours": round(sum(s["hours"] for s in per_split.values()), 3),
        "skipped": len(skips),
        "wall_seconds": round(wall, 1),
        "fit_seconds": round(fit_wall, 1),
        "shards": len(records),
        "shards_reused_from_an_earlier_run": reused,
        "encode_seconds_summed_over_shards": round(encode_seconds, 1),
        "clips_per_second_of_shard_time": round(clips / encode_seconds, 1) if encode_seconds else None,
        "skips": skips,
    }


def render_encoding_summary(summary: dict, max_listed: int = 20) -> str:
    """A plain-text report of an `encode_summary.json`: clips, frames and hours per split, time, every
    skip."""
    codec = summary["autoencoder"]
    lines = [
        f"Encoded with {codec['class']} ({codec['latent_dim']} dims, {codec['frame_rate']:.2f} frames/s, "
        f"{summary['options']['dtype']}):"
    ]
    for name, split in summary["splits"].items():
        lines.append(
            f"  {name:<10} {split['clips']:>7} clips  {split['frames']:>9} frames  {split['hours']:8.2f} h  "
            f"{split['skipped']} skipped"
        )
    lines.append(
        f"  total      {summary['clips']:>7} clips  {summary['frames']:>9} frames  "
        f"{summary['hours']:8.2f} h  in {summary['wall_seconds']:.1f} s "
        f"(fitting {summary['fit_seconds']:.1f} s; {summary['shards_reused_from_an_earlier_run']} of "
        f"{summary['shards']} shards from an earlier run)"
    )
    if summary["clips_per_second_of_shard_time"]:
        lines.append(
            f"  {summary['clips_per_second_of_shard_time']} clips/s per worker (decoding and encoding)"
        )
    lines.append(f"Skipped {summary['skipped']} clips:")
    for skip in summary["skips"][:max_listed]:
        lines.append(f"    {skip['split']}/{skip['index']} {skip['where']}: {skip['reason']}")
    if summary["skipped"] > max_listed:
        lines.append(
            f"    ... and {summary['skipped'] - max_listed} more, all listed in {ENCODE_SUMMARY_FILE}"
        )
    return "\n".join(lines)
