"""`stylecast train`: assemble data, module, callbacks and a Lightning Trainer, then fit."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, cast, get_args

import lightning as L
import torch
from lightning.pytorch.callbacks import (
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
    OnExceptionCheckpoint,
)
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.data import DataLoader
from torchvision.transforms.v2 import functional as TF

from stylecast.errors import Interrupted, StylecastError
from stylecast.progress import show_progress

from .callbacks import RunArtifacts, SampleImages
from .config import TrainConfig, network_from_dict, require_positive, to_dict
from .data import ContentImages, ValidationImages, file_digest, hold_out, scan_folders
from .images import load_image
from .module import StyleTransferModule
from .run_folder import BEST_CHECKPOINT_NAME, TENSORBOARD, RunFolder, RunRecord, read_trained
from .vgg_weights import VggWeights

log = logging.getLogger(__name__)

Precision = Literal["32", "bf16-mixed", "16-mixed"]
PRECISIONS: tuple[Precision, ...] = get_args(Precision)
SAMPLE_IMAGES = 2


@dataclass(frozen=True)
class RunOptions:
    """How a training run executes: where it writes, how long, on what hardware."""

    out: str
    max_steps: int = 40_000
    max_epochs: int | None = None
    precision: str = "32"
    accelerator: str = "auto"
    devices: str = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    workers: int | None = None  # data-loading processes per device; None: see loader_settings
    log_every: int = 10
    sample_every: int = 500
    checkpoint_every: int = 500
    val_every: int = 500  # steps between validations (held-aside images), also at the end
    early_stop: int = 0  # stop after this many validations without improvement (0: never)
    resume: str | None = None  # a checkpoint path, or "last": the newest checkpoint in OUT
    allow_config_change: bool = False  # resume even if style, loss, network or VGG differ
    command: str = ""  # the command line that started the run, recorded for model cards

    def __post_init__(self) -> None:
        if self.max_steps != -1:
            require_positive("max steps", self.max_steps)
        if self.max_epochs is not None:
            require_positive("max epochs", self.max_epochs)
        if self.precision not in PRECISIONS:
            raise StylecastError(f"unknown precision {self.precision!r}; choose from {PRECISIONS}")
        for label, value in (
            ("log interval", self.log_every),
            ("checkpoint interval", self.checkpoint_every),
            ("validation interval", self.val_every),
            ("num nodes", self.num_nodes),
        ):
            require_positive(label, value)
        if self.workers is not None and self.workers < 0:
            raise StylecastError(f"workers must be >= 0 (got {self.workers})")
        if self.early_stop < 0:
            raise StylecastError(f"early-stop patience must be >= 0 (got {self.early_stop})")

    @property
    def folder(self) -> RunFolder:
        return RunFolder(Path(self.out))

    @property
    def checkpoint_dir(self) -> Path:
        return self.folder.checkpoint_dir

    def resume_path(self) -> str | None:
        """The ckpt_path for Trainer.fit; refuses to start over an existing run unasked."""
        if Path(self.out).exists() and not Path(self.out).is_dir():
            raise StylecastError(f"--out {self.out} is a file; give a folder for the run")
        existing = self.folder.checkpoints()
        if self.resume is None:
            if existing:
                raise StylecastError(
                    f"{self.out} already holds a training run ({existing[0].name}); "
                    "continue it with --resume last, or choose another --out"
                )
            return None
        if self.resume == "last":
            if not existing:
                raise StylecastError(f"no checkpoint to resume from in {self.checkpoint_dir}")
            return "last"
        if not Path(self.resume).is_file():
            raise StylecastError(f"checkpoint to resume from not found: {self.resume}")
        return self.resume


# What a resumed run must share with its checkpoint; the rest (steps, lr, batch size,
# image size, devices) may change between the parts of a run.
RESUME_MUST_MATCH = ("network", "loss", "vgg_weights")


def resume_mismatches(
    recorded: RunRecord, config: TrainConfig, style_sha256: str | list[str]
) -> list[str]:
    """How ``config`` differs from the run a checkpoint recorded, in the terms that make
    the result a different model (empty: compatible). ``style_sha256``: the style image's
    digest, or every style's in order."""
    digests = [style_sha256] if isinstance(style_sha256, str) else list(style_sha256)
    current = _as_json(to_dict(config))
    recorded_train = _as_json(recorded.train)
    problems = []
    before_digests = recorded.style_digests
    if len(before_digests) != len(digests):
        problems.append(
            f"number of styles ({len(before_digests)} in the checkpoint, {len(digests)} now)"
        )
    elif before_digests != digests:
        at = next(i for i, (a, b) in enumerate(zip(before_digests, digests, strict=True)) if a != b)
        problems.append(
            f"style image{f' {at + 1}' if len(digests) > 1 else ''} (SHA-256 "
            f"{before_digests[at][:12]}… in the checkpoint, {digests[at][:12]}… now)"
        )
    for key in RESUME_MUST_MATCH:
        before, now = recorded_train.get(key), current[key]
        if key == "network" and isinstance(before, dict):
            # Records made before networks had a style count have none: one style.
            before = _as_json(to_dict(network_from_dict(before)))
        if key == "vgg_weights" and isinstance(before, str):
            same = VggWeights.parse(before) == VggWeights.parse(now)
        else:
            same = before == now
        if not same:
            problems.append(
                f"{key} ({json.dumps(before)} in the checkpoint, {json.dumps(now)} now)"
            )
    return problems


