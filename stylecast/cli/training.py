"""Subcommands of the training side: `train`, `iterate`, `export` (they import torch lazily)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from .args import add_loss_arguments, loss_overrides, positive_int


def _given(value: Any, default: Any) -> Any:
    """An option's value, or its default when it was not given (None)."""
    return default if value is None else value


def _train_config(args: argparse.Namespace) -> Any:
    """The TrainConfig the arguments describe (several styles, or styles added to a run)."""
    from ..errors import StylecastError
    from ..training.config import LossConfig, NetworkConfig, TrainConfig
    from ..training.styles import add_style_config, folder_styles

    if args.add_style:
        if args.style or args.styles or not args.resume or args.resume == "last":
            raise StylecastError(
                "--add-style trains new styles into a finished run: give the run (or a "
                "checkpoint) with --resume RUN, and no --style/--styles"
            )
        overrides = {
            "content_dirs": tuple(args.content_dir) if args.content_dir else None,
            "val_dir": args.val_dir,
            "exclude_dirs": tuple(args.exclude_dir) if args.exclude_dir else None,
            "image_size": args.image_size,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "seed": args.seed,
        }
        return add_style_config(args.resume, tuple(args.add_style), overrides)
    styles = tuple(args.style or ()) + (folder_styles(args.styles) if args.styles else ())
    if not styles:
        raise StylecastError("give a style image with --style (repeat it for several styles)")
    if not args.content_dir:
        raise StylecastError("give a folder of content images with --content-dir")
    network = NetworkConfig.preset(args.network)
    if args.width or args.residual_blocks is not None:
        network = NetworkConfig(
            args.width or network.width,
            network.residual_blocks if args.residual_blocks is None else args.residual_blocks,
            network.architecture,
        )
    return TrainConfig(
        style_image=styles[0],
        extra_styles=styles[1:],
        content_dirs=tuple(args.content_dir),
        val_dir=args.val_dir,
        val_fraction=args.val_fraction,
        exclude_dirs=tuple(args.exclude_dir),
        crop_scale_min=args.crop_scale_min,
        image_size=_given(args.image_size, 256),
        style_size=args.style_size,
        batch_size=_given(args.batch_size, 4),
        lr=_given(args.lr, 1e-3),
        vgg_weights=args.vgg_weights or "imagenet",
        seed=_given(args.seed, 0),
        network=network,
        loss=LossConfig(**loss_overrides(args)),
        teacher=args.teacher,
        teacher_weight=args.teacher_weight,
        style_sampling=args.style_sampling,
        lr_schedule=args.lr_schedule,
    )


def _cmd_train(args: argparse.Namespace) -> None:
    from ..training.run_folder import RunFolder
    from ..training.train import RunOptions, run_training

    config = _train_config(args)
    resume = args.resume
    if args.add_style:  # --resume named the base; continue this run if it was interrupted
        resume = "last" if RunFolder(Path(args.out)).checkpoints() else None
    run = RunOptions(
        out=args.out,
        max_steps=args.max_steps,
        max_epochs=args.max_epochs,
        precision=args.precision,
        accelerator=args.accelerator,
        devices=args.devices,
        strategy=args.strategy,
        num_nodes=args.num_nodes,
        workers=args.workers,
        log_every=args.log_every,
        sample_every=args.sample_every,
        checkpoint_every=args.checkpoint_every,
        val_every=args.val_every,
        early_stop=args.early_stop,
        resume=resume,
        allow_config_change=args.allow_config_change,
        command=_command_line(),
    )
    outcome = run_training(config, run)
    if not outcome.is_global_zero:
        return  # DDP: the other ranks neither report nor export
    out = outcome.out
    if args.no_export:
        print(f"trained: {out} (not exported; export with: stylecast export {out} --name NAME)")
        return
    if not _export_extra_installed():
        print(
            f"trained: {out} (not exported: the export extra is missing, pip install "
            f"'stylecast[export]'; then: stylecast export {out} --name NAME)"
        )
        return
    print(f"trained: {out}")
    from ..training.export import export_model
    from ..training.run_folder import RunFolder

    models_dir = args.models_dir or RunFolder(out).models_dir
    result = export_model(out, args.export_name or out.name, models_dir, command=run.command)
    _print_export(result)


def _export_extra_installed() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        return False
    return True


