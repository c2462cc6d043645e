"""Render a monophonic melody with one General MIDI instrument through a SoundFont.

Two renderers share one small interface (`render(notes, program) -> mono float32 audio`):

- `TinySoundFontRenderer`: pip packages only (`tinysoundfont` with pretty_midi's bundled `TimGM6mb.sf2`).
  This is the path that always works on a fresh machine.
- `FluidSynthRenderer`: the `fluidsynth` command with a fuller SoundFont (Debian's `fluid-soundfont-gm`),
  used when both are installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

import numpy as np

# Seconds rendered after the last note-off so that releases and reverb tails are not cut.
RELEASE_SECONDS = 1.0

DEBIAN_SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2")


@dataclass(frozen=True)
class Note:
    """One note of a melody, in seconds.

    Args:
        start (`float`): onset in seconds from the start of the melody.
        duration (`float`): length in seconds (> 0).
        pitch (`int`): MIDI pitch, 0-127.
        velocity (`int`): MIDI velocity, 1-127.
    """

    start: float
    duration: float
    pitch: int
    velocity: int = 90


def bundled_soundfont() -> str:
    """Path of the General MIDI SoundFont that ships inside the `pretty_midi` wheel (`TimGM6mb.sf2`)."""
    import pretty_midi

    path = os.path.join(os.path.dirname(pretty_midi.__file__), "TimGM6mb.sf2")
    if not os.path.isfile(path):
        raise ValueError(f"pretty_midi's bundled SoundFont is missing at {path}: reinstall pretty_midi.")
    return path


class TinySoundFontRenderer:
    """Renders with `tinysoundfont` (a wheel; install it with `pip install --no-deps tinysoundfont`).

    Args:
        sample_rate (`int`): output sample rate in Hz; the synthesizer renders at this rate directly.
        soundfont (`str`, *optional*): path of an `.sf2` file; defaults to pretty_midi's `TimGM6mb.sf2`.
    """

    name = "tinysoundfont"

    def __init__(self, sample_rate: int, soundfont: str | None = None):
        import tinysoundfont

        self.sample_rate = sample_rate
        self.soundfont_path = soundfont or bundled_soundfont()
        self.soundfont = os.path.basename(self.soundfont_path)
        self._synth = tinysoundfont.Synth(samplerate=sample_rate)
        self._sfid = self._synth.sfload(self.soundfont_path)

    def render(self, notes: list[Note], program: int) -> np.ndarray:
        """Render `notes` with General MIDI `program`.

        Returns:
            `np.ndarray`: mono float32 audio, `RELEASE_SECONDS` longer than the last note.
        """
        synth = self._synth
        # One synthesizer is reused for speed: silence every voice so no earlier render leaks in.
        synth.sounds_off()
        synth.program_select(0, self._sfid, 0, program)
        # Note-offs sort before note-ons at the same instant, so a repeated pitch is re-struck.
        events = sorted(
            [(round(n.start * self.sample_rate), 1, n.pitch, n.velocity) for n in notes]
            + [(round((n.start + n.duration) * self.sample_rate), 0, n.pitch, 0) for n in notes]
        )
        total = events[-1][0] + int(RELEASE_SECONDS * self.sample_rate)
        out = np.zeros((total, 2), dtype=np.float32)
        cursor = 0
        for sample, is_on, pitch, velocity in events + [(total, -1, 0, 0)]:
            if sample > cursor:
                out[cursor:sample] = np.frombuffer(synth.generate(sample - cursor), dtype=np.float32).reshape(
                    -1, 2
                )
                cursor = sample
            if is_on == 1:
                synth.noteon(0, pitch, velocity)
            elif is_on == 0:
                synth.noteoff(0, pitch)
        synth.sounds_off()
        return out.mean(axis=1)


class FluidSynthRenderer:
    """Renders with the `fluidsynth` command (`apt-get install fluidsynth fluid-soundfont-gm`).

    Args:
        sample_rate (`int`): output sample rate in Hz.
        soundfont (`str`, *optional*): path of an `.sf2` file; defaults to Debian's `FluidR3_GM.sf2`.
    """

    name = "fluidsynth"

    def __init__(self, sample_rate: int, soundfont: str | None = None):
        executable = shutil.which("fluidsynth")
        if executable is None:
            raise ValueError(
                "The `fluidsynth` command is not installed: `apt-get install fluidsynth`, or use "
                "tinysoundfont."
            )
        soundfont = soundfont or next((p for p in DEBIAN_SOUNDFONTS if os.path.isfile(p)), None)
        if soundfont is None or not os.path.isfile(soundfont):
            raise ValueError(
                f"No SoundFont for fluidsynth (looked at {soundfont or DEBIAN_SOUNDFONTS}): "
                "`apt-get install fluid-soundfont-gm` or pass `soundfont=`."
            )
        self.executable = executable
        self.sample_rate = sample_rate
        self.soundfont_path = soundfont
        self.soundfont = os.path.basename(soundfont)

    def render(self, notes: list[Note], program: int) -> np.ndarray:
        """Render `notes` with General MIDI `program` through a temporary MIDI file.

        Returns:
            `np.ndarray`: mono float32 audio.
        """
        import pretty_midi
        import soundfile as sf

        midi = pretty_midi.PrettyMIDI(resolution=960, initial_tempo=120.0)
        track = pretty_midi.Instrument(program=program)
        track.notes = [pretty_midi.Note(n.velocity, n.pitch, n.start, n.start + n.duration) for n in notes]
        midi.instruments.append(track)
        with tempfile.TemporaryDirectory() as tmp:
            midi_path, wav_path = os.path.join(tmp, "melody.mid"), os.path.join(tmp, "melody.wav")
            midi.write(midi_path)
            # -ni: no shell, no MIDI input; reverb and chorus off keep the rendering dry and deterministic.
            subprocess.run(
                [
                    self.executable,
                    "-ni",
                    "-q",
                    "-R",
                    "0",
                    "-C",
                    "0",
                    "-r",
                    str(self.sample_rate),
                    "-F",
                    wav_path,
                    "-T",
                    "wav",
                    self.soundfont_path,
                    midi_path,
                ],
                check=True,
                capture_output=True,
                timeout=300,
            )
            audio, _ = sf.read(wav_path, dtype="float32", always_2d=True)
        return audio.mean(axis=1)


def make_renderer(renderer: str, sample_rate: int, soundfont: str | None = None):
    """Build a renderer by name.

    Args:
        renderer (`str`): `"tinysoundfont"`, `"fluidsynth"`, or `"auto"` (fluidsynth with a Debian
            SoundFont when both are installed, else tinysoundfont with pretty_midi's SoundFont).
        sample_rate (`int`): output sample rate in Hz.
        soundfont (`str`, *optional*): path of an `.sf2` file to use instead of the default.

    Returns:
        `TinySoundFontRenderer` or `FluidSynthRenderer`.
    """
    if soundfont is not None and not os.path.isfile(soundfont):
        raise ValueError(f"SoundFont {soundfont!r} does not exist: pass the path of an .sf2 file.")
    if renderer == "auto":
        has_fluidsynth = shutil.which("fluidsynth") and (
            soundfont or any(map(os.path.isfile, DEBIAN_SOUNDFONTS))
        )
        renderer = "fluidsynth" if has_fluidsynth else "tinysoundfont"
    if renderer == "tinysoundfont":
        return TinySoundFontRenderer(sample_rate, soundfont)
    if renderer == "fluidsynth":
        return FluidSynthRenderer(sample_rate, soundfont)
    raise ValueError(f"Unknown renderer {renderer!r}: use 'auto', 'tinysoundfont' or 'fluidsynth'.")
