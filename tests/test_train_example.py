"""examples/train.py: a real run on toy latents, exact resume after SIGKILL, the NaN stop, checkpoints
(corrupt ones, and the legacy EMA layout), two processes in sync, and its options."""

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from cam_hf import CAMPipeline
from cam_hf.training import LOG_FILE, data_seed, list_checkpoints

from .conftest import TOY_MEAN, TOY_STAY, write_toy_latent_dataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

import train  # noqa: E402  (the script, for its `main`)

MODES = torch.stack([TOY_MEAN, -TOY_MEAN])


@pytest.fixture(scope="module")
def toy_dataset(tmp_path_factory) -> Path:
    return write_toy_latent_dataset(tmp_path_factory.mktemp("toy") / "latents")


def base_args(dataset: Path, output_dir: Path, *extra: str) -> list[str]:
    return [
        "--dataset_dir",
        str(dataset),
        "--output_dir",
        str(output_dir),
        "--preset",
        "tiny",
        "--context_frames",
        "12",
        "--train_batch_size",
        "8",
        "--lr_warmup_steps",
        "5",
        "--seed",
        "3",
        "--num_validation_prompts",
        "0",
        "--num_validation_samples",
        "0",
        *extra,
    ]


def read_losses(output_dir: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (output_dir / LOG_FILE).read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if "loss" in r}


def run_script(args: list[str], **kwargs) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "train.py"), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def test_training_matches_what_generation_does(toy_dataset, tmp_path):
    # The script trains, saves a pipeline, and that pipeline generates the toy's statistics.
    output = tmp_path / "run"
    summary = train.main(
        base_args(
            toy_dataset,
            output,
            "--max_train_steps",
            "400",
            "--learning_rate",
            "1e-3",
            "--checkpointing_steps",
            "400",
            "--validation_steps",
            "400",
        )
    )
    losses = read_losses(output)
    assert len(losses) == 400 and np.mean(list(losses.values())[-50:]) < 0.8 * np.mean(
        list(losses.values())[:20]
    )
    assert summary["steps"] == 400 and summary["final_validation_loss"] is not None
    card = (output / "README.md").read_text()
    assert "examples/train.py" in card and "400" in card and "final training loss" in card

    pipe = CAMPipeline.from_pretrained(str(output))
    frames = pipe(
        num_frames=10,
        num_waveforms_per_prompt=300,
        output_type="latent",
        num_inference_steps=16,
        generator=torch.Generator().manual_seed(0),
    ).audios.float()
    distance = torch.cdist(frames.reshape(-1, 2), MODES)
    nearest = distance.argmin(-1).view(300, 10)
    assert (distance.min(-1).values > 1.0).float().mean() < 0.05  # few frames between the modes
    stay = (nearest[:, 1:] == nearest[:, :-1]).float().mean().item()
    assert abs(stay - TOY_STAY) < 0.1
    for mode in range(2):
        members = frames.reshape(-1, 2)[nearest.flatten() == mode]
        torch.testing.assert_close(members.mean(0), MODES[mode], atol=0.25, rtol=0)


def test_resume_after_sigkill_logs_the_same_losses(toy_dataset, tmp_path):
    steps = 24
    args = [
        "--max_train_steps",
        str(steps),
        "--checkpointing_steps",
        "4",
        "--validation_steps",
        "6",
        "--dataloader_num_workers",
        "1",
    ]
    # 256 clips / batch 8 = 32 micro-batches an epoch, accumulated by 2: the run crosses an epoch boundary.
    args += ["--gradient_accumulation_steps", "2"]
    reference = run_script(base_args(toy_dataset, tmp_path / "reference", *args))
    killed_dir = tmp_path / "killed"
    victim = run_script(base_args(toy_dataset, killed_dir, *args))
    kill_at = random.Random(os.getpid()).randint(5, steps - 3)
    log = killed_dir / LOG_FILE
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


