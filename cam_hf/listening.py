"""Audio a person can listen to and look at: WAV files, spectrograms, and one `index.html` that shows each
spectrogram beside an audio player. Used by the examples (`demo.py`, `generate.py`, `app.py`) and by
training's
validation."""

from __future__ import annotations

import html
import math
import os
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf


def write_wav(path: str, audio: np.ndarray, sample_rate: int) -> float:
    """Write `audio` as a 16-bit WAV file, scaled down if its peak exceeds 1 (WAV holds [-1, 1]).

    Args:
        path (`str`): the file to write.
        audio (`np.ndarray` of shape `(samples,)` or `(channels, samples)`): float audio.
        sample_rate (`int`): in Hz.

    Returns:
        `float`: the gain applied (1.0 unless the audio had to be scaled down).
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim not in (1, 2) or audio.shape[-1] == 0:
        raise ValueError(f"Expected audio of shape (samples,) or (channels, samples), got {audio.shape}.")
    peak = float(np.abs(audio).max())
    if not math.isfinite(peak):
        raise ValueError(
            f"The audio for {path!r} holds NaN or inf samples: the model diverged, nothing was written."
        )
    gain = 1.0 / peak if peak > 1.0 else 1.0
    sf.write(path, (audio * gain).T, sample_rate, subtype="PCM_16")
    return gain


def plot_spectrograms(
    rows: list[tuple[str, np.ndarray]],
    sample_rate: int,
    marker_s: float | None = None,
    max_hz: float = 8000.0,
):
    r"""
    Log-magnitude spectrograms of one or more signals, stacked on one time axis, with a dashed line at
    `marker_s` (where a continuation starts).

    Args:
        rows (`list` of `(title, audio)`): each `audio` of shape `(samples,)` or `(channels, samples)` (its
            first channel is drawn).
        sample_rate (`int`): in Hz.
        marker_s (`float`, *optional*): where to draw the dashed line, in seconds.
        max_hz (`float`, defaults to 8000): the highest frequency shown.

    Returns:
        `matplotlib.figure.Figure`: the figure (close it with `matplotlib.pyplot.close` when done).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monos = [(title, np.asarray(audio, dtype=np.float32)) for title, audio in rows]
    monos = [(title, audio if audio.ndim == 1 else audio[0]) for title, audio in monos]
    duration = max(len(audio) for _, audio in monos) / sample_rate
    figure, axes = plt.subplots(
        len(monos),
        1,
        figsize=(min(18.0, 4.0 + duration / 6), 0.6 + 2.6 * len(monos)),
        squeeze=False,
        sharex=True,
    )
    for axis, (title, audio) in zip(axes[:, 0], monos, strict=True):
        with np.errstate(divide="ignore"):  # digital silence is -inf dB, drawn as the floor
            axis.specgram(audio, NFFT=1024, Fs=sample_rate, noverlap=768, cmap="magma", vmin=-130)
        axis.set_ylim(0, min(max_hz, sample_rate / 2))
        axis.set(ylabel="Hz", title=title)
        if marker_s is not None:
            axis.axvline(marker_s, color="white", linestyle="--", linewidth=1.2)
    axes[-1, 0].set_xlabel("time (s)")
    figure.tight_layout()
    return figure


def save_spectrogram(
    path: str,
    audio: np.ndarray,
    sample_rate: int,
    title: str,
    marker_s: float | None = None,
    max_hz: float = 8000.0,
) -> None:
    """A log-magnitude spectrogram of the first channel as a PNG (`plot_spectrograms` of one signal)."""
    import matplotlib.pyplot as plt

    figure = plot_spectrograms([(title, audio)], sample_rate, marker_s, max_hz)
    figure.savefig(path, dpi=80)
    plt.close(figure)


@dataclass
class ListeningItem:
    """One entry of a listening page: a WAV file and its spectrogram, both relative to the page's folder."""

    title: str
    wav: str
    png: str
    note: str = ""


@dataclass
class ListeningSection:
    heading: str
    text: str = ""
    items: list[ListeningItem] = field(default_factory=list)


def write_listening_page(folder: str, title: str, intro: str, sections: list[ListeningSection]) -> str:
    """Write `folder/index.html`: every spectrogram with an audio player beside it. Returns the page's
    path."""
    for section in sections:
        for item in section.items:
            for name in (item.wav, item.png):
                if not os.path.isfile(os.path.join(folder, name)):
                    raise ValueError(
                        f"{name!r} is not a file in {folder!r}: write the audio before the page."
                    )
    escape = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1400px;margin:2em auto;color:#222}"
        ".item{display:flex;align-items:center;gap:1.5em;margin:1em 0;border-top:1px solid #ddd;"
        "padding-top:1em}"
        ".item img{max-width:1000px;width:70%}.meta{min-width:260px}small{color:#555}</style></head><body>",
        f"<h1>{escape(title)}</h1><p>{escape(intro)}</p>",
    ]
    for section in sections:
        parts.append(f"<h2>{escape(section.heading)}</h2>")
        if section.text:
            parts.append(f"<p>{escape(section.text)}</p>")
        for item in section.items:
            parts.append(
                f"<div class='item'><div class='meta'><b>{escape(item.title)}</b><br>"
                f"<audio controls preload='none' src='{escape(item.wav)}'></audio><br>"
                f"<small>{escape(item.note)}</small></div>"
                f"<img src='{escape(item.png)}' alt='spectrogram of {escape(item.title)}'></div>"
            )
    parts.append("</body></html>")
    path = os.path.join(folder, "index.html")
    with open(path, "w") as f:
        f.write("\n".join(parts))
    return path
