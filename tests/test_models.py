"""Every registered variant builds, runs forward/backward with a finite loss, and trains the parameters
it uses (timm-style: a broken registry entry cannot land)."""
import pytest
import torch

from experiments.registry import load_registry
from trans3dhead.config import ModelConfig
from trans3dhead.flame.params import ParamLayout
from trans3dhead.flame.topology import load_topology
from trans3dhead.losses import build_loss
from trans3dhead.models import build_model

REGISTRY = load_registry()
IMAGE = 64


def _batch(flame_dir, batch_size=2):
    from trans3dhead.flame.decoder import FlameDecoder
    dec = FlameDecoder(flame_dir, 413)
    torch.manual_seed(0)
    params = torch.zeros(batch_size, 413)
    params[:, 403:409] = torch.tensor([1.0, 0, 0, 0, -1.0, 0])
    params[:, 412] = 6.0
    gt = dec(params)
    return {"image": torch.randn(batch_size, 3, IMAGE, IMAGE),
            "landmarks_2d": (gt["landmarks_3d"][..., :2] + 1) / 2, "presence": torch.ones(batch_size, 68, dtype=torch.bool),
            "projected_vertices": gt["projected_vertices"], "model_vertices": gt["model_vertices"],
            "rotation": gt["rotation"], "euler": torch.zeros(batch_size, 3)}


@pytest.mark.parametrize("variant", sorted(REGISTRY.variants))
def test_every_registered_variant_trains_one_step(variant, flame_dir):
    cfg = REGISTRY.resolve(variant, "smoke").config
    model = build_model(cfg.model, flame_dir, torch.rand(68, 2) * 0.5 + 0.25)
    loss_fn = build_loss(cfg.loss, cfg.model, load_topology(flame_dir))
    batch = _batch(flame_dir)
    out = model(batch["image"])
    n = cfg.model.n_params
    assert out["params"].shape == (2, n)
    assert out["landmarks_2d"].shape == (2, 68, 2)
    assert out["model_vertices"].shape[1:] == (load_topology(flame_dir).n_vertices, 3)
    terms = loss_fn(out, batch)
    assert torch.isfinite(terms["total"]), terms
    terms["total"].backward()
    unused_ok = ("heatmap_head",) if cfg.loss.heatmap == 0 else ()
    no_grad = [name for name, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all()) and not name.startswith(unused_ok)]
    # Learnable query embeddings of a branch initialised by MQinit still get gradients through the
    # positional path, so every trainable parameter must receive one.
    assert not no_grad, f"{variant}: no gradient reaches {no_grad[:5]}"
    if cfg.model.arch == "trans3dhead" and cfg.model.mean_face == "fixed":
        assert "marr.mean_face" not in dict(model.named_parameters())
    if cfg.model.mean_face.startswith("learnable") and "landmark" in cfg.model.branches:
        assert model.marr.mean_face.requires_grad


@pytest.mark.parametrize("n_params", [413, 160, 60])
def test_parameter_layouts(n_params, flame_dir):
    layout = ParamLayout.for_count(n_params)
    assert layout.total == n_params
    for arch in ("trans3dhead", "dad3dnet"):
        cfg = ModelConfig(arch=arch, n_params=n_params, backbone="resnet18", backbone_stride=8, d_model=32, nheads=4,
                          dim_feedforward=32, neck_channels=16, bifpn_layers=1, head_hidden=16)
        # batch 2: training-mode BN at DAD-3DNet's 1x1 P7 level (stride 64) needs two values per channel
        out = build_model(cfg, flame_dir, torch.full((68, 2), 0.5))(torch.randn(2, 3, IMAGE, IMAGE))
        assert out["params"].shape == (2, n_params)
        assert torch.all(out["params"][:, :layout.n_shape_like].abs() <= 3.0)


