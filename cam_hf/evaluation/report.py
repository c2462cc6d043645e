"""What an evaluation writes: `results.json` (every figure), `summary.md` (the tables a report quotes),
`fad_by_position.png` (every run by position) and, with instrument runs, `fad_by_instrument.png`.

Every path written is relative (to the working directory): results can be moved, shared and committed.
"""

from __future__ import annotations

import json
import os

import numpy as np

SUMMARY_FILE = "summary.md"
RESULTS_FILE = "results.json"
POSITION_PLOT_FILE = "fad_by_position.png"
INSTRUMENT_PLOT_FILE = "fad_by_instrument.png"


def relative_path(value: str) -> str:
    """
    `value` with an absolute path made relative to the working directory: a path (`/data/x` -> `../data/x`) or
    the path of a `kind:PATH` specification (`clap:/models/clap`); anything else (a Hub id, a name) as it is.
    """
    if os.path.isabs(value):
        return os.path.relpath(value)
    kind, separator, argument = value.partition(":")
    if separator and kind and os.path.isabs(argument):
        return f"{kind}:{os.path.relpath(argument)}"
    return value


def relative_paths(value):
    """`relative_path` applied to a string or to each string of a list; other values as they are."""
    if isinstance(value, str):
        return relative_path(value)
    if isinstance(value, list | tuple):
        return [relative_paths(item) for item in value]
    return value


def run_label(run: dict) -> str:
    """How tables and plots name a run: model, instrument, k_inf, steps, temperature (when not 1) and mode."""
    instrument = f" {run['instrument']}" if run.get("instrument") else ""
    temperature = f" tau={run['temperature']:g}" if run.get("temperature", 1.0) != 1.0 else ""
    steps = f"steps={run['num_inference_steps']}{temperature}"
    setting = f"k_inf={run['inference_noise']:g} {steps} {run['mode']}"
    return f"{run['model_name']}{instrument} {setting}"


def _fad(entry: dict) -> str:
    """Mean over seed sets, +- half their spread when there are several."""
    return (
        f"{entry['fad']:.3g} ± {entry['spread'] / 2:.2g}"
        if len(entry["values"]) > 1
        else f"{entry['fad']:.3g}"
    )


def _seed_spread(entry: dict) -> str:
    values = entry["values"]
    return (
        f"{entry['mean']:.2f} ± {(max(values) - min(values)) / 2:.2f}"
        if len(values) > 1
        else f"{entry['mean']:.2f}"
    )


def run_summary_line(run: dict) -> str:
    """One line per finished run: whole FAD (± half the seed spread), floor, rise; the pitch figures."""
    parts = [
        f"{name}: whole {_fad(f['whole'])} (floor {f['whole']['floor']['fad']:.3g}), last/first "
        f"{'-' if f['fad_ratio'] is None else format(f['fad_ratio'], '.2f')}, FAD_acc {f['fad_acc']:+.3g}"
        for name, f in run["fad"].items()
    ]
    if "real_pitch" in run:
        first, last, real = run["windows"][0], run["windows"][-1], run["real_pitch"]
        for name, label in (
            ("pitch_confidence", "pitch confidence"),
            ("pitch_changes_per_s", "pitch changes/s"),
        ):
            prompts = f", prompts {run['prompt_pitch'][name]['mean']:.2f}" if "prompt_pitch" in run else ""
            parts.append(
                f"{label} {first[name]['mean']:.2f} -> {last[name]['mean']:.2f} (real "
                f"{real[name]['mean']:.2f}, sets {real[name]['min']:.2f}-{real[name]['max']:.2f}{prompts})"
            )
    return f"{run_label(run)}: " + ", ".join(parts)


def _table(header: str, rows: list[str]) -> list[str]:
    return [header, "|---" * (header.count("|") - 1) + "|", *rows]


def _fad_row(figures: dict) -> str:
    """Whole FAD, its floor, first and last window, the window floor, last / first, FAD_acc."""
    first, last = figures["per_window"][0], figures["per_window"][-1]
    ratio = "" if figures["fad_ratio"] is None else f"{figures['fad_ratio']:.2f}"
    return (
        f" {_fad(figures['whole'])} | {figures['whole']['floor']['fad']:.3g} | {_fad(first)} | "
        f"{_fad(last)} | {first['floor']['fad']:.3g} | {ratio} | {figures['fad_acc']:+.3g} |"
    )


def _drift_row(run: dict) -> str:
    """Latent drift and, with the pitch track, the pitch figures (± half the seed spread), first -> last."""
    first, last = run["windows"][0], run["windows"][-1]
    row = (
        f" {first['latent']['mean_shift']:.3f} -> {last['latent']['mean_shift']:.3f} | "
        f"{first['latent']['std_ratio']:.2f} -> {last['latent']['std_ratio']:.2f} |"
    )
    if "real_pitch" in run:
        confidence, changes = run["real_pitch"]["pitch_confidence"], run["real_pitch"]["pitch_changes_per_s"]
        row += (
            f" {_seed_spread(first['pitch_confidence'])} -> {_seed_spread(last['pitch_confidence'])} "
            f"({confidence['mean']:.2f}) | {_seed_spread(first['pitch_changes_per_s'])} -> "
            f"{_seed_spread(last['pitch_changes_per_s'])}{_against_prompts(run)} | {changes['mean']:.2f} "
            f"({changes['min']:.2f}-{changes['max']:.2f}) |"
        )
    return row