def _as_json(value: Any) -> Any:
    """``value`` as JSON would store it (tuples become lists), for comparisons."""
    return json.loads(json.dumps(value))


def check_resume(run: RunOptions, resume: str | None, config: TrainConfig) -> None:
    """Refuse to resume a checkpoint trained for another style, loss, network or loss
    network, unless ``run.allow_config_change``: config.json would describe one model while
    the weights hold another."""
    if resume is None or run.allow_config_change:
        return
    path = Path(resume) if resume != "last" else max(run.folder.checkpoints(), key=_mtime)
    digests = [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in config.styles]
    problems = resume_mismatches(read_trained(path).record, config, digests)
    if problems:
        raise StylecastError(
            f"--resume {resume}: {path.name} was trained with a different "
            f"{'; '.join(problems)}. Start a new --out, or pass --allow-config-change to "
            "resume anyway"
        )


def _mtime(path: Path) -> float:
    return path.stat().st_mtime


@dataclass(frozen=True)
class LoaderSettings:
    workers: int
    pin_memory: bool


def loader_settings(run: RunOptions) -> LoaderSettings:
    """Data-loading processes and pinned memory for this run.

    On a GPU, decoding and cropping in the main process starve the device (about 45 ms per
    batch of 8 on one core, as long as a bf16 step), so by default each device gets the CPU
    cores available to it (at most 8) and batches go through pinned memory. On the CPU the
    cores are busy with the step itself: no extra processes."""
    on_gpu = run.accelerator in ("gpu", "cuda") or (
        run.accelerator == "auto" and torch.cuda.is_available()
    )
    if run.workers is not None:
        return LoaderSettings(run.workers, on_gpu)
    if not on_gpu:
        return LoaderSettings(0, False)
    devices = max(1, torch.cuda.device_count()) if run.devices in ("auto", "-1") else None
    if devices is None:
        devices = int(run.devices) if run.devices.isdigit() else len(run.devices.split(","))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return LoaderSettings(max(1, min(8, (cores or 1) // max(devices, 1))), True)


def _sample_batch(files: list[Path], size: int) -> torch.Tensor:
    images = [TF.center_crop(load_image(p, size), [size, size]) for p in files[:SAMPLE_IMAGES]]
    return torch.stack([TF.resize(im, [size, size], antialias=True) for im in images])


def _devices(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def build_trainer(run: RunOptions, samples: torch.Tensor, validate: bool) -> L.Trainer:
    """A Trainer with TensorBoard, last/best and on-interrupt checkpoints, and a progress bar
    when stderr is a terminal.

    last.ckpt follows ``run.checkpoint_every``. With held-aside images (``validate``)
    validation runs every ``run.val_every`` steps (and at least once), the best checkpoint is
    the one with the lowest validation loss, and ``run.early_stop`` may end training early;
    without them the best is by training loss."""
    out = Path(run.out)
    callbacks: list[L.Callback] = [
        # last.ckpt every checkpoint_every steps, and the best by training loss when there is
        # no validation.
        ModelCheckpoint(
            dirpath=run.checkpoint_dir,
            filename=BEST_CHECKPOINT_NAME,
            auto_insert_metric_name=False,
            monitor=None if validate else "train/loss",
            mode="min",
            save_top_k=0 if validate else 1,
            save_last=True,
            every_n_train_steps=run.checkpoint_every,
        ),
        # Ctrl-C, SIGTERM or a crash saves the state at that moment; Lightning's
        # ckpt_path="last" (our `--resume last`) picks the newer of this and last.ckpt.
        OnExceptionCheckpoint(dirpath=run.checkpoint_dir, filename="interrupted"),
        SampleImages(samples, run.folder.samples_dir, run.sample_every),
        RunArtifacts(run.folder, asdict(run)),
        LearningRateMonitor(logging_interval="step"),  # TensorBoard's "lr-Adam"
    ]
    if validate:
        # The best by validation loss, saved right after the validation that scored it.
        callbacks.append(
            ModelCheckpoint(
                dirpath=run.checkpoint_dir,
                filename=BEST_CHECKPOINT_NAME,
                auto_insert_metric_name=False,
                monitor="val/loss",
                mode="min",
                save_top_k=1,
            )
        )
    if validate and run.early_stop:
        callbacks.append(EarlyStopping(monitor="val/loss", mode="min", patience=run.early_stop))
    val_every = run.val_every if run.max_steps == -1 else min(run.val_every, run.max_steps)
    return L.Trainer(
        default_root_dir=out,
        max_steps=run.max_steps,
        max_epochs=run.max_epochs if run.max_epochs is not None else -1,
        precision=cast(Precision, run.precision),  # checked in RunOptions
        accelerator=run.accelerator,
        devices=_devices(run.devices),
        strategy=run.strategy,
        num_nodes=run.num_nodes,
        logger=TensorBoardLogger(save_dir=out, name=TENSORBOARD),
        callbacks=callbacks,
        log_every_n_steps=run.log_every,
        enable_model_summary=False,
        enable_progress_bar=show_progress(),  # no bar frames in a captured stderr
        val_check_interval=val_every if validate else None,
        check_val_every_n_epoch=None,
        limit_val_batches=1.0 if validate else 0,
        num_sanity_val_steps=0,
    )


# Lightning warnings that are expected here, and would only alarm a user:
QUIET_WARNINGS = (
    # OnExceptionCheckpoint makes Lightning look for a checkpoint to resume on every fit;
    # resume_path() has already refused to start over an existing run.
    r".*ckpt_path=None\)` was called without a model",
    r".*ckpt_path=\"last\"\) is set, but there is no last checkpoint",
    # The frozen VGG loss network is in eval mode on purpose.
    r"Found \d+ module\(s\) in eval mode",
)


@dataclass(frozen=True)
class TrainingOutcome:
    """Where the run is, and whether this process is the one that reports and exports
    (under DDP every rank runs the command; only global rank zero may write shared files)."""

    out: Path
    is_global_zero: bool


def run_training(config: TrainConfig, run: RunOptions) -> TrainingOutcome:
    """Train a transform network into ``run.out`` (checkpoints, transform.pt, config.json)."""
    for pattern in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    resume = run.resume_path()
    for style in config.styles:
        if not Path(style).is_file():
            raise StylecastError(f"style image not found: {style}")
    check_resume(run, resume, config)
    for folder in config.exclude_dirs:
        if not Path(folder).is_dir():
            raise StylecastError(f"excluded folder not found: {folder}")
    files = scan_folders(config.content_dirs, exclude=config.exclude_dirs)
    if config.val_dir is not None:
        if not Path(config.val_dir).is_dir():
            raise StylecastError(f"validation folder not found: {config.val_dir}")
        val_files = scan_folders([config.val_dir], exclude=config.exclude_dirs)
        held = {file_digest(f) for f in val_files}
        files = [f for f in files if file_digest(f) not in held]
    else:
        files, val_files = hold_out(files, config.val_fraction)
    if not files:
        raise StylecastError("no content images left for training after holding some aside")
    log.info(
        "%d content image(s) for training, %d held aside for validation%s",
        len(files),
        len(val_files),
        f" ({', '.join(p.name for p in val_files[:4])}{'…' if len(val_files) > 4 else ''})"
        if val_files
        else "",
    )
    if len(files) < config.batch_size:
        log.warning(
            "only %d content image(s) for batch size %d: batches repeat images",
            len(files),
            config.batch_size,
        )
        files = files * -(-config.batch_size // len(files))
    L.seed_everything(config.seed, workers=True, verbose=False)
    loading = loader_settings(run)
    module = StyleTransferModule(to_dict(config))
    loader = DataLoader(
        ContentImages(files, config.image_size, config.crop_scale_min),
        batch_size=config.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=loading.workers,
        persistent_workers=loading.workers > 0,
        pin_memory=loading.pin_memory,
    )
    val_loader = (
        DataLoader(
            ValidationImages(val_files, config.image_size),
            batch_size=config.batch_size,
            num_workers=loading.workers,
            persistent_workers=loading.workers > 0,
            pin_memory=loading.pin_memory,
        )
        if val_files
        else None
    )
    samples = _sample_batch(val_files or files, config.image_size)
    trainer = build_trainer(run, samples, validate=val_loader is not None)
    with contextlib.suppress(SystemExit):  # Lightning's exit on Ctrl-C/SIGTERM, after saving
        trainer.fit(module, loader, val_loader, ckpt_path=resume)
    if trainer.interrupted:
        raise Interrupted(
            f"training interrupted at step {trainer.global_step}; state saved in "
            f"{run.checkpoint_dir} — continue with --resume last"
        )
    save_final_checkpoint(trainer)
    return TrainingOutcome(Path(run.out), trainer.is_global_zero)


def save_final_checkpoint(trainer: L.Trainer) -> None:
    """Write the last checkpoint at the step training ended on. Lightning writes it every
    ``checkpoint_every`` steps only, so a run that ends between two (``max_steps`` not a
    multiple, early stopping) would resume from the earlier step and lose the steps since.
    Every rank calls this (Lightning writes on rank zero)."""
    callback = trainer.checkpoint_callback
    if not isinstance(callback, ModelCheckpoint) or callback.dirpath is None:
        return
    trainer.save_checkpoint(callback.last_model_path or Path(callback.dirpath) / "last.ckpt")
