import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import demo  # noqa: E402
import generate  # noqa: E402

from cam_hf.testing_utils import TINY_BACKBONE_CONFIG, random_pipeline  # noqa: E402

INSTRUMENTS = [
    "flute",
    "violin",
    "cello",
    "acoustic_grand_piano",
    "vibraphone",
    "church_organ",
    "oboe",
    "trumpet",
    "clarinet",
    "french_horn",
    "acoustic_bass",
    "acoustic_guitar_nylon",
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A saved instrument-conditioned pipeline (random weights: these tests check the scripts, not the
    music)."""
    path = tmp_path_factory.mktemp("model") / "cam"
    random_pipeline(backbone_config=dict(TINY_BACKBONE_CONFIG, instrument_names=INSTRUMENTS)).save_pretrained(
        path
    )
    return str(path)


def test_generate_writes_wav_and_png(tmp_path, model_dir):
    written = generate.main(
        [
            "--model",
            model_dir,
            "--seconds",
            "0.5",
            "--num_waveforms",
            "2",
            "--steps",
            "2",
            "--output_dir",
            str(tmp_path),
        ]
    )
    wavs = sorted(p for p in written if p.endswith(".wav"))
    assert len(wavs) == 2 and all(Path(p.replace(".wav", ".png")).stat().st_size > 1000 for p in wavs)
    audio, rate = sf.read(wavs[0])
    assert rate == 8000 and len(audio) >= 0.5 * rate and np.abs(audio).max() <= 1.0
    assert not np.allclose(audio, sf.read(wavs[1])[0])  # two seeds, two waveforms


def test_generate_with_instruments_and_guidance(tmp_path, model_dir):
    one = generate.main(
        [
            "--model",
            model_dir,
            "--seconds",
            "0.3",
            "--num_waveforms",
            "2",
            "--steps",
            "1",
            "--instrument",
            "cello",
            "violin",
            "--guidance_scale",
            "2",
            "--output_dir",
            str(tmp_path / "a"),
        ]
    )
    other = generate.main(
        [
            "--model",
            model_dir,
            "--seconds",
            "0.3",
            "--num_waveforms",
            "2",
            "--steps",
            "1",
            "--instrument",
            "flute",
            "--guidance_scale",
            "2",
            "--output_dir",
            str(tmp_path / "b"),
        ]
    )
    assert not np.allclose(sf.read(one[0])[0], sf.read(other[0])[0])  # same seed, another label
    with pytest.raises(ValueError, match="kazoo.*cello"):  # the error lists the known instruments
        generate.main(
            ["--model", model_dir, "--seconds", "0.3", "--instrument", "kazoo", "--output_dir", str(tmp_path)]
        )


def test_generate_continues_a_prompt_file(tmp_path, model_dir):
    # With one seed, what is generated depends on the prompt alone: the prompt file must reach the model.
    t = np.arange(22050) / 22050
    for name, hz in (("low", 220), ("high", 1760)):
        sf.write(tmp_path / f"{name}.wav", 0.3 * np.sin(2 * np.pi * hz * t), 22050)  # another rate: resampled

    def continuation(*prompt: str) -> np.ndarray:
        folder = tmp_path / f"out-{len(list(tmp_path.glob('out-*')))}"
        written = generate.main(
            [
                "--model",
                model_dir,
                *prompt,
                "--seconds",
                "0.3",
                "--steps",
                "1",
                "--num_waveforms",
                "1",
                "--output_dir",
                str(folder),
            ]
        )
        assert [Path(p).suffix for p in written] == [".wav", ".png"]
        return sf.read(written[0])[0]

    low = continuation("--prompt_audio", str(tmp_path / "low.wav"))
    assert np.array_equal(continuation("--prompt_audio", str(tmp_path / "low.wav")), low)
    assert not np.allclose(continuation("--prompt_audio", str(tmp_path / "high.wav")), low)
    assert not np.allclose(continuation(), low)


def test_generate_rejects_a_missing_or_broken_prompt(tmp_path, model_dir):
    with pytest.raises(ValueError, match="not a file"):
        generate.main(
            [
                "--model",
                model_dir,
                "--prompt_audio",
                str(tmp_path / "missing.wav"),
                "--output_dir",
                str(tmp_path),
            ]
        )
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really audio")
    with pytest.raises(ValueError, match="Could not read"):
        generate.main(["--model", model_dir, "--prompt_audio", str(broken), "--output_dir", str(tmp_path)])


def test_demo_writes_a_listening_page(tmp_path, model_dir):
    pytest.importorskip("music21")
    pytest.importorskip("tinysoundfont")
    page = demo.main(
        [
            "--model",
            model_dir,
            "--output_dir",
            str(tmp_path),
            "--seconds",
            "1.5",
            "--prompt_seconds",
            "2",
            "--instruments",
            "cello",
            "flute",
            "--instrument_seconds",
            "0.5",
            "--steps",
            "1",
        ]
    )
    html = Path(page).read_text()
    stems = [
        "continuation",
        "prompt_real",
        "prompt_through_codec",
        "melody_real",
        "instrument_cello",
        "instrument_flute",
    ]
    for stem in stems:  # every file is written and shown on the page with a player
        assert (tmp_path / f"{stem}.png").stat().st_size > 1000
        assert f"src='{stem}.wav'" in html and f"src='{stem}.png'" in html
    continuation, rate = sf.read(tmp_path / "continuation.wav")
    prompt, _ = sf.read(tmp_path / "prompt_through_codec.wav")
    assert rate == 8000 and abs(len(continuation) / rate - 3.5) < 0.1  # the prompt, then 1.5 s generated
    assert np.abs(prompt).max() > 0.01  # a real, rendered melody, not silence
    with pytest.raises(ValueError, match="not in the test split"):
        demo.main(["--model", model_dir, "--output_dir", str(tmp_path), "--piece", "bach/not_a_piece.mxl"])


def test_demo_without_the_shipped_model_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "SHIPPED_MODEL", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="shipped model is missing"):
        demo.main(["--model", str(tmp_path / "missing"), "--output_dir", str(tmp_path)])