def _against_prompts(run: dict) -> str:
    """For continuations: the prompts' own pitch changes per second, and how much of it the last window
    keeps."""
    if "prompt_pitch" not in run:
        return ""
    prompts = run["prompt_pitch"]["pitch_changes_per_s"]["mean"]
    last = run["windows"][-1]["pitch_changes_per_s"]["mean"]
    kept = f"{last / prompts:.2f}" if prompts > 0 else "-"
    return f" (prompts {prompts:.2f}; last / prompts {kept})"


def markdown_summary(results: dict) -> str:
    """The figures a report quotes: one FAD table per embedding, then latent drift and pitch, first window to
    last; a run per row."""
    runs = results["runs"]
    by_instrument = any(run.get("instrument") for run in runs)
    pitch = any("real_pitch" in run for run in runs)
    key_header = "| model | " + ("instrument | " if by_instrument else "") + "k_inf | steps | tau | mode |"

    def key(run: dict) -> str:
        instrument = f"{run['instrument'] or 'none'} | " if by_instrument else ""
        temperature = run.get("temperature", 1.0)  # results written before the temperature existed
        steps = f"{run['num_inference_steps']} | {temperature:g}"
        setting = f"{run['inference_noise']:g} | {steps} | {run['mode']}"
        return f"| {run['model_name']} | {instrument}{setting} |"

    reference = results["reference"]
    lines = [f"Command: `{results['command']}`", ""] if "command" in results else []
    lines.append(
        f"Reference: {reference['split']} split of {reference['source']} ({reference['num_clips']} "
        f"clips, {reference['seconds'] / 60:.0f} min). FAD: mean over seed sets ± half their "
        "spread."
    )
    fad_header = key_header + " whole | floor | first window | last window | window floor | last / first |"
    fad_header += " FAD_acc |"
    for embedding in results["embeddings"]:
        lines += ["", f"**{embedding['name']}** ({embedding['definition']})", ""]
        lines += _table(fad_header, [key(run) + _fad_row(run["fad"][embedding["name"]]) for run in runs])
    drift_header = key_header + " latent mean shift, first -> last window | latent std / real, first -> last"
    drift_header += " |"
    if pitch:
        drift_header += (
            " pitch confidence, first -> last (real) | pitch changes / s, first -> last | real "
            "pitch changes / s (range over real sets) |"
        )
    lines += ["", *_table(drift_header, [key(run) + _drift_row(run) for run in runs])]
    if pitch:
        lines += [
            "",
            "Pitch figures from CREPE-tiny's pitch track per window (docs/evaluation.md); the "
            "real value is that of held-out real windows of the run's reference, its range that of "
            "sets of as many windows as a seed set has samples. For continuations, `prompts` is the "
            "pitch changes per second of the prompts themselves (each sample's own, decoded as the "
            "samples are), and `last / prompts` the share of it the last window keeps.",
        ]
    return "\n".join(lines) + "\n"


def _plot_by_position(axis, x: list[float], figures: list[dict], key: str, **style):
    """A figure per window, its mean over seed sets with bars from the lowest set to the highest."""
    y = [figure[key] for figure in figures]
    low = [value - min(figure["values"]) for value, figure in zip(y, figures, strict=True)]
    high = [max(figure["values"]) - value for value, figure in zip(y, figures, strict=True)]
    return axis.errorbar(x, y, yerr=[low, high], marker="o", capsize=3, **style)[0].get_color()