def test_fine_tuning_may_add_a_short_context_and_starts_as_the_pretrained_model(toy_dataset, tmp_path):
    def run(name: str, *extra: str) -> dict[int, float]:
        train.main(
            base_args(
                toy_dataset, tmp_path / name, "--max_train_steps", "2", "--lr_warmup_steps", "0", *extra
            )
        )
        return read_losses(tmp_path / name)

    run("pretrained")
    tune = ("--pretrained_model_name_or_path", str(tmp_path / "pretrained"), "--learning_rate", "1e-3")
    plain = run("plain", *tune)
    added = run("added", *tune, "--short_context_frames", "5", "--short_context_learning_rate", "1e-2")
    assert added[1] == plain[1]  # the first step's loss is the pretrained model's: the new module is silent
    assert added[2] != plain[2]  # then it learns
    pipe = CAMPipeline.from_pretrained(str(tmp_path / "added"))
    assert pipe.backbone.config.short_context_frames == 5
    assert torch.count_nonzero(pipe.backbone.short_context.output_proj.weight) > 0
    generator = torch.Generator().manual_seed(0)
    assert pipe(num_frames=20, output_type="latent", generator=generator).audios.shape == (1, 20, 2)
    # Fine-tuned again, it keeps its short context; another one would change its network.
    run("again", "--pretrained_model_name_or_path", str(tmp_path / "added"))
    assert CAMPipeline.from_pretrained(str(tmp_path / "again")).backbone.config.short_context_frames == 5
    with pytest.raises(ValueError, match="has a short context already"):
        run(
            "refused",
            "--pretrained_model_name_or_path",
            str(tmp_path / "added"),
            "--short_context_frames",
            "9",
        )


def test_warmup_stable_decay_can_be_extended_and_still_ends_decayed(toy_dataset, tmp_path):
    """A warmup-stable-decay run resumed before its decay with a longer --max_train_steps keeps the same
    rates so far and decays at its new end; the stored temperature reaches the saved Sampler."""
    schedule = (
        "--lr_scheduler",
        "warmup_stable_decay",
        "--lr_warmup_steps",
        "2",
        "--lr_decay_steps",
        "3",
        "--learning_rate",
        "1e-3",
        "--checkpointing_steps",
        "4",
        "--default_temperature",
        "1.3",
    )
    output = tmp_path / "run"
    first = base_args(toy_dataset, output, *schedule, "--max_train_steps", "10", "--stop_after_steps", "4")
    train.main(first)
    extended = base_args(toy_dataset, output, *schedule, "--max_train_steps", "12")
    train.main([*extended, "--resume_from_checkpoint", "latest"])
    # The rate each step leaves for the next: half-way through the warm-up, then the peak until the decay.
    rates = [r["lr"] for r in map(json.loads, (output / LOG_FILE).read_text().splitlines()) if "lr" in r]
    assert len(rates) == 12 and rates[:9] == pytest.approx([5e-4] + [1e-3] * 8)
    assert 1e-3 > rates[9] > rates[10] > rates[11] == pytest.approx(0.0)  # the last 3 steps decay to 0
    assert CAMPipeline.from_pretrained(str(output)).sampler.config.temperature == 1.3


def test_stop_after_steps_cuts_the_run_and_the_same_command_continues_it(toy_dataset, tmp_path):
    """A run cut to a budget keeps the LR schedule of the whole run; continued, it logs the same losses as
    an uncut run."""
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    train.main(base_args(toy_dataset, whole, "--max_train_steps", "8", "--checkpointing_steps", "4"))
    summary = train.main(
        base_args(
            toy_dataset,
            cut,
            "--max_train_steps",
            "8",
            "--checkpointing_steps",
            "4",
            "--stop_after_steps",
            "5",
        )
    )
    assert summary["steps"] == 5 and (cut / "checkpoint-5").is_dir() and (cut / "model_index.json").is_file()
    assert "| optimiser steps | 5 " in (cut / "README.md").read_text()
    log = [json.loads(line) for line in (cut / LOG_FILE).read_text().splitlines()]
    whole_log = [json.loads(line) for line in (whole / LOG_FILE).read_text().splitlines()]
    assert [r["lr"] for r in log if "lr" in r] == [r["lr"] for r in whole_log if "lr" in r][:5]
    train.main(
        base_args(
            toy_dataset,
            cut,
            "--max_train_steps",
            "8",
            "--checkpointing_steps",
            "4",
            "--resume_from_checkpoint",
            "latest",
        )
    )
    assert read_losses(cut) == pytest.approx(read_losses(whole), rel=1e-5)
    with pytest.raises(ValueError, match="at step 8, past --stop_after_steps/--max_train_steps 5"):
        train.main(
            base_args(
                toy_dataset,
                cut,
                "--max_train_steps",
                "8",
                "--stop_after_steps",
                "5",
                "--resume_from_checkpoint",
                "latest",
            )
        )


