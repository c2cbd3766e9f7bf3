"""Typed configuration of one run: the only thing that crosses from the suite into the library.

The suite (``experiments/``) resolves YAML into these frozen dataclasses; the library
never reads YAML or a global config. ``from_dict`` rejects unknown keys with a
did-you-mean so a typo in a registry file never silently falls back to a default.
"""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

PLACEMENTS = ("none", "landmark", "both")
MEAN_FACE_MODES = ("fixed", "learnable_average", "learnable_random", "none")
POSE_INITS = ("none", "mean_face")
TRUNK_INITS = ("random", "synthheads-rotation")
BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101")   # the torchvision ResNets models/backbone.py builds
ARCHS = ("trans3dhead", "dad3dnet")
BENCHMARKS = ("synthheads", "dad3dheads")


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key and the fix."""


# Fields removed after results were committed, with the value every such run had, and where they went. The
# run id still hashes that value (``RunConfig.identity``), so no run changes id, and a stored config.yaml or
# checkpoint that names one at that value still loads; any other value is refused with the new place.
RETIRED = {"train": {"inject_nan_at_step": (-1, "the fault tests set the environment variable "
                                                 "T3H_INJECT_NAN_AT_STEP (trans3dhead/engine/steplog.py)")}}


def introduced(default: Any) -> Any:
    """A field added after results were committed, whose default is the behaviour from before it existed:
    at that default it is left out of the run id (``RunConfig.identity``), so adding it retires no result."""
    return field(default=default, metadata={"introduced": True})


def switch(default: Any, *, default_factory: Any = dataclasses.MISSING, introduced: bool = False) -> Any:
    """A field that is an ablation switch: what a variant may change and a profile may not.

    Declared here, once, beside the field; ``ablation_switches()`` reads the list from these marks
    (the registry refuses a profile or a ``--set`` that touches one). ``introduced=True`` for a switch added
    after results were committed whose default is the behaviour from before it existed: at that default it is
    left out of the run id, as :func:`introduced` does, so adding it retires no committed run
    (docs/architecture.md, "Adding an ablation switch").
    """
    metadata = {"switch": True, "introduced": introduced}
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class ModelConfig:
    """The network (``model.*``): architecture, trunk, transformer sizes and the paper's ablation switches.

    ``qamem``, ``mqinit`` and ``mean_face`` place QAMem (eqs. 2-3), MQinit (eq. 1) and MARR's mean face
    (eqs. 4-5). The last three fields are DAD-3DNet's, which ignores the stride, transformer and placement ones.
    """
    arch: str = switch("trans3dhead")
    n_params: int = switch(413)              # 413 | 160 | 60 (see trans3dhead.flame.params)
    backbone: str = "resnet50"               # any torchvision resnet name
    backbone_stride: int = 32                # 32: full trunk; 16 / 8: cut after layer3 / layer2 (small profiles)
    pretrained: bool = False                 # ImageNet weights via torchvision's weights API
    # random | synthheads-rotation: the trunk pretrained once per data set (trans3dhead/engine/pretrain.py)
    trunk_init: str = introduced("random")
    d_model: int = 256
    nheads: int = 8
    dim_feedforward: int = 1024
    dropout: float = 0.1
    # float32: the fused attention kernel in float32 even under autocast; autocast: attention in the autocast
    # dtype (CPU: the explicit product, 0.875x the step of the cpu models; CUDA: the fused bf16 kernel)
    attention_precision: str = introduced("float32")
    encoder_layers: int = switch(0)          # 0-3, DETR-style
    decoder_layers: int = switch(2)          # 1-3, same count in both branches
    branches: tuple[str, ...] = switch(("landmark", "3dmm"))   # ("3dmm",) = only-3DMM (Table 7)
    qamem: str = switch("landmark")          # none | landmark | both  (eqs. 2-3)
    mqinit: str = switch("landmark")         # none | landmark | both  (eq. 1)
    mean_face: str = switch("fixed")         # fixed | learnable_average | learnable_random | none (eqs. 4-5)
    # none: the pose values are the raw head outputs (both papers); mean_face: offset them so that the
    # untrained model puts the template's landmarks on the mean face (not in either paper).
    pose_init: str = switch("none")
    # DAD-3DNet only
    neck_channels: int = 256
    bifpn_layers: int = 2
    head_hidden: int = 512

    def in_branch(self, placement: str, branch: str) -> bool:
        """Whether a module placed by ``placement`` (none | landmark | both) sits in ``branch``."""
        return placement == "both" or placement == branch

    @property
    def has_landmark_branch(self) -> bool:
        """False only for only-3DMM (Table 7), which has no landmark branch and so no landmark loss or NME."""
        return self.arch == "dad3dnet" or "landmark" in self.branches

    def validate(self) -> None:
        _check_choice("model.arch", self.arch, ARCHS)
        _check_choice("model.n_params", self.n_params, (413, 160, 60))
        _check_choice("model.qamem", self.qamem, PLACEMENTS)
        _check_choice("model.mqinit", self.mqinit, PLACEMENTS)
        _check_choice("model.mean_face", self.mean_face, MEAN_FACE_MODES)
        _check_choice("model.pose_init", self.pose_init, POSE_INITS)
        _check_choice("model.trunk_init", self.trunk_init, TRUNK_INITS)
        _check_choice("model.attention_precision", self.attention_precision, ("float32", "autocast"))
        if self.pretrained and self.trunk_init != "random":
            raise ConfigError("model.pretrained (ImageNet) and model.trunk_init both initialise the trunk; set one")
        _check_choice("model.backbone_stride", self.backbone_stride, (8, 16, 32))
        if not 0 <= self.encoder_layers <= 6:
            raise ConfigError(f"model.encoder_layers={self.encoder_layers}: use 0..6 (the paper uses 0-3)")
        if not 1 <= self.decoder_layers <= 6:
            raise ConfigError(f"model.decoder_layers={self.decoder_layers}: use 1..6 (the paper uses 1-3)")
        unknown = set(self.branches) - {"landmark", "3dmm"}
        if unknown or "3dmm" not in self.branches:
            raise ConfigError(
                f"model.branches={list(self.branches)}: use [landmark, 3dmm] or [3dmm] (only-3DMM)")
        _check_choice("model.backbone", self.backbone, BACKBONES)
        for name in ("d_model", "nheads", "dim_feedforward", "neck_channels", "bifpn_layers", "head_hidden"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name}={getattr(self, name)}: must be >= 1")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model.dropout={self.dropout}: use 0 <= dropout < 1")
        if self.d_model % self.nheads:
            raise ConfigError(f"model.d_model={self.d_model} must be divisible by model.nheads={self.nheads}")


@dataclass(frozen=True)
class LossConfig:
    """Loss weights, eq. 8 (paper: 300, 50, 0.05, 0.05). DAD-3DNet adds heatmap (facts section 4).

    Every field is an ablation switch. ``supervise_every_layer``: the landmark loss also supervises each earlier
    decoder layer's landmark estimate, for every variant alike (DETR's auxiliary decoding losses): with MARR the
    layer's running sum F_a + sum of residuals (eq. 5), without MARR that layer's own prediction through the same
    landmark head. The paper is silent; its Figures 7-8 presume each layer's sum is a landmark estimate
    (docs/fidelity.md).
    """
    landmark: float = switch(300.0)
    shape3d: float = switch(50.0)
    reproj: float = switch(0.05)
    euler: float = switch(0.05)
    heatmap: float = switch(0.0)
    supervise_every_layer: bool = switch(True)


@dataclass(frozen=True)
class DataConfig:
    """The data (``data.*``): the benchmark and its folders, the network input size, SynthHeads' generation.

    For SynthHeads, empty folders mean the ones generated below ``root``; dad3dheads needs ``flame_dir`` set.
    The ``n_*``, ``render_size`` and ``synth_seed`` fields key the SynthHeads cache (``data.embedded.synth_params``).
    """
    benchmark: str = "synthheads"            # synthheads (embedded) | dad3dheads (real, user's copy)
    root: str = "data"                       # dataset root; synthheads is generated (cached) below it
    flame_dir: str = ""                      # "" = the procedural FLAME assets generated below root
    aflw_root: str = ""                      # "" = the AFLW2000-3D-format set generated below root
    image_size: int = 256
    # SynthHeads generation (ignored for dad3dheads)
    n_train: int = 4000
    n_val: int = 500
    n_test: int = 500
    n_aflw: int = 300
    render_size: int = 256
    synth_seed: int = 0
    num_workers: int = 0                     # loader workers; -1 = auto (0 on CPU, several per GPU job)
    cache_in_memory: bool = False            # keep decoded images and geometry in RAM after the first epoch

    def validate(self) -> None:
        _check_choice("data.benchmark", self.benchmark, BENCHMARKS)
        if self.image_size < 16 or self.image_size % 16:
            raise ConfigError(f"data.image_size={self.image_size}: must be a positive multiple of 16")
        if self.render_size < 16:
            raise ConfigError(f"data.render_size={self.render_size}: must be >= 16 pixels")
        for name, smallest in (("n_train", 1), ("n_val", 1), ("n_test", 0), ("n_aflw", 0)):
            if getattr(self, name) < smallest:
                raise ConfigError(f"data.{name}={getattr(self, name)}: must be >= {smallest}")
        if not self.root:
            raise ConfigError("data.root is empty: name the dataset folder (SynthHeads: where to cache it)")
        if self.num_workers < -1:
            raise ConfigError(f"data.num_workers={self.num_workers}: use -1 (auto) or a count >= 0")


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation (``train.*``); the defaults are the paper's recipe (section 4.1.1: Adam, 360 epochs,
    batch 32, lr 1e-4 dropped x0.1 at epoch 240, trunk lr x0.1). The last three fields change how the
    loop runs, not what it computes, and are left out of the run id."""
    epochs: int = 360
    batch_size: int = 32
    lr: float = 1e-4
    backbone_lr_mult: float = 0.1
    weight_decay: float = 0.0
    schedule: str = "step"                   # step (x0.1 from epoch lr_drop_epoch on) | cosine (to zero)
    lr_drop_epoch: int = 240                 # paper: "decayed by 10 at 240th epoch" (of 360)
    lr_second_drop_epoch: int = introduced(0)   # another x0.1 from this epoch on; 0 = none (the paper has one)
    warmup_steps: int = 0
    grad_clip: float = 0.0                   # 0 = off
    amp: str = "off"                         # off | bf16 | auto (bf16 where the CPU/GPU supports it)
    seed: int = 0
    device: str = "auto"                     # auto | cpu | cuda
    eval_every: int = 1                      # epochs between validation-curve points
    # the per-epoch validation curve scores the first curve_items validation images (0 = all): a large
    # evaluation set for the reports' intervals need not slow every epoch down (issue 27)
    curve_items: int = introduced(0)
    # How the loop executes, not what it computes (left out of the run id; see registry.EXECUTION_ONLY):
    sync_every: int = 25                     # steps between host reads of the loss log and non-finite check
    channels_last: bool = True               # CUDA only: NHWC convolutions (tensor-core friendly)
    compile: bool = False                    # torch.compile the forward: did not pay on CPU; not measured on a GPU

    def lr_drops(self) -> tuple[int, ...]:
        """The epochs from which the step schedule multiplies the lr by another 0.1."""
        return (self.lr_drop_epoch,) + ((self.lr_second_drop_epoch,) if self.lr_second_drop_epoch else ())

    def validate(self) -> None:
        _check_choice("train.schedule", self.schedule, ("step", "cosine"))
        _check_choice("train.amp", self.amp, ("off", "bf16", "auto"))
        _check_choice("train.device", self.device, ("auto", "cpu", "cuda"))
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("train.epochs and train.batch_size must be >= 1")
        if not 0 < self.lr < float("inf"):
            raise ConfigError(f"train.lr={self.lr} must be a finite number > 0")
        for name in ("backbone_lr_mult", "weight_decay", "warmup_steps", "grad_clip"):
            if not 0 <= getattr(self, name) < float("inf"):
                raise ConfigError(f"train.{name}={getattr(self, name)} must be a finite number >= 0")
        if self.schedule == "step" and not 1 <= self.lr_drop_epoch <= self.epochs:
            raise ConfigError(f"train.lr_drop_epoch={self.lr_drop_epoch}: the step schedule drops the lr at an "
                              f"epoch in 1..train.epochs={self.epochs} (the paper: 240 of 360)")
        if self.lr_second_drop_epoch and not (self.schedule == "step"
                                              and self.lr_drop_epoch < self.lr_second_drop_epoch <= self.epochs):
            raise ConfigError(f"train.lr_second_drop_epoch={self.lr_second_drop_epoch}: a second drop of the step "
                              f"schedule falls after train.lr_drop_epoch={self.lr_drop_epoch} and by "
                              f"train.epochs={self.epochs}; 0 turns it off")
        if self.eval_every < 1:
            raise ConfigError(f"train.eval_every={self.eval_every} must be >= 1")
        if self.curve_items < 0:
            raise ConfigError(f"train.curve_items={self.curve_items}: use 0 (every validation image) or a count > 0")
        if self.sync_every < 1:
            raise ConfigError(f"train.sync_every={self.sync_every} must be >= 1")


