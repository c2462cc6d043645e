import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import generate  # noqa: E402


def test_generate_writes_wav_and_png(tmp_path):
    written = generate.main(["--random_tiny", "--seconds", "0.5", "--num_waveforms", "2", "--steps", "2",
                             "--output_dir", str(tmp_path)])
    wavs = sorted(p for p in written if p.endswith(".wav"))
    assert len(wavs) == 2 and all(Path(p.replace(".wav", ".png")).stat().st_size > 1000 for p in wavs)
    audio, rate = sf.read(wavs[0])
    assert rate == 22050 and len(audio) >= 0.5 * rate and np.abs(audio).max() <= 1.0
    assert not np.allclose(audio, sf.read(wavs[1])[0])  # two seeds, two waveforms
    # The saved pipeline loads back through the library entry point.
    assert (tmp_path / "random_tiny_pipeline" / "model_index.json").exists()
    assert "random weights" in (tmp_path / "random_tiny_pipeline" / "README.md").read_text()


def test_generate_continues_a_prompt_file(tmp_path):
    prompt = tmp_path / "prompt.wav"
    t = np.arange(16000) / 16000
    sf.write(prompt, 0.3 * np.sin(2 * np.pi * 220 * t), 16000)  # another sample rate: resampled
    written = generate.main(["--random_tiny", "--prompt_audio", str(prompt), "--seconds", "0.3", "--steps", "1",
                             "--num_waveforms", "1", "--output_dir", str(tmp_path / "out")])
    assert len(written) == 2


def test_generate_rejects_a_missing_or_broken_prompt(tmp_path):
    with pytest.raises(ValueError, match="not a file"):
        generate.main(["--random_tiny", "--prompt_audio", str(tmp_path / "missing.wav"), "--output_dir", str(tmp_path)])
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really audio")
    with pytest.raises(ValueError, match="Could not read"):
        generate.main(["--random_tiny", "--prompt_audio", str(broken), "--output_dir", str(tmp_path)])
