"""The CAM Backbone: a causal transformer over continuous latent frames (Pasini et al., arXiv 2411.18447).

The Backbone reads latent frames x_1..x_T (after noise augmentation in training) behind a learned start vector
and returns one conditioning vector per position: z_0 (from the start vector alone) conditions x_1, z_t
conditions x_{t+1}. The Sampler ([`CAMSampler`]) turns each z_t into the next frame.

This file only depends on torch, transformers and the configuration file next to it, so that
`register_for_auto_class` can ship it to the Hub as remote code.
"""

from collections.abc import Callable

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer
from transformers.masking_utils import create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPast
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from .configuration_cam import CAMConfig


def mix_noise(latents: torch.Tensor, noise: torch.Tensor, noise_level: torch.Tensor, mode: str = "linear"):
    r"""
    Corrupts latents with Gaussian noise: x~ = (1 - k) x + k eps (`"linear"`, the paper's) or
    sqrt(1 - k) x + sqrt(k) eps (`"variance_preserving"`).

    Used for the training noise augmentation (k_t ~ U(0, k_max)) and the inference noise (k_inf).

    Args:
        latents (`torch.Tensor` of shape `(batch_size, num_frames, latent_dim)`): the clean frames x.
        noise (`torch.Tensor`, same shape as `latents`): standard Gaussian noise eps.
        noise_level (`torch.Tensor` broadcastable to `(batch_size, num_frames, 1)`): the noise level k in [0,
            1].
        mode (`str`): `"linear"` or `"variance_preserving"`.

    Returns:
        `torch.Tensor` of the shape of `latents`: the corrupted frames x~.
    """
    if mode == "linear":
        return (1.0 - noise_level) * latents + noise_level * noise
    if mode == "variance_preserving":
        return (1.0 - noise_level).sqrt() * latents + noise_level.sqrt() * noise
    raise ValueError(f"Unknown noise mixing mode {mode!r}: use 'linear' or 'variance_preserving'.")


