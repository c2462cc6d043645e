#!/usr/bin/env python
"""A web app for a CAMPipeline: pick an instrument, continue your own recording or a built-in test melody,
hear the audio stream in while it is generated, then download the WAV and look at its spectrogram.

    make app                                    # the shipped model on http://127.0.0.1:7860
    python examples/app.py --model runs/my-cam --max_seconds 600 --concurrency 4 --port 8000

The same generation is an API (docs/app.md):

    from gradio_client import Client
    stream, wav, spectrogram, seed, status = Client("http://127.0.0.1:7860/").predict(
        instrument="violin", audio_length_in_s=10, randomize_seed=False, seed=0, api_name="/generate")

Everything runs locally: the model loads from a folder and the page needs no network. Streaming needs
`ffmpeg` on PATH (Gradio encodes the stream with it); without it the app sends the whole file when ready.
"""

import argparse
import io
import logging
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402

from cam_hf import CAMPipeline  # noqa: E402
from cam_hf.autoencoders.base import DEFAULT_DECODE_FIRST_CHUNK_FRAMES  # noqa: E402
from cam_hf.listening import save_spectrogram, write_wav  # noqa: E402
from cam_hf.pipeline_cam import MAX_GUIDANCE_SCALE  # noqa: E402
from cam_hf.sampler import DEFAULT_NUM_INFERENCE_STEPS  # noqa: E402

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED_MODEL = os.path.join(REPOSITORY, "models", "cam-music21-small")
ANY_INSTRUMENT = "any"
NO_MELODY = "none"
# The Sampler's cost grows with its steps; past 4x a plain flow head's default a request only gets slower.
MAX_STEPS = 4 * DEFAULT_NUM_INFERENCE_STEPS
# The Sampler's temperature (starting-noise variance): measured useful between 0.8 and 1.6; wider is allowed.
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.1, 3.0
MAX_SEED = 2**32 - 1
# A prompt whose peak is below -60 dBFS holds nothing the model could continue.
SILENCE_PEAK = 10 ** (-60 / 20)
# The first seconds of a test melody are its prompt.
MELODY_PROMPT_SECONDS = 6.0
logger = logging.getLogger("cam_app")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model",
        default=SHIPPED_MODEL,
        help="A saved CAMPipeline folder or a Hub id; default: the model shipped here.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="Address to serve on (localhost by default).")
    parser.add_argument("--port", type=int, default=7860, help="Port to serve on.")
    parser.add_argument(
        "--max_seconds", type=float, default=300.0, help="Longest audio a request may ask for, in seconds."
    )
    parser.add_argument(
        "--max_prompt_seconds", type=float, default=60.0, help="Longest audio prompt accepted, in seconds."
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=2,
        help="Generations that run at once; the others wait in the queue.",
    )
    parser.add_argument("--max_queue", type=int, default=32, help="Requests that may wait; more are refused.")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: the CPU cores shared among --concurrency generations).",
    )
    parser.add_argument(
        "--chunk_frames",
        type=int,
        default=16,
        help="Latent frames per streamed chunk once the chunks have grown from --first_chunk_frames.",
    )
    parser.add_argument(
        "--first_chunk_frames",
        type=int,
        default=DEFAULT_DECODE_FIRST_CHUNK_FRAMES,
        help="Latent frames of the first streamed chunk (doubling up to --chunk_frames): fewer means the "
        "first sound comes sooner.",
    )
    parser.add_argument(
        "--num_melodies", type=int, default=6, help="Built-in test melodies offered as prompts (0 for none)."
    )
    parser.add_argument("--max_upload_size", default="50mb", help="Largest upload Gradio accepts.")
    args = parser.parse_args(argv)
    for name in ("max_seconds", "max_prompt_seconds"):
        if not 0 < getattr(args, name) <= 3600:
            parser.error(f"--{name} must be in (0, 3600] seconds, got {getattr(args, name)}.")
    for name in ("concurrency", "max_queue", "chunk_frames", "first_chunk_frames"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}.")
    return args


