"""CAM Backbone configuration."""

from transformers import PreTrainedConfig

NOISE_MIXING_MODES = ("linear", "variance_preserving")
NOISE_SAMPLING_MODES = ("per_frame", "per_sequence")


class CAMConfig(PreTrainedConfig):
    r"""
    Configuration of a [`CAMModel`], the causal transformer (the paper's *Backbone*) of a Continuous
    Autoregressive Model (Pasini et al., arXiv 2411.18447). It also carries the noise-augmentation settings,
    which belong to the Backbone because they define what its inputs look like in training and at generation.

    Args:
        latent_dim (`int`, *optional*, defaults to 64):
            Size D of one latent frame x_t (Music2Latent's latents have 64 channels).
        hidden_size (`int`, *optional*, defaults to 768):
            Width of the transformer; the conditioning vector z_t has this size.
        num_hidden_layers (`int`, *optional*, defaults to 12):
            Number of transformer blocks.
        num_attention_heads (`int`, *optional*, defaults to 12):
            Number of attention heads.
        num_key_value_heads (`int`, *optional*):
            Number of key/value heads (grouped-query attention). Defaults to `num_attention_heads`.
        intermediate_size (`int`, *optional*, defaults to 2048):
            Inner size of the gated (SwiGLU) feed-forward layer.
        max_position_embeddings (`int`, *optional*, defaults to 256):
            Longest sequence the Backbone attends over, in latent frames, including the start vector. The
            default covers the paper's 20 s training context at ~10.8 frames/s (216 frames) with margin.
        rope_theta (`float`, *optional*, defaults to 10000.0):
            Base period of the rotary position embeddings.
        attention_dropout (`float`, *optional*, defaults to 0.0):
            Dropout on the attention weights.
        hidden_dropout (`float`, *optional*, defaults to 0.0):
            Dropout on the residual branches.
        rms_norm_eps (`float`, *optional*, defaults to 1e-6):
            Epsilon of the RMS norms.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal initialiser of the linear layers.
        max_training_noise (`float`, *optional*, defaults to 0.5):
            k_max: training noise levels are drawn as k_t ~ U(0, k_max). `0.0` disables noise augmentation and
            gives the plain continuous autoregressive baseline.
        noise_sampling (`str`, *optional*, defaults to `"per_frame"`):
            `"per_frame"` draws one k_t per frame, `"per_sequence"` one k for the whole sequence.
        noise_mixing (`str`, *optional*, defaults to `"linear"`):
            How a latent and Gaussian noise are mixed: `"linear"` is the paper's (1 - k) x + k eps,
            `"variance_preserving"` is sqrt(1 - k) x + sqrt(k) eps.
        inference_noise (`float`, *optional*, defaults to 0.02):
            k_inf: the constant noise level mixed into each generated frame before it is fed back to the
            Backbone.
        condition_on_noise_level (`bool`, *optional*, defaults to `False`):
            Whether the Backbone is told each input frame's noise level (added as a learned projection of k).
        instrument_names (`list[str]`, *optional*):
            Names of the instruments the Backbone is conditioned on (class conditioning); instrument id `i` is
            `instrument_names[i]`, and id `len(instrument_names)` is "no instrument" (the unconditional class
            used for label dropout in training and for classifier-free guidance). `None` for an unconditional
            Backbone.
        short_context_frames (`int`, *optional*, defaults to 0):
            K, the number of CLEAN frames the short context sees (CALM, arXiv 2509.06926): a small causal
            convolution stack over x_{t-K+1}..x_t, read before the noise augmentation, whose output is added
            to z_t. The noisy long context gives robustness, the clean short one the local detail the noise
            destroys. `0` turns it off (as in every model saved before it existed).
        short_context_num_layers (`int`, *optional*, defaults to 2):
            Convolutions in the short context; each has kernel `(K - 1) / layers + 1`, so `K - 1` must be a
            multiple of this.
        short_context_hidden_size (`int`, *optional*):
            Channels of the short context's convolutions. Defaults to `hidden_size`.
    """

    model_type = "cam"

    latent_dim: int = 64
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    num_key_value_heads: int | None = None
    intermediate_size: int = 2048
    max_position_embeddings: int = 256
    rope_theta: float = 10000.0
    attention_dropout: float = 0.0
    hidden_dropout: float = 0.0
    rms_norm_eps: float = 1e-6
    initializer_range: float = 0.02
    max_training_noise: float = 0.5
    noise_sampling: str = "per_frame"
    noise_mixing: str = "linear"
    inference_noise: float = 0.02
    condition_on_noise_level: bool = False
    instrument_names: list[str] | None = None
    short_context_frames: int = 0
    short_context_num_layers: int = 2
    short_context_hidden_size: int | None = None
    use_cache: bool = True

    def __post_init__(self, **kwargs):
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.short_context_hidden_size is None:
            self.short_context_hidden_size = self.hidden_size
        super().__post_init__(**kwargs)
        self._validate()

    def _validate(self) -> None:
        for name in (
            "latent_dim",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {getattr(self, name)}.")
        if self.max_position_embeddings < 2:
            raise ValueError(
                f"`max_position_embeddings` must be at least 2 (the start vector and one frame), "
                f"got {self.max_position_embeddings}."
            )
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"`hidden_size` ({self.hidden_size}) must be a multiple of `num_attention_heads` "
                f"({self.num_attention_heads})."
            )
        if (self.hidden_size // self.num_attention_heads) % 2 != 0:
            raise ValueError(
                "The head size `hidden_size / num_attention_heads` = "
                f"{self.hidden_size // self.num_attention_heads} must be even for rotary embeddings."
            )
        if self.num_key_value_heads < 1 or self.num_attention_heads % self.num_key_value_heads != 0:
            raise ValueError(
                f"`num_attention_heads` ({self.num_attention_heads}) must be a multiple of "
                f"`num_key_value_heads` ({self.num_key_value_heads})."
            )
        for name in ("attention_dropout", "hidden_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"`{name}` must be in [0, 1), got {getattr(self, name)}.")
        if not 0.0 <= self.max_training_noise <= 1.0:
            raise ValueError(
                f"`max_training_noise` (k_max) must be in [0, 1], got {self.max_training_noise}."
            )
        if not 0.0 <= self.inference_noise <= 1.0:
            raise ValueError(f"`inference_noise` (k_inf) must be in [0, 1], got {self.inference_noise}.")
        if self.noise_sampling not in NOISE_SAMPLING_MODES:
            raise ValueError(
                f"`noise_sampling` must be one of {NOISE_SAMPLING_MODES}, got {self.noise_sampling!r}."
            )
        if self.noise_mixing not in NOISE_MIXING_MODES:
            raise ValueError(
                f"`noise_mixing` must be one of {NOISE_MIXING_MODES}, got {self.noise_mixing!r}."
            )
        if self.short_context_frames < 0:
            raise ValueError(
                f"`short_context_frames` must be 0 (off) or a positive number of frames, got "
                f"{self.short_context_frames}."
            )
        if self.short_context_frames:
            layers = self.short_context_num_layers
            if layers < 1 or (self.short_context_frames - 1) % layers != 0:
                raise ValueError(
                    f"`short_context_frames - 1` ({self.short_context_frames - 1}) must be a multiple of "
                    f"`short_context_num_layers` ({layers}, at least 1): each convolution then sees "
                    "(frames - 1) / layers + 1 frames."
                )
            if self.short_context_hidden_size < 1:
                raise ValueError(
                    f"`short_context_hidden_size` must be positive, got {self.short_context_hidden_size}."
                )
        if self.rope_theta <= 0:
            raise ValueError(f"`rope_theta` must be positive, got {self.rope_theta}.")
        if self.instrument_names is not None:
            names = self.instrument_names
            if (
                isinstance(names, str)
                or not all(isinstance(name, str) and name for name in names)
                or not names
            ):
                raise ValueError(
                    "`instrument_names` must be a non-empty list of non-empty strings (or None), "
                    f"got {names!r}."
                )
            if len(set(names)) != len(names):
                raise ValueError(f"`instrument_names` must not repeat a name, got {names!r}.")
            self.instrument_names = list(names)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def short_context_kernel_size(self) -> int:
        """The kernel of each short-context convolution: together they see `short_context_frames` frames."""
        return (self.short_context_frames - 1) // self.short_context_num_layers + 1

    @property
    def num_instruments(self) -> int:
        """How many instruments the Backbone knows (0 when it is unconditional)."""
        return len(self.instrument_names) if self.instrument_names else 0

    @property
    def no_instrument_id(self) -> int:
        """
        The id of the "no instrument" class: unconditional generation and classifier-free guidance use it.
        """
        return self.num_instruments

    def instrument_id(self, instrument: str | int) -> int:
        """The id of `instrument`, given by name or by id; a `ValueError` lists the known instruments
        otherwise.
        """
        if not self.instrument_names:
            raise ValueError(
                "This Backbone has no instrument conditioning (`instrument_names` is None), so it cannot be "
                f"asked for instrument {instrument!r}: generate without `instrument`."
            )
        if isinstance(instrument, str) and instrument in self.instrument_names:
            return self.instrument_names.index(instrument)
        if (
            isinstance(instrument, int)
            and not isinstance(instrument, bool)
            and 0 <= instrument < self.num_instruments
        ):
            return instrument
        known = ", ".join(f"{i}: {name!r}" for i, name in enumerate(self.instrument_names))
        raise ValueError(f"Unknown instrument {instrument!r}. This Backbone knows (id: name) {known}.")


__all__ = ["CAMConfig"]