def _print_export(result: Any) -> None:
    """The parity line and, last, where the model went."""
    parity = result.parity
    if parity["precision"] == "int8":
        limits = parity["thresholds"]
        print(
            f"int8 parity vs its fp32 export on {len(parity['images'])} held-aside image(s): "
            f"PSNR {parity['psnr_db']} dB (needs >= {limits['min_psnr_db']}), mean |diff| "
            f"{parity['mean_abs']} levels (needs <= {limits['max_mean_abs']})"
        )
        parity = parity["fp32_vs_torch"]
    print(
        f"parity ({parity['precision']}, onnxruntime vs PyTorch fp32): max |diff| "
        f"{parity['max_abs']}, {100 * parity['fraction_over_1']:.4f}% of values off by > 1 "
        f"level (limit {100 * parity['threshold']:.2f}%)"
    )
    print(f"exported {result.card.name} v{result.version}: {result.model_path}")


def _cmd_iterate(args: argparse.Namespace) -> None:
    from ..training.config import LossConfig
    from ..training.iterate import IterateConfig, run_iterate

    config = IterateConfig(
        size=args.size,
        steps=args.steps,
        optimizer=args.optimizer,
        init=args.init,
        lr=args.lr,
        vgg_weights=args.vgg_weights or "imagenet",
        seed=args.seed,
        loss=LossConfig(**loss_overrides(args)),
    )
    summary = run_iterate(args.content, args.style, args.out, config, device=args.device)
    losses = ", ".join(f"{k} {v:.4g}" for k, v in summary["losses"].items())
    print(
        f"wrote {args.out} (best of {summary['steps']} steps: step {summary['best_step']}, "
        f"{summary['seconds']:.1f} s on {summary['device']}; {losses})"
    )


def _command_line() -> str:
    """This process's command line, as recorded in run records and model cards."""
    return shlex.join(["stylecast", *sys.argv[1:]])


def _add_train(sub: Any) -> None:
    from ..training.config import LR_SCHEDULES, STYLE_SAMPLING, TrainConfig  # no torch

    p = sub.add_parser("train", help="train a feed-forward style network (Lightning)")
    p.add_argument(
        "--style",
        action="append",
        help="style image (JPEG, PNG or WebP); repeat for one network of several styles, "
        "named by their file names",
    )
    p.add_argument("--styles", metavar="DIR", help="every style image in DIR, sorted by name")
    p.add_argument(
        "--style-sampling",
        choices=STYLE_SAMPLING,
        default=TrainConfig.style_sampling,
        help="several styles: draw a style for every image of a batch (sample, the default) "
        "or one for the whole batch",
    )
    p.add_argument(
        "--add-style",
        action="append",
        metavar="IMAGE",
        help="add a style to the trained network given by --resume RUN (only its "
        "instance-norm scales and shifts train; the others stay unchanged); repeatable",
    )
    p.add_argument(
        "--content-dir",
        action="append",
        help="folder of content images (recursive); repeat for several folders",
    )
    p.add_argument("--out", required=True, help="run folder: checkpoints, logs, samples, weights")
    p.add_argument("--image-size", type=positive_int, help="training crop size (default 256)")
    p.add_argument("--style-size", type=positive_int, help="style image longer side")
    p.add_argument("--batch-size", type=positive_int, help="default 4")
    p.add_argument("--max-steps", type=int, default=40_000, help="-1 for no step limit")
    p.add_argument("--max-epochs", type=positive_int)
    p.add_argument("--lr", type=float, help="learning rate (default 1e-3)")
    p.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        default=TrainConfig.lr_schedule,
        help=f"constant (the default), or cosine: falls to --lr × "
        f"{TrainConfig.lr_final_fraction} by the last step",
    )
    p.add_argument(
        "--network",
        choices=("standard", "lite", "rt"),
        default="standard",
        help="network preset: standard (best quality), lite (about 3× faster), rt (real-time "
        "CPU tier, all work at ¼ resolution; about 4× the lite net's frames per second)",
    )
    p.add_argument(
        "--teacher",
        metavar="RUN_OR_MODEL",
        help="distil from a trained network (a run folder, a .ckpt, or an exported model "
        "folder): adds --teacher-weight × the mean squared difference from its output",
    )
    p.add_argument(
        "--teacher-weight", type=float, default=10.0, help="weight of the distillation term"
    )
    p.add_argument("--width", type=positive_int, help="base channel count (overrides preset)")
    p.add_argument("--residual-blocks", type=int, help="residual block count (overrides preset)")
    p.add_argument(
        "--resume",
        help="checkpoint to continue from, or 'last' (newest in --out); with --add-style, "
        "the trained run (or checkpoint) to add styles to",
    )
    p.add_argument(
        "--allow-config-change",
        action="store_true",
        help="resume even if the style, loss, network or VGG weights differ from the checkpoint",
    )
    p.add_argument("--seed", type=int, help="default 0")
    p.add_argument("--precision", default="32", help="32 | bf16-mixed | 16-mixed")
    p.add_argument("--accelerator", default="auto", help="auto | cpu | gpu | …")
    p.add_argument("--devices", default="auto", help="auto, a count, or a list such as 0,1")
    p.add_argument("--strategy", default="auto", help="auto | ddp | fsdp | … (Lightning)")
    p.add_argument("--num-nodes", type=positive_int, default=1)
    p.add_argument(
        "--workers",
        type=int,
        help="data-loading processes per device (default: 0 on the CPU; on GPUs the cores "
        "per device, at most 8)",
    )
    p.add_argument("--log-every", type=positive_int, default=10, help="steps between logs")
    p.add_argument("--sample-every", type=int, default=500, help="steps between samples (0: off)")
    p.add_argument(
        "--checkpoint-every",
        type=positive_int,
        default=500,
        help="steps between last.ckpt saves (the best is saved when it is found)",
    )
    val = p.add_argument_group(
        "validation (held-aside images; the best checkpoint is chosen by them)"
    )
    val.add_argument("--val-dir", help="folder of validation images (default: hold some aside)")
    val.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="share of the content held aside when there is no --val-dir (0: no validation)",
    )
    val.add_argument(
        "--exclude-dir",
        action="append",
        default=[],
        help="folder of images never to train or validate on (a test set), matched by content "
        "wherever a copy lies; repeatable",
    )
    val.add_argument("--val-every", type=positive_int, default=500, help="steps between runs")
    val.add_argument(
        "--early-stop", type=int, default=0, help="stop after N validations without progress"
    )
    p.add_argument(
        "--crop-scale-min",
        type=float,
        default=0.3,
        help="random crops cover between this share of an image's area and all of it",
    )
    p.add_argument(
        "--export-name", help="model name of the export at the end (default: OUT's name)"
    )
    p.add_argument(
        "--models-dir", help="model repository to export into at the end (default: OUT/models)"
    )
    p.add_argument("--no-export", action="store_true", help="skip the ONNX export at the end")
    add_loss_arguments(p)
    p.set_defaults(handler=_cmd_train)