class BuiltInMelodies:
    """The built-in dataset's test-split melodies (never seen in training), rendered on request by
    `cam_hf.data.build_from_corpus.render_test_melody`, with the instrument the dataset gave each, and
    kept."""

    def __init__(self, pipe: CAMPipeline, count: int):
        self.pipe = pipe
        self.names: list[str] = []
        self.unavailable = ""
        self._rendered: dict[str, tuple[np.ndarray, int, str]] = {}
        self._lock = threading.Lock()  # all renders share one SoundFont synthesiser
        if count <= 0:
            return
        try:
            from demo import built_in_test_split

            from cam_hf.data.build_from_corpus import split_pieces

            self.config = built_in_test_split()
            self.config.validate()
            self.names = [ref.name for ref in split_pieces(self.config, "test")[:count]]
        except ImportError as error:
            self.unavailable = f"Test melodies need music21 and tinysoundfont (`make install`): {error}."

    def prompt(self, name: str) -> tuple[np.ndarray, int, str]:
        """The first `MELODY_PROMPT_SECONDS` of melody `name`: audio `[1, samples]`, rate, description."""
        from cam_hf.data.build_from_corpus import render_test_melody

        with self._lock:
            if name not in self._rendered:
                seconds = MELODY_PROMPT_SECONDS
                try:
                    rendering = render_test_melody(
                        self.config, name, seconds, seconds + 1.0, self.pipe.backbone.config.instrument_names
                    )
                except ImportError as error:
                    raise ValueError(
                        f"Rendering a test melody needs tinysoundfont (`make install`): {error}."
                    ) from None
                melody, rate = rendering.melody, rendering.sample_rate
                self._rendered[name] = (
                    rendering.audio[None, : int(seconds * rate)],
                    rate,
                    f"{melody.piece} ({melody.part_name}, {rendering.instrument.name})",
                )
            return self._rendered[name]


def read_prompt(path: str, max_seconds: float) -> tuple[np.ndarray, int]:
    """Read an uploaded or recorded prompt, refusing what cannot be continued.

    Returns:
        `tuple[np.ndarray, int]`: float32 audio `[channels, samples]` and its sample rate.

    Raises:
        `ValueError`: an empty, unreadable, truncated or silent file, or one longer than `max_seconds`.
    """
    name = os.path.basename(path)
    if os.path.getsize(path) == 0:
        raise ValueError(f"The audio prompt {name!r} is an empty file: upload or record some audio.")
    try:
        info = sf.info(path)
    except sf.LibsndfileError as error:
        return _read_prompt_with_ffmpeg(path, max_seconds, error.error_string)
    _check_prompt_duration(name, info.duration, max_seconds)
    try:
        audio, sample_rate = sf.read(path, dtype="float32", always_2d=True)
    except sf.LibsndfileError as error:
        raise ValueError(
            f"The audio prompt {name!r} could not be decoded ({error.error_string}): is it "
            "truncated? Upload the complete file."
        ) from None
    if len(audio) < info.frames or _wav_is_truncated(path):
        raise ValueError(
            f"The audio prompt {name!r} is truncated: its header announces more audio than the "
            "file holds. Upload the complete file."
        )
    return _check_prompt_audio(name, audio.T), sample_rate


