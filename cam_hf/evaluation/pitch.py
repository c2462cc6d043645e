"""Whether the music still moves: pitch changes per second, read from CREPE's pitch track.

A model that degrades over a long generation often ends in one held note (or a drone) that FAD, which compares
short textures, scores as plausible. Counting how often the pitch changes tells "still playing a melody" from
"stuck".

The pitch track: CREPE's salience over 360 pitch bins, one frame every `hop_seconds`
(`CrepeEmbedding.pitch_track`). A frame's pitch is its most salient bin (20 cents wide), its confidence that
bin's salience (torchcrepe's "periodicity"). Pitch changes are counted on notes:

1. keep the *voiced* frames, those with confidence >= `voicing_threshold` (0.5): one clear pitch;
2. cut them into runs: a run continues while a frame lies within half a semitone of the run's first frame;
3. a run of at least `min_note_frames` (2) frames is a *note*, at its median pitch; shorter runs (the mixed
   frame where one note turns into the next, a one-frame octave slip of the tracker) are dropped;
4. a **pitch change** is a note whose pitch lies `min_interval` (0.75 semitone) or more from the previous
   note's.

So vibrato and tuning wobble (well under 0.75 semitone either side) are one note, a step of a semitone or more
is one change, a repeated note (the same pitch after a rest) is none. Notes shorter than `min_note_frames`
frames (100 ms at the default 50 ms hop) are missed, on real and generated audio alike: compare the figure
only with real audio measured the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Bin b of CREPE's 360 is centred at 1997.38 + 20 b cents above 10 Hz (torchcrepe's convert.bins_to_cents).
CREPE_FIRST_BIN_CENTS = 1997.3794084376191
CREPE_CENTS_PER_BIN = 20.0
# MIDI note number of 10 Hz, the reference of CREPE's cents: 69 + 12 log2(10 / 440).
MIDI_OF_10_HZ = 69 + 12 * np.log2(10 / 440)
# Semitones from a run's first frame within which a frame continues the same note.
NOTE_TOLERANCE = 0.5


@dataclass
class PitchTrack:
    """
    One clip's pitch track.

    Args:
        midi_pitch (`np.ndarray` of shape `(frames,)`): each frame's most salient pitch, as a (fractional)
            MIDI note number (60 is middle C, 69 is A4 = 440 Hz).
        confidence (`np.ndarray` of shape `(frames,)`): that pitch's salience, in (0, 1).
        seconds (`float`): the duration of the clip.
    """

    midi_pitch: np.ndarray
    confidence: np.ndarray
    seconds: float

    @classmethod
    def from_salience(cls, salience: np.ndarray, seconds: float) -> PitchTrack:
        """A track from CREPE's salience `(frames, 360)`: the most salient bin per frame."""
        cents = CREPE_FIRST_BIN_CENTS + CREPE_CENTS_PER_BIN * salience.argmax(axis=1)
        return cls(MIDI_OF_10_HZ + cents / 100.0, salience.max(axis=1), seconds)


def count_pitch_changes(
    track: PitchTrack, voicing_threshold: float = 0.5, min_interval: float = 0.75, min_note_frames: int = 2
) -> int:
    """
    The number of pitch changes in a track (the module's docstring gives the rule).

    Args:
        track ([`PitchTrack`]).
        voicing_threshold (`float`, defaults to 0.5): the confidence from which a frame counts as pitched.
        min_interval (`float`, defaults to 0.75): semitones between two notes that make a change.
        min_note_frames (`int`, defaults to 2): voiced frames a note needs.

    Returns:
        `int`.
    """
    if not 0 < voicing_threshold < 1:
        raise ValueError(f"`voicing_threshold` must be in (0, 1), got {voicing_threshold}.")
    if min_interval <= 0:
        raise ValueError(f"`min_interval` must be positive (semitones), got {min_interval}.")
    if min_note_frames < 1:
        raise ValueError(f"`min_note_frames` must be a positive integer, got {min_note_frames}.")
    pitch = track.midi_pitch[track.confidence >= voicing_threshold]
    notes, start = [], 0
    for end in range(1, len(pitch) + 1):
        if end == len(pitch) or abs(pitch[end] - pitch[start]) >= NOTE_TOLERANCE:
            if end - start >= min_note_frames:
                notes.append(np.median(pitch[start:end]))
            start = end
    return int(
        sum(abs(after - before) >= min_interval for before, after in zip(notes, notes[1:], strict=False))
    )


def window_pitch_figures(tracks: Sequence[PitchTrack], voicing_threshold: float = 0.5) -> np.ndarray:
    """
    The two pitch figures of each window: mean confidence and pitch changes per second.

    Args:
        tracks (`Sequence[PitchTrack]`): one per window.
        voicing_threshold (`float`, defaults to 0.5): see `count_pitch_changes`.

    Returns:
        `np.ndarray` of shape `(len(tracks), 2)`: `[mean confidence, pitch changes per second]` per window.
    """
    return np.array(
        [
            [track.confidence.mean(), count_pitch_changes(track, voicing_threshold) / track.seconds]
            for track in tracks
        ],
        dtype=np.float64,
    ).reshape(len(tracks), 2)


__all__ = ["PitchTrack", "count_pitch_changes", "window_pitch_figures"]
