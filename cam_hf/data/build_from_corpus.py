"""Build the built-in single-instrument dataset: music21 melodies rendered one General MIDI instrument at a
time.

    corpus pieces --parse (one file per task, in worker processes)--> monophonic melodies
      --tempo, instrument, octave transposition--> notes in seconds --SoundFont--> audio
      --trim, cut, drop silent, normalise--> 10 s clips --FLAC--> Arrow, split by piece --> DatasetDict on
      disk

Everything random is drawn from generators seeded by `(seed, piece, part)`, and results are written in task
order, so the same options give byte-identical audio and metadata whatever the number of workers.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np
from datasets import Audio, DatasetDict, Features, Value

from .build import ClipDatasetBuild, map_in_workers
from .clips import assign_split, cut_clips, encode_flac, stable_seed
from .corpus import Melody, PieceRef, extract_melodies, list_pieces
from .instruments import Instrument, octave_shift_into_range, resolve_instruments
from .render import Note, make_renderer
from .summary import BuildSummary


@dataclass
class CorpusBuildConfig:
    """Options of the built-in dataset (the command line of `examples/make_dataset.py` mirrors them).

    Args:
        clip_seconds (`float`): length of every clip.
        sample_rate (`int`): sample rate of the audio, in Hz; rendered at this rate directly.
        seed (`int`): seeds tempi, instrument choice, velocities and the split of each piece.
        instruments (`list[str]`, *optional*): General MIDI programs or names; default: twelve instruments
            from nine families (see `cam_hf.data.instruments.DEFAULT_INSTRUMENTS`).
        instruments_per_melody (`int`): how many different instruments render each melody.
        max_clips_per_melody (`int`): clips kept from one rendering, from its start (long voices would
            otherwise dominate the dataset).
        min_tempo (`float`), max_tempo (`float`): tempo range in quarter notes per minute. A score's own
            metronome mark is used when inside it; otherwise a tempo is drawn uniformly from it.
        transpose (`bool`): transpose each melody by octaves into the instrument's range.
        polyphony (`str`): `"reduce"` (top line of a part with chords/overlaps) or `"skip"`.
        renderer (`str`): `"auto"`, `"tinysoundfont"` or `"fluidsynth"` (see `cam_hf.data.render`).
        soundfont (`str`, *optional*): a SoundFont to use instead of the renderer's default.
        sources (`list[str]`, *optional*): globs relative to the music21 corpus, or score paths.
        max_pieces (`int`, *optional*): build from the first this many pieces only (a quick subset).
        validation_fraction (`float`), test_fraction (`float`): share of pieces in those splits.
        max_silence (`float`): clips with a larger fraction of silent 50 ms frames are dropped.
        min_notes (`int`): parts with fewer notes are skipped.
    """

    clip_seconds: float = 10.0
    sample_rate: int = 44100
    seed: int = 0
    instruments: list[str] | None = None
    instruments_per_melody: int = 1
    max_clips_per_melody: int = 3
    min_tempo: float = 60.0
    max_tempo: float = 140.0
    transpose: bool = True
    polyphony: str = "reduce"
    renderer: str = "auto"
    soundfont: str | None = None
    sources: list[str] | None = None
    max_pieces: int | None = None
    validation_fraction: float = 0.05
    test_fraction: float = 0.05
    max_silence: float = 0.5
    min_notes: int = 8
    _resolved_instruments: list[Instrument] = field(default_factory=list, repr=False)

    def validate(self) -> None:
        """Raise a `ValueError` naming the first bad option."""
        if self.clip_seconds <= 0:
            raise ValueError(f"clip_seconds must be > 0, got {self.clip_seconds}.")
        if self.sample_rate < 8000:
            raise ValueError(f"sample_rate must be at least 8000 Hz, got {self.sample_rate}.")
        if not 0 < self.min_tempo <= self.max_tempo:
            raise ValueError(f"Need 0 < min_tempo <= max_tempo, got {self.min_tempo} and {self.max_tempo}.")
        if self.polyphony not in ("reduce", "skip"):
            raise ValueError(f"polyphony must be 'reduce' or 'skip', got {self.polyphony!r}.")
        if self.instruments_per_melody < 1 or self.max_clips_per_melody < 1:
            raise ValueError(
                f"instruments_per_melody and max_clips_per_melody must be >= 1, "
                f"got {self.instruments_per_melody} and {self.max_clips_per_melody}."
            )
        if not (
            0 <= self.validation_fraction
            and 0 <= self.test_fraction
            and self.validation_fraction + self.test_fraction < 1
        ):
            raise ValueError(
                f"validation_fraction + test_fraction must be in [0, 1), got {self.validation_fraction} + "
                f"{self.test_fraction}."
            )
        self._resolved_instruments = resolve_instruments(self.instruments)


def corpus_features(sample_rate: int) -> Features:
    """Columns of the built-in dataset."""
    return Features(
        {
            "audio": Audio(sampling_rate=sample_rate, decode=False),
            "piece": Value("string"),
            "part": Value("string"),
            "part_index": Value("int32"),
            "instrument_program": Value("int32"),
            "instrument_name": Value("string"),
            "instrument_family": Value("string"),
            "tempo_bpm": Value("float32"),
            "transpose": Value("int32"),
            "renderer": Value("string"),
            "soundfont": Value("string"),
            "reduced_to_top_line": Value("bool"),
            "clip_index": Value("int32"),
            "start_seconds": Value("float32"),
            "duration": Value("float32"),
            "split": Value("string"),
        }
    )


# One renderer per worker process: loading a SoundFont once, not once per melody.
_RENDERERS: dict = {}


def _renderer(config: CorpusBuildConfig):
    key = (config.renderer, config.sample_rate, config.soundfont)
    if key not in _RENDERERS:
        _RENDERERS[key] = make_renderer(config.renderer, config.sample_rate, config.soundfont)
    return _RENDERERS[key]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in text)


@dataclass
class RenderedMelody:
    """One melody played by one instrument, as the built-in dataset renders it (before it is cut into clips).

    Args:
        melody (`Melody`): the line that was played.
        instrument (`Instrument`): who played it.
        tempo_bpm (`float`): quarter notes per minute.
        transpose (`int`): semitones the melody was shifted by to fit the instrument's range (whole octaves).
        audio (`np.ndarray` of shape `(samples,)`): float32 mono audio at `sample_rate`, from the first note
            on.
        sample_rate (`int`): in Hz.
        renderer (`str`), soundfont (`str`): what synthesised it.
    """

    melody: Melody
    instrument: Instrument
    tempo_bpm: float
    transpose: int
    audio: np.ndarray
    sample_rate: int
    renderer: str
    soundfont: str


def render_melody(
    melody: Melody, config: CorpusBuildConfig, max_seconds: float | None = None
) -> list[RenderedMelody]:
    """Render a melody the way the built-in dataset does: same instruments, tempo, transposition and
    velocities for the same `config.seed`, so a piece of the test split sounds here as it does in the
    dataset's clips.

    Args:
        melody (`Melody`): from `cam_hf.data.corpus.extract_melodies`.
        config (`CorpusBuildConfig`): the build's options (validated here).
        max_seconds (`float`, *optional*): notes starting later are left out. Default: what can become the
            dataset's clips (`max_clips_per_melody + 1` clips, plus 2 s).

    Returns:
        `list[RenderedMelody]`: one per instrument chosen for the melody (`config.instruments_per_melody`).
    """
    if not config._resolved_instruments:
        config.validate()
    rng = np.random.default_rng(stable_seed(config.seed, melody.piece, melody.part_index))
    instruments = config._resolved_instruments
    chosen = rng.choice(
        len(instruments), size=min(config.instruments_per_melody, len(instruments)), replace=False
    )
    renderer = _renderer(config)
    # Time starts at the first note (a voice entering late would otherwise render rests), and only what can
    # become kept clips is rendered by default, plus one clip of slack for silent stretches.
    horizon = (
        (config.max_clips_per_melody + 1) * config.clip_seconds + 2.0 if max_seconds is None else max_seconds
    )
    first = melody.notes[0][0]
    rendered = []
    for inst_index in chosen:
        instrument = instruments[int(inst_index)]
        if melody.tempo_bpm is not None and config.min_tempo <= melody.tempo_bpm <= config.max_tempo:
            tempo = float(melody.tempo_bpm)
        else:
            tempo = round(float(rng.uniform(config.min_tempo, config.max_tempo)), 1)
        shift = octave_shift_into_range([n[2] for n in melody.notes], instrument) if config.transpose else 0
        seconds_per_quarter = 60.0 / tempo
        velocities = np.clip(
            np.array([n[3] for n in melody.notes]) + rng.integers(-8, 9, len(melody.notes)), 30, 127
        )
        notes = [
            Note(
                (offset - first) * seconds_per_quarter,
                duration * seconds_per_quarter,
                min(127, max(0, pitch + shift)),
                int(vel),
            )
            for (offset, duration, pitch, _), vel in zip(melody.notes, velocities, strict=True)
            if (offset - first) * seconds_per_quarter < horizon
        ]
        audio = renderer.render(notes, instrument.program)
        rendered.append(
            RenderedMelody(
                melody, instrument, tempo, shift, audio, config.sample_rate, renderer.name, renderer.soundfont
            )
        )
    return rendered


def split_pieces(config: CorpusBuildConfig, split: str) -> list[PieceRef]:
    """The pieces of a build that fall in `split` (`"train"`, `"validation"` or `"test"`), in build order.

    Splits are a hash of the piece's name, so this parses nothing: it is instant even for the whole corpus.
    """
    if split not in ("train", "validation", "test"):
        raise ValueError(f"split must be 'train', 'validation' or 'test', got {split!r}.")
    return [
        ref
        for ref in list_pieces(config.sources, config.max_pieces)
        if assign_split(ref.name, config.seed, config.validation_fraction, config.test_fraction) == split
    ]


def render_test_melody(
    config: CorpusBuildConfig,
    piece: str | None = None,
    min_seconds: float = 0.0,
    max_seconds: float | None = None,
    instrument_names: list[str] | None = None,
) -> RenderedMelody:
    """The first test-split melody of a build that renders to at least `min_seconds`, rendered as the build
    renders it (same instrument, tempo and transposition): a prompt the model never heard in training.

    Args:
        config (`CorpusBuildConfig`): the build's options (its `max_pieces` and `seed` fix the test split).
        piece (`str`, *optional*): only this piece (a name from the dataset's test `piece` column).
        min_seconds (`float`, defaults to 0): the shortest rendering accepted.
        max_seconds (`float`, *optional*): notes starting later are left out.
        instrument_names (`list[str]`, *optional*): accept only renderings with one of these instruments
            (a model's `instrument_names`); any instrument by default.

    Returns:
        `RenderedMelody`.
    """
    config.validate()
    pieces = split_pieces(config, "test")
    if piece is not None:
        pieces = [ref for ref in pieces if ref.name == piece]
        if not pieces:
            raise ValueError(
                f"Piece {piece!r} is not in the test split of the first {config.max_pieces} pieces: pick one "
                "from the dataset's test `piece` column."
            )
    for ref in pieces:
        melodies, _, _ = extract_melodies(ref.path, [ref.number], config.polyphony, config.min_notes)
        for melody in melodies:
            for rendering in render_melody(melody, config, max_seconds=max_seconds):
                long_enough = len(rendering.audio) >= min_seconds * config.sample_rate
                if long_enough and (not instrument_names or rendering.instrument.name in instrument_names):
                    return rendering
    raise ValueError(f"No test-split melody renders to {min_seconds:.0f} s or more: ask for a shorter one.")


def _render_melody(
    melody: Melody, config: CorpusBuildConfig, clip_dir: str, split: str
) -> tuple[list[dict], float, int]:
    """Render one melody with its instruments and write its clips as FLAC files under `clip_dir`.

    Returns:
        `tuple`: metadata rows (the audio as `{"path": name, "file": flac path}`), seconds of audio rendered,
        the number of clips dropped as mostly silent, and the seconds spent rendering (synthesis included).
    """
    rows, rendered, dropped = [], 0.0, 0
    synth_start = time.perf_counter()
    renderings = render_melody(melody, config)
    synth_seconds = time.perf_counter() - synth_start
    for rendering in renderings:
        instrument, audio = rendering.instrument, rendering.audio
        rendered += len(audio) / config.sample_rate
        clips, silent = cut_clips(
            audio, config.sample_rate, config.clip_seconds, config.max_silence, config.max_clips_per_melody
        )
        dropped += silent
        for clip_index, (start, clip) in enumerate(clips):
            name = f"{_slug(melody.piece)}__{melody.part_index}__{instrument.program}__{clip_index}.flac"
            path = os.path.join(clip_dir, name)
            with open(path, "wb") as f:
                f.write(encode_flac(clip, config.sample_rate))
            rows.append(
                {
                    "audio": {"path": name, "file": path},
                    "piece": melody.piece,
                    "part": melody.part_name,
                    "part_index": melody.part_index,
                    "instrument_program": instrument.program,
                    "instrument_name": instrument.name,
                    "instrument_family": instrument.family,
                    "tempo_bpm": rendering.tempo_bpm,
                    "transpose": rendering.transpose,
                    "renderer": rendering.renderer,
                    "soundfont": rendering.soundfont,
                    "reduced_to_top_line": melody.reduced,
                    "clip_index": clip_index,
                    "start_seconds": round(start, 3),
                    "duration": len(clip) / config.sample_rate,
                    "split": split,
                }
            )
    return rows, rendered, dropped, synth_seconds


def _build_file(task: tuple) -> tuple[list[dict], list[tuple[str, str]], Counter]:
    """Worker: parse one score file, render its melodies, write their clips under the task's folder.

    Returns:
        `tuple`: the rows (audio still in files), the skips `(where, reason)`, and counters.
    """
    path, numbers, config, clip_dir = task
    task_start = time.perf_counter()
    melodies, skips, counts = extract_melodies(path, numbers, config.polyphony, config.min_notes)
    counts["parse wall seconds"] += time.perf_counter() - task_start
    rows: list[dict] = []
    pieces_with_clips = set()
    for melody in melodies:
        where = f"{melody.piece}/{melody.part_name}"
        split = assign_split(melody.piece, config.seed, config.validation_fraction, config.test_fraction)
        start = time.perf_counter()
        try:
            melody_rows, rendered, silent, synth_seconds = _render_melody(melody, config, clip_dir, split)
        except Exception as err:  # a failing render skips this melody, never the build
            skips.append((where, f"render error: {type(err).__name__}: {err}"))
            counts["melodies skipped: render error"] += 1
            continue
        counts["render wall seconds"] += time.perf_counter() - start  # synthesis, cutting, FLAC encoding
        counts["synthesis wall seconds"] += synth_seconds
        counts["seconds rendered"] += rendered
        counts["clips dropped: mostly silent"] += silent
        if not melody_rows:
            skips.append((where, f"shorter than one {config.clip_seconds:g} s clip"))
            counts["melodies skipped: shorter than one clip"] += 1
        else:
            pieces_with_clips.add(melody.piece)
        rows.extend(melody_rows)
    counts["melodies rendered"] += len(melodies)
    counts["pieces with clips"] += len(pieces_with_clips)
    return rows, skips, counts


def _tasks(config: CorpusBuildConfig, clip_root: str) -> list[tuple]:
    """One task per score file, holding the pieces (tunes) asked from it, in the order of `list_pieces`."""
    by_file: dict[str, list[int | None]] = {}
    for ref in list_pieces(config.sources, config.max_pieces):
        by_file.setdefault(ref.path, []).append(ref.number)
    tasks = []
    for index, (path, numbers) in enumerate(by_file.items()):
        clip_dir = os.path.join(clip_root, str(index))
        os.makedirs(clip_dir, exist_ok=True)
        tasks.append((path, numbers, config, clip_dir))
    return tasks


def build_corpus_dataset(
    output_dir: str, config: CorpusBuildConfig | None = None, num_workers: int = 1, progress: bool = True
) -> DatasetDict:
    """Build the built-in dataset and save it to `output_dir` (with `README.md` and `build_summary.json`).

    Args:
        output_dir (`str`): destination; must be empty or absent.
        config (`CorpusBuildConfig`, *optional*): the build options; defaults to the full corpus.
        num_workers (`int`): worker processes that parse and render; 1 runs everything in this process.
        progress (`bool`): show a progress bar.

    Returns:
        `datasets.DatasetDict`: the saved dataset (memory-mapped from `output_dir`), splits `train`,
        `validation` and `test`, audio as FLAC bytes in an `Audio(decode=False)` column.
    """
    from tqdm.auto import tqdm

    config = (
        dataclasses.replace(config) if config is not None else CorpusBuildConfig()
    )  # a copy: resolved below
    config.validate()
    # Fail early and clearly if the renderer cannot start, rather than skipping every melody.
    renderer = make_renderer(config.renderer, config.sample_rate, config.soundfont)
    config.renderer, config.soundfont = renderer.name, renderer.soundfont_path

    build = ClipDatasetBuild(
        output_dir, corpus_features(config.sample_rate), BuildSummary(kind="music21 corpus")
    )
    clip_root = tempfile.mkdtemp(prefix="clips_", dir=build.writer.tmp_dir)
    tasks = _tasks(config, clip_root)
    build.summary.counts["pieces listed"] = sum(len(t[1]) for t in tasks)
    build.summary.counts["score files"] = len(tasks)

    results = map_in_workers(_build_file, tasks, num_workers)
    for task, (rows, skips, counts) in tqdm(
        zip(tasks, results, strict=True), total=len(tasks), disable=not progress, desc="scores"
    ):
        for row in rows:
            # A new dict, not `row` updated in place: `rows` would otherwise keep every clip's bytes of
            # a 300-tune collection in memory until the loop ends.
            with open(row["audio"]["file"], "rb") as f:
                build.write({**row, "audio": {"path": row["audio"]["path"], "bytes": f.read()}})
        build.summary.skips.extend(skips)
        build.summary.counts.update(counts)
        shutil.rmtree(task[3], ignore_errors=True)
    options = {k: v for k, v in asdict(config).items() if not k.startswith("_")} | {
        "num_workers": num_workers
    }
    return build.finish(options, progress)