def _read_prompt_with_ffmpeg(path: str, max_seconds: float, reason: str) -> tuple[np.ndarray, int]:
    """Formats libsndfile does not read (AAC, WebM recordings, ...) are decoded by ffmpeg, if installed."""
    name, formats = os.path.basename(path), "Upload WAV, FLAC, OGG or MP3"
    if shutil.which("ffmpeg") is None:
        raise ValueError(
            f"Could not read the audio prompt {name!r} ({reason}). {formats}; other formats "
            "need ffmpeg on the server."
        )
    from pydub import AudioSegment
    from pydub.exceptions import CouldntDecodeError

    try:
        segment = AudioSegment.from_file(path)
    except (CouldntDecodeError, IndexError, OSError):
        raise ValueError(
            f"Could not read the audio prompt {name!r}: neither libsndfile ({reason}) nor "
            f"ffmpeg decodes it as audio. {formats}, or another format ffmpeg reads."
        ) from None
    _check_prompt_duration(name, segment.duration_seconds, max_seconds)
    samples = np.array(segment.get_array_of_samples(), dtype=np.float32).reshape(-1, segment.channels)
    return _check_prompt_audio(name, samples.T / 2 ** (8 * segment.sample_width - 1)), segment.frame_rate


def _check_prompt_duration(name: str, seconds: float, max_seconds: float) -> None:
    if seconds > max_seconds:
        raise ValueError(
            f"The audio prompt {name!r} lasts {seconds:.1f} s, longer than this server's limit "
            f"of {max_seconds:g} s for prompts: cut it (only its end is continued anyway)."
        )


def _check_prompt_audio(name: str, audio: np.ndarray) -> np.ndarray:
    if audio.shape[-1] == 0:
        raise ValueError(f"The audio prompt {name!r} holds no samples: upload or record some audio.")
    peak = float(np.abs(audio).max())
    if peak < SILENCE_PEAK:
        raise ValueError(
            f"The audio prompt {name!r} is silent (peak {20 * np.log10(max(peak, 1e-12)):.0f} "
            "dBFS): there is nothing to continue. Upload a recording with sound in it."
        )
    return audio


def _wav_is_truncated(path: str) -> bool:
    """Whether a RIFF/WAVE file's `data` chunk claims more bytes than the file holds (libsndfile then reads
    what is there without complaint). A size of 0 or 0xFFFFFFFF is a streaming writer's "unknown"."""
    with open(path, "rb") as file:
        header = file.read(12)
        if header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return False
        while len(chunk := file.read(8)) == 8:
            size = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"data":
                return size not in (0, 0xFFFFFFFF) and file.tell() + size > os.path.getsize(path)
            file.seek(size + size % 2, os.SEEK_CUR)
    return False


def model_card_figures(model: str) -> str:
    """The tables of the model card (components, training, evaluation), in Markdown under their headings."""
    path = os.path.join(model, "README.md")
    if not os.path.isfile(path):
        return ""
    from huggingface_hub import ModelCard

    sections, heading = {}, None
    for line in ModelCard.load(path).text.splitlines():
        if line.startswith("## "):
            heading = line[3:].strip()
        elif line.startswith("|") and heading is not None:
            sections.setdefault(heading, []).append(line)
    return "\n\n".join(f"**{heading}**\n\n" + "\n".join(rows) for heading, rows in sections.items())


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """`audio` `[channels, samples]` as 16-bit WAV bytes: one streamed chunk."""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(audio, -1.0, 1.0).T, sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _number(name: str, value: Any, low: float, high: float, unit: str = "", hint: str = "") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}.")
    if not low <= value <= high:
        raise ValueError(f"{name} = {value:.10g}{unit} is outside [{low:.10g}, {high:.10g}]{unit}{hint}.")
    return float(value)


@dataclass
class GenerationRequest:
    """One checked request: `instrument` is None for "any", `prompt` is `[channels, samples]` at the model's
    rate and channel count (or None), `source` says what the prompt is."""

    instrument: str | None
    seconds: float
    guidance_scale: float
    seed: int
    inference_noise: float
    num_inference_steps: int
    temperature: float
    prompt: np.ndarray | None
    source: str


