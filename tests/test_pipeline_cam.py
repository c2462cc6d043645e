import dataclasses
import gc
import inspect
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import torch
from diffusers import (
    FlowMatchEulerDiscreteScheduler,
    FlowMatchHeunDiscreteScheduler,
    UniPCMultistepScheduler,
)

from cam_hf import CAMModel, CAMPipeline, CAMSampler, hub_utils, mix_noise, sample_next_frame
from cam_hf.pipeline_checks import GenerationInputs
from cam_hf.testing_utils import random_pipeline, tiny_mel_autoencoder

from .conftest import seeded, tiny_config
from .test_autoencoders import TINY_OOBLECK
from .test_generation import draw_as_diffusers_does

LATENT_DIM = 32  # the tiny mel codec's


@pytest.fixture
def pipe() -> CAMPipeline:
    return random_pipeline()


def test_output_types_and_shapes(pipe):
    hop = pipe.autoencoder.hop_length
    audio = pipe(num_frames=5, num_inference_steps=2, generator=seeded()).audios
    assert isinstance(audio, np.ndarray) and audio.shape == (1, 1, 5 * hop) and np.isfinite(audio).all()
    audio_pt = pipe(num_frames=5, num_inference_steps=2, generator=seeded(), output_type="pt").audios
    assert isinstance(audio_pt, torch.Tensor)
    np.testing.assert_array_equal(audio_pt.numpy(), audio)
    latents = pipe(num_frames=5, num_inference_steps=2, generator=seeded(), output_type="latent").audios
    assert latents.shape == (1, 5, LATENT_DIM)
    (as_tuple,) = pipe(num_frames=5, num_inference_steps=2, generator=seeded(), return_dict=False)
    np.testing.assert_array_equal(as_tuple, audio)
    # Seconds round up to whole frames.
    seconds = pipe(
        audio_length_in_s=4.5 * hop / pipe.sample_rate, num_inference_steps=1, output_type="latent"
    )
    assert seconds.audios.shape[1] == 5


def test_same_generator_same_audio_and_different_seeds_differ(pipe):
    first = pipe(num_frames=6, num_inference_steps=2, generator=seeded(), output_type="latent").audios
    again = pipe(num_frames=6, num_inference_steps=2, generator=seeded(), output_type="latent").audios
    other = pipe(
        num_frames=6, num_inference_steps=2, generator=torch.Generator().manual_seed(1), output_type="latent"
    )
    assert torch.equal(first, again)
    assert not torch.allclose(first, other.audios)


def test_batch_equals_single(pipe):
    batch = pipe(num_frames=6, num_inference_steps=3, num_waveforms_per_prompt=3, generator=seeded(3)).audios
    assert batch.shape[0] == 3
    for i in range(3):
        single = pipe(
            num_frames=6, num_inference_steps=3, generator=[torch.Generator().manual_seed(i)]
        ).audios
        np.testing.assert_allclose(batch[i], single[0], atol=1e-4)
    assert not np.allclose(batch[0], batch[1])


def test_batched_prompts_equal_single_prompts(pipe):
    prompts = torch.randn(2, 4, LATENT_DIM)
    batch = pipe(
        prompt_latents=prompts, num_frames=5, num_inference_steps=2, generator=seeded(2), output_type="latent"
    ).audios
    for i in range(2):
        single = pipe(
            prompt_latents=prompts[i : i + 1],
            num_frames=5,
            num_inference_steps=2,
            generator=[torch.Generator().manual_seed(i)],
            output_type="latent",
        ).audios
        torch.testing.assert_close(batch[i], single[0], rtol=0, atol=1e-5)


def test_continuation_from_audio(pipe):
    hop = pipe.autoencoder.hop_length
    t = np.arange(6 * hop * 2) / 16000
    mono = 0.3 * np.sin(2 * np.pi * 440 * t).astype(np.float32)  # at 16 kHz: resampled to the codec's 8 kHz
    out = pipe(audio=mono, sample_rate=16000, num_frames=4, num_inference_steps=2, generator=seeded()).audios
    assert out.shape == (1, 1, 4 * hop)
    stereo = np.stack([mono, mono])
    out_stereo = pipe(
        audio=stereo, sample_rate=16000, num_frames=4, num_inference_steps=2, generator=seeded()
    )
    np.testing.assert_allclose(out_stereo.audios, out, atol=1e-5)  # stereo is averaged to mono: same prompt
    unprompted = pipe(num_frames=4, num_inference_steps=2, generator=seeded()).audios
    assert not np.allclose(out, unprompted)


