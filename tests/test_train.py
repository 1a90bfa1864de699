"""Lightning training end to end at toy sizes: the loss falls, artefacts, resume, bad inputs."""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
import shutil
import signal
from pathlib import Path

import pytest
import torch

from stylecast.errors import Interrupted, StylecastError
from stylecast.training.config import NetworkConfig, TrainConfig, train_from_dict
from stylecast.training.data import hold_out
from stylecast.training.images import save_image
from stylecast.training.losses import PerceptualLoss
from stylecast.training.module import StyleTransferModule, cosine_factor
from stylecast.training.network import TransformNet
from stylecast.training.run_folder import RunFolder, read_trained
from stylecast.training.train import RunOptions, build_trainer, check_resume, run_training

SIZE = 64
STEPS = 8


def _config(style_image: Path, content_dir: Path, loss_config) -> TrainConfig:
    return TrainConfig(
        style_image=str(style_image),
        content_dirs=(str(content_dir),),
        image_size=SIZE,
        batch_size=2,
        lr=1e-3,
        vgg_weights="random:0",
        network=NetworkConfig.preset("lite"),
        loss=loss_config,
    )


def _run(out: Path, **overrides) -> RunOptions:
    options = {
        "out": str(out),
        "max_steps": STEPS,
        "accelerator": "cpu",
        "devices": "1",
        "log_every": 1,
        "sample_every": 0,
        "checkpoint_every": 4,
        "val_every": 4,
        **overrides,
    }
    return RunOptions(**options)


