"""examples/app.py, for real: the app serves the shipped model on localhost in a subprocess, driven by
gradio_client (generation, continuation, bad input, concurrent clients, cancelling) and by a real browser
(Playwright driving Debian's chromium). Each expected waveform is recomputed here with `CAMPipeline` and
compared sample for sample."""

import json
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
import torch
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from cam_hf import CAMPipeline
from cam_hf.listening import write_wav

from .app_server import APP, REPOSITORY, AppServer

SHIPPED_MODEL = REPOSITORY / "models" / "cam-music21-small"
# The page's default: the shipped Sampler's own steps per frame.
DEFAULT_STEPS = json.loads((SHIPPED_MODEL / "sampler" / "config.json").read_text())["num_inference_steps"]
MAX_SECONDS = 12.0
MAX_PROMPT_SECONDS = 4.0
CHUNK_FRAMES = 16
MELODY = "ryansMammoth/AcrobatsHornpipe.abc"  # the third test-split piece: a short file, quick to render
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]


@pytest.fixture(scope="session", autouse=True)
def app_process(tmp_path_factory):
    """The app on a free localhost port, started with the first test so that it boots while the in-process
    test runs: two generations at once, short limits so that the tests are quick."""
    server = AppServer(
        tmp_path_factory.mktemp("app") / "app.log",
        "--max_seconds",
        str(MAX_SECONDS),
        "--max_prompt_seconds",
        str(MAX_PROMPT_SECONDS),
        "--concurrency",
        "2",
        "--threads",
        "1",
        "--chunk_frames",
        str(CHUNK_FRAMES),
        "--num_melodies",
        "3",
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def app_server(app_process):
    app_process.wait_until_ready()
    return app_process


@pytest.fixture(scope="session")
def client(app_server, tmp_path_factory):
    return Client(app_server.url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))


@pytest.fixture(scope="module")
def pipe():
    pipe = CAMPipeline.from_pretrained(str(SHIPPED_MODEL))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate(client: Client, **kwargs) -> tuple:
    """A request with the page's defaults, as the API takes it."""
    values = {
        "instrument": "any",
        "audio_length_in_s": 2.0,
        "guidance_scale": 1.0,
        "randomize_seed": False,
        "seed": 0,
        "inference_noise": 0.02,
        "num_inference_steps": DEFAULT_STEPS,
        "test_melody": "none",
    }
    return client.predict(**{**values, **kwargs}, api_name="/generate")


def expected_wav(
    pipe: CAMPipeline,
    tmp_path: Path,
    seeds: list[int],
    seconds: float,
    instruments: list,
    prompt: np.ndarray | None = None,
    guidance_scale: float = 1.0,
    temperature: float | None = None,
) -> list[np.ndarray]:
    """What the app must send: the pipeline's audio for each seed, one request at a time with one torch
    thread as in the app (a batch or another thread count rounds differently), the prompt in front, as 16-bit
    WAV."""
    threads, wavs = torch.get_num_threads(), []
    torch.set_num_threads(1)
    try:
        for seed, instrument in zip(seeds, instruments, strict=True):
            generator = torch.Generator().manual_seed(seed)
            audio = pipe(
                audio=prompt,
                sample_rate=None if prompt is None else pipe.sample_rate,
                audio_length_in_s=seconds,
                instrument=instrument,
                guidance_scale=guidance_scale,
                temperature=temperature,
                decode_chunk_frames=CHUNK_FRAMES,
                generator=generator,
            ).audios[0]
            whole = audio if prompt is None else np.concatenate([prompt, audio], axis=-1)
            write_wav(str(tmp_path / f"expected{seed}.wav"), whole, pipe.sample_rate)
            wavs.append(sf.read(tmp_path / f"expected{seed}.wav", dtype="int16")[0])
    finally:
        torch.set_num_threads(threads)
    return wavs


def read_wav(path: str) -> np.ndarray:
    audio, rate = sf.read(path, dtype="int16")
    assert rate == 22050
    return audio


# ---- in this process, without ffmpeg (first, while the app's server boots) ---------------------------------