def test_prompt_is_encoded_behind_the_start_vector(pipe):
    # The first generated frame is conditioned on z from [start, prompt frames mixed with
    # k_inf]: recompute it.
    prompt = torch.randn(1, 3, LATENT_DIM)
    out = pipe(
        prompt_latents=prompt, num_frames=1, num_inference_steps=3, generator=seeded(), output_type="latent"
    )
    generator = seeded()
    noise = torch.randn(prompt.shape, generator=generator)
    fed = mix_noise(prompt, noise, torch.tensor(pipe.backbone.config.inference_noise))
    condition = pipe.backbone(fed).last_hidden_state[:, -1]
    expected = sample_next_frame(pipe.sampler, pipe.scheduler, condition, 3, generator)
    torch.testing.assert_close(out.audios[:, 0], expected, rtol=0, atol=1e-5)


def test_streaming_chunks_equal_one_shot(pipe):
    kwargs = dict(num_frames=11, num_inference_steps=2, decode_chunk_frames=4)
    one_shot = pipe(generator=seeded(), **kwargs).audios
    chunks = list(pipe.stream(generator=seeded(), **kwargs))
    hop = pipe.autoencoder.hop_length
    assert [c.shape[-1] for c in chunks] == [4 * hop, 4 * hop, 3 * hop]
    np.testing.assert_array_equal(np.concatenate(chunks, axis=-1), one_shot)
    latent_chunks = list(pipe.stream(generator=seeded(), output_type="latent", **kwargs))
    assert [c.shape[1] for c in latent_chunks] == [4, 4, 3]


def test_decode_latents_equals_one_shot_and_streaming_latency(pipe):
    kwargs = dict(num_frames=13, num_inference_steps=2, decode_chunk_frames=4, decode_context_frames=2)
    latents = pipe(generator=seeded(), output_type="latent", **kwargs).audios
    audio = pipe(generator=seeded(), **kwargs).audios
    np.testing.assert_array_equal(pipe.decode_latents(latents, 4, 2).numpy(), audio)
    # A chunk is decoded, beside the loop, once its right context exists: the first one after 4 + 2 frames.
    # The 7th frame's callback waits until that decoding has started (it never would if it needed
    # the 7th frame).
    decoding_started, waited = threading.Event(), []
    decode = pipe.autoencoder._decode_continuing
    pipe.autoencoder._decode_continuing = lambda *args: decoding_started.set() or decode(*args)

    def wait_at_the_seventh_frame(pipeline, index, timestep, callback_kwargs):
        if index == 6:
            waited.append(decoding_started.wait(timeout=120))
        return callback_kwargs

    stream = pipe.stream(generator=seeded(), callback_on_step_end=wait_at_the_seventh_frame, **kwargs)
    first = next(stream)
    assert waited == [True] and first.shape[-1] == 4 * pipe.autoencoder.hop_length
    np.testing.assert_array_equal(np.concatenate([first, *stream], axis=-1), audio)


def decoding_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "cam_hf-decode"]


def test_a_stream_closed_early_stops_its_decoding_thread(pipe):
    stream = pipe.stream(num_frames=40, num_inference_steps=1, decode_chunk_frames=4, generator=seeded())
    next(stream)
    assert len(decoding_threads()) == 1
    stream.close()
    for thread in decoding_threads():
        thread.join(timeout=60)
    assert not decoding_threads()


def test_an_error_in_the_decoding_thread_reaches_the_caller(pipe):
    def diverge(pipeline, index, timestep, callback_kwargs):
        # A frame that slips past the callback checks (as a diverged Sampler's would): decoding refuses it.
        callback_kwargs["latents"][:] = float("nan") if index == 2 else callback_kwargs["latents"]
        return {}

    kwargs = dict(num_frames=12, num_inference_steps=1, decode_chunk_frames=4)
    stream = pipe.stream(callback_on_step_end=diverge, **kwargs)
    with pytest.raises(ValueError, match="NaN"):
        list(stream)
    for thread in decoding_threads():
        thread.join(timeout=60)
    assert not decoding_threads()


def test_stream_has_the_signature_of_call_without_return_dict():
    call = dict(inspect.signature(CAMPipeline.__call__).parameters)
    stream = dict(inspect.signature(CAMPipeline.stream).parameters)
    assert call.pop("return_dict").default is True
    defaults = [(name, parameter.default) for name, parameter in call.items()]
    assert [(name, parameter.default) for name, parameter in stream.items()] == defaults