def _checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def _logged(run_dir: Path, tag: str) -> list[float]:
    """A scalar's values in step order, across every TensorBoard events file of the run."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    values: dict[int, float] = {}
    for events in sorted((run_dir / "tensorboard").rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        values.update({e.step: e.value for e in accumulator.Scalars(tag)})
    return [values[step] for step in sorted(values)]


def _logged_losses(run_dir: Path) -> list[float]:
    return _logged(run_dir, "train/loss")


@pytest.fixture(scope="module")
def training_run(tmp_path_factory, make_content_dir, style_image, loss_config):
    """One 8-step run (64 px, batch 2, lite network, random:0 VGG) shared by the tests below.
    Returns (config, run folder, read-only snapshot of the run folder as it was written).
    Only the resume test changes the run folder (in place: checkpoints record their folder);
    the others read the snapshot, so test order does not matter."""
    root = tmp_path_factory.mktemp("train")
    content = make_content_dir(root / "content")
    config = _config(style_image, content, loss_config)
    out = run_training(config, _run(root / "run")).out
    snapshot = shutil.copytree(out, root / "snapshot")
    return config, out, snapshot


@pytest.fixture
def trained(training_run):
    """(config, snapshot folder) of the shared run, as training left it."""
    config, _, snapshot = training_run
    return config, snapshot


def test_training_writes_the_run_artifacts(trained) -> None:
    config, out = trained
    checkpoints = out / "checkpoints"
    assert (checkpoints / "last.ckpt").is_file()
    assert not (checkpoints / "interrupted.ckpt").exists()  # only written on an interruption
    assert (out / "transform.pt").is_file()
    assert list((out / "tensorboard").rglob("events.out.tfevents.*"))

    ckpt = _checkpoint(checkpoints / "last.ckpt")
    assert ckpt["global_step"] == STEPS
    # the frozen VGG and style Grams are rebuilt from the config, never stored
    assert ckpt["state_dict"]
    assert not [k for k in ckpt["state_dict"] if not k.startswith("network.")]
    assert ckpt["hyper_parameters"]["vgg_weights_id"] == "random:0"

    run_config = json.loads((out / "config.json").read_text())
    assert run_config["vgg_weights"] == "random:0"
    assert run_config["steps"] == STEPS
    assert train_from_dict(run_config["train"]) == config
    assert run_config["run"]["max_steps"] == STEPS
    assert set(run_config["final_losses"]) >= {"loss", "content", "style", "tv"}
    assert len(run_config["style_sha256"]) == 64

    weights = torch.load(out / "transform.pt", map_location="cpu", weights_only=True)
    network = TransformNet(config.network)
    network.load_state_dict(weights)  # strict: exactly the transform network's weights
    for key, value in weights.items():
        torch.testing.assert_close(value, ckpt["state_dict"][f"network.{key}"])


def test_training_lowers_the_loss(trained, random_vgg, small_image, content_images) -> None:
    config, out = trained
    logged = _logged_losses(out)
    assert len(logged) == STEPS  # log_every=1
    assert sum(logged[-3:]) / 3 < sum(logged[:2]) / 2

    # On a fixed batch, the trained network beats an untrained one by a wide margin.
    criterion = PerceptualLoss(random_vgg, config.loss, small_image(Path(config.style_image), SIZE))
    batch = torch.stack(
        [
            torch.nn.functional.interpolate(small_image(p, SIZE)[None], size=(SIZE, SIZE))[0]
            for p in content_images
        ]
    )
    targets = criterion.content_targets(batch)

    def fixed_batch_loss(network: TransformNet) -> float:
        with torch.no_grad():
            return float(criterion(network.eval()(batch), targets)["total"])

    torch.manual_seed(config.seed)
    untrained = fixed_batch_loss(TransformNet(config.network))
    trained_net = TransformNet(config.network)
    trained_net.load_state_dict(torch.load(out / "transform.pt", weights_only=True))
    after = fixed_batch_loss(trained_net)
    assert after < 0.7 * untrained, (untrained, after)


def test_refuses_to_start_over_an_existing_run(trained) -> None:
    config, out = trained
    with pytest.raises(StylecastError, match="--resume last"):
        run_training(config, _run(out))


def test_last_checkpoint_holds_the_final_step(tmp_path, style_image, content_dir, loss_config):
    """A run that ends between two checkpoint steps still leaves its final state to resume
    from (Lightning alone would leave step 2 of 3)."""
    config = _config(style_image, content_dir, loss_config)
    out = run_training(config, _run(tmp_path / "run", max_steps=3, checkpoint_every=2)).out
    assert _checkpoint(out / "checkpoints" / "last.ckpt")["global_step"] == 3
    assert sorted(p.name for p in (out / "checkpoints").glob("last*.ckpt")) == ["last.ckpt"]


def test_cosine_factor_falls_from_one_to_the_floor() -> None:
    factors = [cosine_factor(step, 10, 0.01) for step in range(13)]
    assert factors[0] == 1.0
    assert factors[5] == pytest.approx(0.505)
    assert factors[10:] == [pytest.approx(0.01)] * 3  # held at the floor past the end
    assert all(a > b for a, b in itertools.pairwise(factors[:11]))


def test_cosine_schedule_ends_at_the_final_fraction(
    tmp_path, style_image, content_dir, loss_config
) -> None:
    """The learning rate Lightning logs falls from --lr to lr × lr_final_fraction by the last
    step; a constant schedule logs --lr throughout."""
    base = _config(style_image, content_dir, loss_config)
    cosine = dataclasses.replace(base, lr_schedule="cosine", lr_final_fraction=0.1)
    rates = {}
    for config in (base, cosine):
        out = run_training(config, _run(tmp_path / config.lr_schedule, max_steps=5)).out
        rates[config.lr_schedule] = _logged(out, "lr-Adam")
    assert rates["constant"] == [pytest.approx(1e-3)] * 5
    assert rates["cosine"][0] == pytest.approx(1e-3)
    assert rates["cosine"][-1] == pytest.approx(1e-3 * cosine_factor(4, 5, 0.1))
    assert all(a > b for a, b in itertools.pairwise(rates["cosine"]))
    assert json.loads((out / "config.json").read_text())["train"]["lr_schedule"] == "cosine"


def test_cosine_schedule_follows_the_global_step_on_resume(
    tmp_path, style_image, content_dir, loss_config
) -> None:
    """A constant-rate checkpoint resumed with the cosine schedule (no scheduler state in it)
    takes the curve up where the run stands, not from its top (the first resumed step still
    uses the rate restored with the optimiser's state)."""
    base = _config(style_image, content_dir, loss_config)
    out = run_training(base, _run(tmp_path / "run", max_steps=3)).out
    cosine = dataclasses.replace(base, lr_schedule="cosine", lr_final_fraction=0.1)
    run_training(cosine, _run(out, max_steps=6, resume="last"))
    rates = _logged(out, "lr-Adam")
    assert rates[:3] == [pytest.approx(1e-3)] * 3
    assert rates[3] == pytest.approx(1e-3)
    assert rates[4:] == [pytest.approx(1e-3 * cosine_factor(step, 6, 0.1)) for step in (4, 5)]


@pytest.mark.slow
def test_sigterm_saves_state_and_resume_continues(training_run, monkeypatch) -> None:
    """Resume the 8-step run, stop it with SIGTERM (as a scheduler or `docker stop` would) two
    steps later, then resume again to completion: every run starts at the saved global step."""
    config, out, snapshot = training_run
    checkpoints = out / "checkpoints"
    calls: list[int] = []
    original = StyleTransferModule.training_step
    stop_at: list[int] = [2]  # send SIGTERM during the 2nd step of the resumed run

    def counting_step(self, batch, batch_idx):
        calls.append(batch_idx)
        if len(calls) in stop_at:
            # Lightning's handler is installed for the duration of fit(); the default action
            # would kill the test process, so refuse to go on without it.
            assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN, None)
            signal.raise_signal(signal.SIGTERM)
        return original(self, batch, batch_idx)

    monkeypatch.setattr(StyleTransferModule, "training_step", counting_step)
    with pytest.raises(Interrupted, match="--resume last") as info:
        run_training(config, _run(out, max_steps=1000, resume="last", command="first resume"))
    assert info.value.exit_code == 130
    assert len(calls) == 2  # continued at step 8, not restarted from 0
    stopped = _checkpoint(checkpoints / "interrupted.ckpt")
    assert stopped["global_step"] == STEPS + 2  # Lightning stops at the end of the step
    assert _checkpoint(checkpoints / "last.ckpt")["global_step"] == STEPS

    stop_at.clear()
    run_training(config, _run(out, max_steps=STEPS + 4, resume="last", command="second resume"))
    assert len(calls) == 4  # picked the newer interrupted.ckpt: 2 more steps, not 4
    assert sorted(p.name for p in checkpoints.glob("last*.ckpt")) == ["last.ckpt"]
    assert not (checkpoints / "interrupted.ckpt").exists()  # a finished run cleans it up
    assert _checkpoint(checkpoints / "last.ckpt")["global_step"] == STEPS + 4
    recorded = json.loads((out / "config.json").read_text())
    assert recorded["steps"] == STEPS + 4
    # The run's history of command lines reproduces it, in order.
    assert recorded["commands"] == ["first resume", "second resume"]
    assert recorded["command"] == "first resume && second resume"
    before = torch.load(snapshot / "transform.pt", weights_only=True)
    after = torch.load(out / "transform.pt", weights_only=True)
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_resume_errors(tmp_path, style_image, content_dir, loss_config) -> None:
    config = _config(style_image, content_dir, loss_config)
    with pytest.raises(StylecastError, match="no checkpoint to resume from"):
        run_training(config, _run(tmp_path / "empty", resume="last"))
    with pytest.raises(StylecastError, match="not found"):
        run_training(config, _run(tmp_path / "run", resume=str(tmp_path / "missing.ckpt")))