def test_without_ffmpeg_the_app_sends_the_whole_file_and_says_why(pipe, tmp_path):
    sys.path.insert(0, str(APP.parent))
    import app

    melodies = app.BuiltInMelodies(pipe, 0)
    cam_app = app.CAMApp(
        pipe, MAX_SECONDS, MAX_PROMPT_SECONDS, CHUNK_FRAMES, melodies, str(tmp_path), streaming=False
    )
    outputs = []
    for audio, wav, _, _, status in cam_app.generate("flute", 1.0, 1.0, False, 5, 0.02, 16, "none"):
        outputs.append(status)
        assert audio == wav and read_wav(wav).shape == (11 * 2048,)  # ceil(1 s x 10.77 frames/s) frames
    assert len(outputs) == 1 and "seed **5**" in outputs[0]  # nothing streamed: one answer, the whole file
    page = app.build_demo(cam_app, str(SHIPPED_MODEL))
    texts = [block.get("props", {}).get("value") for block in page.config["components"]]
    assert any("No streaming on this server" in str(text) for text in texts)


# ---- generation -------------------------------------------------------------------------------------------


def test_generation_streams_then_sends_the_wav_of_the_seed_it_shows(client, pipe, tmp_path):
    job = client.submit(
        instrument="violin",
        audio_length_in_s=2.0,
        guidance_scale=2.0,
        randomize_seed=True,
        seed=0,
        inference_noise=0.02,
        num_inference_steps=DEFAULT_STEPS,
        test_melody="none",
        api_name="/generate",
    )
    stream, wav, spectrogram, seed, status = job.result(timeout=300)
    updates = job.outputs()
    # 2 s are 22 frames: growing chunks of 4, 8 and 10 frames stream in, then comes the whole file.
    assert len(updates) == 4 and all(update[0].endswith(".m3u8") for update in updates)
    assert [update[4].split(" · ")[1] for update in updates[:3]] == [
        "generating: 0.4 of 2 s",
        "generating: 1.1 of 2 s",
        "generating: 2.0 of 2 s",
    ]
    assert f"seed **{seed}**" in status and "violin" in status
    # The seed shown reproduces the result.
    np.testing.assert_array_equal(
        read_wav(wav), expected_wav(pipe, tmp_path, [seed], 2.0, ["violin"], guidance_scale=2.0)[0]
    )
    from PIL import Image

    assert Image.open(spectrogram).format == "PNG"


def test_the_temperature_reaches_the_pipeline(client, pipe, tmp_path):
    _, wav, _, seed, _ = generate(client, seed=4, audio_length_in_s=1.0, temperature=1.4)
    assert seed == 4
    expected = expected_wav(pipe, tmp_path, [4], 1.0, [None], temperature=1.4)[0]
    np.testing.assert_array_equal(read_wav(wav), expected)
    _, default, _, _, _ = generate(client, seed=4, audio_length_in_s=1.0)  # the model's own
    np.testing.assert_array_equal(read_wav(default), expected_wav(pipe, tmp_path, [4], 1.0, [None])[0])
    assert not np.array_equal(read_wav(wav), read_wav(default))


def test_continuation_of_an_uploaded_file(client, pipe, tmp_path):
    rate, seconds = 44100, 1.5  # another rate and channel count than the model's: converted
    t = np.arange(int(rate * seconds)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 440 * t) * np.exp(-2 * t)
    sf.write(tmp_path / "intro.flac", np.stack([tone, 0.5 * tone], axis=1), rate)
    _, wav, spectrogram, seed, status = generate(
        client,
        prompt_audio=handle_file(str(tmp_path / "intro.flac")),
        instrument="cello",
        seed=3,
        audio_length_in_s=1.0,
    )
    assert seed == 3 and "continuing intro.flac" in status
    stereo, _ = sf.read(tmp_path / "intro.flac", dtype="float32", always_2d=True)
    prompt = pipe.autoencoder.prepare_audio(torch.from_numpy(stereo.T)[None], rate)[0].numpy()
    expected = expected_wav(pipe, tmp_path, [3], 1.0, ["cello"], prompt=prompt)[0]
    np.testing.assert_array_equal(read_wav(wav), expected)  # the prompt, then its continuation
    assert os.path.getsize(spectrogram) > 1000


def test_continuation_of_a_test_melody(client):
    *_, wav, _, _, status = generate(client, test_melody=MELODY, audio_length_in_s=1.0)
    assert f"continuing {MELODY}" in status
    assert len(read_wav(wav)) >= 7.0 * 22050  # its first 6 s, then 1 s more


