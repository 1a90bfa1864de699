"""Several styles in one network (conditional instance norm): the layout, one style being
exactly today's network for every preset, training with per-sample styles and resume, and
adding a style that leaves the others bit-identical."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from stylecast.errors import StylecastError
from stylecast.training.config import NetworkConfig, TrainConfig, train_from_dict
from stylecast.training.export import load_trained
from stylecast.training.losses import PerceptualLoss
from stylecast.training.network import ConditionalInstanceNorm, build_network, style_norms
from stylecast.training.styles import add_style_config, folder_styles
from stylecast.training.train import RunOptions, run_training

# SHA-256 (first 16 hex digits) of "key:shape;…" of each preset's single-style state dict,
# as the network was before several styles existed: existing runs and checkpoints load.
SINGLE_STYLE_LAYOUT = {
    "standard": "a844c82a92b1ebd1",
    "lite": "eae019510d685b4c",
    "rt": "0abbf0f7cbd2496a",
}


def _layout(state: dict[str, torch.Tensor]) -> str:
    text = ";".join(f"{k}:{tuple(v.shape)}" for k, v in state.items())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@pytest.mark.parametrize("preset", sorted(SINGLE_STYLE_LAYOUT))
def test_one_style_is_todays_network(preset: str) -> None:
    net = build_network(NetworkConfig.preset(preset))
    assert _layout(net.state_dict()) == SINGLE_STYLE_LAYOUT[preset]
    assert not style_norms(net)
    assert any(isinstance(m, torch.nn.InstanceNorm2d) for m in net.modules())


@pytest.mark.parametrize("preset", ["lite", "rt"])
def test_several_styles_have_per_style_scale_and_shift_only(preset: str) -> None:
    one = build_network(NetworkConfig.preset(preset)).state_dict()
    config = NetworkConfig.preset(preset)
    three = build_network(NetworkConfig(config.width, config.residual_blocks,
                                        config.architecture, styles=3)).state_dict()  # fmt: skip
    assert list(one) == list(three)
    grown = [k for k in one if one[k].shape != three[k].shape]
    assert grown and all(k.endswith((".weight", ".bias")) for k in grown)
    for key in grown:
        assert three[key].shape == (3, *one[key].shape)
    # everything that is not an instance norm is shared: same shapes, one copy
    assert sum(one[k].numel() for k in one if k not in grown) == sum(
        three[k].numel() for k in three if k not in grown
    )


@pytest.mark.parametrize("architecture", ["johnson", "quarter"])
def test_style_weights_select_and_blend_styles(architecture: str) -> None:
    torch.manual_seed(0)
    net = build_network(NetworkConfig(8, 1, architecture, styles=2)).eval()
    for norm in style_norms(net):  # make the two styles differ
        torch.nn.init.normal_(norm.weight, 1.0, 0.5)
        torch.nn.init.normal_(norm.bias, 0.0, 0.5)
    x = torch.rand(2, 3, 33, 41)
    first, second = torch.tensor([[1.0, 0.0]] * 2), torch.tensor([[0.0, 1.0]] * 2)
    with torch.no_grad():
        assert torch.equal(net(x), net(x, first))  # None: the first style
        assert not torch.allclose(net(x, first), net(x, second))
        # one row per image: image 0 in style 0, image 1 in style 1
        mixed_rows = net(x, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        assert torch.equal(mixed_rows[0], net(x, first)[0])
        assert torch.equal(mixed_rows[1], net(x, second)[1])
    # a blend mixes the norms' parameters: γ = 0.3 γ_a + 0.7 γ_b
    norm = style_norms(net)[0]
    features = torch.rand(1, norm.weight.shape[1], 5, 5)
    blended = norm(features, torch.tensor([[0.3, 0.7]]))
    normalised = torch.nn.functional.instance_norm(features)
    gamma = 0.3 * norm.weight[0] + 0.7 * norm.weight[1]
    beta = 0.3 * norm.bias[0] + 0.7 * norm.bias[1]
    torch.testing.assert_close(blended, normalised * gamma[:, None, None] + beta[:, None, None])


def test_loss_keeps_one_gram_per_style(random_vgg, loss_config, style_images, small_image) -> None:
    images = [small_image(p, 48) for p in style_images[:2]]
    both = PerceptualLoss(random_vgg, loss_config, images)
    alone = [PerceptualLoss(random_vgg, loss_config, image) for image in images]
    for name in loss_config.style_layers:
        grams = getattr(both, f"gram_{name}")
        assert grams.shape[0] == 2
        for index, single in enumerate(alone):
            assert torch.equal(grams[index : index + 1], getattr(single, f"gram_{name}"))
    output = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    targets = both.content_targets(output)
    styles = torch.tensor([1, 0])
    per_image = both(output, targets, styles)["style"]
    first = alone[1](output[:1], {k: v[:1] for k, v in targets.items()})["style"]
    second = alone[0](output[1:], {k: v[1:] for k, v in targets.items()})["style"]
    torch.testing.assert_close(per_image, (first + second) / 2)


def test_config_names_and_counts_styles(style_images, tmp_path: Path) -> None:
    config = TrainConfig(
        style_image=str(style_images[0]),
        extra_styles=(str(style_images[1]),),
        content_dirs=("c",),
        vgg_weights="random:0",
    )
    assert config.network.styles == 2
    assert train_from_dict(json.loads(json.dumps(_as_dict(config)))) == config
    with pytest.raises(StylecastError, match="share the name"):
        TrainConfig(style_image="a/x.jpg", extra_styles=("b/x.png",), content_dirs=("c",))
    with pytest.raises(StylecastError, match="letters, digits"):
        TrainConfig(style_image="a/x.jpg", extra_styles=("b/y:z.png",), content_dirs=("c",))
    with pytest.raises(StylecastError, match="one style at a time"):
        TrainConfig(style_image="a/x.jpg", extra_styles=("b/y.png",), content_dirs=("c",),
                    teacher="run")  # fmt: skip
    with pytest.raises(StylecastError, match="style folder not found"):
        folder_styles(tmp_path / "missing")
    assert folder_styles(style_images[0].parent) == tuple(str(p) for p in style_images)


@pytest.mark.parametrize("sampling", ["sample", "batch"])
def test_style_sampling_draws_per_image_or_per_batch(sampling: str) -> None:
    from types import SimpleNamespace

    from stylecast.training.module import StyleTransferModule

    config = TrainConfig(style_image="a/x.jpg", extra_styles=("b/y.png", "c/z.png"),
                         content_dirs=("c",), style_sampling=sampling)  # fmt: skip
    holder = SimpleNamespace(cfg=config, device=torch.device("cpu"))
    torch.manual_seed(0)
    draws = [StyleTransferModule._styles(holder, 8, None) for _ in range(20)]  # type: ignore[arg-type]
    assert all(d.shape == (8,) and d.min() >= 0 and d.max() < 3 for d in draws)
    mixed = [len(d.unique()) > 1 for d in draws]
    assert all(mixed) if sampling == "sample" else not any(mixed)
    assert len(torch.cat(draws).unique()) == 3  # every style is drawn either way
    with pytest.raises(StylecastError, match="style sampling must be one of sample, batch"):
        TrainConfig(style_image="a/x.jpg", content_dirs=("c",), style_sampling="image")
    assert "style_sampling" not in _as_dict(TrainConfig(style_image="a.jpg", content_dirs=("c",)))


def _as_dict(config: TrainConfig) -> dict:
    from stylecast.training.config import to_dict

    return to_dict(config)


def _run(out: Path, steps: int, **overrides) -> RunOptions:
    return RunOptions(
        out=str(out), max_steps=steps, accelerator="cpu", devices="1", log_every=1,
        sample_every=0, checkpoint_every=2, val_every=2, **overrides,
    )  # fmt: skip


@pytest.fixture(scope="module")
def two_style_run(tmp_path_factory, make_content_dir, style_images, loss_config):
    """A 3-step run of a two-style rt network (48 px, batch 2, random:0 VGG)."""
    root = tmp_path_factory.mktemp("multistyle")
    config = TrainConfig(
        style_image=str(style_images[0]),
        extra_styles=(str(style_images[1]),),
        content_dirs=(str(make_content_dir(root / "content")),),
        image_size=48,
        style_size=64,
        batch_size=2,
        vgg_weights="random:0",
        network=NetworkConfig(8, 1, "quarter"),
        loss=loss_config,
        val_fraction=0.25,
    )
    out = run_training(config, _run(root / "run", 3)).out
    return config, out


def test_multistyle_training_records_every_style(two_style_run, style_images) -> None:
    config, out = two_style_run
    record = json.loads((out / "config.json").read_text())
    digests = [hashlib.sha256(p.read_bytes()).hexdigest() for p in style_images[:2]]
    assert record["styles_sha256"] == digests
    assert record["style_sha256"] == digests[0]
    assert train_from_dict(record["train"]) == config
    model = load_trained(out)
    assert len(style_norms(model.network)) == 3  # stem + one block's two norms
    assert all(n.weight.shape[0] == 2 for n in style_norms(model.network))
    # both styles trained away from their common initialisation
    norm = style_norms(model.network)[0]
    assert not torch.equal(norm.weight[0], norm.weight[1])


def test_multistyle_resume_continues(two_style_run, tmp_path: Path) -> None:
    import shutil

    config, out = two_style_run
    copy = shutil.copytree(out, tmp_path / "run")
    # checkpoints remember their folder only through --out; resume from the copy's last
    run_training(config, _run(copy, 5, resume="last"))
    assert json.loads((copy / "config.json").read_text())["steps"] == 5
    other = TrainConfig(**{**_fields(config), "extra_styles": ()})
    with pytest.raises(StylecastError, match="number of styles"):
        run_training(other, _run(copy, 7, resume="last"))


def _fields(config: TrainConfig) -> dict:
    import dataclasses

    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


def test_added_style_trains_alone_and_leaves_the_others_bit_identical(
    two_style_run, style_images, tmp_path: Path
) -> None:
    _, base = two_style_run
    before = load_trained(base).network
    added = add_style_config(base, (str(style_images[2]),), {"batch_size": 2})
    assert added.network.styles == 3 and added.frozen_styles == 2
    out = run_training(added, _run(tmp_path / "added", 2)).out
    after = load_trained(out).network
    old_state, new_state = before.state_dict(), after.state_dict()
    norms = {f"{n}.{p}" for n, m in after.named_modules()
             if isinstance(m, ConditionalInstanceNorm) for p in ("weight", "bias")}  # fmt: skip
    for key, value in old_state.items():
        if key in norms:
            assert torch.equal(new_state[key][:2], value), key
            assert new_state[key].shape[0] == 3
        else:
            assert torch.equal(new_state[key], value), key
    assert any(not torch.equal(new_state[k][2], new_state[k][:2].mean(0)) for k in norms)
    x = torch.rand(2, 3, 40, 36, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        for style in range(2):
            old = before(x, torch.nn.functional.one_hot(torch.tensor([style] * 2), 2).float())
            new = after(x, torch.nn.functional.one_hot(torch.tensor([style] * 2), 3).float())
            assert torch.equal(old, new)
    record = json.loads((out / "config.json").read_text())
    assert len(record["styles_sha256"]) == 3


def test_adding_styles_refuses_what_does_not_fit(two_style_run, style_images, tmp_path) -> None:
    _, base = two_style_run
    with pytest.raises(StylecastError, match="at least one"):
        add_style_config(base, (), {})
    with pytest.raises(StylecastError, match="share the name"):
        add_style_config(base, (str(style_images[0]),), {})
    with pytest.raises(StylecastError, match="no training run"):
        add_style_config(tmp_path / "nothing", (str(style_images[2]),), {})
