"""cam_hf/training/summary.py: a run's figures and the training section of its model card."""

from types import SimpleNamespace

import torch

from cam_hf.training import summarize_run, training_details


class FourClips:
    """What `summarize_run` reads of a `LatentClips`: its length and its frames."""

    def __len__(self) -> int:
        return 4

    def num_frames(self) -> int:
        return 360


def summary_of(log: list[dict]) -> dict:
    model = SimpleNamespace(backbone=torch.nn.Linear(2, 3), sampler=torch.nn.Linear(3, 2))
    return summarize_run(log, FourClips(), None, model, 12, 10.0, 8, "1 x CPU")


def test_a_run_without_validation_has_no_validation_loss_and_its_card_says_so():
    log = [{"step": s, "loss": 1.0 / s, "frames": 96, "wall_s": 2.0 * s} for s in (1, 2)]
    summary = summary_of(log)
    assert summary["final_validation_loss"] is None and summary["steps"] == 2
    card = training_details(summary, "data/toy", "python examples/train.py")
    assert "| final validation loss | not measured |" in card


def test_the_last_validation_loss_is_the_final_one():
    log = [
        {"step": 1, "loss": 1.0, "frames": 96, "wall_s": 2.0},
        {"step": 1, "validation_loss": 0.87654},
        {"step": 2, "loss": 0.5, "frames": 96, "wall_s": 4.0},
        {"step": 2, "validation_loss": 0.54321},
    ]
    summary = summary_of(log)
    assert summary["final_validation_loss"] == 0.5432
    assert "| final validation loss | 0.5432 |" in training_details(summary, "data/toy", "python x")