def test_marr_sums_residuals_onto_the_mean_face(flame_dir):
    cfg = ModelConfig(backbone="resnet18", backbone_stride=8, d_model=32, nheads=4, dim_feedforward=32, decoder_layers=3)
    mean = torch.rand(68, 2)
    out = build_model(cfg, flame_dir, mean)(torch.randn(2, 3, IMAGE, IMAGE))
    assert len(out["residuals_per_layer"]) == 3 and len(out["landmarks_per_layer"]) == 3
    total = mean + sum(out["residuals_per_layer"])
    assert torch.allclose(out["landmarks_2d"], total, atol=1e-6)
    # Freshly built, every residual head outputs zero: the prediction starts at the mean face.
    assert torch.allclose(out["landmarks_2d"], mean.expand(2, -1, -1), atol=1e-6)


def test_pretrained_weights_offline_give_a_clear_error(monkeypatch, flame_dir):
    import torchvision
    from trans3dhead.models.backbone import PretrainedWeightsUnavailable

    def offline(*args, **kwargs):
        raise OSError("network unreachable")
    monkeypatch.setattr(torchvision.models, "resnet18", offline)
    cfg = ModelConfig(backbone="resnet18", backbone_stride=8, d_model=32, nheads=4, pretrained=True)
    with pytest.raises(PretrainedWeightsUnavailable, match="hub/checkpoints"):
        build_model(cfg, flame_dir, torch.rand(68, 2))


def test_one_backbone_list_and_each_stages_channels_match_the_resnet():
    """config.BACKBONES is the only list; the stage widths are read off each torchvision ResNet, not a table."""
    import torch

    from trans3dhead.config import BACKBONES
    from trans3dhead.models.backbone import resnet_stages

    for name in BACKBONES:
        stages, channels = resnet_stages(name, pretrained=False)
        x = torch.zeros(1, 3, 64, 64)
        for stage, width in zip(stages, channels):
            x = stage(x)
            assert x.shape[1] == width, name


def test_every_architecture_is_built_through_the_one_builder_table(flame_dir):
    """config.ARCHS and models/build.py's ARCHITECTURES name the same models, and each factory maps the
    ModelConfig onto its model (DAD-3DNet's explicit constructor arguments included)."""
    from trans3dhead.config import ARCHS
    from trans3dhead.models.build import ARCHITECTURES
    from trans3dhead.models.dad3dnet import DAD3DNet

    assert set(ARCHITECTURES) == set(ARCHS)
    cfg = ModelConfig(arch="dad3dnet", backbone="resnet18", neck_channels=32, bifpn_layers=1, head_hidden=48)
    model = build_model(cfg, flame_dir, torch.full((68, 2), 0.5))
    assert isinstance(model, DAD3DNet)
    assert model.heatmap_head.in_channels == 32 and model.shape_head[0].out_features == 48


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_stems_channels_last_max_pool_is_bit_identical_to_torchs(dtype):
    """The CPU speed-up may not change a run: same maxima, same indices (ties included, from a coarse grid of
    values: a tie broken otherwise would send a gradient elsewhere), same gradients where overlapping windows send
    two to one input, same layout out."""
    from trans3dhead.models.backbone import ChannelsLastMaxPool, resnet_stages
    stages, _ = resnet_stages("resnet18", pretrained=False)
    assert isinstance(stages[0][3], ChannelsLastMaxPool)
    torch.manual_seed(0)
    x = (torch.randint(0, 7, (4, 8, 13, 12)) / 2).to(dtype)               # many ties
    grad = torch.randn(4, 8, 7, 6).to(dtype)
    outputs = []
    for pool in (torch.nn.MaxPool2d(3, 2, 1), ChannelsLastMaxPool(3, 2, 1)):
        leaf = x.clone().requires_grad_()
        out = pool(leaf)
        out.backward(grad)
        outputs.append((out, leaf.grad, out.is_contiguous()))
    (ref, ref_grad, ref_layout), (out, out_grad, layout) = outputs
    assert torch.equal(out, ref) and torch.equal(out_grad, ref_grad) and layout == ref_layout
    channels_last = x.contiguous(memory_format=torch.channels_last)
    assert ChannelsLastMaxPool(3, 2, 1)(channels_last).is_contiguous(memory_format=torch.channels_last)
