"""What a build made and what it skipped, printed at the end and saved as `build_summary.json`."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field


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
            "clips_per_instrument": dict(sorted(self.clips_per_instrument.items(), key=lambda kv: int(kv[0].split()[0]))),
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
            lines.append("  clips per instrument: " + ", ".join(f"{k}: {v}" for k, v in data["clips_per_instrument"].items()))
        lines.append(f"Skipped {len(self.skips)}:" + "".join(f"\n  {v:>6}  {k}" for k, v in data["skips_per_cause"].items()))
        for where, reason in self.skips[:max_listed]:
            lines.append(f"    {where}: {reason}")
        if len(self.skips) > max_listed:
            lines.append(f"    ... and {len(self.skips) - max_listed} more, all listed in build_summary.json")
        return "\n".join(lines)


def read_summary(output_dir: str) -> dict:
    """Load the `build_summary.json` saved beside a built dataset."""
    with open(os.path.join(output_dir, "build_summary.json")) as f:
        return json.load(f)
