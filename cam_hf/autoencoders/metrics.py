"""Reconstruction metrics for autoencoders, shared by the tests and `benchmarks/bench_autoencoder.py`."""

import librosa
import numpy as np


def spectral_metrics(
    reference: np.ndarray, estimate: np.ndarray, n_fft: int, hop_length: int
) -> tuple[float, float]:
    """
    Spectral convergence and log-spectral distance between two mono signals.

    Args:
        reference (`np.ndarray` of shape `(samples,)`): the original audio.
        estimate (`np.ndarray` of shape `(samples,)`): the reconstruction; both are cut to the shorter length.
        n_fft (`int`): STFT size.
        hop_length (`int`): STFT hop.

    Returns:
        `(spectral_convergence, log_spectral_distance)`: ||S - S^|| / ||S|| on magnitudes, and the mean over
        frames of the RMS dB difference of powers. Powers are floored 80 dB below the reference's peak: with
        an absolute floor, near-silent bins would dominate the figure.
    """
    length = min(len(reference), len(estimate))
    ref = np.abs(librosa.stft(reference[:length], n_fft=n_fft, hop_length=hop_length))
    est = np.abs(librosa.stft(estimate[:length], n_fft=n_fft, hop_length=hop_length))
    convergence = np.linalg.norm(ref - est) / np.linalg.norm(ref)
    floor = (ref**2).max() * 1e-8
    log_ratio = 10 * np.log10(np.maximum(ref**2, floor) / np.maximum(est**2, floor))
    return float(convergence), float(np.mean(np.sqrt(np.mean(log_ratio**2, axis=0))))