def _add_iterate(sub: Any) -> None:
    p = sub.add_parser("iterate", help="Gatys et al. optimisation of one image (the reference)")
    p.add_argument("--content", required=True)
    p.add_argument("--style", required=True)
    p.add_argument("--out", required=True, help="output image (.png or .jpg); a .json goes beside")
    p.add_argument("--size", type=positive_int, default=512, help="longer side of the output")
    p.add_argument("--steps", type=positive_int, default=300)
    p.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs")
    p.add_argument("--init", choices=("content", "noise"), default="content")
    p.add_argument("--lr", type=float, help="default: 1.0 for L-BFGS, 0.02 for Adam")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (a GPU if present), cpu, cuda:N")
    add_loss_arguments(p)
    p.set_defaults(handler=_cmd_iterate)


def _cmd_export(args: argparse.Namespace) -> None:
    from ..errors import StylecastError
    from ..training.export import export_model

    if args.int8 and not args.calibration_dir:
        raise StylecastError("--int8 needs --calibration-dir DIR (real content images)")
    if args.calibration_dir and not args.int8:
        raise StylecastError("--calibration-dir is only used with --int8")
    result = export_model(
        args.source, args.name, args.models_dir, fp16=args.fp16, opset=args.opset,
        description=args.description or "", command=_command_line(),
        calibration_dir=args.calibration_dir if args.int8 else None, best=args.best,
    )  # fmt: skip
    _print_export(result)


def _add_export(sub: Any) -> None:
    p = sub.add_parser("export", help="export a trained network to ONNX in the model repository")
    p.add_argument("source", metavar="RUN_OR_CHECKPOINT", help="a run folder or a .ckpt file")
    p.add_argument("--name", required=True, help="model name (folder under --models-dir)")
    p.add_argument("--models-dir", default="models")
    precision = p.add_mutually_exclusive_group()
    precision.add_argument(
        "--fp16", action="store_true", help="half-precision weights (uint8 I/O kept)"
    )
    precision.add_argument(
        "--int8",
        action="store_true",
        help="statically quantised convolutions (QDQ, per-channel weights), calibrated on "
        "--calibration-dir and checked against the fp32 export (PSNR, mean |diff|)",
    )
    p.add_argument(
        "--calibration-dir",
        help="content images for --int8: one in four is held aside to score int8 against fp32",
    )
    p.add_argument(
        "--best",
        action="store_true",
        help="a run folder's best checkpoint (lowest validation loss) instead of its final weights",
    )
    p.add_argument("--opset", type=positive_int, default=20)
    p.add_argument("--description", help="one line for the model card")
    p.set_defaults(handler=_cmd_export)


def register(sub: Any) -> None:
    """Add train, iterate and export to the `stylecast` parser."""
    for add in (_add_train, _add_iterate, _add_export):
        add(sub)
