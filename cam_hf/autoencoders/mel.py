"""A weight-free log-mel codec: the default autoencoder, which works offline and on CPU.

encode: audio -> |STFT| -> mel filterbank -> log -> stack `frames_per_latent` consecutive mel frames into one
        vector -> (optional) PCA to `latent_dim` -> normalise.
decode: the same steps backwards; the linear magnitude is recovered from the mel one with the filterbank's
        pseudo-inverse, and the phase with fast Griffin-Lim (`torch.stft` / `torch.istft`); or, when a trained
        `MelVocoder` is attached (`set_vocoder`), the log-mel frames go through it instead.

Why stacking + PCA: the Sampler is an MLP flow head that models one frame at a time and does well with ~64-128
dimensions at ~10-20 frames per second. A single mel frame at a hop coarse enough for that frame rate smears
transients that Griffin-Lim then cannot recover; stacking eight fine mel frames keeps the fine hop, and PCA
folds the (highly correlated) stacked vector down to `latent_dim`.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterable

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import logging

from .base import _MIN_STD, AudioAutoencoderMixin
from .stft import frames_istft, frames_stft, inverse_window_envelope
from .vocoder import MelVocoder, mel_filterbank

logger = logging.get_logger(__name__)


def _complex_abs(values: torch.Tensor) -> torch.Tensor:
    """|values| of a complex tensor, as sqrt(re^2 + im^2) (several times cheaper than `abs` on CPU)."""
    return torch.addcmul(values.real * values.real, values.imag, values.imag).sqrt_()


# The subfolder of a saved codec that holds its vocoder (`MelVocoder.save_pretrained`), when it has one.
VOCODER_SUBFOLDER = "vocoder"
# `from_pretrained` arguments that say where and how to fetch files, passed on to the vocoder's loading; the
# rest (dtype, device map, ...) are the codec's: the vocoder always computes in float32.
_FETCH_ARGUMENTS = ("cache_dir", "force_download", "proxies", "local_files_only", "token", "revision")


class MelAutoencoder(ModelMixin, ConfigMixin, AudioAutoencoderMixin):
    """
    Log-mel codec with frame stacking, an optional PCA projection fitted on data, and Griffin-Lim decoding.

    Latents are `[B, T, latent_dim]` with `T = N // hop_length`,
    `hop_length = stft_hop_length * frames_per_latent`. Each latent frame holds `frames_per_latent` mel frames
    of every audio channel, `audio_channels * n_mels * frames_per_latent` values (the "stacked dim"),
    projected to `latent_dim` by PCA when `latent_dim` is smaller. The PCA is fitted by
    `fit_latent_statistics` and saved in the weights file (buffers `projection` and `projection_mean`);
    without it, encoding works only when `latent_dim` equals the stacked dim.

    The buffers stay float32 when the module is cast (e.g. by `pipeline.to(torch.bfloat16)`) or loaded with
    `from_pretrained(dtype=...)`: `torch.stft` has no bfloat16 kernel, and log-mel values near -11 rounded to
    bfloat16's 8 bits would move latents by whole units. `dtype` reports the precision asked for, as for any
    other component (`pipe.to(torch.float16)` makes every component report float16); the codec computes in
    float32 whatever it reports, and `encode` and `decode` return float32.

    Defaults: 22.05 kHz mono, n_fft 1024, STFT hop 256 (11.6 ms), 80 mels, 8 mel frames per latent -> 2048
    samples per latent, 10.77 latent frames per second (Music2Latent's rate), 640 stacked values -> 128 latent
    dims.

    Args:
        sample_rate (`int`, defaults to 22050): audio rate in Hz. 22.05 kHz keeps the 80 mel bands where the
            energy of most music is and halves Griffin-Lim's work against 44.1 kHz; audio at other rates is
            resampled.
        audio_channels (`int`, defaults to 1): 1 (mono) or 2 (stereo); channels are coded independently and
            concatenated in each latent frame.
        n_fft (`int`, defaults to 1024): STFT size (Hann window of the same length).
        stft_hop_length (`int`, defaults to 256): STFT hop in samples.
        n_mels (`int`, defaults to 80): mel bands (Slaney mel scale and normalisation, as librosa's default).
        f_min (`float`, defaults to 0.0): lowest mel frequency in Hz.
        f_max (`float`, *optional*): highest mel frequency in Hz; `sample_rate / 2` when `None`.
        frames_per_latent (`int`, defaults to 8): mel frames stacked into one latent frame.
        latent_dim (`int`, defaults to 128): size of a latent frame; at most the stacked dim.
        log_floor (`float`, defaults to 1e-5): mel magnitudes are clamped to this before the log (about -100
            dB).
        griffin_lim_iters (`int`, defaults to 16): Griffin-Lim iterations at decode: chosen by measuring the
            consistency and spectral distance of decoded test clips against the cost (`docs/performance.md`).
        griffin_lim_momentum (`float`, defaults to 0.99): momentum of fast Griffin-Lim (Perraudin et al.,
            2013).
        pca_fitted (`bool`, defaults to `False`): set by `fit_latent_statistics`; not meant to be passed by
            hand.
        latents_mean (`list[float]`, *optional*): per-channel latent mean, set by `fit_latent_statistics`.
        latents_std (`list[float]`, *optional*): per-channel latent standard deviation, set likewise.

    A learned decoder (`MelVocoder`, optional): `set_vocoder` attaches one, and `decode` then runs it on the
    log-mel frames instead of Griffin-Lim. It is not part of the codec's config or weights file but saved
    beside them, in a `vocoder/` subfolder that `from_pretrained` reads when present: the latents do not
    depend on it, so a codec with a vocoder is the same codec for encoding (`check_same_autoencoder` compares
    config and weights), folders saved before it load unchanged, and the shipped model decodes as before.
    """

    # diffusers' mechanism for modules kept in float32:
    # `from_pretrained(dtype=...)` loads the fitted PCA in float32.
    _keep_in_fp32_modules = ["projection", "projection_mean"]
    decode_only_config = ("griffin_lim_iters", "griffin_lim_momentum")

    @register_to_config
    def __init__(
        self,
        sample_rate: int = 22050,
        audio_channels: int = 1,
        n_fft: int = 1024,
        stft_hop_length: int = 256,
        n_mels: int = 80,
        f_min: float = 0.0,
        f_max: float | None = None,
        frames_per_latent: int = 8,
        latent_dim: int = 128,
        log_floor: float = 1e-5,
        griffin_lim_iters: int = 16,
        griffin_lim_momentum: float = 0.99,
        pca_fitted: bool = False,
        latents_mean: list[float] | None = None,
        latents_std: list[float] | None = None,
    ):
        super().__init__()
        if audio_channels not in (1, 2):
            raise ValueError(f"audio_channels must be 1 or 2, got {audio_channels}.")
        if latent_dim > self.stacked_dim:
            raise ValueError(
                f"latent_dim ({latent_dim}) exceeds audio_channels * n_mels * frames_per_latent "
                f"({self.stacked_dim}): lower latent_dim or stack more frames."
            )
        mel_basis, mel_inverse = mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max)
        # Derived from the config, so not saved (persistent=False):
        # the weights file holds only the fitted PCA.
        self.register_buffer("mel_basis", mel_basis, persistent=False)
        self.register_buffer("mel_inverse", mel_inverse, persistent=False)
        self.register_buffer("window", torch.hann_window(n_fft, dtype=torch.float32), persistent=False)
        # PCA: latents = (stacked - projection_mean) @ projection. Identity until fitted.
        self.register_buffer("projection", torch.eye(self.stacked_dim, latent_dim, dtype=torch.float32))
        self.register_buffer("projection_mean", torch.zeros(self.stacked_dim, dtype=torch.float32))
        # The precision asked for, which `dtype` reports: `from_pretrained(dtype=...)` builds the model under
        # that default dtype, and `_apply` follows every cast.
        self._requested_dtype = torch.get_default_dtype()
        # Held outside `_modules` (see the class docstring):
        # `state_dict` and `parameters` are the latents' alone.
        self.__dict__["_vocoder"] = None

    @property
    def dtype(self) -> torch.dtype:
        """The dtype this codec was cast to or loaded in (it computes in float32 whatever this is)."""
        return self._requested_dtype

    def _apply(self, fn, recurse=True):
        # `.to(dtype)`, `.half()`, ... go through here: move the buffers wherever asked,
        # but keep them float32 (restored from the float32 originals, since converting
        # back after a cast would keep its rounding), and remember the dtype asked for:
        # `fn` applied to a tensor of the current dtype tells whether it casts.
        self._requested_dtype = fn(torch.empty(0, dtype=self._requested_dtype)).dtype
        originals = dict(self._buffers)
        super()._apply(fn, recurse)
        for name, buffer in self._buffers.items():
            if buffer is not None and buffer.dtype != originals[name].dtype:
                self._buffers[name] = originals[name].to(buffer.device)
        if self._vocoder is not None:  # it follows the codec's device, in float32 like the buffers
            self._vocoder.to(fn(torch.empty(0, device=self._vocoder.device)).device)
        return self

    # ---- interface -----------------------------------------------------------------------------------------

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def audio_channels(self) -> int:
        return self.config.audio_channels

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def hop_length(self) -> int:
        return self.config.stft_hop_length * self.config.frames_per_latent

    @property
    def stacked_dim(self) -> int:
        """Values in one latent frame before the projection: `audio_channels * n_mels * frames_per_latent`."""
        return self.config.audio_channels * self.config.n_mels * self.config.frames_per_latent

    @property
    def needs_projection(self) -> bool:
        return self.config.latent_dim < self.stacked_dim

    # ---- audio <-> stacked log-mel -------------------------------------------------------------------------

    def _stft(self, audio: torch.Tensor) -> torch.Tensor:
        return torch.stft(
            audio,
            self.config.n_fft,
            self.config.stft_hop_length,
            window=self.window,
            center=True,
            return_complex=True,
        )

    def log_mel(self, audio: torch.Tensor) -> torch.Tensor:
        """
        Args:
            audio (`torch.Tensor` of shape `[B, C, N]`): audio at `sample_rate`, `N` a multiple of
                `hop_length`.

        Returns:
            `torch.Tensor` of shape `[B, C, n_mels, N // stft_hop_length]`: natural-log mel magnitudes.
        """
        batch, channels, length = audio.shape
        # center=True gives N / hop + 1 frames; the last one starts at the very end of the audio, so it is
        # dropped to keep exactly stft_hop_length samples per mel frame.
        magnitude = self._stft(audio.reshape(batch * channels, length)).abs()[..., :-1]
        mel = torch.matmul(self.mel_basis, magnitude)
        log_mel = mel.clamp(min=self.config.log_floor).log()
        return log_mel.reshape(batch, channels, self.config.n_mels, -1)

    def _stack(self, log_mel: torch.Tensor) -> torch.Tensor:
        """`[B, C, n_mels, T * k]` -> `[B, T, C * k * n_mels]`."""
        batch, channels, n_mels, frames = log_mel.shape
        k = self.config.frames_per_latent
        stacked = log_mel.reshape(batch, channels, n_mels, frames // k, k).permute(0, 3, 1, 4, 2)
        return stacked.reshape(batch, frames // k, self.stacked_dim)

    def _unstack(self, stacked: torch.Tensor) -> torch.Tensor:
        """`[B, T, C * k * n_mels]` -> `[B, C, n_mels, T * k]`."""
        batch, frames = stacked.shape[:2]
        channels, k, n_mels = self.config.audio_channels, self.config.frames_per_latent, self.config.n_mels
        log_mel = stacked.reshape(batch, frames, channels, k, n_mels).permute(0, 2, 4, 1, 3)
        return log_mel.reshape(batch, channels, n_mels, frames * k)

    def _stacked_features(self, audio: torch.Tensor) -> torch.Tensor:
        frames = audio.shape[-1] // self.hop_length
        return self._stack(self.log_mel(audio[..., : frames * self.hop_length]))

    # ---- encode / decode -----------------------------------------------------------------------------------

    def _check_projection(self) -> None:
        if self.needs_projection and not self.config.pca_fitted:
            raise ValueError(
                f"latent_dim ({self.latent_dim}) is smaller than the stacked mel dim ({self.stacked_dim}), "
                "and no PCA projection is fitted yet: call `fit_latent_statistics(audio)` on representative "
                f"audio first, or build the codec with latent_dim={self.stacked_dim}."
            )

    def _encode(self, audio: torch.Tensor) -> torch.Tensor:
        self._check_projection()
        stacked = self._stacked_features(audio)
        # `.float()`: `from_pretrained(torch_dtype=...)` may have
        # loaded the PCA in low precision; DSP runs in float32.
        return torch.matmul(stacked - self.projection_mean.float(), self.projection.float())

    def latents_to_log_mel(self, latents: torch.Tensor) -> torch.Tensor:
        """
        The log-mel frames that raw latents stand for: the PCA projection undone, the frames unstacked.

        Args:
            latents (`torch.Tensor` of shape `[B, T, latent_dim]`): raw (unnormalised) latents, as `_encode`
                gives them.

        Returns:
            `torch.Tensor` of shape `[B, audio_channels, n_mels, T * frames_per_latent]`: what decoding turns
            into audio, Griffin-Lim or the vocoder.
        """
        self._check_projection()
        return self._unstack(torch.matmul(latents, self.projection.float().T) + self.projection_mean.float())

    # ---- the learned decoder -------------------------------------------------------------------------------

    @property
    def vocoder(self) -> MelVocoder | None:
        """The attached `MelVocoder` that decodes instead of Griffin-Lim, or `None` (Griffin-Lim)."""
        return self._vocoder

    def set_vocoder(self, vocoder: MelVocoder | None) -> None:
        """
        Attach a trained vocoder (decoding then runs it instead of Griffin-Lim), or detach it with `None`. The
        latents are unchanged either way; `save_pretrained` saves it in the `vocoder/` subfolder.

        Args:
            vocoder (`MelVocoder`, *optional*): made for this codec's STFT and mel settings
                (`MelVocoder.for_codec`); moved to the codec's device, in float32, in eval mode.

        Raises:
            `ValueError`: not a `MelVocoder`, or one made for other settings (named, with both values).
        """
        if vocoder is not None:
            if not isinstance(vocoder, MelVocoder):
                raise ValueError(f"set_vocoder takes a MelVocoder or None, got {type(vocoder).__name__}.")
            ours = self.config
            expected = {
                "sample_rate": ours.sample_rate,
                "n_fft": ours.n_fft,
                "hop_length": ours.stft_hop_length,
                "n_mels": ours.n_mels,
                "f_min": ours.f_min,
                "f_max": ours.f_max,
                "log_floor": ours.log_floor,
            }
            differ = {k: (vocoder.config[k], v) for k, v in expected.items() if vocoder.config[k] != v}
            if differ:
                listed = ", ".join(f"{k} {theirs} (codec: {mine})" for k, (theirs, mine) in differ.items())
                raise ValueError(
                    f"This vocoder was made for other mel settings than the codec's: {listed}. Train one "
                    "for this codec (MelVocoder.for_codec(codec), examples/train_vocoder.py)."
                )
            # `.float()`, not `.to(dtype=...)`, after which diffusers warns whatever the model.
            vocoder = vocoder.float().to(self.mel_basis.device).eval()
        self.__dict__["_vocoder"] = vocoder

    @property
    def exact_decode_context_frames(self) -> int | None:
        """With a vocoder: the latent frames of context that cover its receptive field (see
        `MelVocoder.context_frames`), with which chunked decoding equals whole decoding. With Griffin-Lim:
        `None` (chunks are crossfaded)."""
        if self._vocoder is None:
            return None
        return math.ceil(self._vocoder.context_frames / self.config.frames_per_latent)

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        *,
        is_main_process: bool = True,
        safe_serialization: bool = True,
        variant: str | None = None,
        **kwargs,
    ) -> None:
        """`ModelMixin.save_pretrained`, and the vocoder, when there is one, in the `vocoder/` subfolder (a
        `vocoder/` left there by an earlier save is removed otherwise, so that the folder loads as what was
        saved). Written before the codec's own files, so that `push_to_hub=True` uploads it too."""
        folder = os.path.join(save_directory, VOCODER_SUBFOLDER)
        if is_main_process:
            if os.path.isdir(folder):
                shutil.rmtree(folder)
            if self._vocoder is not None:
                self._vocoder.save_pretrained(folder, safe_serialization=safe_serialization, variant=variant)
        super().save_pretrained(
            save_directory,
            is_main_process=is_main_process,
            safe_serialization=safe_serialization,
            variant=variant,
            **kwargs,
        )

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> MelAutoencoder:
        """`ModelMixin.from_pretrained`, with the vocoder of the `vocoder/` subfolder attached when the folder
        has one (folders without it, every one saved before vocoders existed, decode with Griffin-Lim)."""
        codec = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        subfolder = os.path.join(kwargs.get("subfolder") or "", VOCODER_SUBFOLDER)
        fetch = {name: kwargs[name] for name in _FETCH_ARGUMENTS if name in kwargs}
        if os.path.isdir(pretrained_model_name_or_path):
            # The folder itself, not `subfolder=`: diffusers would load the codec's weights file above it.
            folder = os.path.join(pretrained_model_name_or_path, subfolder)
            if os.path.isdir(folder):
                codec.set_vocoder(MelVocoder.from_pretrained(folder))
        else:  # a Hub repository: its vocoder, if it has one
            try:
                vocoder = MelVocoder.from_pretrained(
                    pretrained_model_name_or_path, subfolder=subfolder, **fetch
                )
            except OSError as error:  # diffusers' error for a repository without that file
                logger.info(
                    f"No vocoder in {pretrained_model_name_or_path} ({error}): decoding with Griffin-Lim."
                )
                vocoder = None
            codec.set_vocoder(vocoder)
        return codec

    # ---- decoding ------------------------------------------------------------------------------------------

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self._decode_continuing(latents, None, latents.shape[1])[0]

    def _decode_continuing(
        self, latents: torch.Tensor, phase: torch.Tensor | None, keep_from: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`_decode` of a chunk of a stream: Griffin-Lim starts the chunk's first STFT frames from the phase
        the previous chunk reached on the same frames (`phase`), and returns, beside the audio, the phase of
        the frames from latent frame `keep_from` on, where the next chunk starts. A vocoder carries nothing:
        given `exact_decode_context_frames` of context its chunks need no help to join."""
        log_mel = self.latents_to_log_mel(latents)
        batch, channels, n_mels, frames = log_mel.shape
        if self._vocoder is not None:
            audio = self._vocoder(log_mel.reshape(batch * channels, n_mels, frames))
            return audio.float().reshape(batch, channels, -1), None
        mel = log_mel.reshape(batch * channels, n_mels, frames).exp()
        # Least-squares inverse of the filterbank; negative values are not magnitudes, so they are clipped.
        magnitude = torch.matmul(self.mel_inverse, mel).clamp(min=0)
        audio, angles = self.griffin_lim(magnitude, frames * self.config.stft_hop_length, phase)
        carried = angles[..., keep_from * self.config.frames_per_latent : frames]
        return audio.reshape(batch, channels, -1), carried

    def griffin_lim(
        self, magnitude: torch.Tensor, length: int, initial_phase: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Fast Griffin-Lim (librosa's algorithm), `griffin_lim_iters` iterations with momentum
        `griffin_lim_momentum`.

        The phase starts random (one fixed draw, so that decoding is deterministic), except on the first
        frames when `initial_phase` gives them: a chunk of a stream continues from the phase the previous
        chunk reached on the frames they share, which makes 16 iterations about as consistent as 32 from a
        random start (`benchmarks/bench_griffin_lim.py`, `docs/performance.md`).

        The STFT pair is `torch.stft` / `torch.istft`'s (centred frames, reflect padding, the Hann window)
        written out with `torch.fft.rfft` / `irfft` on frames laid out `[B, frames, bins]` (`stft.py`): the
        window envelope is computed once per call instead of at every inverse, the overlap-add is
        `n_fft / stft_hop_length` shifted additions, and the magnitude is imposed on real tensors. The FFTs
        are a fraction of an iteration: `torch.istft`'s overlap-add and envelope and complex `abs` and
        division cost twice as much as the rest (`docs/performance.md`). The audio equals the `torch.stft` /
        `torch.istft` loop's to float rounding (tested).

        Args:
            magnitude (`torch.Tensor` of shape `[B, n_fft // 2 + 1, frames]`): linear STFT magnitudes.
            length (`int`): output samples, `frames * stft_hop_length`.
            initial_phase (`torch.Tensor` of shape `[B, n_fft // 2 + 1, n]`, complex, *optional*): unit
                phasors for the first `n <= frames` frames.

        Returns:
            `(audio, phase)`: `torch.Tensor` of shape `[B, length]`, and the final unit phasors
            `[B, n_fft // 2 + 1, frames + 1]`.
        """
        # The STFT of `length` samples has one frame more than
        # `magnitude` (encode dropped it): repeat the last.
        magnitude = torch.cat([magnitude, magnitude[..., -1:]], dim=-1)
        # A fixed seed makes decoding deterministic: the same latents always give the same audio. One phase
        # draw shared by the whole batch keeps each row's audio independent of the batch it is decoded in.
        generator = torch.Generator(device="cpu").manual_seed(0)
        phase = torch.rand(magnitude.shape[1:], generator=generator).to(magnitude.device) * (2 * torch.pi)
        angles = torch.polar(torch.ones_like(magnitude), phase.expand_as(magnitude))
        if initial_phase is not None:
            shared = min(initial_phase.shape[-1], angles.shape[-1])
            angles[..., :shared] = initial_phase[..., :shared]
        # From here on `[B, frames, bins]`: each FFT runs along contiguous memory.
        magnitude, spectrum = magnitude.mT.contiguous(), (magnitude * angles).mT.contiguous()
        hop = self.config.stft_hop_length
        inverse_envelope = inverse_window_envelope(self.window, hop, magnitude.shape[1], length)
        momentum = self.config.griffin_lim_momentum / (1 + self.config.griffin_lim_momentum)
        # `accelerated`: the phase the last iteration reached (the starting one without iterations).
        previous, accelerated = torch.zeros_like(spectrum), angles.mT
        for _ in range(self.config.griffin_lim_iters):
            audio = frames_istft(spectrum, self.window, hop, length, inverse_envelope)
            rebuilt = frames_stft(audio, self.window, hop)
            accelerated = torch.sub(rebuilt, previous, alpha=momentum)
            # The magnitude with the accelerated phase: magnitude * a / |a|, in real arithmetic (complex
            # `abs` and division cost several times more).
            scale = magnitude / (_complex_abs(accelerated) + 1e-16)
            spectrum = torch.view_as_complex(torch.view_as_real(accelerated) * scale[..., None])
            previous = rebuilt
        audio = frames_istft(spectrum, self.window, hop, length, inverse_envelope)
        return audio, (accelerated / (_complex_abs(accelerated) + 1e-16)).mT

    # ---- fitting -------------------------------------------------------------------------------------------

    @torch.no_grad()
    def fit_latent_statistics(
        self,
        audio: torch.Tensor | Iterable[torch.Tensor],
        sample_rate: int | None = None,
        normalization: str = "per_channel",
    ) -> None:
        """
        Fit the codec to data: when `latent_dim` is smaller than the stacked dim, fit the PCA projection (the
        top `latent_dim` principal axes of the stacked log-mel frames, re-fitted at every call) and store it
        in the `projection` buffers; then store the latent mean and standard deviation in the config.

        With PCA the statistics follow from the same pass: projected latents have zero mean and variance equal
        to the PCA eigenvalues. Without PCA this is the generic `AudioAutoencoderMixin.fit_latent_statistics`.

        Args:
            audio (`torch.Tensor` of shape `[B, C, N]`, or an iterable of such tensors or of `[C, N]`
                tensors): representative audio; a few minutes is plenty.
            sample_rate (`int`, *optional*): the rate of `audio` when it is not `self.sample_rate`.
            normalization (`str`, defaults to `"per_channel"`): how `encode` scales the latents.
                `"per_channel"`: each component to unit variance (with PCA: whitened, so the low-variance
                tail, mostly noise, is scaled up as much as the top components). `"global"`: one scale for all
                components, the RMS of their standard deviations, so the latents' total variance is
                `latent_dim` and the components keep their relative scale (stored as `latent_dim` equal values
                of `latents_std`). `docs/training.md` says which trained better.
        """
        if normalization not in ("per_channel", "global"):
            raise ValueError(f"normalization must be 'per_channel' or 'global', got {normalization!r}.")
        if not self.needs_projection:
            super().fit_latent_statistics(audio, sample_rate)
            std = torch.tensor(self.config.latents_std, dtype=torch.float64)
        else:
            count, total, outer = 0, 0.0, 0.0
            for batch in self._iterate_audio(audio, sample_rate):
                stacked = self._stacked_features(batch).reshape(-1, self.stacked_dim).double()
                count += stacked.shape[0]
                total = total + stacked.sum(0)
                outer = outer + stacked.T @ stacked
            if count <= self.latent_dim:
                raise ValueError(
                    f"fit_latent_statistics got {count} frames, too few to fit a {self.latent_dim}-dim PCA: "
                    f"pass at least {self.latent_dim + 1} frames "
                    f"({(self.latent_dim + 1) / self.frame_rate:.1f} s), ideally minutes."
                )
            mean = total / count
            covariance = outer / count - torch.outer(mean, mean)
            eigenvalues, eigenvectors = torch.linalg.eigh(covariance)  # ascending order
            top = torch.arange(self.stacked_dim - 1, self.stacked_dim - 1 - self.latent_dim, -1)
            self.projection.copy_(eigenvectors[:, top].float())
            self.projection_mean.copy_(mean.float())
            std = eigenvalues[top].clamp(min=0).sqrt().clamp(min=_MIN_STD)
            self.register_to_config(pca_fitted=True, latents_mean=[0.0] * self.latent_dim)
        if normalization == "global":
            std = std.square().mean().sqrt().expand(self.latent_dim)
        self.register_to_config(latents_std=std.float().tolist())
