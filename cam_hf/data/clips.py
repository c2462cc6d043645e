"""Turn a long recording into fixed-length, loudness-normalised clips, and store them as FLAC bytes.

Shared by the built-in (rendered) dataset and by users' own audio, so both give the same kind of clips.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np

# Loudness target of every clip: RMS of -20 dBFS, with peaks capped at -1 dBFS (a clip whose peaks would
# exceed the cap at the RMS target ends up quieter than -20 dBFS rather than clipped).
TARGET_RMS_DBFS = -20.0
PEAK_CEILING_DBFS = -1.0
# Frames more than this far below the recording's loud level count as silence.
SILENCE_BELOW_DB = 40.0
FRAME_SECONDS = 0.05


def _frame_rms_db(audio: np.ndarray, frame: int) -> np.ndarray:
    """RMS level in dB of consecutive non-overlapping frames of a mono or [samples, channels] array."""
    mono = audio if audio.ndim == 1 else audio.mean(axis=1)
    n = len(mono) // frame
    if n == 0:
        return (
            np.full(1, -np.inf)
            if len(mono) == 0
            else np.array([20 * np.log10(np.sqrt(np.mean(mono**2)) + 1e-12)])
        )
    frames = mono[: n * frame].reshape(n, frame).astype(np.float64)
    return 20 * np.log10(np.sqrt(np.mean(frames**2, axis=1)) + 1e-12)


def silence_threshold_db(audio: np.ndarray, sample_rate: int) -> float:
    """Level under which a frame is silent: `SILENCE_BELOW_DB` below the 95th percentile frame level."""
    levels = _frame_rms_db(audio, max(1, int(FRAME_SECONDS * sample_rate)))
    return float(np.percentile(levels, 95)) - SILENCE_BELOW_DB


def silent_fraction(audio: np.ndarray, sample_rate: int, threshold_db: float) -> float:
    """Fraction of 50 ms frames of `audio` quieter than `threshold_db`."""
    levels = _frame_rms_db(audio, max(1, int(FRAME_SECONDS * sample_rate)))
    return float(np.mean(levels <= threshold_db))


def normalize_loudness(audio: np.ndarray) -> np.ndarray:
    """Scale to `TARGET_RMS_DBFS` RMS, or lower if needed to keep peaks under `PEAK_CEILING_DBFS`."""
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
    peak = float(np.max(np.abs(audio)))
    if rms == 0.0:
        return audio
    gain = min(10 ** (TARGET_RMS_DBFS / 20) / rms, 10 ** (PEAK_CEILING_DBFS / 20) / peak)
    return (audio * gain).astype(np.float32)


def cut_clips(
    audio: np.ndarray,
    sample_rate: int,
    clip_seconds: float,
    max_silence: float = 0.5,
    max_clips: int | None = None,
    normalize: bool = True,
) -> tuple[list[tuple[float, np.ndarray]], int]:
    """Trim silence at both ends, then cut consecutive fixed-length clips; mostly silent ones are dropped.

    A remainder shorter than one clip is discarded (padding it would put silence back at the end).

    Args:
        audio (`np.ndarray`): float audio, `[samples]` or `[samples, channels]`.
        sample_rate (`int`): its sample rate.
        clip_seconds (`float`): length of every clip.
        max_silence (`float`): drop a clip when more than this fraction of its 50 ms frames is silent.
        max_clips (`int`, *optional*): stop after this many kept clips.
        normalize (`bool`): scale each clip with `normalize_loudness`.

    Returns:
        `tuple`: a list of `(start_seconds, normalised_clip)` and the number of clips dropped as silent.
    """
    threshold = silence_threshold_db(audio, sample_rate)
    frame = max(1, int(FRAME_SECONDS * sample_rate))
    loud = np.flatnonzero(_frame_rms_db(audio, frame) > threshold)
    if len(loud) == 0:
        return [], 0
    # Trim leading and trailing silence at frame resolution.
    start_offset = loud[0] * frame
    trimmed = audio[start_offset : min(len(audio), (loud[-1] + 1) * frame)]
    clip_len = int(round(clip_seconds * sample_rate))
    clips, dropped = [], 0
    for begin in range(0, len(trimmed) - clip_len + 1, clip_len):
        clip = trimmed[begin : begin + clip_len]
        if silent_fraction(clip, sample_rate, threshold) > max_silence:
            dropped += 1
            continue
        clips.append(((start_offset + begin) / sample_rate, normalize_loudness(clip) if normalize else clip))
        if max_clips is not None and len(clips) >= max_clips:
            break
    return clips, dropped


def encode_flac(audio: np.ndarray, sample_rate: int) -> bytes:
    """Encode float audio in [-1, 1] as 16-bit FLAC bytes (lossless for the 16-bit signal)."""
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.clip(audio, -1.0, 1.0), sample_rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def decode_audio(audio: dict) -> tuple[np.ndarray, int]:
    """Decode one value of an `Audio(decode=False)` column with soundfile (no torchcodec, no ffmpeg).

    Args:
        audio (`dict`): `{"bytes": ..., "path": ...}` as stored in the dataset.

    Returns:
        `tuple[np.ndarray, int]`: float32 audio (`[samples]` if mono, else `[samples, channels]`) and its
            sample rate.
    """
    import soundfile as sf

    source = io.BytesIO(audio["bytes"]) if audio.get("bytes") else audio.get("path")
    if source is None:
        raise ValueError("This audio value holds neither bytes nor a path.")
    data, sample_rate = sf.read(source, dtype="float32")
    return data, sample_rate


def assign_split(key: str, seed: int, validation_fraction: float, test_fraction: float) -> str:
    """Pick the split of a piece from a hash of its name, so a piece never straddles two splits.

    Hash-based (not a shuffle) so the split of a piece does not depend on which other pieces were built.
    """
    u = int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big") / 2**64
    if u < test_fraction:
        return "test"
    if u < test_fraction + validation_fraction:
        return "validation"
    return "train"


def stable_seed(*parts) -> int:
    """A 64-bit seed from strings/ints that is the same in every process (unlike Python's salted `hash`)."""
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "big")