class CAMApp:
    """What the page and its API run: check a request, stream its audio, write its WAV and spectrogram.

    Args:
        pipe (`CAMPipeline`): the loaded model. Each request runs its own `CAMPipeline` over its modules,
            with its own scheduler: the scheduler and a pipeline's per-call settings are state, weights not.
        max_seconds (`float`), max_prompt_seconds (`float`): the longest audio a request may ask for, and the
            longest prompt it may give.
        chunk_frames (`int`): latent frames per streamed chunk, once the chunks have grown.
        melodies (`BuiltInMelodies`): the test melodies offered as prompts.
        workdir (`str`): where each request's WAV and PNG wait until Gradio has copied them.
        streaming (`bool`): stream the audio as it comes (needs ffmpeg), or send the whole file at the end.
        first_chunk_frames (`int`, defaults to 4): latent frames of the first streamed chunk; the next ones
            double up to `chunk_frames`, so that the first sound comes after a few frames.
    """

    def __init__(
        self,
        pipe: CAMPipeline,
        max_seconds: float,
        max_prompt_seconds: float,
        chunk_frames: int,
        melodies: BuiltInMelodies,
        workdir: str,
        streaming: bool,
        first_chunk_frames: int = DEFAULT_DECODE_FIRST_CHUNK_FRAMES,
    ):
        self.pipe = pipe
        self.max_seconds = max_seconds
        self.max_prompt_seconds = max_prompt_seconds
        self.chunk_frames = chunk_frames
        self.melodies = melodies
        self.workdir = workdir
        self.streaming = streaming
        self.first_chunk_frames = first_chunk_frames
        self.instruments = [ANY_INSTRUMENT] + list(pipe.backbone.config.instrument_names or [])

    def generate(
        self,
        instrument: str,
        audio_length_in_s: float,
        guidance_scale: float,
        randomize_seed: bool,
        seed: float,
        inference_noise: float,
        num_inference_steps: float,
        test_melody: str,
        prompt_audio: dict | None = None,
        temperature: float | None = None,
    ) -> Iterator[tuple]:
        """Yields (streamed chunk, WAV path, spectrogram path, seed, status) as the audio comes. The values
        arrive raw from the page or the API (Gradio's preprocessing is off) and are all checked here."""
        try:
            request = self.check_request(
                instrument,
                audio_length_in_s,
                guidance_scale,
                randomize_seed,
                seed,
                inference_noise,
                num_inference_steps,
                test_melody,
                prompt_audio,
                temperature,
            )
            yield from self._generate(request)
        except ValueError as error:  # bad input, caught here or by the pipeline: a message, no trace
            raise gr.Error(str(error), print_exception=False) from None

    def check_request(
        self,
        instrument,
        audio_length_in_s,
        guidance_scale,
        randomize_seed,
        seed,
        inference_noise,
        num_inference_steps,
        test_melody,
        prompt_audio,
        temperature=None,
    ) -> GenerationRequest:
        """Check every value of a request and read its prompt. Raises `ValueError` naming the bad value."""
        if instrument not in self.instruments:
            raise ValueError(
                f"instrument {instrument!r} is not one this model knows: {', '.join(self.instruments)}."
            )
        if test_melody != NO_MELODY and test_melody not in self.melodies.names:
            known = ", ".join([NO_MELODY] + self.melodies.names)
            raise ValueError(f"test_melody {test_melody!r} is not a built-in test melody: {known}.")
        seconds = _number(
            "audio_length_in_s",
            audio_length_in_s,
            0.0,
            self.max_seconds,
            " s",
            " (this server's --max_seconds)",
        )
        if seconds == 0:
            raise ValueError("audio_length_in_s is 0 s: ask for some audio.")
        if not isinstance(randomize_seed, bool):
            raise ValueError(f"randomize_seed must be true or false, got {randomize_seed!r}.")
        seed = secrets.randbelow(MAX_SEED + 1) if randomize_seed else _number("seed", seed, 0, MAX_SEED)
        steps = _number("num_inference_steps", num_inference_steps, 1, MAX_STEPS)
        if steps != int(steps) or seed != int(seed):
            raise ValueError(f"num_inference_steps and seed must be whole numbers, got {steps:g}, {seed:g}.")
        guidance_scale = _number("guidance_scale", guidance_scale, 0.0, MAX_GUIDANCE_SCALE)
        inference_noise = _number("k_inf (inference_noise)", inference_noise, 0.0, 1.0)
        if temperature is None:  # an API call without it: the model's own
            temperature = self.pipe.sampler.config.get("temperature", 1.0)
        temperature = _number("temperature", temperature, MIN_TEMPERATURE, MAX_TEMPERATURE)
        prompt, prompt_rate, source = self._read_prompt(prompt_audio, test_melody)
        if prompt is not None:  # at the model's rate and channels: what is continued, heard and drawn
            prompt = self.pipe.autoencoder.prepare_audio(torch.from_numpy(prompt)[None], prompt_rate)
            prompt = prompt[0].numpy()
        return GenerationRequest(
            instrument=None if instrument == ANY_INSTRUMENT else instrument,
            seconds=seconds,
            guidance_scale=guidance_scale,
            seed=int(seed),
            inference_noise=inference_noise,
            num_inference_steps=int(steps),
            temperature=temperature,
            prompt=prompt,
            source=source,
        )

    def _read_prompt(self, prompt_audio: dict | None, test_melody: str) -> tuple[np.ndarray | None, int, str]:
        if prompt_audio is not None and test_melody != NO_MELODY:
            raise ValueError("Give either an audio prompt or a test melody to continue, not both.")
        if test_melody != NO_MELODY:
            return self.melodies.prompt(test_melody)
        if prompt_audio is None:
            return None, 0, ""
        if not isinstance(prompt_audio, dict) or not isinstance(prompt_audio.get("path"), str):
            raise ValueError(
                f"prompt_audio must be an uploaded file (gradio_client's handle_file), got "
                f"{type(prompt_audio).__name__}."
            )
        audio, sample_rate = read_prompt(prompt_audio["path"], self.max_prompt_seconds)
        return audio, sample_rate, prompt_audio.get("orig_name") or os.path.basename(prompt_audio["path"])

    def _generate(self, request: GenerationRequest) -> Iterator[tuple]:
        scheduler = type(self.pipe.scheduler).from_config(self.pipe.scheduler.config)
        pipe = CAMPipeline(**{**self.pipe.components, "scheduler": scheduler})
        pipe.set_progress_bar_config(disable=True)
        rate, seconds, seed = pipe.sample_rate, request.seconds, request.seed
        chunks = pipe.stream(
            audio=request.prompt,
            sample_rate=rate if request.prompt is not None else None,
            audio_length_in_s=seconds,
            instrument=request.instrument,
            guidance_scale=request.guidance_scale,
            inference_noise=request.inference_noise,
            num_inference_steps=request.num_inference_steps,
            temperature=request.temperature,
            generator=torch.Generator().manual_seed(seed),
            decode_chunk_frames=self.chunk_frames,
            decode_first_chunk_frames=self.first_chunk_frames,
        )
        generated, done, started = [], 0.0, time.perf_counter()
        try:
            for chunk in chunks:
                generated.append(chunk[0])
                done = min(seconds, done + chunk.shape[-1] / rate)
                if self.streaming:
                    status = f"seed **{seed}** · generating: {done:.1f} of {seconds:g} s"
                    yield wav_bytes(chunk[0], rate), gr.skip(), gr.skip(), seed, status
        except GeneratorExit:  # Stop, or the client went away: Gradio closes the generator, the work ends
            logger.info("stopped: seed %d after %.1f of %g s", seed, done, seconds)
            raise
        elapsed = time.perf_counter() - started
        logger.info("generated: seed %d, %g s in %.1f s", seed, seconds, elapsed)

        whole = np.concatenate(([] if request.prompt is None else [request.prompt]) + generated, axis=-1)
        prompt_s = None if request.prompt is None else request.prompt.shape[-1] / rate
        playing = request.instrument or "no instrument label"
        title = f"{playing}, seed {seed}" + (f", continuing {request.source}" if request.source else "")
        folder = tempfile.mkdtemp(dir=self.workdir)
        stem = os.path.join(folder, f"cam-{request.instrument or 'any'}-seed{seed}-{uuid.uuid4().hex[:6]}")
        gain = write_wav(stem + ".wav", whole, rate)
        save_spectrogram(stem + ".png", whole, rate, title, marker_s=prompt_s)
        status = (
            f"seed **{seed}** · {seconds:g} s, {playing}, in {elapsed:.1f} s "
            f"({seconds / elapsed:.1f}x real time)"
            + (f" · continuing {request.source}" if request.source else "")
            + (f" · scaled by {gain:.2f} to fit the WAV range" if gain != 1.0 else "")
        )
        try:
            yield None if self.streaming else stem + ".wav", stem + ".wav", stem + ".png", seed, status
        finally:  # Gradio has copied both files into its cache once the last value is sent
            shutil.rmtree(folder, ignore_errors=True)