# ---- bad input --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    rate = 22050
    tone = (0.3 * np.sin(2 * np.pi * 330 * np.arange(2 * rate) / rate)).astype(np.float32)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "notes.wav").write_text("These are my notes, not audio.\n")
    sf.write(folder / "whole.wav", tone, rate)
    data = (folder / "whole.wav").read_bytes()
    (folder / "truncated.wav").write_bytes(data[: len(data) // 2])
    sf.write(folder / "silence.wav", np.zeros(rate, np.float32), rate)
    sf.write(folder / "long.wav", np.tile(tone, 3), rate)  # 6 s, over the 4 s limit
    sf.write(folder / "surround.wav", np.stack([tone] * 3, axis=1), rate)
    return folder


BAD_UPLOADS = {
    "empty.wav": "'empty.wav' is an empty file",
    "notes.wav": "Could not read the audio prompt 'notes.wav'",
    "truncated.wav": "'truncated.wav' is truncated",
    "silence.wav": "'silence.wav' is silent",
    "long.wav": "'long.wav' lasts 6.0 s, longer than this server's limit of 4 s",
    "surround.wav": "audio has 3 channels but this autoencoder takes 1; only mono <-> stereo is converted",
}


@pytest.mark.parametrize("name", list(BAD_UPLOADS))
def test_bad_upload_gets_a_clear_message(client, bad_files, name):
    with pytest.raises(AppError, match=BAD_UPLOADS[name]):
        generate(client, prompt_audio=handle_file(str(bad_files / name)))


BAD_VALUES = [
    (
        {"audio_length_in_s": 30.0},
        r"audio_length_in_s = 30 s is outside \[0, 12\] s \(this server's "
        r"--max_seconds\)",
    ),
    ({"audio_length_in_s": 0.0}, "audio_length_in_s is 0 s"),
    ({"instrument": "kazoo"}, "instrument 'kazoo' is not one this model knows: any, acoustic_bass"),
    ({"test_melody": "my_song.mid"}, "test_melody 'my_song.mid' is not a built-in test melody"),
    ({"guidance_scale": 25.0}, r"guidance_scale = 25 is outside \[0, 20\]"),
    ({"guidance_scale": 2.0}, "guides towards an instrument: pass `instrument` too"),
    ({"inference_noise": 1.5}, r"k_inf \(inference_noise\) = 1.5 is outside \[0, 1\]"),
    ({"num_inference_steps": 0}, r"num_inference_steps = 0 is outside \[1, 64\]"),
    ({"num_inference_steps": 2.5}, "must be whole numbers"),
    ({"temperature": 0.0}, r"temperature = 0 is outside \[0.1, 3\]"),
    ({"seed": -5}, r"seed = -5 is outside \[0, 4294967295\]"),
    ({"seed": "lucky"}, "seed must be a finite number, got 'lucky'"),
    ({"randomize_seed": "yes"}, "randomize_seed must be true or false"),
    ({"test_melody": MELODY, "prompt_audio": "upload"}, "either an audio prompt or a test melody"),
]


@pytest.mark.parametrize("values, message", BAD_VALUES, ids=[str(values) for values, _ in BAD_VALUES])
def test_bad_value_gets_a_clear_message(client, bad_files, values, message):
    if values.get("prompt_audio") == "upload":
        values = {**values, "prompt_audio": handle_file(str(bad_files / "whole.wav"))}
    with pytest.raises(AppError, match=message):
        generate(client, **values)


def call_raw(url: str, data: list) -> str:
    """Call /generate over HTTP with a body gradio_client refuses to send (NaN and inf are not JSON), as any
    client could; returns the event stream's text."""
    api = url + "gradio_api/call/generate"
    body = json.dumps({"data": data})  # Python writes NaN and Infinity
    event = httpx.post(api, content=body, headers={"content-type": "application/json"}, timeout=30)
    event.raise_for_status()
    return httpx.get(f"{api}/{event.json()['event_id']}", timeout=120).text


@pytest.mark.parametrize(
    "index, name",
    [
        (1, "audio_length_in_s"),
        (2, "guidance_scale"),
        (4, "seed"),
        (5, "k_inf (inference_noise)"),
        (6, "num_inference_steps"),
        (9, "temperature"),
    ],
)
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nan_and_inf_through_the_api_get_a_clear_message(app_server, index, name, value):
    data = ["violin", 2.0, 1.0, False, 0, 0.02, 16, "none", None, 1.0]
    data[index] = value
    reply = call_raw(app_server.url, data)
    assert "event: error" in reply
    assert f"{name} must be a finite number, got {value!r}" in reply


def test_the_server_survives_bad_input_and_shows_no_trace(client, app_server):
    assert generate(client, audio_length_in_s=1.0)[3] == 0  # still serving
    assert "Traceback" not in app_server.log()


# ---- many users -------------------------------------------------------------------------------------------


def test_four_clients_at_once_each_get_their_own_audio(app_server, pipe, tmp_path):
    instruments, seeds = ["flute", "trumpet", "cello", "violin"], [11, 12, 13, 14]

    def one_client(index: int) -> str:
        client = Client(app_server.url, verbose=False, download_files=str(tmp_path / f"client{index}"))
        return generate(client, instrument=instruments[index], seed=seeds[index], audio_length_in_s=1.0)[1]

    with ThreadPoolExecutor(4) as pool:  # the app runs two at once, the other two wait in its queue
        wavs = [read_wav(path) for path in pool.map(one_client, range(4))]
    expected = expected_wav(pipe, tmp_path, seeds, 1.0, instruments)
    for got, want in zip(wavs, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    assert len({wav.tobytes() for wav in wavs}) == 4


def test_cancelling_a_request_ends_its_generation(client, app_server):
    job = client.submit(
        instrument="oboe",
        audio_length_in_s=MAX_SECONDS,
        guidance_scale=1.0,
        randomize_seed=False,
        seed=77,
        inference_noise=0.02,
        num_inference_steps=DEFAULT_STEPS,
        test_melody="none",
        api_name="/generate",
    )
    while not job.outputs() and not job.done():  # the first streamed chunk
        time.sleep(0.1)
    job.cancel()
    app_server.wait_for_log("stopped: seed 77 after")
    assert "generated: seed 77" not in app_server.log()


# ---- in a browser -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium driven by Playwright. Missing, it is a failure that says how to install it: CI
    (.ci/run) installs it, so this test always runs there."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail(
            "The browser test needs chromium: `apt-get install chromium` (Debian's; .ci/run installs "
            "it). Playwright drives it: `playwright install` is not needed."
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("The browser test needs Playwright's Python package: `pip install -e .[dev]`.")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_page(browser, app_server):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    elsewhere = []
    page.on(
        "request",
        lambda request: None if request.url.startswith(app_server.url) else elsewhere.append(request.url),
    )
    page.goto(app_server.url, wait_until="networkidle")
    return page, elsewhere


def test_page_generates_and_plays_in_a_browser(browser, app_server, tmp_path):
    page, elsewhere = open_page(browser, app_server)
    page.get_by_label("instrument").click()
    page.get_by_role("option", name="flute", exact=True).click()
    length = page.get_by_label("number input for length of the new audio (s)")
    length.fill("4")
    length.press("Enter")
    page.get_by_role("button", name="Generate").click()
    page.wait_for_function(
        "() => { const audio = document.querySelector('#audio audio');"
        " return audio !== null && audio.duration > 0; }",
        timeout=180_000,
    )
    page.get_by_text("s, flute, in").wait_for(timeout=180_000)  # the last status: the whole WAV is there
    page.locator("#spectrogram img").wait_for(timeout=30_000)
    duration = page.evaluate("() => document.querySelector('#audio audio').duration")
    assert duration > 0
    page.evaluate("() => document.querySelector('#audio audio').pause()")
    screenshot = os.environ.get("CAM_APP_SCREENSHOT") or str(tmp_path / "app.png")
    page.screenshot(path=screenshot, full_page=True)
    assert os.path.getsize(screenshot) > 10_000
    assert elsewhere == []  # the page loads nothing from outside the app: it works offline
    page.close()


def test_stop_button_ends_a_generation(browser, app_server):
    page, _ = open_page(browser, app_server)
    page.get_by_role("checkbox", name="random seed").uncheck()
    seed = page.get_by_label("seed", exact=True)
    seed.fill("4242")
    length = page.get_by_label("number input for length of the new audio (s)")
    length.fill(str(MAX_SECONDS))
    length.press("Enter")
    page.get_by_role("button", name="Generate").click()
    page.get_by_text("generating:").wait_for(timeout=180_000)
    page.get_by_role("button", name="Stop").click()
    app_server.wait_for_log("stopped: seed 4242 after")
    assert "generated: seed 4242" not in app_server.log()
    page.close()