def test_nan_stops_the_run_without_a_checkpoint(toy_dataset, tmp_path):
    output = tmp_path / "diverged"
    # An absurd learning rate, reached by warming up from 0, blows the weights up after a few finite steps.
    with pytest.raises(FloatingPointError, match=r"at step \d+: stopping without saving") as error:
        train.main(
            base_args(
                toy_dataset,
                output,
                "--max_train_steps",
                "50",
                "--learning_rate",
                "1e15",
                "--lr_warmup_steps",
                "1000",
                "--max_grad_norm",
                "1e30",
                "--checkpointing_steps",
                "2",
                "--validation_steps",
                "1000",
            )
        )
    steps = sorted(int(path.name.split("-")[1]) for path in output.glob("checkpoint-*"))
    failed_at = int(str(error.value).split("at step ")[1].split(":")[0])
    assert (
        steps
        and max(steps) < failed_at
        and f"last good checkpoint is {output / f'checkpoint-{max(steps)}'}" in str(error.value)
    )
    assert max(read_losses(output)) == failed_at - 1  # the failed step is not logged as a step
    for step in steps:  # every checkpoint written holds finite weights
        weights = torch.load(output / f"checkpoint-{step}" / "optimizer.bin", weights_only=True)
        assert all(
            torch.isfinite(v).all()
            for s in weights["state"].values()
            for v in s.values()
            if isinstance(v, torch.Tensor)
        )
    assert not (output / "model_index.json").exists()


def test_a_checkpoint_killed_while_saving_is_ignored_and_the_limit_holds(toy_dataset, tmp_path):
    output = tmp_path / "run"
    train.main(
        base_args(
            toy_dataset,
            output,
            "--max_train_steps",
            "6",
            "--checkpointing_steps",
            "2",
            "--checkpoints_total_limit",
            "2",
            "--validation_steps",
            "100",
        )
    )
    assert sorted(p.name for p in output.glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-6"]
    # What a kill during `save_state` leaves: a half-written folder under the temporary name.
    partial = output / "checkpoint-8.tmp"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"truncated")
    assert list_checkpoints(str(output))[-1][0] == 6
    summary = train.main(
        base_args(
            toy_dataset,
            output,
            "--max_train_steps",
            "8",
            "--checkpointing_steps",
            "2",
            "--checkpoints_total_limit",
            "2",
            "--validation_steps",
            "100",
            "--resume_from_checkpoint",
            "latest",
        )
    )
    assert summary["steps"] == 8 and sorted(read_losses(output)) == list(range(1, 9))
    assert sorted(p.name for p in output.glob("checkpoint-*")) == ["checkpoint-6", "checkpoint-8"]
    with pytest.raises(ValueError, match="not a checkpoint folder"):
        train.main(base_args(toy_dataset, output, "--resume_from_checkpoint", str(tmp_path)))


# examples/train.py, with each process saving the weights it ends with (`weights-PROCESS.safetensors` in the
# output folder) just before the script checks that they agree.
SAVE_EACH_PROCESS_WEIGHTS = """
import os
import sys

from safetensors.torch import save_file

import train

check_weights_in_sync = train.check_weights_in_sync


def save_then_check(accelerator, model):
    output_dir = sys.argv[sys.argv.index("--output_dir") + 1]
    weights = {name: p.detach().cpu().contiguous() for name, p in model.named_parameters()}
    save_file(weights, os.path.join(output_dir, f"weights-{accelerator.process_index}.safetensors"))
    check_weights_in_sync(accelerator, model)


train.check_weights_in_sync = save_then_check
train.main()
"""