def test_the_checked_arguments_are_streams():
    # `stream` checks its arguments into one `GenerationInputs` that the rest of the call reads: a new
    # argument is a new field there, then its check and its use.
    parameters = list(inspect.signature(CAMPipeline.stream).parameters)[1:]
    assert [field.name for field in dataclasses.fields(GenerationInputs)] == [*parameters, "num_waveforms"]


def test_stream_checks_its_arguments_when_called(pipe):
    # Not at the first `next()`: a generator function would only run its body then.
    with pytest.raises(ValueError, match="num_frames"):
        pipe.stream(num_frames=0)
    with pytest.raises(ValueError, match="decode_chunk_frames"):
        pipe.stream(num_frames=3, decode_chunk_frames=0)


def test_batch_size_batches_unconditional_generation(pipe):
    kwargs = dict(num_frames=5, num_inference_steps=2, output_type="latent")
    batch = pipe(batch_size=3, generator=seeded(3), **kwargs).audios
    assert batch.shape == (3, 5, LATENT_DIM)
    for i in range(3):
        single = pipe(generator=torch.Generator().manual_seed(i), **kwargs).audios
        torch.testing.assert_close(batch[i : i + 1], single, rtol=0, atol=1e-5)
    assert pipe(batch_size=2, num_waveforms_per_prompt=3, **kwargs).audios.shape[0] == 6
    with pytest.raises(ValueError, match="batch_size"):
        pipe(prompt_latents=torch.randn(2, 3, LATENT_DIM), batch_size=3, **kwargs)


def test_a_list_of_waveforms_is_a_batch_of_prompts(pipe):
    hop = pipe.autoencoder.hop_length
    waveforms = [0.1 * np.sin(np.arange(4 * hop) * f).astype(np.float32) for f in (0.05, 0.11)]
    kwargs = dict(sample_rate=pipe.sample_rate, num_frames=3, num_inference_steps=2)
    as_list = pipe(audio=waveforms, generator=seeded(2), **kwargs).audios
    as_batch = pipe(audio=np.stack(waveforms)[:, None], generator=seeded(2), **kwargs).audios
    np.testing.assert_array_equal(as_list, as_batch)
    with pytest.raises(ValueError, match="different shapes"):
        pipe(audio=[waveforms[0], waveforms[1][:-hop]], **kwargs)


def test_stochastic_scheduler_rows_follow_their_own_generator(pipe):
    # A stochastic step draws noise too: each row must draw it from its own generator, or a waveform would
    # depend on the batch it is generated in.
    pipe.scheduler = FlowMatchEulerDiscreteScheduler(stochastic_sampling=True)
    kwargs = dict(num_frames=4, num_inference_steps=3, output_type="latent")
    batch = pipe(batch_size=2, generator=seeded(2), **kwargs).audios
    second = pipe(generator=[torch.Generator().manual_seed(1)], **kwargs).audios
    torch.testing.assert_close(batch[1:], second, rtol=0, atol=1e-5)


def live_tensor_bytes() -> int:
    """Bytes of every tensor storage Python still holds (views of one storage counted once)."""
    gc.collect()
    storages = {}
    for obj in gc.get_objects():
        if issubclass(type(obj), torch.Tensor):
            storages[obj.untyped_storage().data_ptr()] = obj.untyped_storage().nbytes()
    return sum(storages.values())


def test_generation_holds_only_the_window(pipe):
    # Past the context, the loop keeps the Backbone's window and the chunk being built, and nothing that grows
    # with the length: what it holds 50 chunks later is no more than before, give or take a few frames' worth
    # (a buffer keeping every frame would hold 350 more).
    chunk_frames, frame_bytes = 7, 4 * LATENT_DIM
    stream = pipe.stream(
        num_frames=70 * chunk_frames,
        num_inference_steps=1,
        output_type="latent",
        decode_chunk_frames=chunk_frames,
        decode_first_chunk_frames=chunk_frames,
        generator=seeded(),
    )
    held, sizes = [], set()
    for index, chunk in enumerate(stream):
        sizes.add(chunk.shape[1])
        if index in (10, 60):
            held.append(live_tensor_bytes())
    assert sizes == {chunk_frames}
    assert held[1] - held[0] < 10 * frame_bytes