def plot_fad_by_position(results: dict, path: str) -> None:
    """FAD against position (one panel per embedding), the latents' mean shift and spread, and with the pitch
    track, pitch confidence and pitch changes per second beside real windows' (dashed, their range shaded)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [e["name"] for e in results["embeddings"]]
    pitch = [
        ("pitch_confidence", "pitch confidence", "CREPE-tiny pitch confidence"),
        ("pitch_changes_per_s", "pitch changes / s", "pitch changes per second: does the music move?"),
    ]
    pitch = pitch if any("real_pitch" in run for run in results["runs"]) else []
    rows = len(names) + 2 + len(pitch)
    figure, axes = plt.subplots(rows, 1, figsize=(9, 3.2 * rows), squeeze=False)
    axes = axes[:, 0]
    fad_axes, latent_axes = axes[: len(names)], axes[len(names) : len(names) + 2]
    pitch_axes = axes[len(names) + 2 :]
    for run in results["runs"]:
        x = [window["centre_contexts"] for window in run["windows"]]
        label = run_label(run)
        color = None
        for axis, name in zip(fad_axes, names, strict=True):
            windows = run["fad"][name]["per_window"]
            color = _plot_by_position(axis, x, windows, "fad", label=label, color=color)
            for floor, linestyle in (("floor", "--"), ("codec_floor", ":")):
                if floor in windows[0]:
                    level = np.mean([w[floor]["fad"] for w in windows])
                    axis.axhline(level, linestyle=linestyle, linewidth=1, color=color, alpha=0.6)
        for axis, key in zip(latent_axes, ("mean_shift", "std_ratio"), strict=True):
            color = axis.plot(
                x, [w["latent"][key] for w in run["windows"]], marker="o", color=color, label=label
            )[0].get_color()
        for axis, (key, _, _) in zip(pitch_axes, pitch, strict=True):
            if "real_pitch" in run:
                _plot_by_position(axis, x, [w[key] for w in run["windows"]], "mean", label=label, color=color)
                real = run["real_pitch"][key]
                axis.axhline(real["mean"], color=color, linestyle="--", linewidth=1, alpha=0.6)
                axis.axhspan(real["min"], real["max"], color=color, alpha=0.08)
    for axis, embedding in zip(fad_axes, results["embeddings"], strict=True):
        note = "" if embedding["comparable_with_published_fad"] else " (not comparable with published FAD)"
        axis.set(
            ylabel="FAD",
            title=f"FAD by position, embedding {embedding['name']}{note}\n"
            "dashed: real floor; dotted: real audio through the codec",
        )
    latent_axes[0].set(ylabel="RMS mean shift", title="generated latents: per-dimension mean shift (RMS)")
    latent_axes[1].set(ylabel="std / real std", title="generated latents: spread relative to real latents")
    latent_axes[1].axhline(1.0, color="grey", linewidth=1)
    for axis, (_, ylabel, title) in zip(pitch_axes, pitch, strict=True):
        axis.set(ylabel=ylabel, title=f"{title}\ndashed: real held-out windows; shaded: range over real sets")
    for axis in axes:
        axis.set_xlabel("window centre (Backbone contexts)")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_fad_by_instrument(results: dict, path: str) -> None:
    """Per embedding, each instrument's whole-sample FAD beside its floor (black tick), and its rise last /
    first window; one bar per run setting (model, k_inf, steps, mode)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [run for run in results["runs"] if run.get("instrument")]
    instruments = list(dict.fromkeys(run["instrument"] for run in runs))
    variants = list(dict.fromkeys(run_label({**run, "instrument": None}) for run in runs))
    names = [e["name"] for e in results["embeddings"]]
    figure, axes = plt.subplots(
        len(names), 2, figsize=(max(9, 1.1 * len(instruments) * 2), 3.4 * len(names)), squeeze=False
    )
    width = 0.8 / len(variants)
    for row, name in enumerate(names):
        fad_axis, ratio_axis = axes[row]
        for v, variant in enumerate(variants):
            chosen = {
                run["instrument"]: run for run in runs if run_label({**run, "instrument": None}) == variant
            }
            x = (
                np.array([i for i, instrument in enumerate(instruments) if instrument in chosen])
                + (v - 0.4) * width
            )
            figures = [chosen[instrument]["fad"][name] for instrument in instruments if instrument in chosen]
            fad_axis.bar(x, [f["whole"]["fad"] for f in figures], width, align="edge", label=variant)
            fad_axis.plot(x + width / 2, [f["whole"]["floor"]["fad"] for f in figures], "k_", markersize=10)
            ratio_axis.bar(x, [f["fad_ratio"] or 0.0 for f in figures], width, align="edge", label=variant)
        fad_axis.set(ylabel="FAD, whole sample", title=f"{name}: FAD per instrument (black: its real floor)")
        ratio_axis.set(ylabel="last / first window", title=f"{name}: rise over the generation per instrument")
        ratio_axis.axhline(1.0, color="grey", linewidth=1)
        for axis in (fad_axis, ratio_axis):
            axis.set_xticks(range(len(instruments)), instruments, rotation=30, ha="right", fontsize=8)
            axis.grid(alpha=0.3, axis="y")
    axes[0, 0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_results(results: dict, output_dir: str) -> list[str]:
    """Write `results.json`, `summary.md`, `fad_by_position.png` and, with instrument runs,
    `fad_by_instrument.png` into `output_dir`; returns their paths."""
    os.makedirs(output_dir, exist_ok=True)
    paths = [os.path.join(output_dir, name) for name in (RESULTS_FILE, SUMMARY_FILE, POSITION_PLOT_FILE)]
    with open(paths[0], "w") as file:
        json.dump(results, file, indent=1)
    with open(paths[1], "w") as file:
        file.write(markdown_summary(results))
    plot_fad_by_position(results, paths[2])
    if any(run.get("instrument") for run in results["runs"]):
        paths.append(os.path.join(output_dir, INSTRUMENT_PLOT_FILE))
        plot_fad_by_instrument(results, paths[-1])
    return paths


__all__ = [
    "markdown_summary",
    "plot_fad_by_instrument",
    "plot_fad_by_position",
    "relative_path",
    "relative_paths",
    "run_label",
    "run_summary_line",
    "write_results",
]