def test_two_processes_see_different_data_and_end_in_sync(toy_dataset, tmp_path):
    output = tmp_path / "ddp"
    script = tmp_path / "train_saving_each_process_weights.py"
    script.write_text(SAVE_EACH_PROCESS_WEIGHTS)
    # The documented CPU launch: Accelerate's `--cpu` alone starts one process (several need MPI), so the
    # shipped config launches through torchrun and ACCELERATE_USE_CPU keeps Accelerate on the CPU.
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(ROOT / "examples" / "accelerate_configs" / "multi_cpu.yaml"),
        str(script),
        *base_args(
            toy_dataset,
            output,
            "--max_train_steps",
            "6",
            "--checkpointing_steps",
            "3",
            "--validation_steps",
            "100",
            "--use_ema",
        ),
    ]
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "examples")]),
        ACCELERATE_USE_CPU="1",
    )
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    records = [json.loads(line) for line in (output / LOG_FILE).read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert len(steps) == 6
    for record in steps:  # batch 8 per process, gathered: two disjoint halves
        first, second = record["clip_indices"][:8], record["clip_indices"][8:]
        assert len(second) == 8 and not set(first) & set(second)
    seen = [i for r in steps for i in r["clip_indices"]]
    assert len(seen) == len(set(seen))  # one epoch: no clip twice
    assert json.loads((output / "training_summary.json").read_text())["hardware"].startswith("2 x")
    # In sync: both processes end with the same weights, bit for bit, which are those of the last checkpoint
    # (saved from the DDP wrapper, hence the `module.` prefix).
    first, second = (load_file(output / f"weights-{i}.safetensors") for i in range(2))
    assert first and first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)
    saved = load_file(output / "checkpoint-6" / "model.safetensors")
    saved = {name.removeprefix("module."): weights for name, weights in saved.items()}
    assert all(torch.equal(saved[name], first[name]) for name in first)
    assert CAMPipeline.from_pretrained(str(output)).backbone.config.max_position_embeddings == 13


def test_the_data_order_is_the_permutation_that_existing_checkpoints_resume_on():
    # Accelerate's seedable sampler, as train.py prepares it, permutes epoch e with randperm seeded by
    # seed * 1_000_003 + e: the order existing checkpoints were trained on, so that they resume exactly.
    from accelerate import Accelerator, DataLoaderConfiguration

    def order(seed: int, epoch: int) -> list[int]:
        accelerator = Accelerator(
            dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=data_seed(seed))
        )
        loader = accelerator.prepare(torch.utils.data.DataLoader(range(50), batch_size=5, shuffle=True))
        loader.set_epoch(epoch)
        return torch.cat(list(loader)).tolist()

    for seed, epoch in ((1, 0), (1, 1), (3, 7)):
        expected = torch.randperm(
            50, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        ).tolist()
        assert order(seed, epoch) == expected
    assert order(1, 0) != order(1, 1) and order(1, 0) != order(2, 0)


def test_clips_of_different_lengths_are_padded_not_truncated(tmp_path):
    dataset = write_toy_latent_dataset(tmp_path / "varying", num_train=32, lengths_vary=True)
    summary = train.main(
        base_args(
            dataset,
            tmp_path / "run",
            "--max_train_steps",
            "3",
            "--context_frames",
            "30",
            "--checkpointing_steps",
            "3",
            "--validation_steps",
            "3",
        )
    )
    records = [json.loads(line) for line in (tmp_path / "run" / LOG_FILE).read_text().splitlines()]
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


def test_help_states_the_defaults_a_run_from_scratch_uses(toy_dataset, tmp_path, capsys):
    # The noise and Sampler options default to None in argparse (a fine-tuning run takes the pipeline's): the
    # help states in words what a run from scratch uses. The trained pipeline's configs must say the same.
    with pytest.raises(SystemExit):
        train.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())

    def stated_default(option: str) -> str:
        section = text[text.rindex(f"--{option} ") :][:400]  # the option's entry, not the usage line
        return re.search(r"[Dd]efault:? (\w+(?:\.\d+)?)", section).group(1)

    output = tmp_path / "run"
    train.main(base_args(toy_dataset, output, "--max_train_steps", "1", "--checkpointing_steps", "1"))
    pipe = CAMPipeline.from_pretrained(str(output))
    backbone, sampler = pipe.backbone.config, pipe.sampler.config
    assert float(stated_default("max_training_noise")) == backbone.max_training_noise
    assert float(stated_default("inference_noise")) == backbone.inference_noise
    assert stated_default("noise_mixing") == backbone.noise_mixing
    assert stated_default("noise_sampling") == backbone.noise_sampling
    assert stated_default("prediction_type") == sampler.prediction_type
    assert stated_default("time_distribution") == sampler.time_distribution
    assert stated_default("few_step_objective") == "none" and sampler.few_step_objective is None