@dataclass(frozen=True)
class RunConfig:
    """One run: the model, loss, data and train sections. ``from_dict`` builds and validates it from the
    suite's resolved YAML; ``identity`` is what the run id hashes."""
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> "RunConfig":
        self.model.validate()
        self.data.validate()
        self.train.validate()
        for name, weight in dataclasses.asdict(self.loss).items():
            if isinstance(weight, float) and not 0 <= weight < float("inf"):
                raise ConfigError(f"loss.{name}={weight} must be a finite number >= 0")
        if self.model.arch == "dad3dnet" and self.model.branches != ("landmark", "3dmm"):
            raise ConfigError("model.branches applies to trans3dhead only; remove it from the dad3dnet variant")
        if self.model.arch == "dad3dnet" and self.train.batch_size == 1 and self.data.image_size <= 64:
            # the official neck's P7 (stride 64) has BN: one value per channel cannot be normalised in training
            raise ConfigError(f"dad3dnet at data.image_size={self.data.image_size} has a 1x1 P7 level, whose "
                              "BatchNorm needs train.batch_size >= 2 (or data.image_size >= 80)")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def identity(self) -> dict[str, Any]:
        """What a run id hashes: the config less the ``introduced`` fields that hold their default, plus the
        ``RETIRED`` fields at the value they always had."""
        identity = self.to_dict()
        for section in fields(self):
            for f in fields(getattr(self, section.name)):
                if f.metadata.get("introduced") and identity[section.name][f.name] == _default_of(f):
                    del identity[section.name][f.name]
            identity[section.name].update({k: v for k, (v, _) in RETIRED.get(section.name, {}).items()})
        return identity

    @classmethod
    def ablation_switches(cls) -> dict[str, set[str]]:
        """``{section: {field, ...}}`` of every field declared with ``switch()``."""
        sections: dict[str, set[str]] = {}
        for section in fields(cls):
            names = {f.name for f in fields(section.default_factory()) if f.metadata.get("switch")}
            if names:
                sections[section.name] = names
        return sections

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "RunConfig":
        return _build(cls, raw, "").validate()