def build_demo(app: CAMApp, model: str) -> gr.Blocks:
    """The page: inputs on the left; the streamed audio, WAV, spectrogram and seed on the right."""
    pipe, config = app.pipe, app.pipe.backbone.config
    context_s = (config.max_position_embeddings - 1) / pipe.frame_rate
    name = os.path.basename(os.path.normpath(model))
    with gr.Blocks(title=f"cam_hf · {name}", delete_cache=(600, 3600)) as demo:
        gr.Markdown(
            f"# cam_hf · {name}\nA Continuous Autoregressive Model: a causal transformer generates audio "
            "latents frame by frame, a small flow model draws each next frame, a codec turns them into sound "
            f"({pipe.sample_rate} Hz, {pipe.frame_rate:.2f} frames/s, a {context_s:.1f} s context slid along "
            "for longer audio). Pick an instrument, or continue a recording or a test melody."
        )
        if not app.streaming:
            gr.Markdown(
                "**No streaming on this server:** Gradio encodes streamed audio with `ffmpeg`, which "
                "is not on its PATH (`apt-get install ffmpeg`). The audio plays once it is whole."
            )
        with gr.Row():
            with gr.Column():
                instrument = gr.Dropdown(
                    app.instruments,
                    value=ANY_INSTRUMENT,
                    label="instrument",
                    info=f"'{ANY_INSTRUMENT}' generates without an instrument label",
                )
                prompt_audio = gr.Audio(
                    sources=["upload", "microphone"],
                    type="filepath",
                    label=f"audio to continue (optional, up to {app.max_prompt_seconds:g} s)",
                )
                melody_info = app.melodies.unavailable or (
                    f"its first {MELODY_PROMPT_SECONDS:g} s, rendered now (test split, unseen in training)"
                )
                test_melody = gr.Dropdown(
                    [NO_MELODY] + app.melodies.names,
                    value=NO_MELODY,
                    label="or a built-in test melody to continue",
                    info=melody_info,
                )
                seconds = gr.Slider(
                    1,
                    app.max_seconds,
                    value=min(10.0, app.max_seconds),
                    step=0.5,
                    label="length of the new audio (s)",
                )
                guidance = gr.Slider(
                    0,
                    MAX_GUIDANCE_SCALE,
                    value=1.0,
                    step=0.1,
                    label="guidance scale",
                    info="classifier-free guidance towards the instrument; 1 = none",
                )
                with gr.Row():
                    randomize = gr.Checkbox(True, label="random seed")
                    seed = gr.Number(
                        0,
                        precision=0,
                        minimum=0,
                        maximum=MAX_SEED,
                        label="seed",
                        info="the last result's; untick 'random seed' to reuse it",
                    )
                with gr.Accordion("advanced", open=False):
                    k_inf = gr.Slider(
                        0,
                        1,
                        value=config.inference_noise,
                        step=0.01,
                        label="k_inf",
                        info="noise mixed into each frame before it is fed back",
                    )
                    own_steps = pipe.sampler.config.get("num_inference_steps", DEFAULT_NUM_INFERENCE_STEPS)
                    steps = gr.Slider(
                        1,
                        MAX_STEPS,
                        value=own_steps,
                        step=1,
                        label="Sampler steps per frame",
                        info="the model's own by default",
                    )
                    temperature = gr.Slider(
                        MIN_TEMPERATURE,
                        MAX_TEMPERATURE,
                        value=pipe.sampler.config.get("temperature", 1.0),
                        step=0.05,
                        label="temperature",
                        info="the variance of each frame's "
                        "starting noise: lower stays nearer the model's habits; the "
                        "model's own by default",
                    )
                with gr.Row():
                    run = gr.Button("Generate", variant="primary")
                    stop = gr.Button("Stop", variant="stop")
            with gr.Column():
                streamed = gr.Audio(
                    label="audio", streaming=app.streaming, autoplay=True, interactive=False, elem_id="audio"
                )
                wav = gr.File(label="WAV", interactive=False)
                spectrogram = gr.Image(
                    label="spectrogram", type="filepath", interactive=False, elem_id="spectrogram"
                )
                status = gr.Markdown()
                gr.Markdown(
                    "The WAV holds the prompt and its continuation; a dashed line in the spectrogram "
                    "marks where the prompt ends."
                )
        rows = [
            [name, min(length, app.max_seconds), scale, NO_MELODY]
            for name, length, scale in (("violin", 20, 1.0), ("flute", 30, 2.0), ("cello", 15, 3.0))
            if name in app.instruments
        ]
        rows += [[ANY_INSTRUMENT, min(20, app.max_seconds), 1.0, melody] for melody in app.melodies.names[:2]]
        if rows:
            gr.Examples(rows, [instrument, seconds, guidance, test_melody], label="examples")
        figures = model_card_figures(model)
        if figures:
            with gr.Accordion("model card: key figures", open=True):
                gr.Markdown(figures)
        inputs = [
            instrument,
            seconds,
            guidance,
            randomize,
            seed,
            k_inf,
            steps,
            test_melody,
            prompt_audio,
            temperature,
        ]
        outputs = [streamed, wav, spectrogram, seed, status]
        event = run.click(app.generate, inputs, outputs, api_name="generate", preprocess=False)
        stop.click(None, cancels=[event])
    return demo


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s")
    logger.setLevel(logging.INFO)
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.concurrency)
    torch.set_num_threads(threads)
    pipe = CAMPipeline.from_pretrained(args.model)
    streaming = shutil.which("ffmpeg") is not None
    if not streaming:
        print(
            "ffmpeg is not on PATH: the app sends whole files instead of streaming (apt-get install ffmpeg).",
            file=sys.stderr,
        )
    with tempfile.TemporaryDirectory(prefix="cam-app-") as workdir:
        app = CAMApp(
            pipe,
            args.max_seconds,
            args.max_prompt_seconds,
            args.chunk_frames,
            BuiltInMelodies(pipe, args.num_melodies),
            workdir,
            streaming,
            args.first_chunk_frames,
        )
        demo = build_demo(app, args.model)
        demo.queue(default_concurrency_limit=args.concurrency, max_size=args.max_queue)
        print(
            f"{len(app.instruments) - 1} instruments, {len(app.melodies.names)} test melodies; "
            f"{args.concurrency} generations at once x {threads} torch thread(s); "
            f"up to {args.max_seconds:g} s per request"
        )
        demo.launch(
            server_name=args.host,
            server_port=args.port,
            allowed_paths=[workdir],
            max_file_size=args.max_upload_size,
            share=False,
        )


if __name__ == "__main__":
    main()
