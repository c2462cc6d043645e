"""A learned decoder for the mel codec: log-mel frames -> audio in one pass, in the style of Vocos (Siuzdak,
arXiv 2306.00814).

    log-mel [B, n_mels, F] -> Conv1d (kernel 7) -> LayerNorm -> N ConvNeXt blocks -> LayerNorm
        -> Linear(dim -> n_fft + 2): per STFT frame, a log-magnitude and a phase angle for each of the
           n_fft / 2 + 1 bins
        -> iSTFT (Hann, n_fft, hop, center=True; `stft.frames_istft`) -> audio [B, F * hop]

There is no upsampling stack: every layer runs at the STFT frame rate and the iSTFT makes the samples, which
is what makes it fast on a CPU. The magnitude head predicts a correction to a prior, the filterbank's
pseudo-inverse applied to the mel magnitudes (the magnitude Griffin-Lim decodes; FreeV, arXiv 2406.08196,
measured this prior to help), so that an untrained vocoder already outputs the right spectral envelope and
training spends itself on the phase and the detail the mel bands lost.

The stack is non-causal with a finite receptive field: an STFT frame depends on the `receptive_field` mel
frames around it, `num_blocks * (kernel_size - 1) + input_kernel_size` in all (55 for the defaults, 27 on each
side), and an audio sample on the STFT frames whose windows cover it (2 more on each side at n_fft 1024, hop
256). `context_frames` is that one-sided total: a chunk decoded with at least that many mel frames of context
on each side equals the whole decode away from its edges, which is how the mel codec streams with it.
"""

from __future__ import annotations

import copy
import math

import librosa
import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .stft import frames_istft

