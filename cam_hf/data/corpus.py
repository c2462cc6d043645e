"""Monophonic melodies from the scores that ship with `music21` (its corpus, no download).

A *piece* is one tune of a folk-song collection (an `.abc` opus holds many), or one score file (a Bach
chorale, a Palestrina movement, ...). Every part of a piece is a candidate melody: the single voices of
chorales and of Renaissance polyphony are melodies in their own right. A part with chords or overlapping notes
is not monophonic: it is reduced to its top line (or skipped, if asked), and counted either way.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

# Roman-numeral analyses (.rntxt) are chord progressions, not melodies.
SCORE_EXTENSIONS = (".abc", ".krn", ".mxl", ".xml", ".musicxml", ".mid", ".midi")
# Test material of music21 itself (chord-symbol demos, harmony exercises), not music: left out by default.
EXCLUDED_COLLECTIONS = ("demos", "theoryExercises")
_ABC_TUNE = re.compile(rb"^X:\s*(\d+)", re.MULTILINE)


@dataclass(frozen=True)
class PieceRef:
    """Where a piece lives: a score file and, for a collection of tunes, the tune's number (ABC `X:`
    field)."""

    path: str
    number: int | None = None

    @property
    def name(self) -> str:
        """Stable identifier: the path relative to the music21 corpus, plus `#number` for a tune of a
        collection."""
        root = corpus_root()
        rel = os.path.relpath(self.path, root) if self.path.startswith(root + os.sep) else self.path
        return rel if self.number is None else f"{rel}#{self.number}"


@dataclass
class Melody:
    """A monophonic line, timed in quarter notes.

    Args:
        piece (`str`): the piece's identifier (see `PieceRef.name`).
        part_index (`int`), part_name (`str`): which part of the piece the line comes from.
        notes (`list[tuple[float, float, int, int]]`): `(offset, duration, midi_pitch, velocity)`, in quarter
            notes.
        tempo_bpm (`float`, *optional*): the first metronome mark of the score, in quarter notes per minute.
        reduced (`bool`): whether chords or overlaps were reduced to the top line.
    """

    piece: str
    part_index: int
    part_name: str
    notes: list[tuple[float, float, int, int]] = field(default_factory=list)
    tempo_bpm: float | None = None
    reduced: bool = False


@lru_cache(maxsize=1)
def corpus_root() -> str:
    """Directory of the corpus inside the installed `music21` package."""
    import music21

    return os.path.join(os.path.dirname(music21.__file__), "corpus")


def _abc_tune_numbers(path: str) -> list[int]:
    with open(path, "rb") as f:
        return [int(n) for n in _ABC_TUNE.findall(f.read())]


def list_pieces(sources: list[str] | None = None, max_pieces: int | None = None) -> list[PieceRef]:
    """List the pieces to build from, in a fixed order that interleaves the corpus's collections.

    Interleaving makes a quick `max_pieces` subset a sample of the whole corpus rather than the first N tunes
    of one collection.

    Args:
        sources (`list[str]`, *optional*): glob patterns relative to the music21 corpus (e.g. `"bach/bwv1*"`,
            `"essenFolksong/*"`) or paths of score files anywhere. Default: the whole corpus.
            The default leaves out `EXCLUDED_COLLECTIONS`.
        max_pieces (`int`, *optional*): keep only the first this many pieces.

    Returns:
        `list[PieceRef]`
    """
    import glob

    root = corpus_root()
    files: list[str] = []
    for pattern in sources or ["**/*"]:
        if os.path.isfile(pattern):
            files.append(os.path.abspath(pattern))
            continue
        matches = sorted(glob.glob(os.path.join(root, pattern), recursive=True))
        matches = [m for m in matches if os.path.isfile(m) and m.lower().endswith(SCORE_EXTENSIONS)]
        if not matches:
            raise ValueError(
                f"Source {pattern!r} matches no score file (looked under {root} and as a path): "
                "give a glob relative to the music21 corpus, such as 'bach/*', or a score file's path."
            )
        if not sources:
            matches = [
                m for m in matches if os.path.relpath(m, root).split(os.sep)[0] not in EXCLUDED_COLLECTIONS
            ]
        files.extend(matches)
    files = list(dict.fromkeys(files))  # drop duplicates, keep order

    # Interleave the collections in proportion to their size (piece i of a collection of n sits at (i + 0.5) /
    # n), so that the first N pieces are a stratified sample of the whole: mostly folk tunes, some chorales
    # and polyphony, now and then a long classical score (slow to parse).
    by_collection: dict[str, list[PieceRef]] = {}
    for path in files:
        rel = os.path.relpath(path, root)
        key = rel.split(os.sep)[0] if not rel.startswith("..") else "(files)"
        numbers = _abc_tune_numbers(path) if path.lower().endswith(".abc") else []
        # Duplicate X: numbers happen in the corpus; the first tune with a number wins.
        refs = [PieceRef(path, n) for n in dict.fromkeys(numbers)] if len(numbers) > 1 else [PieceRef(path)]
        by_collection.setdefault(key, []).extend(refs)
    keyed = [
        ((i + 0.5) / len(refs), c, i, ref)
        for c, refs in enumerate(by_collection.values())
        for i, ref in enumerate(refs)
    ]
    pieces = [ref for *_, ref in sorted(keyed, key=lambda k: k[:3])]
    return pieces if max_pieces is None else pieces[:max_pieces]


def _parse(path: str):
    from music21 import converter

    return converter.parse(path)


def _scores_by_number(path: str, numbers: list[int | None]) -> dict[int | None, object]:
    """Parse a file once and return its scores: `{None: score}` or `{tune number: score}` for a collection."""
    from music21 import stream

    parsed = _parse(path)
    if numbers == [None]:
        if isinstance(parsed, stream.Opus):
            parsed = parsed.scores[0] if parsed.scores else None
        return {None: parsed}
    if not isinstance(parsed, stream.Opus):
        return {numbers[0]: parsed}
    found: dict[int | None, object] = {}
    for score in parsed.scores:
        number = score.metadata.number if score.metadata is not None else None
        try:
            number = int(number)
        except (TypeError, ValueError):
            continue
        found.setdefault(number, score)
    return found


def _top_line(
    events: list[tuple[float, float, int, int]],
) -> tuple[list[tuple[float, float, int, int]], bool]:
    """Reduce possibly overlapping `(offset, duration, pitch, velocity)` events to the highest sounding
    line."""
    events = sorted(events, key=lambda e: (e[0], -e[2]))
    line: list[list[float]] = []
    reduced = False
    for offset, duration, pitch, velocity in events:
        end = offset + duration
        if line:
            prev = line[-1]
            prev_end = prev[0] + prev[1]
            if offset < prev_end - 1e-6:
                reduced = True
                if pitch > prev[2] and offset > prev[0] + 1e-6:
                    prev[1] = offset - prev[0]  # a higher note cuts the one sounding under it
                elif end > prev_end + 1e-6:
                    offset = prev_end  # the lower note's tail becomes the top once the upper note ends
                else:
                    continue  # entirely under the top line
        line.append([offset, end - offset, pitch, velocity])
    return [(o, d, int(p), int(v)) for o, d, p, v in line], reduced


def _part_events(part) -> tuple[list[tuple[float, float, int, int]], bool, bool]:
    """Notes of a part as `(offset, duration, pitch, velocity)`; also whether it had chords and unpitched
    notes."""
    from music21 import chord, note

    events, had_chord, had_unpitched = [], False, False
    flat = part.flatten().stripTies()
    for element in flat.notes:
        duration = float(element.duration.quarterLength)
        if duration <= 0:  # grace notes take no time
            continue
        if isinstance(element, chord.Chord):
            pitches = [p.midi for p in element.pitches]
            if not pitches:
                had_unpitched = True
                continue
            had_chord = had_chord or len(pitches) > 1
            pitch = max(pitches)
        elif isinstance(element, note.Note):
            pitch = element.pitch.midi
        else:
            had_unpitched = True
            continue
        velocity = element.volume.velocity if element.volume.velocityIsRelative is False else None
        events.append((float(element.offset), duration, int(pitch), int(velocity or 90)))
    return events, had_chord, had_unpitched


def _first_tempo(score) -> float | None:
    from music21 import tempo

    mark = score.recurse().getElementsByClass(tempo.MetronomeMark).first()
    if mark is None:
        return None
    try:
        bpm = mark.getQuarterBPM()
    except Exception:  # music21 raises on marks with text but no number
        return None
    return float(bpm) if bpm else None


def extract_melodies(
    path: str, numbers: list[int | None], polyphony: str = "reduce", min_notes: int = 8
) -> tuple[list[Melody], list[tuple[str, str]], Counter]:
    """Parse one score file and extract the monophonic melodies of the asked pieces.

    Args:
        path (`str`): the score file.
        numbers (`list[int | None]`): tune numbers to take from a collection, or `[None]` for a single score.
        polyphony (`str`): `"reduce"` keeps the top line of a part with chords/overlaps, `"skip"` drops the
            part.
        min_notes (`int`): parts with fewer notes are skipped (incipits, fragments).

    Returns:
        `tuple`: the melodies; the skips as `(piece or piece/part, reason)`; counts of what happened to parts.
    """
    counts: Counter = Counter()
    skips: list[tuple[str, str]] = []
    refs = [PieceRef(path, n) for n in numbers]
    try:
        scores = _scores_by_number(path, numbers)
    except Exception as err:  # any parse failure skips the file's pieces, never the build
        reason = f"parse error: {type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
        return [], [(ref.name, reason) for ref in refs], counts

    melodies: list[Melody] = []
    for ref in refs:
        score = scores.get(ref.number)
        if score is None:
            skips.append((ref.name, "parse error: tune not found in the parsed file"))
            continue
        try:
            parts = list(score.parts) or [score]
            tempo_bpm = _first_tempo(score)
            for index, part in enumerate(parts):
                part_name = (
                    (part.partName or f"part {index}").strip()
                    if hasattr(part, "partName")
                    else f"part {index}"
                )
                where = f"{ref.name}/{part_name}"
                events, had_chord, had_unpitched = _part_events(part)
                if len(events) < min_notes:
                    reason = (
                        "unpitched part" if had_unpitched and not events else f"fewer than {min_notes} notes"
                    )
                    skips.append((where, reason))
                    counts[f"parts skipped: {reason}"] += 1
                    continue
                line, overlapped = _top_line(events)
                reduced = had_chord or overlapped
                if reduced and polyphony == "skip":
                    skips.append((where, "not monophonic (chords or overlapping notes)"))
                    counts["parts skipped: not monophonic"] += 1
                    continue
                counts["parts reduced to top line" if reduced else "parts monophonic as written"] += 1
                melodies.append(Melody(ref.name, index, part_name, line, tempo_bpm, reduced))
        except Exception as err:
            skips.append((ref.name, f"extraction error: {type(err).__name__}: {str(err)[:200]}"))
    return melodies, skips, counts