class CAMCacheLayer(DynamicLayer):
    r"""
    A `DynamicLayer` that appends new keys and values into a buffer with room to spare and returns views of
    it.

    `DynamicLayer` concatenates at every step, which copies the whole cache: at batch 1 that copy grows with
    the position until it is a sizeable part of a step (at position 600 of a 24 x 1024 Backbone, ~240 MB of
    traffic per step against 1.6 GB of weights). Here a step writes only the new position; the buffer doubles
    when full, capped at `max_length` (so it never holds more than a static cache of that length). The values
    are the same as `DynamicLayer`'s.
    """

    def __init__(self, max_length: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.max_length = max_length
        self._buffers: tuple[torch.Tensor, torch.Tensor] | None = None

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        super().lazy_initialization(key_states, value_states)
        self._buffers = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        length = self.get_seq_length()
        end = length + key_states.shape[-2]
        buffers = self._buffers
        # Reallocate when full, or when the keys were replaced behind our back
        # (`reorder_cache`, batch selection).
        stale = buffers is not None and length and self.keys.data_ptr() != buffers[0].data_ptr()
        if buffers is None or end > buffers[0].shape[-2] or stale:
            capacity = max(end, 2 * length, 64)
            if self.max_length is not None:
                capacity = max(end, min(capacity, self.max_length))
            grown = []
            for old, new in ((self.keys, key_states), (self.values, value_states)):
                buffer = new.new_empty(*new.shape[:-2], capacity, new.shape[-1])
                if length:
                    buffer[..., :length, :] = old
                grown.append(buffer)
            self._buffers = buffers = tuple(grown)
        buffers[0][..., length:end, :] = key_states
        buffers[1][..., length:end, :] = value_states
        self.keys, self.values = buffers[0][..., :end, :], buffers[1][..., :end, :]
        return self.keys, self.values


class CAMCache(DynamicCache):
    r"""
    The Backbone's default cache: a `DynamicCache` (same interface, same values) whose layers are
    [`CAMCacheLayer`], so that a generation step costs the same at every position instead of copying the cache
    each time.

    It also holds what the short context ([`CAMShortContext`]) needs of earlier positions: their last clean
    frames.

    Args:
        config ([`CAMConfig`]): the Backbone's config; its `max_position_embeddings` caps each layer's buffer.
    """

    def __init__(self, config: CAMConfig):
        max_length = config.max_position_embeddings
        layers = [CAMCacheLayer(max_length=max_length) for _ in range(config.num_hidden_layers)]
        Cache.__init__(self, layers=layers)
        # The last `short_context_frames - 1` clean frames, for a Backbone with a short context.
        self.short_context_history: torch.Tensor | None = None


class CAMRMSNorm(nn.Module):
    def __init__(self, hidden_size: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        hidden_states = hidden_states * torch.rsqrt(hidden_states.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * hidden_states.to(input_dtype)


class CAMRotaryEmbedding(nn.Module):
    def __init__(self, config: CAMConfig):
        super().__init__()
        self.head_dim = config.head_dim
        self.base = config.rope_theta

    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Computed in float32 on every call rather than kept as a buffer: `model.to(torch.bfloat16)` would
        # round a buffer's frequencies, and the computation is a few dozen values.
        exponents = torch.arange(0, self.head_dim, 2, device=x.device, dtype=torch.float32) / self.head_dim
        inv_freq = 1.0 / (self.base**exponents)
        freqs = position_ids[..., None].float() * inv_freq
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin):
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


def eager_attention_forward(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    key = key.repeat_interleave(module.num_key_value_groups, dim=1)
    value = value.repeat_interleave(module.num_key_value_groups, dim=1)
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value).transpose(1, 2).contiguous()
    return attn_output, attn_weights


class CAMAttention(nn.Module):
    def __init__(self, config: CAMConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.head_dim = config.head_dim
        self.num_key_value_groups = config.num_attention_heads // config.num_key_value_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = True
        self.q_proj = nn.Linear(config.hidden_size, config.num_attention_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(config.hidden_size, config.num_key_value_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(config.hidden_size, config.num_key_value_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(config.num_attention_heads * self.head_dim, config.hidden_size, bias=False)

    def forward(
        self, hidden_states, position_embeddings, attention_mask=None, cache: Cache | None = None, **kwargs
    ):
        hidden_shape = (*hidden_states.shape[:-1], -1, self.head_dim)
        query = self.q_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        key = self.k_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        value = self.v_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        query, key = apply_rotary_pos_emb(query, key, *position_embeddings)
        if cache is not None:
            key, value = cache.update(key, value, self.layer_idx)

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.config.attention_dropout if self.training else 0.0,
            scaling=self.scaling,
            **kwargs,
        )
        attn_output = attn_output.reshape(*hidden_states.shape[:-1], -1)
        return self.o_proj(attn_output), attn_weights


class CAMMLP(nn.Module):
    def __init__(self, config: CAMConfig):
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


class CAMDecoderLayer(GradientCheckpointingLayer):
    def __init__(self, config: CAMConfig, layer_idx: int):
        super().__init__()
        self.self_attn = CAMAttention(config, layer_idx)
        self.mlp = CAMMLP(config)
        self.input_layernorm = CAMRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = CAMRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def forward(self, hidden_states, position_embeddings, attention_mask=None, cache=None, **kwargs):
        attn_output, _ = self.self_attn(
            self.input_layernorm(hidden_states), position_embeddings, attention_mask, cache, **kwargs
        )
        hidden_states = hidden_states + self.dropout(attn_output)
        hidden_states = hidden_states + self.dropout(self.mlp(self.post_attention_layernorm(hidden_states)))
        return hidden_states


class CAMShortContext(nn.Module):
    r"""
    The short clean context of Kyutai's CALM (arXiv 2509.06926): a causal convolution stack over the last
    K CLEAN frames, h_t = f(x_{t-K+1}, ..., x_t), whose output is added to the Backbone's z_t.

    The Backbone reads noise-augmented frames, which makes it robust to its own errors but blurs the local
    detail the next frame depends on (a note's exact pitch and onset); this module sees that detail, and only
    over K frames, so it cannot carry errors far. Its output layer starts at zero: added to a trained
    Backbone, it leaves the model's outputs unchanged until it has learned something.

    Position 0 (the start vector) and the positions before the first frame see zero frames, in training and
    at generation alike.
    """

    def __init__(self, config: CAMConfig):
        super().__init__()
        width, kernel_size = config.short_context_hidden_size, config.short_context_kernel_size
        self.input_proj = nn.Linear(config.latent_dim, width)
        self.convs = nn.ModuleList(
            nn.Conv1d(width, width, kernel_size) for _ in range(config.short_context_num_layers)
        )
        self.output_proj = nn.Linear(width, config.hidden_size)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        r"""
        Args:
            frames (`torch.Tensor` of shape `(batch_size, K - 1 + num_positions, latent_dim)`): the clean
                frames of `num_positions` positions, behind the K - 1 frames before the first of them.

        Returns:
            `torch.Tensor` of shape `(batch_size, num_positions, hidden_size)`: h for each position.
        """
        hidden_states = self.input_proj(frames).transpose(1, 2)
        for conv in self.convs:
            hidden_states = nn.functional.silu(conv(hidden_states))
        return self.output_proj(hidden_states.transpose(1, 2))


class CAMPreTrainedModel(PreTrainedModel):
    config_class = CAMConfig
    config: CAMConfig
    base_model_prefix = "backbone"
    main_input_name = "latents"
    supports_gradient_checkpointing = True
    _no_split_modules = ["CAMDecoderLayer"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, CAMModel):
            init.normal_(module.start_embedding, mean=0.0, std=self.config.initializer_range)
        # The short context's output layer starts at zero, so that adding it to a trained Backbone changes
        # nothing at first. Matched as a layer: loading initialises only the modules with missing weights.
        short_context = getattr(self, "short_context", None)
        if short_context is not None and module is short_context.output_proj:
            init.zeros_(module.weight)
            init.zeros_(module.bias)


class CAMModel(CAMPreTrainedModel):
    r"""
    The CAM Backbone. Projects latent frames to the model width, puts the learned start vector in front of a
    new sequence, and runs a causal pre-norm transformer (RoPE, SwiGLU, RMSNorm) over them.

    Given T latent frames and an empty cache, it returns T + 1 vectors z_0..z_T; z_t conditions the Sampler's
    prediction of frame t + 1. Given a cache that already holds a sequence, no start vector is added and it
    returns one vector per new frame: feeding a sequence at once or frame by frame gives the same z.
    """

    def __init__(self, config: CAMConfig):
        super().__init__(config)
        self.input_proj = nn.Linear(config.latent_dim, config.hidden_size)
        self.start_embedding = nn.Parameter(torch.zeros(config.hidden_size))
        self.noise_level_proj = nn.Linear(1, config.hidden_size) if config.condition_on_noise_level else None
        # One row per instrument plus the "no instrument" row (label dropout, classifier-free guidance).
        self.instrument_embedding = (
            nn.Embedding(config.num_instruments + 1, config.hidden_size) if config.num_instruments else None
        )
        self.layers = nn.ModuleList(CAMDecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = CAMRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.short_context = CAMShortContext(config) if config.short_context_frames else None
        self.rotary_emb = CAMRotaryEmbedding(config)
        self.gradient_checkpointing = False
        self.post_init()

    def forward(
        self,
        latents: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = None,
        noise_level: torch.Tensor | None = None,
        instrument_ids: torch.LongTensor | None = None,
        clean_latents: torch.Tensor | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        r"""
        Args:
            latents (`torch.Tensor` of shape `(batch_size, num_frames, latent_dim)`):
                Input frames (noise-augmented in training). `num_frames` may be 0 to get z_0 from the start
                vector.
            attention_mask (`torch.Tensor` of shape `(batch_size, past_frames + num_frames)`, *optional*):
                1 for real frames, 0 for padding, over every latent frame the cache and this call hold (the
                start vector is never masked and is not part of the mask).
            position_ids (`torch.LongTensor` of shape `(batch_size, num_positions)`, *optional*):
                Rotary positions of the new positions; by default counted from the start vector (position 0),
                skipping padding.
            cache (`Cache`, *optional*):
                Keys and values of earlier positions. With `use_cache=True` and no cache, a [`CAMCache`] (a
                `DynamicCache`) is made.
            use_cache (`bool`, *optional*):
                Whether to return the cache. Defaults to `config.use_cache` in eval mode and `False` in
                training.
            noise_level (`torch.Tensor` of shape `(batch_size, num_frames)`, *optional*):
                The noise level k of each input frame; required when `config.condition_on_noise_level` is set.
            instrument_ids (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
                The instrument of each sequence (ids into `config.instrument_names`, or
                `config.no_instrument_id`), for a Backbone with instrument conditioning; `None` means "no
                instrument". Its embedding is added to every position, the start vector included, so a window
                rebuilt anywhere in a long generation keeps it.
            clean_latents (`torch.Tensor` of the shape of `latents`, *optional*):
                The same frames before any noise was mixed in, for a Backbone with a short context
                (`config.short_context_frames > 0`, [`CAMShortContext`]), which reads them; required there,
                refused elsewhere. In training, the clean frames the noise augmentation corrupted; at
                generation, the frames the Sampler drew (and the prompt's), before the inference noise.

        Returns:
            [`~transformers.modeling_outputs.BaseModelOutputWithPast`]: `last_hidden_state` of shape
            `(batch_size, num_positions, hidden_size)` holds the conditioning vectors z (`num_positions` is
            `num_frames + 1` when the start vector was added), and `cache` the updated cache.
        """
        if use_cache is None:
            use_cache = self.config.use_cache and not self.training
        if use_cache and cache is None:
            cache = CAMCache(self.config)
        past_length = cache.get_seq_length() if cache is not None else 0
        starts_sequence = past_length == 0
        self._check_inputs(latents, attention_mask, noise_level, instrument_ids, past_length, starts_sequence)
        self._check_clean_latents(latents, clean_latents, cache, starts_sequence)

        hidden_states = self.embed(latents, noise_level, instrument_ids, starts_sequence)
        num_new = hidden_states.shape[1]

        if attention_mask is not None:
            # The start vector is always attended to: it is position 0 of every sequence, padded or not.
            start = attention_mask.new_ones(attention_mask.shape[0], 1)
            attention_mask = torch.cat([start, attention_mask], dim=1)
        if position_ids is None:
            if attention_mask is None:
                position_ids = torch.arange(past_length, past_length + num_new, device=latents.device)[None]
            else:
                # Left padding must not shift the real frames' positions.
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -num_new:]

        causal_mask = create_causal_mask(
            config=self.config,
            inputs_embeds=hidden_states,
            attention_mask=attention_mask,
            cache=cache,
            position_ids=position_ids,
        )
        position_embeddings = self.rotary_emb(hidden_states, position_ids)
        for layer in self.layers:
            hidden_states = layer(hidden_states, position_embeddings, causal_mask, cache, **kwargs)
        hidden_states = self.norm(hidden_states)
        if self.short_context is not None:
            if attention_mask is not None:
                # Padding reads as the zero frames a sequence starts behind.
                clean_latents = clean_latents * attention_mask[:, -latents.shape[1] :, None]
            hidden_states = hidden_states + self._short_context(clean_latents, cache, starts_sequence)
        return BaseModelOutputWithPast(last_hidden_state=hidden_states, cache=cache if use_cache else None)

    def embed(
        self,
        latents: torch.Tensor,
        noise_level: torch.Tensor | None = None,
        instrument_ids: torch.LongTensor | None = None,
        starts_sequence: bool = True,
    ) -> torch.Tensor:
        r"""
        The transformer's input: the projected frames (plus their noise level's projection), behind the start
        vector when `starts_sequence`, plus the instrument's embedding. Arguments as in `forward`, unchecked.

        Returns:
            `torch.Tensor` of shape `(batch_size, num_positions, hidden_size)`.
        """
        hidden_states = self.input_proj(latents)
        if self.noise_level_proj is not None:
            levels = noise_level.unsqueeze(-1).to(hidden_states.dtype)
            hidden_states = hidden_states + self.noise_level_proj(levels)
        if starts_sequence:
            start = self.start_embedding.to(hidden_states.dtype).expand(latents.shape[0], 1, -1)
            hidden_states = torch.cat([start, hidden_states], dim=1)
        if self.instrument_embedding is not None:
            if instrument_ids is None:
                instrument_ids = torch.full(
                    (latents.shape[0],), self.config.no_instrument_id, dtype=torch.long, device=latents.device
                )
            instruments = self.instrument_embedding(instrument_ids)[:, None].to(hidden_states.dtype)
            hidden_states = hidden_states + instruments
        return hidden_states

    def _short_context(self, clean_latents: torch.Tensor, cache: Cache | None, starts_sequence: bool):
        """h for every new position: the short context over the clean frames behind each; the cache keeps the
        last K - 1 of them for the next call."""
        history_length = self.config.short_context_frames - 1
        clean_latents = clean_latents.to(self.short_context.input_proj.weight.dtype)
        if starts_sequence:
            # The start vector's position and the K - 1 before it hold no frame.
            batch_size, _, latent_dim = clean_latents.shape
            history = clean_latents.new_zeros(batch_size, history_length + 1, latent_dim)
        else:
            history = cache.short_context_history
        frames = torch.cat([history, clean_latents], dim=1)
        if cache is not None:
            cache.short_context_history = frames[:, frames.shape[1] - history_length :]
        return self.short_context(frames)

    def _check_clean_latents(self, latents, clean_latents, cache, starts_sequence) -> None:
        if self.short_context is None:
            if clean_latents is not None:
                raise ValueError(
                    "This Backbone has no short context (`config.short_context_frames` is 0): do not pass "
                    "`clean_latents`."
                )
            return
        if clean_latents is None or clean_latents.shape != latents.shape:
            raise ValueError(
                "This Backbone has a short context over the clean frames (`config.short_context_frames` = "
                f"{self.config.short_context_frames}): pass `clean_latents` of the shape of `latents` "
                f"{tuple(latents.shape)}, got "
                f"{None if clean_latents is None else tuple(clean_latents.shape)}."
            )
        if not starts_sequence and getattr(cache, "short_context_history", None) is None:
            raise ValueError(
                "A Backbone with a short context continues a sequence from a cache that holds the last clean "
                f"frames; got a {type(cache).__name__} without them (filled by another model?). Start the "
                "sequence with this Backbone and `use_cache=True`."
            )

    def _check_inputs(
        self, latents, attention_mask, noise_level, instrument_ids, past_length, starts_sequence
    ) -> None:
        if latents.ndim != 3 or latents.shape[-1] != self.config.latent_dim:
            raise ValueError(
                f"`latents` must have shape (batch_size, num_frames, {self.config.latent_dim}), got "
                f"{tuple(latents.shape)}. Encode audio with an autoencoder whose latent_dim matches the "
                "Backbone's."
            )
        # The checks that read tensor values (and so wait for a GPU) run once per sequence, when it starts: a
        # cached step carries frames the caller generated from checked ones, and checking each would cost a
        # sync per frame.
        if starts_sequence and not torch.isfinite(latents).all():
            raise ValueError("`latents` contain NaN or inf values; check the autoencoder output or the data.")
        if not starts_sequence and latents.shape[1] == 0:
            raise ValueError("`latents` holds no frame: with a non-empty cache, pass at least one new frame.")
        total = past_length + latents.shape[1] + int(starts_sequence)
        if total > self.config.max_position_embeddings:
            raise ValueError(
                f"The sequence would span {total} positions (start vector + {past_length + latents.shape[1]} "
                f"frames{' in cache and input' if past_length else ''}), more than "
                f"max_position_embeddings={self.config.max_position_embeddings}. Crop the input or generate "
                "with a sliding window."
            )
        if attention_mask is not None:
            expected = (latents.shape[0], past_length - int(not starts_sequence) + latents.shape[1])
            if tuple(attention_mask.shape) != expected:
                raise ValueError(
                    "`attention_mask` must have shape (batch_size, cached frames + new frames) = "
                    f"{expected}, got {tuple(attention_mask.shape)}; it covers latent frames only, not the "
                    "start vector."
                )
        levels_missing = noise_level is None or noise_level.shape != latents.shape[:2]
        if self.noise_level_proj is not None and levels_missing:
            raise ValueError(
                "This Backbone is conditioned on the noise level (`condition_on_noise_level=True`): pass "
                f"`noise_level` of shape {tuple(latents.shape[:2])}, got "
                f"{None if noise_level is None else tuple(noise_level.shape)}."
            )
        if instrument_ids is not None:
            if self.instrument_embedding is None:
                raise ValueError(
                    "This Backbone has no instrument conditioning (`config.instrument_names` is None): do "
                    "not pass `instrument_ids`."
                )
            if instrument_ids.shape != (latents.shape[0],) or instrument_ids.dtype != torch.long:
                raise ValueError(
                    f"`instrument_ids` must be a LongTensor of shape ({latents.shape[0]},), one id per "
                    f"sequence, got {instrument_ids.dtype} of shape {tuple(instrument_ids.shape)}."
                )
            no_instrument_id = self.config.no_instrument_id
            if starts_sequence and ((instrument_ids < 0) | (instrument_ids > no_instrument_id)).any():
                raise ValueError(
                    f"`instrument_ids` must be in [0, {self.config.no_instrument_id}] "
                    f"({self.config.num_instruments} instruments, then 'no instrument'), got "
                    f"{instrument_ids.tolist()}."
                )


__all__ = ["CAMCache", "CAMCacheLayer", "CAMModel", "CAMPreTrainedModel", "CAMShortContext", "mix_noise"]
