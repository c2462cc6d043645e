"""cam_hf.listening: the WAV files, spectrograms and index.html that examples/demo.py writes."""

import numpy as np
import pytest
import soundfile as sf

from cam_hf.listening import (
    ListeningItem,
    ListeningSection,
    save_spectrogram,
    write_listening_page,
    write_wav,
)


def test_write_wav_keeps_quiet_audio_and_scales_loud_audio(tmp_path):
    quiet = 0.5 * np.sin(np.linspace(0, 200, 8000, dtype=np.float32))
    assert write_wav(str(tmp_path / "quiet.wav"), quiet, 8000) == 1.0
    np.testing.assert_allclose(sf.read(tmp_path / "quiet.wav")[0], quiet, atol=1e-4)
    loud = np.stack([2 * quiet, quiet])  # (channels, samples)
    assert write_wav(str(tmp_path / "loud.wav"), loud, 8000) == pytest.approx(1 / np.abs(loud).max())
    written, rate = sf.read(tmp_path / "loud.wav")
    assert rate == 8000 and written.shape == (8000, 2) and np.abs(written).max() <= 1.0


def test_write_wav_rejects_nan_and_bad_shapes(tmp_path):
    with pytest.raises(ValueError, match="NaN or inf"):
        write_wav(str(tmp_path / "nan.wav"), np.array([0.0, np.nan, 0.1]), 8000)
    with pytest.raises(ValueError, match=r"\(1, 2, 3\)"):
        write_wav(str(tmp_path / "cube.wav"), np.zeros((1, 2, 3)), 8000)
    assert not (tmp_path / "nan.wav").exists()


def test_listening_page_shows_every_item_and_checks_its_files(tmp_path):
    audio = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
    audio[8000:] = 0  # digital silence draws as the floor, without warnings
    write_wav(str(tmp_path / "a.wav"), audio, 8000)
    save_spectrogram(str(tmp_path / "a.png"), audio, 8000, "a <title>", marker_s=1.0)
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    item = ListeningItem("a <title>", "a.wav", "a.png", "a note")
    page = write_listening_page(str(tmp_path), "Page", "intro", [ListeningSection("Section", "text", [item])])
    html = open(page).read()
    assert "<audio controls" in html and "src='a.wav'" in html and "src='a.png'" in html
    assert "a &lt;title&gt;" in html  # titles are escaped
    missing = ListeningItem("b", "b.wav", "b.png")
    with pytest.raises(ValueError, match="'b.wav' is not a file"):
        write_listening_page(str(tmp_path), "Page", "intro", [ListeningSection("Section", items=[missing])])