def test_copying_a_checkpoint_folder_keeps_it_resumable(toy_dataset, tmp_path):
    # A checkpoint is self-contained: copied elsewhere, it resumes by path.
    output = tmp_path / "run"
    train.main(
        base_args(
            toy_dataset,
            output,
            "--max_train_steps",
            "2",
            "--checkpointing_steps",
            "2",
            "--validation_steps",
            "100",
        )
    )
    shutil.copytree(output / "checkpoint-2", tmp_path / "copy")
    summary = train.main(
        base_args(
            toy_dataset,
            tmp_path / "run2",
            "--max_train_steps",
            "3",
            "--checkpointing_steps",
            "3",
            "--validation_steps",
            "100",
            "--resume_from_checkpoint",
            str(tmp_path / "copy"),
        )
    )
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
    train.main(
        base_args(
            toy_dataset,
            tmp_path / "run",
            "--max_train_steps",
            "2",
            "--checkpointing_steps",
            "2",
            "--validation_steps",
            "2",
            "--push_to_hub",
            "--hub_model_id",
            "org/cam-toy",
        )
    )
    card = (uploaded / "README.md").read_text()
    assert "org/cam-toy" in card and "examples/train.py" in card and "optimiser steps" in card
    assert not list(uploaded.glob("checkpoint-*"))  # the pipeline only, not the run's checkpoints
    assert CAMPipeline.from_pretrained(str(uploaded)).backbone.config.max_position_embeddings == 13


def resume_losses(dataset: Path, output_dir: Path, *extra: str) -> dict[int, float]:
    train.main(base_args(dataset, output_dir, "--validation_steps", "100", *extra))
    return read_losses(output_dir)


def test_a_corrupt_latest_checkpoint_falls_back_to_the_newest_whole_one(toy_dataset, tmp_path, caplog):
    args = ["--checkpointing_steps", "2", "--use_ema"]
    expected = resume_losses(toy_dataset, tmp_path / "whole", "--max_train_steps", "8", *args)
    output = tmp_path / "run"
    resume_losses(toy_dataset, output, "--max_train_steps", "6", *args)
    weights = output / "checkpoint-6" / "model.safetensors"
    truncated = weights.read_bytes()[: weights.stat().st_size // 2]  # a copy cut short
    weights.write_bytes(truncated)
    with pytest.raises(ValueError, match=r"checkpoint-6/model.safetensors cannot be read.*checkpoint-4"):
        train.main(
            base_args(toy_dataset, output, "--resume_from_checkpoint", str(output / "checkpoint-6"), *args)
        )
    got = resume_losses(
        toy_dataset, output, "--max_train_steps", "8", *args, "--resume_from_checkpoint", "latest"
    )
    warning = " ".join(record.getMessage() for record in caplog.records if record.levelname == "WARNING")
    assert "checkpoint-6/model.safetensors cannot be read" in warning and "resuming from" in warning
    # Resumed from checkpoint-4: the same losses as a run never stopped; the bad checkpoint kept, not deleted.
    assert got == expected
    assert (output / "checkpoint-6.corrupt" / "model.safetensors").read_bytes() == truncated
    assert [step for step, _ in list_checkpoints(str(output))] == [2, 4, 6, 8]


def test_a_checkpoint_of_the_legacy_ema_layout_resumes_exactly(toy_dataset, tmp_path):
    # A legacy checkpoint holds the EMA as ema.safetensors, with its step count in training_state.json: build
    # one from a checkpoint of the current layout.
    args = ["--checkpointing_steps", "2", "--use_ema", "--ema_decay", "0.9"]
    expected = resume_losses(toy_dataset, tmp_path / "whole", "--max_train_steps", "4", *args)
    output = tmp_path / "run"
    resume_losses(toy_dataset, output, "--max_train_steps", "2", *args)
    checkpoint = output / "checkpoint-2"
    ema = torch.load(checkpoint / "custom_checkpoint_0.pkl", weights_only=True)
    (checkpoint / "custom_checkpoint_0.pkl").unlink()
    save_file(
        {f"shadow.{i}": p.contiguous() for i, p in enumerate(ema["shadow_params"])},
        checkpoint / "ema.safetensors",
    )
    state = {"step": 2, "ema": {"optimization_step": ema["optimization_step"], "decay": ema["decay"]}}
    (checkpoint / "training_state.json").write_text(json.dumps(state))
    assert (
        resume_losses(
            toy_dataset, output, "--max_train_steps", "4", *args, "--resume_from_checkpoint", "latest"
        )
        == expected
    )
    # The EMA went on from the restored one: the saved (EMA) weights are those of the run never stopped.
    for name in ("backbone", "sampler"):
        ours = load_file(next((output / name).glob("*.safetensors")))
        theirs = load_file(next((tmp_path / "whole" / name).glob("*.safetensors")))
        assert all(torch.equal(ours[key], theirs[key]) for key in theirs)
    # And the run's next checkpoint is of the current layout.
    assert (output / "checkpoint-4" / "custom_checkpoint_0.pkl").is_file()