def generate_by_recomputing(pipe, num_frames: int, steps: int, context_shift: int) -> torch.Tensor:
    """`pipe`'s frames for seed 0 without a prompt, computed the slow way: for every frame, a fresh Backbone
    pass over the start vector and the frames the window holds (after a rebuild, the last `context_frames -
    context_shift` fed), then diffusers' own loop with the pipeline's scheduler."""
    context, k_inf = pipe.context_frames, torch.tensor(pipe.backbone.config.inference_noise)
    generator, held, frames = seeded(), torch.zeros(1, 0, LATENT_DIM), []
    for _ in range(num_frames):
        condition = pipe.backbone(held).last_hidden_state[:, -1]
        frames.append(draw_as_diffusers_does(pipe.sampler, pipe.scheduler, condition, steps, generator))
        fed = mix_noise(frames[-1][:, None], torch.randn(1, 1, LATENT_DIM, generator=generator), k_inf)
        held = torch.cat([held, fed], 1)
        if held.shape[1] > context:
            held = held[:, -(context - context_shift) :]
    return torch.stack(frames, 1)


@pytest.mark.parametrize(
    "make_scheduler",
    [
        lambda config: FlowMatchHeunDiscreteScheduler.from_config(config),
        lambda config: UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True),
    ],
)
def test_scheduler_swap(pipe, make_scheduler):
    # Every frame is integrated by the scheduler the pipeline holds: the frames are diffusers' own loop's with
    # that scheduler, not those of the default Euler steps.
    kwargs = dict(num_frames=4, num_inference_steps=3, output_type="latent")
    euler = pipe(generator=seeded(), **kwargs).audios
    pipe.scheduler = make_scheduler(pipe.scheduler.config)
    swapped = pipe(generator=seeded(), **kwargs).audios
    expected = generate_by_recomputing(pipe, 4, 3, context_shift=pipe.context_frames // 2)
    torch.testing.assert_close(swapped, expected, rtol=0, atol=1e-5)
    assert not torch.allclose(swapped, euler, atol=1e-3)


def test_long_form_beyond_the_context(pipe):
    # Past the Backbone's context the window slides: every frame equals the slow reference, for the default
    # shift (half the context) and a 1-frame one. The frames up to the first rebuild (after frame `context`,
    # when the window is full) are the same for both; after it they depend on the shift.
    context, steps = pipe.context_frames, 2
    kwargs = dict(num_frames=3 * context, num_inference_steps=steps, output_type="latent")
    half = pipe(generator=seeded(), **kwargs).audios
    one = pipe(generator=seeded(), context_shift=1, **kwargs).audios
    expected = generate_by_recomputing(pipe, 3 * context, steps, context_shift=context // 2)
    torch.testing.assert_close(half, expected, rtol=0, atol=1e-4)
    torch.testing.assert_close(one, generate_by_recomputing(pipe, 3 * context, steps, 1), rtol=0, atol=1e-4)
    assert torch.equal(half[:, : context + 1], one[:, : context + 1])
    assert not torch.allclose(half[:, context + 1 :], one[:, context + 1 :], atol=1e-3)


def test_save_load_reproduces_audio(pipe, tmp_path):
    expected = pipe(num_frames=6, num_inference_steps=2, generator=seeded()).audios
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["backbone"] == ["cam_hf.modeling_cam", "CAMModel"]
    assert index["sampler"] == ["cam_hf.sampler", "CAMSampler"]
    assert index["scheduler"] == ["diffusers", "FlowMatchEulerDiscreteScheduler"]
    assert (tmp_path / "backbone" / "model.safetensors").exists()
    assert (tmp_path / "sampler" / "diffusion_pytorch_model.safetensors").exists()
    assert not list(tmp_path.rglob("*.bin")) and not list(tmp_path.rglob("*.pt"))
    loaded = CAMPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(
        loaded(num_frames=6, num_inference_steps=2, generator=seeded()).audios, expected
    )


def test_import_is_lazy_and_loading_imports_what_the_index_names(tmp_path):
    # `import cam_hf` imports no stack; `CAMPipeline.from_pretrained` imports the cam_hf modules that
    # `model_index.json` names, here an Oobleck autoencoder, which importing the pipeline does not import.
    from cam_hf import OobleckAutoencoder

    random_pipeline(autoencoder=OobleckAutoencoder(vae_config=TINY_OOBLECK)).save_pretrained(tmp_path)
    script = textwrap.dedent(
        f"""
        import sys
        import cam_hf
        assert "torch" not in sys.modules, "import cam_hf imported torch"
        from cam_hf import CAMPipeline
        assert "cam_hf.autoencoders.oobleck" not in sys.modules
        print(type(CAMPipeline.from_pretrained({str(tmp_path)!r}).autoencoder).__name__)
        """
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    command = [sys.executable, "-c", script]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("OobleckAutoencoder")


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """The Hub's two calls, up to the network: `create_repo` resolves the id, `upload_folder`
    copies the folder."""
    uploaded = tmp_path / "uploaded"

    class Repo:
        repo_id = "org/cam-test"

    def fake_create_repo(repo_id, **kwargs):
        assert repo_id in ("org/cam-test", "cam-test")
        return Repo()

    def fake_upload_folder(repo_id, folder_path, **kwargs):
        assert repo_id == "org/cam-test"
        shutil.copytree(folder_path, uploaded)
        return "https://hub.example/org/cam-test"

    monkeypatch.setattr(hub_utils, "create_repo", fake_create_repo)
    monkeypatch.setattr(hub_utils, "upload_folder", fake_upload_folder)
    return uploaded


def check_uploaded_card(pipe, uploaded):
    card = (uploaded / "README.md").read_text()
    assert card.startswith("---") and "library_name: cam_hf" in card
    repo_id = "org/cam-test"
    assert f'CAMPipeline.from_pretrained("{repo_id}")' in card  # the card's usage snippet names the repo
    assert "Trained for 10 steps on test data." in card
    assert f"{sum(p.numel() for p in pipe.backbone.parameters()):,}" in card
    reloaded = CAMPipeline.from_pretrained(uploaded)
    reloaded.set_progress_bar_config(disable=True)
    expected = pipe(num_frames=3, num_inference_steps=2, generator=seeded()).audios
    np.testing.assert_array_equal(
        reloaded(num_frames=3, num_inference_steps=2, generator=seeded()).audios, expected
    )


def test_push_to_hub_uploads_our_card(pipe, hub):
    pipe.push_to_hub("org/cam-test", training_details="Trained for 10 steps on test data.")
    check_uploaded_card(pipe, hub)


def test_save_pretrained_with_push_to_hub_uploads_our_card(pipe, hub, tmp_path):
    # diffusers' own `save_pretrained(push_to_hub=True)` would write and upload its generic card.
    pipe.save_pretrained(
        tmp_path / "cam-test", push_to_hub=True, training_details="Trained for 10 steps on test data."
    )
    check_uploaded_card(pipe, hub)


def test_callback_on_step_end(pipe):
    calls = []

    def callback(pipeline, index, timestep, callback_kwargs):
        calls.append((index, tuple(callback_kwargs["latents"].shape), pipeline.num_timesteps))
        return {"latents": torch.zeros_like(callback_kwargs["latents"])}  # replace every new frame

    out = pipe(
        num_frames=4,
        num_inference_steps=2,
        generator=seeded(),
        output_type="latent",
        callback_on_step_end=callback,
        callback_on_step_end_tensor_inputs=["latents"],
    ).audios
    assert calls == [(i, (1, 1, LATENT_DIM), 4) for i in range(4)]  # the new frame only, once per frame
    assert torch.equal(out, torch.zeros_like(out))

    def interrupt(pipeline, index, timestep, callback_kwargs):
        pipeline._interrupt = index == 1
        return {}

    short = pipe(
        num_frames=6, num_inference_steps=2, output_type="latent", callback_on_step_end=interrupt
    ).audios
    assert short.shape[1] == 2
    with pytest.raises(ValueError, match="callback_on_step_end_tensor_inputs"):
        pipe(num_frames=2, callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["noise"])


def test_a_replaced_frame_is_what_the_backbone_reads_next(pipe):
    # Replacing frame 0 changes what the Backbone is fed, so every later frame changes too.
    replacement = torch.full((1, 1, LATENT_DIM), 0.5)

    def replace_first(pipeline, index, timestep, callback_kwargs):
        return {"latents": replacement} if index == 0 else callback_kwargs

    kwargs = dict(num_frames=4, num_inference_steps=2, output_type="latent")
    plain = pipe(generator=seeded(), **kwargs).audios
    replaced = pipe(generator=seeded(), callback_on_step_end=replace_first, **kwargs).audios
    assert torch.equal(replaced[:, :1], replacement)
    assert not torch.allclose(replaced[:, 1:], plain[:, 1:])


@pytest.mark.parametrize(
    "returned, match",
    [
        (
            lambda kwargs: {"latents": torch.zeros(1, 2, LATENT_DIM)},
            "only the new frame",
        ),  # earlier frames too
        (lambda kwargs: {"latents": kwargs["latents"][:, :, :5]}, "only the new frame"),
        (lambda kwargs: {"latents": kwargs["latents"] * float("nan")}, "NaN"),
        (lambda kwargs: None, "must return a dict"),
    ],
)
def test_callback_may_only_replace_the_new_frame(pipe, returned, match):
    with pytest.raises(ValueError, match=match):
        pipe(
            num_frames=3,
            num_inference_steps=1,
            output_type="latent",
            callback_on_step_end=lambda p, i, t, kwargs: returned(kwargs),
        )


def test_dtype_and_device_moves(pipe):
    pipe.to("cpu")
    assert pipe.device.type == "cpu"
    reference = pipe(num_frames=4, num_inference_steps=2, generator=seeded(), output_type="latent").audios
    pipe.to(torch.bfloat16)  # the mel codec keeps its DSP buffers in float32
    assert pipe.backbone.dtype == pipe.sampler.dtype == torch.bfloat16
    low = pipe(num_frames=4, num_inference_steps=2, generator=seeded(), output_type="latent").audios
    assert low.dtype == torch.bfloat16 and torch.isfinite(low.float()).all()
    assert (low.float() - reference).abs().mean() < 0.1 * reference.abs().mean()
    audio = pipe(num_frames=4, num_inference_steps=2, generator=seeded()).audios  # decoded in float32
    assert audio.dtype == np.float32 and np.isfinite(audio).all()


def test_save_load_in_bfloat16(pipe, tmp_path):
    pipe.to(torch.bfloat16)
    expected = pipe(num_frames=4, num_inference_steps=2, generator=seeded()).audios
    pipe.save_pretrained(tmp_path)
    loaded = CAMPipeline.from_pretrained(tmp_path, dtype=torch.bfloat16)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.backbone.dtype == loaded.sampler.dtype == torch.bfloat16
    assert set(loaded.components) == {"backbone", "sampler", "scheduler", "autoencoder"}
    np.testing.assert_array_equal(
        loaded(num_frames=4, num_inference_steps=2, generator=seeded()).audios, expected
    )


def test_components_must_agree():
    torch.manual_seed(0)
    backbone = CAMModel(tiny_config(latent_dim=LATENT_DIM))
    sampler = CAMSampler(latent_dim=LATENT_DIM, condition_dim=32, width=32, num_blocks=1)
    with pytest.raises(ValueError, match="latent_dim"):
        CAMPipeline(
            CAMModel(tiny_config(latent_dim=16)),
            sampler,
            FlowMatchEulerDiscreteScheduler(),
            tiny_mel_autoencoder(),
        )
    with pytest.raises(ValueError, match="condition_dim"):
        CAMPipeline(
            backbone,
            CAMSampler(latent_dim=LATENT_DIM, condition_dim=8),
            FlowMatchEulerDiscreteScheduler(),
            tiny_mel_autoencoder(),
        )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(prompt_latents=torch.randn(1, 3, 7), num_frames=2), "prompt_latents"),
        (dict(prompt_latents=torch.randn(1, 0, LATENT_DIM), num_frames=2), "zero frames"),
        (dict(audio=np.full(2048, np.nan, dtype=np.float32), sample_rate=8000, num_frames=2), "NaN"),
        (dict(audio=np.zeros(0, dtype=np.float32), sample_rate=8000, num_frames=2), "empty|zero"),
        (dict(audio=np.zeros(2048, dtype=np.float32), num_frames=2), "sample_rate"),
        (dict(audio=np.zeros(10, dtype=np.float32), sample_rate=8000, num_frames=2), "samples"),
        (dict(audio_length_in_s=-1.0), "audio_length_in_s"),
        (dict(audio_length_in_s=1e7), "audio_length_in_s"),
        (dict(num_frames=0), "num_frames"),
        (dict(), "exactly one"),
        (dict(num_frames=2, num_inference_steps=0), "num_inference_steps"),
        (dict(num_frames=2, inference_noise=1.5), "inference_noise"),
        (dict(num_frames=2, num_waveforms_per_prompt=2, generator=[torch.Generator()]), "generators"),
        (dict(num_frames=2, output_type="wav"), "output_type"),
        (dict(num_frames=2, context_shift=500), "context_shift"),
        (dict(num_frames=2, decode_context_frames=-1), "decode_context_frames"),
        (dict(prompt_latents=torch.randn(1, 2, LATENT_DIM), audio=np.zeros(512), num_frames=2), "not both"),
    ],
)
def test_bad_input_raises(pipe, kwargs, match):
    with pytest.raises(ValueError, match=match):
        pipe(**kwargs)
