"""How long users of the web app (examples/app.py) wait: the time to the first sound and to the whole result.

Starts the app on a free localhost port (the shipped model, its default settings unless told), then, through
gradio_client as any API user would:

  * one client alone asks for `--seconds` of audio;
  * `--clients` clients ask at once (each its own instrument and seed), served `--concurrency` at a time.

For each request it prints the time from submitting to the first streamed chunk reaching the client (the
first sound: a browser starts playing one HLS segment later) and to the whole result (WAV and spectrogram
included), and the audio seconds per wall second over all clients. With several `--chunk_frames` or
`--first_chunk_frames` the app is started once per pair of values, and the figures are printed side by side
(`--first_chunk_frames 16 4 --chunk_frames 16`: chunks of one size against growing ones). The load average
is printed at the start and the end: on a shared machine the figures move with it. Benchmarks print figures;
they never assert them.

Run:  .venv/bin/python benchmarks/bench_app.py  [--seconds 30] [--clients 4] [--concurrency 2]
      [--chunk_frames 16 64] [--first_chunk_frames 16 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import product
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from _common import load_average  # noqa: E402

from tests.app_server import serve_app  # noqa: E402

INSTRUMENTS = ["violin", "flute", "cello", "trumpet", "oboe", "clarinet", "vibraphone", "acoustic_bass"]


def timed_request(url: str, seconds: float, index: int, folder: str) -> tuple[float, float]:
    """Seconds from submitting to the first streamed chunk, and to the whole result."""
    from gradio_client import Client

    client = Client(url, verbose=False, download_files=folder)
    start = time.perf_counter()
    job = client.submit(
        instrument=INSTRUMENTS[index % len(INSTRUMENTS)],
        audio_length_in_s=seconds,
        guidance_scale=1.0,
        randomize_seed=False,
        seed=index,
        inference_noise=0.02,
        num_inference_steps=16,
        test_melody="none",
        api_name="/generate",
    )
    first = None
    while not job.done():
        if first is None and job.outputs():
            first = time.perf_counter() - start
        time.sleep(0.02)
    job.result()
    whole = time.perf_counter() - start
    return (whole if first is None else first), whole


def measure(
    chunk_frames: int, first_chunk_frames: int, args: argparse.Namespace, folder: str
) -> dict[str, list[float]]:
    log = Path(folder) / f"app-{chunk_frames}-{first_chunk_frames}.log"
    app_args = [
        "--max_seconds",
        str(args.seconds),
        "--concurrency",
        str(args.concurrency),
        "--chunk_frames",
        str(chunk_frames),
        "--first_chunk_frames",
        str(first_chunk_frames),
        "--num_melodies",
        "0",
    ]
    with serve_app(log, *app_args) as server:
        timed_request(server.url, 1.0, 0, folder)  # a first request warms the server up
        alone = [timed_request(server.url, args.seconds, 0, folder) for _ in range(args.repeats)]
        start = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            together = list(
                pool.map(lambda i: timed_request(server.url, args.seconds, i, folder), range(args.clients))
            )
        wall = time.perf_counter() - start
    return {
        "alone_first": [first for first, _ in alone],
        "alone_whole": [whole for _, whole in alone],
        "together_first": [first for first, _ in together],
        "together_whole": [whole for _, whole in together],
        "together_rate": [args.clients * args.seconds / wall],
    }


def spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="Audio asked for by each request.")
    parser.add_argument("--clients", type=int, default=4, help="Clients asking at once.")
    parser.add_argument("--concurrency", type=int, default=2, help="The app's --concurrency.")
    parser.add_argument(
        "--chunk_frames",
        type=int,
        nargs="+",
        default=[16],
        help="The app's --chunk_frames; several values are compared side by side.",
    )
    parser.add_argument(
        "--first_chunk_frames",
        type=int,
        nargs="+",
        default=[4],
        help="The app's --first_chunk_frames; several values are compared side by side.",
    )
    parser.add_argument("--repeats", type=int, default=2, help="Requests of the client alone.")
    args = parser.parse_args(argv)

    print(f"load average at start: {load_average()} ({os.cpu_count()} cores)")
    with tempfile.TemporaryDirectory() as folder:
        columns = list(product(args.chunk_frames, args.first_chunk_frames))
        results = {column: measure(*column, args, folder) for column in columns}
    print(f"load average at end:   {load_average()}")
    print(
        f"\n{args.seconds:g} s of audio per request; the app runs {args.concurrency} at once; seconds, "
        "median (min-max) over requests\n"
    )
    rows = [
        ("alone: to the first sound", "alone_first"),
        ("alone: to the whole result", "alone_whole"),
        (f"{args.clients} at once: to the first sound", "together_first"),
        (f"{args.clients} at once: to the whole result", "together_whole"),
        (f"{args.clients} at once: audio s per wall s, all clients", "together_rate"),
    ]
    header = "".join(f"{f'chunks {first} -> {chunk}':>24}" for chunk, first in columns)
    print(f"{'':44}{header}")
    for label, key in rows:
        print(f"{label:44}" + "".join(f"{spread(results[column][key]):>24}" for column in columns))


if __name__ == "__main__":
    main()