def test_bad_content_files_are_skipped(
    tmp_path, style_image, content_dir, loss_config, caplog
) -> None:
    (content_dir / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a JPEG" * 20)
    save_image(torch.rand(3, 8, 8), content_dir / "nested" / "tiny.png")
    config = _config(style_image, content_dir, loss_config)
    with caplog.at_level(logging.WARNING, logger="stylecast"):
        out = run_training(config, _run(tmp_path / "run", max_steps=2, checkpoint_every=2)).out
    skipped = [
        r for r in caplog.records if r.name.startswith("stylecast") and "skipped" in r.message
    ]
    assert len(skipped) == 1
    assert "skipped 2 " in skipped[0].getMessage()
    assert _checkpoint(out / "checkpoints" / "last.ckpt")["global_step"] == 2
    assert (out / "transform.pt").is_file()


def test_folder_without_usable_images(tmp_path, style_image, loss_config) -> None:
    folder = tmp_path / "content"
    folder.mkdir()
    (folder / "broken.png").write_bytes(b"not a png")
    (folder / "notes.txt").write_text("not an image")
    config = _config(style_image, folder, loss_config)
    with pytest.raises(StylecastError, match="no usable content images"):
        run_training(config, _run(tmp_path / "run"))


def test_missing_style_image(tmp_path, content_dir, loss_config) -> None:
    config = _config(tmp_path / "missing.jpg", content_dir, loss_config)
    with pytest.raises(StylecastError, match="style image not found"):
        run_training(config, _run(tmp_path / "run"))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_steps": 0},
        {"max_epochs": 0},
        {"precision": "fp8"},
        {"log_every": 0},
        {"checkpoint_every": 0},
        {"num_nodes": 0},
        {"workers": -1},
    ],
)
def test_run_options_reject_bad_values(tmp_path, kwargs) -> None:
    with pytest.raises(StylecastError):
        RunOptions(out=str(tmp_path), **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"image_size": 0},
        {"batch_size": -1},
        {"lr": 0.0},
        {"lr_schedule": "linear"},
        {"lr_final_fraction": 1.5},
    ],
)
def test_train_config_rejects_bad_values(kwargs) -> None:
    with pytest.raises(StylecastError):
        TrainConfig(style_image="s.jpg", content_dirs=("c",), **kwargs)


