"""examples/train.py: a real run on toy latents, exact resume after SIGKILL, the NaN stop, checkpoints, two processes."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Array2D, Dataset, DatasetDict, Features, Value

from cam_hf import CAMPipeline, MelAutoencoder

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

import train  # noqa: E402

MODES = torch.tensor([[2.0, -1.0], [-2.0, 1.0]])
STAY = 0.7


def toy_sequences(num: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """Sticky two-mode sequences in 2-D: frames near +-(2, -1) (std 0.3), staying in their mode with probability 0.7."""
    state = (torch.rand(num, generator=generator) < 0.5).long()
    frames = []
    for _ in range(length):
        frames.append(MODES[state] + 0.3 * torch.randn(num, 2, generator=generator))
        state = torch.where(torch.rand(num, generator=generator) < STAY, state, 1 - state)
    return torch.stack(frames, 1)


def write_toy_latent_dataset(path: Path, num_train: int = 256, length: int = 24, lengths_vary: bool = False) -> Path:
    """A latent dataset as `encode_audio_dataset` writes one (DatasetDict + autoencoder + summary), of toy latents."""
    generator = torch.Generator().manual_seed(0)
    features = Features({"latents": Array2D(shape=(None, 2), dtype="float16"), "num_frames": Value("int32"),
                         "instrument_name": Value("string")})
    splits = {}
    for name, count in (("train", num_train), ("validation", 8)):
        sequences = toy_sequences(count, length, generator)
        sizes = [length - (i % 5 if lengths_vary else 0) for i in range(count)]
        splits[name] = Dataset.from_dict(
            {"latents": [s[:n].numpy().astype(np.float16) for s, n in zip(sequences, sizes, strict=True)],
             "num_frames": sizes, "instrument_name": ["low" if i % 2 else "high" for i in range(count)]},
            features=features)
    DatasetDict(splits).save_to_disk(str(path))
    # A mel codec whose latent is its 2 mel bands: no PCA to fit, so the toy latents decode to (odd) audio.
    MelAutoencoder(sample_rate=8000, n_fft=64, stft_hop_length=16, n_mels=2, frames_per_latent=1,
                   latent_dim=2).save_pretrained(str(path / "autoencoder"))
    (path / "encode_summary.json").write_text("{}")
    return path


@pytest.fixture(scope="module")
def toy_dataset(tmp_path_factory) -> Path:
    return write_toy_latent_dataset(tmp_path_factory.mktemp("toy") / "latents")


def base_args(dataset: Path, output_dir: Path, *extra: str) -> list[str]:
    return ["--dataset_dir", str(dataset), "--output_dir", str(output_dir), "--preset", "tiny",
            "--context_frames", "12", "--train_batch_size", "8", "--lr_warmup_steps", "5", "--seed", "3",
            "--num_validation_prompts", "0", "--num_validation_samples", "0", *extra]


def read_losses(output_dir: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (output_dir / train.LOG_FILE).read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if "loss" in r}


def run_script(args: list[str], **kwargs) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, str(ROOT / "examples" / "train.py"), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def test_training_matches_what_generation_does(toy_dataset, tmp_path):
    # The script trains, saves a pipeline, and that pipeline generates the toy's statistics.
    output = tmp_path / "run"
    summary = train.main(base_args(toy_dataset, output, "--max_train_steps", "400", "--learning_rate", "1e-3",
                                   "--checkpointing_steps", "400", "--validation_steps", "400"))
    losses = read_losses(output)
    assert len(losses) == 400 and np.mean(list(losses.values())[-50:]) < 0.8 * np.mean(list(losses.values())[:20])
    assert summary["steps"] == 400 and summary["final_validation_loss"] != "not measured"
    card = (output / "README.md").read_text()
    assert "examples/train.py" in card and "400" in card and "final training loss" in card

    pipe = CAMPipeline.from_pretrained(str(output))
    frames = pipe(num_frames=10, num_waveforms_per_prompt=300, output_type="latent", num_inference_steps=16,
                  generator=torch.Generator().manual_seed(0)).audios.float()
    distance = torch.cdist(frames.reshape(-1, 2), MODES)
    nearest = distance.argmin(-1).view(300, 10)
    assert (distance.min(-1).values > 1.0).float().mean() < 0.05  # few frames between the modes
    stay = (nearest[:, 1:] == nearest[:, :-1]).float().mean().item()
    assert abs(stay - STAY) < 0.1
    for mode in range(2):
        members = frames.reshape(-1, 2)[nearest.flatten() == mode]
        torch.testing.assert_close(members.mean(0), MODES[mode], atol=0.25, rtol=0)


def test_resume_after_sigkill_logs_the_same_losses(toy_dataset, tmp_path):
    steps = 24
    args = ["--max_train_steps", str(steps), "--checkpointing_steps", "4", "--validation_steps", "6",
            "--dataloader_num_workers", "1"]
    # 256 clips / batch 8 = 32 micro-batches an epoch, accumulated by 2: the run crosses an epoch boundary.
    args += ["--gradient_accumulation_steps", "2"]
    reference = run_script(base_args(toy_dataset, tmp_path / "reference", *args))
    killed_dir = tmp_path / "killed"
    victim = run_script(base_args(toy_dataset, killed_dir, *args))
    kill_at = random.Random(os.getpid()).randint(5, steps - 3)
    log = killed_dir / train.LOG_FILE
    deadline = time.time() + 600
    while time.time() < deadline and victim.poll() is None:
        if log.exists() and len(read_losses(killed_dir)) >= kill_at:
            break
        time.sleep(0.05)
    assert victim.poll() is None, f"the run ended before step {kill_at}:\n{victim.stdout.read()}"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert len(read_losses(killed_dir)) < steps
    resumed = run_script(base_args(toy_dataset, killed_dir, *args, "--resume_from_checkpoint", "latest"))
    for process in (reference, resumed):
        out, _ = process.communicate(timeout=600)
        assert process.returncode == 0, out
    expected, got = read_losses(tmp_path / "reference"), read_losses(killed_dir)
    assert sorted(got) == list(range(1, steps + 1))
    assert got == expected, f"killed at step {kill_at}: the losses differ after resuming"


def test_stop_after_steps_cuts_the_run_and_the_same_command_continues_it(toy_dataset, tmp_path):
    """A run cut to a budget keeps the LR schedule of the whole run; continued, it logs what an uncut run logs."""
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    train.main(base_args(toy_dataset, whole, "--max_train_steps", "8", "--checkpointing_steps", "4"))
    summary = train.main(base_args(toy_dataset, cut, "--max_train_steps", "8", "--checkpointing_steps", "4",
                                   "--stop_after_steps", "5"))
    assert summary["steps"] == 5 and (cut / "checkpoint-5").is_dir() and (cut / "model_index.json").is_file()
    assert "| optimiser steps | 5 " in (cut / "README.md").read_text()
    log = [json.loads(line) for line in (cut / train.LOG_FILE).read_text().splitlines()]
    whole_log = [json.loads(line) for line in (whole / train.LOG_FILE).read_text().splitlines()]
    assert [r["lr"] for r in log if "lr" in r] == [r["lr"] for r in whole_log if "lr" in r][:5]
    train.main(base_args(toy_dataset, cut, "--max_train_steps", "8", "--checkpointing_steps", "4",
                         "--resume_from_checkpoint", "latest"))
    assert read_losses(cut) == pytest.approx(read_losses(whole), rel=1e-5)
    with pytest.raises(ValueError, match="at step 8, past --stop_after_steps/--max_train_steps 5"):
        train.main(base_args(toy_dataset, cut, "--max_train_steps", "8", "--stop_after_steps", "5",
                             "--resume_from_checkpoint", "latest"))


def test_nan_stops_the_run_without_a_checkpoint(toy_dataset, tmp_path):
    output = tmp_path / "diverged"
    # An absurd learning rate, reached by warming up from 0, blows the weights up after a few finite steps.
    with pytest.raises(FloatingPointError, match=r"at step \d+: stopping without saving") as error:
        train.main(base_args(toy_dataset, output, "--max_train_steps", "50", "--learning_rate", "1e15",
                             "--lr_warmup_steps", "1000", "--max_grad_norm", "1e30",
                             "--checkpointing_steps", "2", "--validation_steps", "1000"))
    steps = sorted(int(path.name.split("-")[1]) for path in output.glob("checkpoint-*"))
    failed_at = int(str(error.value).split("at step ")[1].split(":")[0])
    assert steps and max(steps) < failed_at and f"last good checkpoint is {output / f'checkpoint-{max(steps)}'}" in str(
        error.value)
    assert max(read_losses(output)) == failed_at - 1  # the failed step is not logged as a step
    for step in steps:  # every checkpoint written holds finite weights
        weights = torch.load(output / f"checkpoint-{step}" / "optimizer.bin", weights_only=True)
        assert all(torch.isfinite(v).all() for s in weights["state"].values() for v in s.values()
                   if isinstance(v, torch.Tensor))
    assert not (output / "model_index.json").exists()


def test_a_checkpoint_killed_while_saving_is_ignored_and_the_limit_holds(toy_dataset, tmp_path):
    output = tmp_path / "run"
    train.main(base_args(toy_dataset, output, "--max_train_steps", "6", "--checkpointing_steps", "2",
                         "--checkpoints_total_limit", "2", "--validation_steps", "100"))
    assert sorted(p.name for p in output.glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-6"]
    # What a kill during `save_state` leaves: a half-written folder under the temporary name.
    partial = output / "checkpoint-8.tmp"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"truncated")
    assert train.list_checkpoints(str(output))[-1][0] == 6
    summary = train.main(base_args(toy_dataset, output, "--max_train_steps", "8", "--checkpointing_steps", "2",
                                   "--checkpoints_total_limit", "2", "--validation_steps", "100",
                                   "--resume_from_checkpoint", "latest"))
    assert summary["steps"] == 8 and sorted(read_losses(output)) == list(range(1, 9))
    assert sorted(p.name for p in output.glob("checkpoint-*")) == ["checkpoint-6", "checkpoint-8"]
    with pytest.raises(ValueError, match="not a checkpoint folder"):
        train.main(base_args(toy_dataset, output, "--resume_from_checkpoint", str(tmp_path)))


def test_two_processes_see_different_data_and_end_in_sync(toy_dataset, tmp_path):
    output = tmp_path / "ddp"
    # The documented CPU launch: Accelerate's `--cpu` alone starts one process (several need MPI), so the shipped
    # config launches through torchrun and ACCELERATE_USE_CPU keeps Accelerate on the CPU.
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(ROOT / "examples" / "accelerate_configs" / "multi_cpu.yaml"),
               str(ROOT / "examples" / "train.py"),
               *base_args(toy_dataset, output, "--max_train_steps", "6", "--checkpointing_steps", "3",
                          "--validation_steps", "100", "--use_ema")]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), ACCELERATE_USE_CPU="1")
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    records = [json.loads(line) for line in (output / train.LOG_FILE).read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert len(steps) == 6
    for record in steps:  # batch 8 per process, gathered: two disjoint halves
        first, second = record["clip_indices"][:8], record["clip_indices"][8:]
        assert len(second) == 8 and not set(first) & set(second)
    seen = [i for r in steps for i in r["clip_indices"]]
    assert len(seen) == len(set(seen))  # one epoch: no clip twice
    assert json.loads((output / "training_summary.json").read_text())["hardware"].startswith("2 x")
    assert CAMPipeline.from_pretrained(str(output)).backbone.config.max_position_embeddings == 13


def test_crops_fit_the_context_begin_anywhere_and_mask_padding():
    latents = torch.arange(3 * 20, dtype=torch.float16).view(3, 20, 1).expand(3, 20, 2).clone()
    lengths = torch.tensor([20, 7, 12])
    crops, mask = train.random_crops(latents, lengths, 10, 0.0, torch.Generator().manual_seed(0))
    assert crops.shape == (3, 10, 2) and mask.sum(1).tolist() == [10, 7, 10]
    assert crops[1, 7:].abs().sum() == 0 and torch.equal(crops[1, :7, 0], latents[1, :7, 0].float())
    for row in range(3):  # consecutive frames of the clip
        real = crops[row, : mask[row].sum(), 0]
        assert torch.equal(real.diff(), torch.ones(len(real) - 1))
    _, short_mask = train.random_crops(latents, lengths, 10, 1.0, torch.Generator().manual_seed(1))
    assert (short_mask.sum(1) <= torch.tensor([10, 7, 10])).all() and (short_mask.sum(1) >= 1).all()


def test_the_data_order_depends_on_seed_and_epoch_only():
    sampler = train.EpochPermutation(50, seed=1)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    assert sorted(first) == list(range(50)) and first != second
    sampler.set_epoch(0)
    assert list(sampler) == first and list(train.EpochPermutation(50, seed=2)) != first


def test_clips_of_different_lengths_are_padded_not_truncated(tmp_path):
    dataset = write_toy_latent_dataset(tmp_path / "varying", num_train=32, lengths_vary=True)
    summary = train.main(base_args(dataset, tmp_path / "run", "--max_train_steps", "3", "--context_frames", "30",
                                   "--checkpointing_steps", "3", "--validation_steps", "3"))
    records = [json.loads(line) for line in (tmp_path / "run" / train.LOG_FILE).read_text().splitlines()]
    by_index = {i: 24 - (i % 5) for i in range(32)}
    for record in records[:3]:
        assert record["frames"] == sum(by_index[i] for i in record["clip_indices"])
    assert summary["context_frames"] == 30


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--train_batch_size", "0"], "--train_batch_size"),
        (["--learning_rate", "nan"], "--learning_rate"),
        (["--push_to_hub"], "--hub_model_id"),
        (["--backbone_config", "missing.json"], "--backbone_config"),
        (["--short_crop_fraction", "2"], "--short_crop_fraction"),
    ],
)
def test_bad_arguments_are_rejected_clearly(toy_dataset, tmp_path, extra, match):
    with pytest.raises(ValueError, match=match):
        train.main(base_args(toy_dataset, tmp_path / "run", *extra))


def test_missing_or_foreign_dataset_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="is not a folder"):
        train.main(base_args(tmp_path / "nowhere", tmp_path / "run"))
    with pytest.raises(ValueError, match="batch size"):
        train.main(base_args(write_toy_latent_dataset(tmp_path / "small", num_train=4), tmp_path / "run2"))


def test_help_documents_every_setting(capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["--help"])
    text = capsys.readouterr().out
    for option in ("--max_training_noise", "--noise_mixing", "--noise_sampling", "--condition_on_noise_level",
                   "--inference_noise", "--prediction_type", "--time_distribution", "--sampler_width",
                   "--sampler_blocks", "--sampler_batch_mul", "--mixed_precision", "--gradient_accumulation_steps",
                   "--gradient_checkpointing", "--use_ema", "--resume_from_checkpoint", "--checkpoints_total_limit",
                   "--push_to_hub", "--report_to", "max_position_embeddings"):
        assert option in text


def test_copying_a_checkpoint_folder_keeps_it_resumable(toy_dataset, tmp_path):
    # A checkpoint is self-contained: copied elsewhere, it resumes by path.
    output = tmp_path / "run"
    train.main(base_args(toy_dataset, output, "--max_train_steps", "2", "--checkpointing_steps", "2",
                         "--validation_steps", "100"))
    shutil.copytree(output / "checkpoint-2", tmp_path / "copy")
    summary = train.main(base_args(toy_dataset, tmp_path / "run2", "--max_train_steps", "3",
                                   "--checkpointing_steps", "3", "--validation_steps", "100",
                                   "--resume_from_checkpoint", str(tmp_path / "copy")))
    assert summary["steps"] == 3


@pytest.mark.parametrize("name", ["multi_cpu", "multi_gpu", "fsdp", "deepspeed_zero2"])
def test_example_accelerate_configs_load(name):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(ROOT / "examples" / "accelerate_configs" / f"{name}.yaml"))
    assert config.num_processes >= 2 and config.main_training_function == "main"


def test_push_to_hub_uploads_the_pipeline_with_its_training_card(toy_dataset, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from cam_hf import hub_utils

    uploaded = tmp_path / "uploaded"

    def fake_create_repo(repo_id, **kwargs):
        return SimpleNamespace(repo_id=repo_id)

    def fake_upload_folder(repo_id, folder_path, **kwargs):
        shutil.copytree(folder_path, uploaded)
        return f"https://huggingface.co/{repo_id}/commit/0"

    # Up to the network: the two Hub calls are the only thing replaced.
    monkeypatch.setattr(hub_utils, "create_repo", fake_create_repo)
    monkeypatch.setattr(hub_utils, "upload_folder", fake_upload_folder)
    train.main(base_args(toy_dataset, tmp_path / "run", "--max_train_steps", "2", "--checkpointing_steps", "2",
                         "--validation_steps", "2", "--push_to_hub", "--hub_model_id", "org/cam-toy"))
    card = (uploaded / "README.md").read_text()
    assert "org/cam-toy" in card and "examples/train.py" in card and "optimiser steps" in card
    assert not list(uploaded.glob("checkpoint-*"))  # the pipeline only, not the run's checkpoints
    assert CAMPipeline.from_pretrained(str(uploaded)).backbone.config.max_position_embeddings == 13


def test_latents_are_read_exactly_from_arrow(toy_dataset):
    from datasets import load_from_disk

    split = load_from_disk(str(toy_dataset))["train"]
    clips = train.read_latents(split)
    expected = [torch.from_numpy(x) for x in split.with_format("numpy", columns=["latents"])["latents"]]
    assert len(clips) == len(expected) and all(torch.equal(c, e.half()) for c, e in zip(clips, expected, strict=True))
    shuffled = split.shuffle(seed=0).select(range(5))
    order = shuffled._indices.column(0).to_pylist()  # the rows it selected, in its order
    assert all(torch.equal(c, clips[i]) for c, i in zip(train.read_latents(shuffled), order, strict=True))