def _default_of(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _check_choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not one of {list(choices)}")


def did_you_mean(name: object, choices, prefix: str = "") -> str:
    """"; did you mean 'X'?" for the closest of ``choices`` to a mistyped ``name``, or "" when none is close."""
    hint = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1)
    return f"; did you mean '{prefix}{hint[0]}'?" if hint else ""


def _build(cls: type, raw: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {type(raw).__name__}")
    known = {f.name: f for f in fields(cls)}
    retired = RETIRED.get(prefix.rstrip("."), {})
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key in retired and key not in known:
            kept, moved_to = retired[key]
            if value != kept:
                raise ConfigError(f"{prefix}{key} is no longer a config key: {moved_to}")
            continue            # an older config.yaml or checkpoint, written before the field was retired
        if key not in known:
            raise ConfigError(f"unknown key '{prefix}{key}'{did_you_mean(key, known, prefix)} (valid: {sorted(known)})")
        f = known[key]
        default = _default_of(f)
        if dataclasses.is_dataclass(default):
            kwargs[key] = _build(type(default), value, f"{prefix}{key}.")
        else:
            kwargs[key] = _coerce(f"{prefix}{key}", value, default)
    return cls(**kwargs)


def _coerce(name: str, value: Any, default: Any) -> Any:
    """Accept YAML's natural spellings (ints for floats, lists for tuples); reject the rest."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{name}: expected true/false, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        return float(value)
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        return tuple(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, got {value!r}")
        return value
    return value