def test_resume_with_another_style_or_loss_is_refused(training_run, style_images) -> None:
    """`--resume last` with a different style, loss, network or VGG weights would make
    config.json describe one model while the weights hold another: refused, naming what
    differs, unless the user overrides explicitly."""
    config, _, snapshot = training_run
    other_style = next(p for p in style_images if p.name != Path(config.style_image).name)
    changes = {
        "style image": dataclasses.replace(config, style_image=str(other_style)),
        "loss": dataclasses.replace(
            config, loss=dataclasses.replace(config.loss, style_weight=7.0)
        ),
        "network": dataclasses.replace(config, network=NetworkConfig.preset("standard")),
        "vgg_weights": dataclasses.replace(config, vgg_weights="random:1"),
    }
    for label, changed in changes.items():
        with pytest.raises(StylecastError, match=f"different {label}") as info:
            check_resume(_run(snapshot, resume="last"), "last", changed)
        assert "--allow-config-change" in str(info.value)
        check_resume(_run(snapshot, resume="last", allow_config_change=True), "last", changed)
    # The same settings with more steps, another learning rate or batch size are fine.
    check_resume(_run(snapshot, resume="last"), "last", dataclasses.replace(config, lr=5e-4))


def test_validation_on_held_aside_images_chooses_the_best_checkpoint(trained) -> None:
    """The run holds one of its four content images aside, validates every 4 steps, logs
    each validation term, and keeps the checkpoint with the lowest validation loss."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, out = trained
    scalars: dict[str, list[tuple[int, float]]] = {}
    for events in (out / "tensorboard").rglob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend((e.step, e.value) for e in accumulator.Scalars(tag))
    assert {"val/loss", "val/content", "val/style", "val/tv"} <= set(scalars)
    val = dict(scalars["val/loss"])
    assert sorted(val) == [3, 7]  # after steps 4 and 8 (TensorBoard counts from 0)
    (best,) = (out / "checkpoints").glob("best-step*.ckpt")
    state = _checkpoint(best)
    (monitor,) = [v for k, v in state["callbacks"].items() if "val/loss" in k]
    assert monitor["best_model_score"].item() == pytest.approx(min(val.values()), rel=1e-5)
    assert state["global_step"] == {3: 4, 7: 8}[min(val, key=val.get)]
    recorded = json.loads((out / "config.json").read_text())["final_losses"]
    assert recorded["val_loss"] == pytest.approx(val[7], rel=1e-5)


def test_the_best_checkpoint_is_read_with_the_run_record(trained, tmp_path) -> None:
    """`export --best`: the best checkpoint's weights and step, with the run's commands."""
    _, out = trained
    folder = RunFolder(out)
    checkpoint = _checkpoint(folder.best_checkpoint())
    best = read_trained(out, best=True)
    assert best.record.steps == checkpoint["global_step"]
    assert best.record.commands == folder.read_record().commands
    assert best.record.final_losses == {}
    for key, value in best.state.items():
        assert torch.equal(value, checkpoint["state_dict"][f"network.{key}"])
    final = read_trained(out)
    assert final.record.steps == STEPS and final.record.final_losses
    with pytest.raises(StylecastError, match="no best-step"):
        RunFolder(tmp_path).best_checkpoint()
    with pytest.raises(StylecastError, match="from a run folder"):
        read_trained(folder.best_checkpoint(), best=True)


def test_export_cli_best_exports_the_best_step(trained, tmp_path, capsys) -> None:
    from stylecast.cli import main
    from stylecast.serving.model_card import read_card

    _, out = trained
    assert main(["export", str(out), "--name", "m", "--models-dir", str(tmp_path), "--best"]) == 0
    card = read_card(tmp_path / "m")
    assert card.final_losses == {}  # measured at the last step, not the best
    assert card.train_command == RunFolder(out).read_record().command
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["export", str(empty), "--name", "x", "--models-dir", str(tmp_path), "--best"]) == 1
    assert "no best-step" in capsys.readouterr().err


def test_hold_out_is_deterministic_by_name_and_stable_when_files_are_added() -> None:
    files = [Path(f"/data/img_{i:03d}.jpg") for i in range(200)]
    train, held = hold_out(files, 0.1)
    assert 8 <= len(held) <= 35 and not set(train) & set(held)
    assert sorted(train + held) == sorted(files)
    assert hold_out(list(reversed(files)), 0.1)[1] == list(reversed(held))  # order-free
    more = [*files, *(Path(f"/other/new_{i}.png") for i in range(100))]
    more_train, more_held = hold_out(more, 0.1)
    assert set(held) <= set(more_held) and set(train) <= set(more_train)
    assert hold_out(files[:1], 0.5) == (files[:1], [])
    assert len(hold_out(files[:2], 0.01)[1]) == 1 and len(hold_out(files[:2], 0.99)[0]) == 1
    assert hold_out(files, 0.0) == (files, [])


def test_early_stopping_is_wired_only_with_validation(tmp_path) -> None:
    from lightning.pytorch.callbacks import EarlyStopping

    samples = torch.zeros(1, 3, 8, 8)
    trainer = build_trainer(_run(tmp_path / "a", early_stop=3), samples, validate=True)
    (stopper,) = [c for c in trainer.callbacks if isinstance(c, EarlyStopping)]
    assert stopper.patience == 3 and stopper.monitor == "val/loss"
    trainer = build_trainer(_run(tmp_path / "b", early_stop=3), samples, validate=False)
    assert not [c for c in trainer.callbacks if isinstance(c, EarlyStopping)]


def test_loader_settings_use_processes_and_pinned_memory_only_for_gpus(tmp_path, monkeypatch):
    from stylecast.training.train import loader_settings

    cpu = loader_settings(_run(tmp_path, accelerator="cpu"))
    assert (cpu.workers, cpu.pin_memory) == (0, False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(16)), raising=False)
    gpu = loader_settings(_run(tmp_path, accelerator="gpu", devices="2"))
    assert (gpu.workers, gpu.pin_memory) == (8, True)
    assert loader_settings(_run(tmp_path, accelerator="gpu", devices="0,1,2,3")).workers == 4
    assert loader_settings(_run(tmp_path, accelerator="gpu", workers=3)).workers == 3


def test_content_is_deduplicated_by_bytes_and_excluded_folders_never_train(tmp_path) -> None:
    """The same photo in two content folders counts once; a photo whose bytes are in an
    --exclude-dir folder (a test set) is dropped from every folder, under any name."""
    from PIL import Image

    from stylecast.training.data import scan_folders

    first, second, test_set = tmp_path / "a", tmp_path / "b", tmp_path / "test"
    for folder in (first, second, test_set):
        folder.mkdir()
    for index in range(3):
        Image.new("RGB", (32, 32), (index * 60, 10, 10)).save(first / f"p{index}.png")
    shutil.copy(first / "p0.png", second / "copy_of_p0.png")
    Image.new("RGB", (32, 32), (0, 200, 0)).save(second / "own.png")
    shutil.copy(first / "p2.png", test_set / "renamed.png")
    files = scan_folders([first, second])
    assert [f.name for f in files] == ["p0.png", "p1.png", "p2.png", "own.png"]
    kept = scan_folders([first, second], exclude=[test_set])
    assert [f.name for f in kept] == ["p0.png", "p1.png", "own.png"]
    with pytest.raises(StylecastError, match="excluded"):
        scan_folders([test_set], exclude=[test_set])


def test_train_refuses_a_missing_exclude_folder(
    tmp_path, style_image, content_dir, loss_config
) -> None:
    config = dataclasses.replace(
        _config(style_image, content_dir, loss_config),
        exclude_dirs=(str(tmp_path / "absent"),),
    )
    with pytest.raises(StylecastError, match="excluded folder not found"):
        run_training(config, _run(tmp_path / "run"))