# The magnitude's ceiling before the iSTFT (Vocos clips at 1e2, for training's first steps): a full-scale sine
# peaks at n_fft / 4 = 256 here, so the ceiling is set above that.
MAX_MAGNITUDE = 1e3


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    The mel codec's filterbank (Slaney scale and normalisation, as `librosa.filters.mel`) and its
    pseudo-inverse.

    Returns:
        `(basis, inverse)`: float32 tensors of shapes `[n_mels, n_fft // 2 + 1]` and
        `[n_fft // 2 + 1, n_mels]`.
    """
    basis = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max)
    return torch.from_numpy(basis).float(), torch.from_numpy(np.linalg.pinv(basis)).float()


class ConvNeXtBlock(nn.Module):
    """
    ConvNeXt block on a sequence (Vocos' form): depthwise Conv1d, LayerNorm, pointwise MLP with GELU, layer
    scale, residual.

    Args:
        dim (`int`): channels.
        intermediate_dim (`int`): the MLP's hidden width.
        kernel_size (`int`): the depthwise convolution's width (odd: the output stays aligned with the input).
        layer_scale_init (`float`): initial value of the per-channel scale of the residual branch.
    """

    def __init__(self, dim: int, intermediate_dim: int, kernel_size: int, layer_scale_init: float):
        super().__init__()
        self.depthwise = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pointwise_in = nn.Linear(dim, intermediate_dim)
        self.activation = nn.GELU()
        self.pointwise_out = nn.Linear(intermediate_dim, dim)
        self.layer_scale = nn.Parameter(torch.full((dim,), float(layer_scale_init)))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """`[B, F, dim]` -> `[B, F, dim]`."""
        # Frames-major, so that the norm and the MLP run on contiguous rows; only the convolution sees the
        # channels-major view.
        branch = self.norm(self.depthwise(hidden.mT).mT)
        return hidden + self.pointwise_out(self.activation(self.pointwise_in(branch))) * self.layer_scale


class MelVocoder(ModelMixin, ConfigMixin):
    """
    A Vocos-style vocoder: the mel codec's log-mel frames to audio, through ConvNeXt blocks and an iSTFT head.

    It is the optional learned decoder of `MelAutoencoder` (`MelAutoencoder.set_vocoder`); trained by
    `examples/train_vocoder.py`. Its input is exactly what the codec computes (`MelAutoencoder.log_mel`: the
    natural log of Slaney mel magnitudes clamped at `log_floor`), so the STFT and mel settings must be the
    codec's (`for_codec` copies them).

    Args:
        sample_rate (`int`, defaults to 22050): audio rate in Hz.
        n_fft (`int`, defaults to 1024): STFT size of the iSTFT (Hann window of that length).
        hop_length (`int`, defaults to 256): STFT hop; one mel frame is this many samples.
        n_mels (`int`, defaults to 80): mel bands of the input.
        f_min (`float`, defaults to 0.0), f_max (`float`, *optional*): the mel range in Hz (`None` = Nyquist).
        log_floor (`float`, defaults to 1e-5): the codec's floor of mel magnitudes, also the prior's floor.
        dim (`int`, defaults to 256): channels of the ConvNeXt stack.
        intermediate_dim (`int`, defaults to 768): hidden width of each block's MLP (3 x dim, as Vocos).
        num_blocks (`int`, defaults to 8): ConvNeXt blocks.
        kernel_size (`int`, defaults to 7): the blocks' depthwise kernel (odd).
        input_kernel_size (`int`, defaults to 7): the input convolution's kernel (odd).
        layer_scale_init (`float`, *optional*): initial layer scale; `1 / num_blocks` when `None` (Vocos).
        magnitude_prior (`bool`, defaults to `True`): predict the log-magnitude as a correction to the
            pseudo-inverse of the mel magnitudes rather than from scratch.
    """

    @register_to_config
    def __init__(
        self,
        sample_rate: int = 22050,
        n_fft: int = 1024,
        hop_length: int = 256,
        n_mels: int = 80,
        f_min: float = 0.0,
        f_max: float | None = None,
        log_floor: float = 1e-5,
        dim: int = 256,
        intermediate_dim: int = 768,
        num_blocks: int = 8,
        kernel_size: int = 7,
        input_kernel_size: int = 7,
        layer_scale_init: float | None = None,
        magnitude_prior: bool = True,
    ):
        super().__init__()
        for name, value in (("kernel_size", kernel_size), ("input_kernel_size", input_kernel_size)):
            if value < 1 or value % 2 == 0:
                raise ValueError(f"{name} must be a positive odd number (a centred kernel), got {value}.")
        if hop_length < 1 or n_fft < hop_length:
            raise ValueError(f"hop_length must be in [1, n_fft]; got hop_length {hop_length}, n_fft {n_fft}.")
        self.input_conv = nn.Conv1d(n_mels, dim, input_kernel_size, padding=input_kernel_size // 2)
        self.input_norm = nn.LayerNorm(dim, eps=1e-6)
        scale = 1 / num_blocks if layer_scale_init is None else layer_scale_init
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(dim, intermediate_dim, kernel_size, scale) for _ in range(num_blocks)
        )
        self.output_norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, n_fft + 2)
        self.apply(self._init_weights)
        # Derived from the config, so not saved.
        _, inverse = mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max)
        self.register_buffer("mel_inverse", inverse, persistent=False)
        self.register_buffer("window", torch.hann_window(n_fft, dtype=torch.float32), persistent=False)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        # Vocos' initialisation.
        if isinstance(module, nn.Conv1d | nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)

    @classmethod
    def for_codec(cls, codec, **sizes) -> MelVocoder:
        """
        A new (untrained) vocoder with a mel codec's STFT and mel settings.

        Args:
            codec (`MelAutoencoder`): the codec whose log-mel frames it will decode.
            **sizes: the architecture's arguments (`dim`, `intermediate_dim`, `num_blocks`, ...).
        """
        config = codec.config
        return cls(
            sample_rate=config.sample_rate,
            n_fft=config.n_fft,
            hop_length=config.stft_hop_length,
            n_mels=config.n_mels,
            f_min=config.f_min,
            f_max=config.f_max,
            log_floor=config.log_floor,
            **sizes,
        )

    def keep_blocks(self, indices: list[int]) -> MelVocoder:
        """
        A shallower copy that keeps only some of the ConvNeXt blocks, with their trained weights and every
        other layer's: a faster vocoder to fine-tune from this one (as DistilBERT started from every other
        layer of BERT). Each block is a residual branch, so the copy starts close to this vocoder; fewer
        blocks also shrink the receptive field, and with it the context a streamed chunk needs.

        Args:
            indices (`list[int]`): the blocks to keep, increasing, each in `[0, num_blocks)`.

        Returns:
            `MelVocoder` with `num_blocks=len(indices)`, in this one's dtype and on its device.
        """
        num_blocks = self.config.num_blocks
        increasing = sorted(set(indices)) == list(indices)
        if not indices or not increasing or indices[0] < 0 or indices[-1] >= num_blocks:
            raise ValueError(
                f"keep_blocks takes increasing block indices in [0, {num_blocks}) with at least one, got "
                f"{list(indices)}."
            )
        kept = copy.deepcopy(self)
        kept.blocks = nn.ModuleList(kept.blocks[i] for i in indices)
        kept.register_to_config(num_blocks=len(indices))
        return kept

    @property
    def receptive_field(self) -> int:
        """Mel frames an STFT frame of the output depends on, both sides and itself together:
        `num_blocks * (kernel_size - 1) + input_kernel_size`."""
        config = self.config
        return config.num_blocks * (config.kernel_size - 1) + config.input_kernel_size

    @property
    def context_frames(self) -> int:
        """Mel frames on each side an output sample depends on: half the receptive field, plus the STFT frames
        on each side whose windows overlap the sample (`ceil(n_fft / (2 * hop_length))`). Decoded with this
        much context on both sides, a chunk's samples equal the whole decode's."""
        overlap = math.ceil(self.config.n_fft / (2 * self.config.hop_length))
        return self.receptive_field // 2 + overlap

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        """
        Args:
            log_mel (`torch.Tensor` of shape `[B, n_mels, F]`): natural-log mel magnitudes, as
                `MelAutoencoder.log_mel` computes them (one channel per row).

        Returns:
            `torch.Tensor` of shape `[B, F * hop_length]`: audio, mel frame `f` covering samples
            `[f * hop_length, (f + 1) * hop_length)`.
        """
        config = self.config
        if log_mel.ndim != 3 or log_mel.shape[1] != config.n_mels or log_mel.shape[2] == 0:
            raise ValueError(
                f"MelVocoder takes log-mel frames of shape [batch, {config.n_mels}, frames >= 1], got "
                f"{tuple(log_mel.shape)}: pass MelAutoencoder.log_mel(audio)[:, channel] of a codec with "
                f"n_mels={config.n_mels}."
            )
        frames = log_mel.shape[-1]
        # The STFT of F * hop samples (center=True) has F + 1 frames; the codec drops the last, so it is
        # decoded from a copy of the last mel frame (as the codec's Griffin-Lim does with its magnitude).
        log_mel = torch.cat([log_mel, log_mel[..., -1:]], dim=-1)
        hidden = self.input_norm(self.input_conv(log_mel).mT)  # [B, F + 1, dim] from here on
        for block in self.blocks:
            hidden = block(hidden)
        log_magnitude, angle = self.head(self.output_norm(hidden)).float().chunk(2, dim=-1)
        if config.magnitude_prior:
            mel = log_mel.float().exp().mT
            prior = torch.matmul(mel, self.mel_inverse.T).clamp(min=config.log_floor).log()
            log_magnitude = log_magnitude + prior
        magnitude = log_magnitude.clamp(max=math.log(MAX_MAGNITUDE)).exp()
        # The phase as (cos, sin) of one predicted angle: a unit phasor whatever the output (Vocos' way).
        # (`torch.polar` gives the same, measured 3-5 % slower overall.)
        spectrum = torch.complex(magnitude * torch.cos(angle), magnitude * torch.sin(angle))
        return frames_istft(spectrum, self.window, config.hop_length, frames * config.hop_length)


__all__ = ["ConvNeXtBlock", "MelVocoder", "mel_filterbank"]
