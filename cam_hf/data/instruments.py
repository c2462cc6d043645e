"""General MIDI instruments the built-in dataset renders, with the range each one plays comfortably."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Instrument:
    """A General MIDI melodic instrument.

    Args:
        program (`int`): General MIDI program number, 0-127 (0 is Acoustic Grand Piano).
        name (`str`): the General MIDI name, lower case with underscores.
        family (`str`): instrument family, used to report how varied a selection is.
        low (`int`), high (`int`): MIDI pitches of the range the instrument plays well; melodies are
            transposed by octaves into it.
    """

    program: int
    name: str
    family: str
    low: int
    high: int


# Ranges are the usual orchestral ones, slightly narrowed at the top where SoundFont samples get thin.
INSTRUMENTS: dict[int, Instrument] = {
    inst.program: inst
    for inst in [
        Instrument(0, "acoustic_grand_piano", "keyboard", 36, 96),
        Instrument(6, "harpsichord", "keyboard", 41, 89),
        Instrument(11, "vibraphone", "chromatic_percussion", 53, 89),
        Instrument(19, "church_organ", "organ", 36, 96),
        Instrument(21, "accordion", "organ", 53, 89),
        Instrument(24, "acoustic_guitar_nylon", "plucked_strings", 40, 83),
        Instrument(32, "acoustic_bass", "bass", 28, 55),
        Instrument(40, "violin", "bowed_strings", 55, 100),
        Instrument(41, "viola", "bowed_strings", 48, 88),
        Instrument(42, "cello", "bowed_strings", 36, 76),
        Instrument(46, "orchestral_harp", "plucked_strings", 24, 103),
        Instrument(56, "trumpet", "brass", 54, 82),
        Instrument(57, "trombone", "brass", 40, 72),
        Instrument(60, "french_horn", "brass", 41, 77),
        Instrument(65, "alto_sax", "reed", 49, 81),
        Instrument(68, "oboe", "reed", 58, 91),
        Instrument(70, "bassoon", "reed", 34, 72),
        Instrument(71, "clarinet", "reed", 50, 91),
        Instrument(73, "flute", "pipe", 60, 96),
        Instrument(75, "pan_flute", "pipe", 60, 96),
    ]
}

# Twelve instruments from nine families: bowed strings, plucked strings, keyboard, organ,
# chromatic percussion, brass, reed, pipe and bass.
DEFAULT_INSTRUMENTS: tuple[int, ...] = (0, 11, 19, 24, 32, 40, 42, 56, 60, 71, 68, 73)


def resolve_instruments(specs: list[str | int] | None) -> list[Instrument]:
    """Turn a list of General MIDI program numbers or names into instruments.

    Args:
        specs (`list[str | int]`, *optional*): items such as `40`, `"40"`, `"violin"` or `"french horn"`.
            `None` or an empty list gives the default selection of twelve instruments.

    Returns:
        `list[Instrument]`: the instruments, in the order given, without duplicates.
    """
    if not specs:
        return [INSTRUMENTS[p] for p in DEFAULT_INSTRUMENTS]
    by_name = {inst.name: inst for inst in INSTRUMENTS.values()}
    chosen: list[Instrument] = []
    for spec in specs:
        key = str(spec).strip().lower().replace(" ", "_").replace("-", "_")
        if key.isdigit() and int(key) in INSTRUMENTS:
            inst = INSTRUMENTS[int(key)]
        elif key in by_name:
            inst = by_name[key]
        else:
            known = ", ".join(f"{i.program} ({i.name})" for i in INSTRUMENTS.values())
            raise ValueError(
                f"Unknown instrument {spec!r}. Use a General MIDI program or name among: {known}."
            )
        if inst not in chosen:
            chosen.append(inst)
    return chosen


def octave_shift_into_range(pitches: list[int], instrument: Instrument) -> int:
    """Return the transposition, in whole octaves (as semitones), that puts most of `pitches` in range.

    Ties go to the smallest shift, so a melody already in range is left where it is.
    """
    best_shift, best_outside = 0, None
    for octaves in sorted(range(-4, 5), key=abs):
        shift = 12 * octaves
        outside = sum(not (instrument.low <= p + shift <= instrument.high) for p in pitches)
        if best_outside is None or outside < best_outside:
            best_shift, best_outside = shift, outside
    return best_shift
