"""Run configuration: dataclasses, TOML loading, dotted ``--set`` overrides and validation.

Every section is a dataclass; a TOML file and ``--set key=value`` overrides are merged onto the defaults and
converted field by field, so that an unknown key, a wrong type or an out-of-range value fails at once with one
line naming the key, the value and what is allowed.

Example:
    >>> cfg = load_config(None, ["optim.lr=0.003", "model.kind=mlp"])
    >>> cfg.optim.lr
    0.003
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from trainwell.config_checks import (  # noqa: F401  (re-exported)
    MAX_NAME,
    MAX_SEED,
    NAME_PATTERN,
    _check_positive,
    _check_range,
    _check_seed,
)
from trainwell.config_io import (  # noqa: F401  (re-exported: the config API lives here)
    _merge,
    apply_overrides,
    check_field,
    from_dict,
    parse_override,
    read_toml,
    to_plain,
    to_toml,
)
from trainwell.errors import ConfigError


def _default_blocks() -> list[dict]:
    # MNIST-1D CNN: every convolution has integer geometry (W - F + 2P) / S + 1 on a length-40 signal.
    return [
        {"type": "conv", "channels": 64, "kernel": 3, "stride": 1, "padding": 1},  # 40
        {"type": "conv", "channels": 64, "kernel": 4, "stride": 2, "padding": 1},  # 20
        {"type": "conv", "channels": 64, "kernel": 4, "stride": 2, "padding": 1},  # 10
        {"type": "conv", "channels": 64, "kernel": 4, "stride": 2, "padding": 1},  # 5
    ]


@dataclass
class DataConfig:
    name: str = "mnist1d"
    val_fraction: float = 0.1
    seed: int = 0
    root: str = ""
    options: dict = field(default_factory=dict)
    label_noise: float = 0.0
    random_labels: bool = False
    random_pixels: bool = False
    corrupt_seed: int = 1

    def validate(self) -> None:
        _check_seed("data.seed", self.seed)
        _check_seed("data.corrupt_seed", self.corrupt_seed)
        _check_range("data.val_fraction", self.val_fraction, 0.0, 1.0, hi_open=True)
        _check_range("data.label_noise", self.label_noise, 0.0, 1.0)


@dataclass
class PreprocessConfig:
    kind: Literal["none", "center", "standardize", "pca", "zca"] = "none"
    n_components: int | float | None = None  # a float in (0, 1): the fewest axes that keep that share of variance
    whiten: bool = False
    eps: float = 1e-5

    def validate(self) -> None:
        n = self.n_components
        if n is not None and (n < 1 if isinstance(n, int) else not 0 < n < 1):
            raise ConfigError(f"preprocess.n_components = {n} is not allowed: use an integer >= 1 (the axes kept) or "
                              f"a float in (0, 1) (the share of the variance kept)")
        _check_positive("preprocess.eps", self.eps, allow_zero=True)


@dataclass
class ModelConfig:
    kind: Literal["mlp", "cnn"] = "cnn"
    hidden: list[int] = field(default_factory=lambda: [256, 256])
    activation: Literal["relu", "tanh", "sigmoid", "leaky_relu", "linear", "drop_activation"] = "relu"
    blocks: list[dict] = field(default_factory=_default_blocks)
    dense: list[int] = field(default_factory=list)
    norm: Literal["none", "batch", "layer", "group", "instance"] = "none"
    norm_placement: Literal["before", "after"] = "before"
    norm_groups: int = 32
    dropout_keep: float = 1.0
    dropout_mode: Literal["inverted", "vanilla", "uout"] = "inverted"
    uout_beta: float = 0.1
    dropout_where: Literal["all", "last"] = "all"
    drop_activation_keep: float = 0.95
    skip_io: bool = False
    l0: bool = False
    sdr: bool = False
    sdr_sigma0: float = 0.05
    geometry: Literal["floor", "strict"] = "floor"

    def validate(self) -> None:
        _check_range("model.drop_activation_keep", self.drop_activation_keep, 0.0, 1.0)
        _check_positive("model.sdr_sigma0", self.sdr_sigma0, allow_zero=True)
        if self.l0 and self.sdr:
            raise ConfigError("model.l0 = true and model.sdr = true are not allowed together: choose one")
        if self.skip_io and self.kind != "mlp":
            raise ConfigError(f"model.skip_io = true is not allowed with model.kind = {self.kind!r}: use 'mlp'")
        _check_range("model.dropout_keep", self.dropout_keep, 0.0, 1.0, lo_open=True)
        _check_range("model.uout_beta", self.uout_beta, 0.0, 1.0)
        if self.norm_groups < 1:
            raise ConfigError(f"model.norm_groups = {self.norm_groups} is not allowed: use an integer >= 1")
        for i, h in enumerate(self.hidden):
            if h < 1:
                raise ConfigError(f"model.hidden[{i}] = {h} is not allowed: layer widths must be >= 1")
        for i, h in enumerate(self.dense):
            if h < 1:
                raise ConfigError(f"model.dense[{i}] = {h} is not allowed: layer widths must be >= 1")


@dataclass
class InitConfig:
    scheme: Literal[
        "default", "zeros", "small_normal", "standard", "xavier_uniform", "xavier_normal", "he_normal", "he_uniform",
        "lecun_normal", "lecun_uniform", "normal", "uniform", "kaiming_normal", "kaiming_uniform"
    ] = "he_normal"
    bias: float = 0.0
    mode: Literal["fan_in", "fan_out"] = "fan_in"
    std: float = 0.01
    output_layer: Literal["linear", "same"] = "linear"

    def validate(self) -> None:
        _check_positive("init.std", self.std)
        if not math.isfinite(self.bias):
            raise ConfigError(f"init.bias = {self.bias} is not allowed: use a finite number")


@dataclass
class OptimConfig:
    name: Literal["sgd", "momentum", "rmsprop", "adam", "adagrad"] = "adam"
    lr: float | Literal["find"] = 1e-2  # "find": the LR range test picks it before training (trainwell lr-find)
    momentum: float = 0.9
    nesterov: bool = False
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    alpha: float = 0.99
    rmsprop_momentum: float = 0.0
    weight_decay: float = 0.0
    decay: Literal["coupled", "decoupled"] = "coupled"
    schedule: Literal["none", "step", "cosine", "onecycle", "plateau"] = "onecycle"
    step_size: int = 30
    gamma: float = 0.1
    patience: int = 5
    factor: float = 0.1
    min_lr: float = 0.0
    warmup_fraction: float = 0.25

    def validate(self) -> None:
        if self.lr != "find":
            _check_positive("optim.lr", self.lr)
        _check_positive("optim.weight_decay", self.weight_decay, allow_zero=True)
        _check_range("optim.momentum", self.momentum, 0.0, 1.0, hi_open=True)
        _check_range("optim.rmsprop_momentum", self.rmsprop_momentum, 0.0, 1.0, hi_open=True)
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"optim.betas = {self.betas} is not allowed: use two numbers in [0, 1)")
        _check_positive("optim.eps", self.eps)
        _check_range("optim.alpha", self.alpha, 0.0, 1.0, hi_open=True)
        if self.step_size < 1:
            raise ConfigError(f"optim.step_size = {self.step_size} is not allowed: use an integer >= 1 (epochs)")
        _check_range("optim.gamma", self.gamma, 0.0, 1.0, lo_open=True)
        _check_range("optim.factor", self.factor, 0.0, 1.0, lo_open=True, hi_open=True)
        _check_range("optim.warmup_fraction", self.warmup_fraction, 0.0, 1.0, lo_open=True, hi_open=True)
        _check_positive("optim.min_lr", self.min_lr, allow_zero=True)
        if self.patience < 0:
            raise ConfigError(f"optim.patience = {self.patience} is not allowed: use an integer >= 0 (epochs)")
        if self.nesterov and self.name != "momentum":
            raise ConfigError(f"optim.nesterov = true is not allowed with optim.name = {self.name!r}: use 'momentum'")


@dataclass
class TrainConfig:
    epochs: int = 15
    batch_size: int = 100
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    loss: Literal["cross_entropy", "hinge", "mse"] = "cross_entropy"
    monitor: Literal["val_loss", "val_acc"] = "val_loss"
    checkpoint_every: int = 10
    checkpoint_minutes: float = 1.0
    threads: Literal["auto"] | int = "auto"
    trainable: Literal["all", "norm"] = "all"
    # evaluate the validation split after every epoch; false: it stays held out (the same training rows) and is
    # evaluated once, at the end (summary.json), which saves an epoch's worth of evaluation when nothing reads it
    val_each_epoch: bool = True
    compile: bool = False
    # with compile: torch.compile's mode; auto = "reduce-overhead" on CUDA (the step's kernels captured as CUDA
    # graphs and replayed: no per-kernel launch cost) and "default" on a CPU (where CUDA graphs do not exist)
    compile_mode: Literal["auto", "default", "reduce-overhead", "max-autotune"] = "auto"
    # on CUDA, a population's (sweep's) training step is captured as one CUDA graph and replayed; no effect on a CPU
    cuda_graph: bool = True
    # mixed precision: autocast to bfloat16 (CPU or CUDA) or float16 (CUDA, with a GradScaler); fp32 = off
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    # under torchrun: BatchNorm layers become SyncBatchNorm (statistics over the global batch; CUDA/nccl only)
    sync_bn: bool = False
    # under torchrun: how long a process waits for the others (collectives, rank 0's setup) before it errors
    dist_timeout_minutes: float = 5.0

    def validate(self) -> None:
        _check_seed("train.seed", self.seed)
        if self.epochs < 1:
            raise ConfigError(f"train.epochs = {self.epochs} is not allowed: use an integer >= 1")
        if self.batch_size < 1:
            raise ConfigError(f"train.batch_size = {self.batch_size} is not allowed: use an integer >= 1")
        if self.checkpoint_every < 1:
            raise ConfigError(f"train.checkpoint_every = {self.checkpoint_every} is not allowed: use an integer >= 1")
        _check_positive("train.checkpoint_minutes", self.checkpoint_minutes)
        _check_positive("train.dist_timeout_minutes", self.dist_timeout_minutes)
        if self.threads != "auto" and self.threads < 0:
            raise ConfigError(f"train.threads = {self.threads} is not allowed: use 'auto', 0 (torch's default) "
                              f"or a positive count")


@dataclass
class StopConfig:
    criteria: list[Literal["fixed", "loss_change", "weight_change", "early_stopping", "generalization_loss"]] = field(
        default_factory=list)
    fixed_epochs: int = 30
    fixed_factor: float = 0.1
    fixed_more: int = 10
    loss_monitor: Literal["train_loss", "val_loss"] = "train_loss"
    loss_window: int = 10
    loss_threshold: float = 0.01
    weight_window: int = 10
    weight_threshold: float = 1e-4
    weight_relative: bool = False
    monitor: Literal["val_loss", "val_acc", "train_loss"] = "val_loss"
    patience: int = 10
    min_delta: float = 0.0
    min_delta_relative: bool = False
    stopping_threshold: float | None = None
    divergence_threshold: float | None = None
    baseline: float | None = None
    start_from_epoch: int = 0
    check_finite: bool = True
    strict: bool = True
    restore_best: bool = True
    extra_epochs: int = 0
    extra_lr_factor: float = 0.1
    divergence_factor: float | None = 10.0
    overfit_window: int = 5
    overfit_stop: bool = False
    gl_alpha: float = 5.0  # generalization_loss: stop when val loss is > gl_alpha % above its minimum (Prechelt)

    def validate(self) -> None:
        for key in ("fixed_epochs", "loss_window", "weight_window", "overfit_window"):
            if getattr(self, key) < 1:
                raise ConfigError(f"stop.{key} = {getattr(self, key)} is not allowed: use an integer >= 1")
        for key in ("fixed_more", "extra_epochs", "patience", "start_from_epoch"):
            if getattr(self, key) < 0:
                raise ConfigError(f"stop.{key} = {getattr(self, key)} is not allowed: use an integer >= 0")
        _check_positive("stop.fixed_factor", self.fixed_factor)
        _check_positive("stop.extra_lr_factor", self.extra_lr_factor)
        _check_positive("stop.loss_threshold", self.loss_threshold, allow_zero=True)
        _check_positive("stop.weight_threshold", self.weight_threshold)
        _check_positive("stop.min_delta", self.min_delta, allow_zero=True)
        _check_positive("stop.gl_alpha", self.gl_alpha)
        if self.divergence_factor is not None and not self.divergence_factor > 1:
            raise ConfigError(f"stop.divergence_factor = {self.divergence_factor} is not allowed: use a number > 1 "
                              f"or 'none' to switch the guard off")
        for key in ("stopping_threshold", "divergence_threshold"):
            value = getattr(self, key)
            if value is not None and not math.isfinite(value):
                raise ConfigError(f"stop.{key} = {value} is not allowed: use a finite number or leave it out")
        if len(set(self.criteria)) != len(self.criteria):
            raise ConfigError(f"stop.criteria = {self.criteria} is not allowed: list each criterion once")


@dataclass
class RegularizeConfig:
    l1: float = 0.0
    l2: float = 0.0
    max_norm: float = 0.0
    activity: float = 0.0
    l0: float = 0.0
    sdr_beta: float = 0.05
    sdr_zeta: float = 0.99
    sdr_anneal: bool = False
    sdr_per_epoch: int = 2  # sigma updates per epoch (the reference code: 2); 0 = after every step

    def validate(self) -> None:
        for key in ("l1", "l2", "max_norm", "activity", "l0", "sdr_beta"):
            _check_positive(f"regularize.{key}", getattr(self, key), allow_zero=True)
        if self.sdr_per_epoch < 0:
            raise ConfigError(f"regularize.sdr_per_epoch = {self.sdr_per_epoch} is not allowed: use an integer >= 1, "
                              f"or 0 for every step")
        _check_range("regularize.sdr_zeta", self.sdr_zeta, 0.0, 1.0, lo_open=True)


@dataclass
class AugmentConfig:
    kind: Literal["none", "signal", "image"] = "none"
    shift: int = 4
    scale: float = 0.1
    noise: float = 0.0
    crop_padding: int = 4
    flip: bool = True
    input_noise: float = 0.0

    def validate(self) -> None:
        if self.shift < 0 or self.crop_padding < 0:
            raise ConfigError(f"augment.shift = {self.shift}, augment.crop_padding = {self.crop_padding}: use "
                              f"integers >= 0")
        _check_range("augment.scale", self.scale, 0.0, 1.0, hi_open=True)
        _check_positive("augment.noise", self.noise, allow_zero=True)
        _check_positive("augment.input_noise", self.input_noise, allow_zero=True)


@dataclass
class DoctorConfig:
    preflight: bool = True
    preflight_examples: int = 256
    monitor_every: int = 50
    human_error: float | None = None

    def validate(self) -> None:
        if self.preflight_examples < 2:
            raise ConfigError(f"doctor.preflight_examples = {self.preflight_examples} is not allowed: use >= 2")
        if self.monitor_every < 0:
            raise ConfigError(f"doctor.monitor_every = {self.monitor_every} is not allowed: use 0 (off) or more")
        if self.human_error is not None:
            _check_range("doctor.human_error", self.human_error, 0.0, 1.0)


@dataclass
class ReportConfig:
    enabled: bool = True  # report.html, written at the start and rewritten every `every` epochs ...
    every: int = 2
    every_seconds: float = 10.0  # ... but at most once per this many seconds (a short run is not slowed down)
    tensorboard: bool = False  # also write TensorBoard event files to <run dir>/tensorboard (trainwell[tensorboard])

    def validate(self) -> None:
        if self.every < 1:
            raise ConfigError(f"report.every = {self.every} is not allowed: use an integer >= 1 (epochs)")
        _check_positive("report.every_seconds", self.every_seconds, allow_zero=True)


@dataclass
class Config:
    name: str = "run"
    data: DataConfig = field(default_factory=DataConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    init: InitConfig = field(default_factory=InitConfig)
    regularize: RegularizeConfig = field(default_factory=RegularizeConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    stop: StopConfig = field(default_factory=StopConfig)
    doctor: DoctorConfig = field(default_factory=DoctorConfig)
    report: ReportConfig = field(default_factory=ReportConfig)

    def validate(self) -> None:
        if not NAME_PATTERN.fullmatch(self.name):
            shown = self.name if len(self.name) <= 40 else self.name[:40] + "..."
            raise ConfigError(f"name = {shown!r} is not allowed: use 1-{MAX_NAME} letters, digits or . _ - + = , @ "
                              f"(not starting with '.'): it names the run directory")
        if not self.train.val_each_epoch:
            needs = [c for c, uses in (("early_stopping", self.stop.monitor.startswith("val")),
                                       ("generalization_loss", True),
                                       ("loss_change", self.stop.loss_monitor == "val_loss")) if uses and c in
                     self.stop.criteria]
            if needs:
                raise ConfigError(f"stop.criteria {needs[0]!r} is not allowed with train.val_each_epoch = false: it "
                                  f"reads the validation metrics of every epoch; set train.val_each_epoch = true or "
                                  f"leave it out")
        if "fixed" in self.stop.criteria and self.optim.schedule in ("cosine", "onecycle"):
            raise ConfigError(f"stop.criteria 'fixed' is not allowed with optim.schedule = {self.optim.schedule!r}: "
                              f"its LR drop at epoch stop.fixed_epochs would be undone by the schedule's next step; "
                              f"use optim.schedule = 'none', 'step' or 'plateau'")

    def to_dict(self) -> dict:
        """The config as nested plain dicts, equal to ``dataclasses.asdict(self)`` (:func:`to_plain`: about 1.4x
        faster; a population writes it several times for every member)."""
        return to_plain(self)

    def hash(self) -> str:
        """Return a short, stable hash of the whole resolved config."""
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:8]


#: the model keys only one kind of model reads (``model.skip_io`` is refused on a CNN by the model's validation)
KIND_KEYS = {"model.hidden": "mlp", "model.blocks": "cnn", "model.dense": "cnn"}


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, *,
                kind_varies: bool = False) -> Config:
    """Resolve a config: defaults, then the TOML file (if any), then ``--set`` overrides. A relative
    ``data.root`` is made absolute from the current folder (``~`` expanded), as the run's config.toml records it.

    Raises:
        ConfigError: also when an override sets a model key the model's kind does not read
            (``--set model.hidden=[64]`` on the default CNN would change nothing but the run's name), or the
            file's ``[model]`` table does (``dense`` beside ``kind = "mlp"``), unless the kind is set on the
            command line or ``kind_varies`` (a sweep's grid over ``model.kind``).
    """
    raw = read_toml(path) if path is not None else {}
    model = raw.get("model")
    file_kind = model.get("kind", ModelConfig.kind) if isinstance(model, dict) else ModelConfig.kind
    parsed = [parse_override(item) for item in overrides or []]
    changed = any(keys == ["model", "kind"] and value != file_kind for keys, value in parsed)  # the same kind: no
    if not kind_varies and not changed:
        _check_file_kind_keys(raw, path)
    cfg = config_from_dict(apply_overrides(raw, list(overrides or [])))
    for keys, _ in parsed:
        key = ".".join(keys)
        if KIND_KEYS.get(key, cfg.model.kind) != cfg.model.kind:
            other = " and ".join(k for k, kind in KIND_KEYS.items() if kind == cfg.model.kind)
            raise ConfigError(f"--set {key} is not read by model.kind = {cfg.model.kind!r} (it shapes a "
                              f"{KIND_KEYS[key]!r}): add --set model.kind={KIND_KEYS[key]}, or set {other} to "
                              f"shape the {cfg.model.kind}")
    if cfg.data.root:  # from the folder the command runs in; recorded whole: a resume or a worker elsewhere finds it
        cfg.data.root = str(Path(cfg.data.root).expanduser().absolute())
    return cfg


def written_whole(raw: dict) -> bool:
    """Whether a config file holds (nearly) every table of a config, as the config.toml trainwell writes into each
    run does (one written by an earlier version may lack a table added since): its fields are a record of every
    setting, read or not, not a choice of the ones that matter."""
    tables = [name for name, value in _defaults().items() if isinstance(value, dict)]
    return sum(isinstance(raw.get(name), dict) for name in tables) >= len(tables) - 2


def _check_file_kind_keys(raw: dict, path) -> None:
    """Refuse a config file whose ``[model]`` table sets a key its own ``model.kind`` does not read (``dense``
    beside ``kind = "mlp"``: the file would train without the layers it lists). A kind changed by ``--set`` is
    left to the user: the file's keys of the other kind are then knowingly unread; so is a whole config as
    trainwell writes it into a run (:func:`written_whole`)."""
    model = raw.get("model") if isinstance(raw, dict) else None
    if not isinstance(model, dict) or written_whole(raw):
        return  # a whole config as trainwell writes it (a run's config.toml) records every field, read or not
    kind = model.get("kind", ModelConfig.kind)
    for key in model:
        wanted = KIND_KEYS.get(f"model.{key}")
        if wanted is not None and kind in ("mlp", "cnn") and wanted != kind:
            other = " and ".join(k.removeprefix("model.") for k, v in KIND_KEYS.items() if v == kind)
            article = {"mlp": "an", "cnn": "a"}
            raise ConfigError(f"{path}: [model] sets {key}, which model.kind = {kind!r} does not read (it shapes "
                              f"{article[wanted]} {wanted!r}): remove it, or set kind = {wanted!r}; "
                              f"{article[kind]} {kind!r} is shaped by {other}")


@functools.cache
def _defaults() -> dict:
    """The default config as a plain dict, built once (``dataclasses.asdict`` of the whole config was most of a
    small config's resolution time; :func:`_merge` copies it, so it is never changed)."""
    return Config().to_dict()


def check_key(dotted: str) -> None:
    """Refuse a dotted config key that names no field (``train.epoch``) as an unknown key in a config file is
    refused: ``unknown config key 'train.epoch': did you mean 'train.epochs'? allowed keys in train are ...``."""
    check_field(Config, dotted)


def config_from_dict(raw: dict) -> Config:
    """Merge ``raw`` onto the defaults and validate; lists replace, tables merge."""
    merged = _merge(_defaults(), raw) if isinstance(raw, dict) else raw
    return from_dict(Config, merged)


