"""Argument checks shared by the autoencoders and the pipeline: each raises a clear `ValueError` (naming the
argument, its value and the fix) before any work is done. `CAMPipeline`'s own checks are in
`cam_hf/pipeline_checks.py`.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

# Waveforms are floats in [-1, 1]. Real recordings stay far below 16 (24 dB over full scale) even when they
# clip; louder "audio" is integer PCM converted to float without scaling, or a unit mistake.
MAX_AUDIO_AMPLITUDE = 16.0
# Sample rates accepted for audio given to an autoencoder (resampled to its own rate): telephone-band audio
# and above, up to the highest rates recorders use (768 kHz).
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1_000, 768_000


def is_integer(value) -> bool:
    """Whether `value` is an integer (Python or NumPy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value) -> bool:
    """Whether `value` is a finite real number (Python or NumPy), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def check_sample_rate(sample_rate, name: str = "sample_rate") -> None:
    """Raises `ValueError` unless `sample_rate` is an integer number of Hz
    in [`MIN_SAMPLE_RATE`, `MAX_SAMPLE_RATE`]."""
    if not is_integer(sample_rate):
        raise ValueError(
            f"{name} must be an integer number of Hz, got {sample_rate!r} ({type(sample_rate).__name__}): "
            "pass e.g. 44100 (`int(rate)` for a float rate)."
        )
    if sample_rate <= 0:
        raise ValueError(f"{name} must be positive, got {sample_rate}: pass the audio's rate in Hz.")
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise ValueError(
            f"{name} must be in [{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}] Hz, got {sample_rate}: pass the "
            "audio's rate in Hz (not in kHz, not a sample count)."
        )


def check_audio(audio, name: str = "audio") -> None:
    """
    Raises `ValueError` unless `audio` is a waveform: a `torch.Tensor` or `np.ndarray` of real floating-point
    samples, at least one, all finite and within +-`MAX_AUDIO_AMPLITUDE`. Its shape is the caller's business.
    """
    if not isinstance(audio, torch.Tensor | np.ndarray):
        raise ValueError(
            f"{name} must be a torch.Tensor or np.ndarray of samples, got {type(audio).__name__}."
        )
    is_complex = audio.is_complex() if isinstance(audio, torch.Tensor) else np.iscomplexobj(audio)
    if is_complex:
        raise ValueError(f"{name} is complex ({audio.dtype}): pass the real waveform (e.g. `{name}.real`).")
    if isinstance(audio, torch.Tensor):
        is_float = audio.is_floating_point()
    else:
        is_float = np.issubdtype(audio.dtype, np.floating)
    if not is_float:
        raise ValueError(
            f"{name} must be floating point in [-1, 1], got dtype {audio.dtype}: convert integer PCM to "
            f"float (e.g. `{name} / 32768` for int16)."
        )
    if audio.ndim == 0:
        raise ValueError(f"{name} is a scalar: pass its samples along the last axis.")
    if math.prod(audio.shape) == 0:
        raise ValueError(f"{name} has zero samples: pass at least one frame of audio.")
    samples = torch.as_tensor(audio)
    if not torch.isfinite(samples).all():
        raise ValueError(f"{name} contains NaN or infinite values: clean or clip it before encoding.")
    peak = samples.abs().max().item()
    if peak > MAX_AUDIO_AMPLITUDE:
        raise ValueError(
            f"{name} peaks at {peak:.3g}, not a waveform in [-1, 1] (the limit is {MAX_AUDIO_AMPLITUDE:g}): "
            "scale it (integer PCM converted to float: divide by 32768 for int16, 2**31 for int32)."
        )


def check_decode_chunking(decode_chunk_frames, decode_context_frames, decode_first_chunk_frames=1) -> None:
    """Raises `ValueError` unless the chunked-decoding arguments are integers: chunks (the first one and the
    largest) of at least one frame, and zero or more frames of context."""
    if not is_integer(decode_chunk_frames) or decode_chunk_frames < 1:
        raise ValueError(
            "`decode_chunk_frames` must be a positive integer (frames decoded at a time), got "
            f"{decode_chunk_frames!r}."
        )
    if not is_integer(decode_first_chunk_frames) or decode_first_chunk_frames < 1:
        raise ValueError(
            "`decode_first_chunk_frames` must be a positive integer (frames of the first chunk; the next "
            f"ones double up to `decode_chunk_frames`), got {decode_first_chunk_frames!r}."
        )
    if not is_integer(decode_context_frames) or decode_context_frames < 0:
        raise ValueError(
            "`decode_context_frames` must be an integer >= 0 (frames of context on each side of a chunk), "
            f"got {decode_context_frames!r}."
        )


__all__ = [
    "MAX_AUDIO_AMPLITUDE",
    "MAX_SAMPLE_RATE",
    "MIN_SAMPLE_RATE",
    "check_audio",
    "check_decode_chunking",
    "check_sample_rate",
    "is_integer",
    "is_real",
]
