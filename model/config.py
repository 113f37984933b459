"""Frozen configuration of the SeqDMs network and diffusion process (STYLE.md rule 13).

The dataclasses here are the source of truth; YAML only appears at the CLI edge and is turned
into these objects with :func:`ModelConfig.from_dict`, which refuses unknown keys. The model
config is stored inside every checkpoint (rule 14) as :meth:`ModelConfig.to_dict`.

Attention placement is given as *downsample factors* (``attention_ds``): a factor ``d`` puts
self-attention at the levels whose feature maps are ``H / d`` pixels high. The paper's
"attention at 32x32, 16x16 and 8x8" for a 256x256 input is therefore ``(8, 16, 32)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal, TypeVar

from clearcube import BadInputError
from clearcube.bands import S1_BANDS, S2_BANDS

_T = TypeVar("_T")


@dataclass(frozen=True)
class UNetConfig:
    """Shape of the ADM-style conditional U-Net (guided-diffusion lineage)."""

    in_channels: int = len(S2_BANDS)
    """Channels of the noisy optical input x_t: one per Sentinel-2 band (13)."""
    cond_channels: int = len(S1_BANDS)
    """Channels of the noised SAR condition concatenated to x_t (Eq. 18): VV, VH."""
    model_channels: int = 128
    """Base width: channels of the first level; level i has ``model_channels * channel_mult[i]``."""
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4, 4)
    """Width multiplier per resolution level; ``len(channel_mult) - 1`` downsamplings."""
    num_res_blocks: int = 2
    """Residual blocks per level on the way down (the way up has one more, as in ADM)."""
    attention_ds: tuple[int, ...] = (8, 16, 32)
    """Downsample factors (input size / feature size) that get self-attention blocks."""
    num_heads: int = 4
    """Attention heads, used when ``num_head_channels`` is -1."""
    num_head_channels: int = -1
    """Channels per head; when positive it overrides ``num_heads`` (heads = channels / this)."""
    dropout: float = 0.0
    """Dropout probability inside residual blocks."""
    resblock_updown: bool = True
    """BigGAN-style resampling: residual blocks that down/upsample instead of plain convs."""
    use_scale_shift_norm: bool = True
    """Adaptive group norm: the timestep embedding gives a scale and a shift after GroupNorm."""
    learn_sigma: bool = True
    """Also output the learned-range variance interpolation v (doubles the output channels)."""
    norm_groups: int = 32
    """Groups of every GroupNorm; each level's width must be divisible by it."""
    image_size: int = 256
    """Nominal tile size the preset is meant for (documentation; any H, W divisible by
    ``2 ** (len(channel_mult) - 1)`` works)."""

    def __post_init__(self) -> None:
        if self.in_channels < 1 or self.cond_channels < 0 or self.model_channels < 1:
            raise BadInputError(
                "UNetConfig: in_channels >= 1, cond_channels >= 0 and model_channels >= 1 needed"
            )
        if not self.channel_mult or self.num_res_blocks < 1:
            raise BadInputError(
                "UNetConfig: channel_mult must be non-empty and num_res_blocks >= 1"
            )
        for mult in self.channel_mult:
            if (self.model_channels * mult) % self.norm_groups:
                raise BadInputError(
                    f"UNetConfig: width {self.model_channels * mult} is not divisible by "
                    f"norm_groups={self.norm_groups}; change model_channels or norm_groups"
                )
        max_ds = 2 ** (len(self.channel_mult) - 1)
        for ds in self.attention_ds:
            if ds < 1 or ds & (ds - 1) or ds > max_ds:
                raise BadInputError(
                    f"UNetConfig: attention_ds {ds} must be a power of two <= {max_ds} "
                    f"(2 ** (len(channel_mult) - 1))"
                )

    @property
    def out_channels(self) -> int:
        """Output channels: ε per band, plus the variance interpolation v if ``learn_sigma``."""
        return self.in_channels * (2 if self.learn_sigma else 1)

    @property
    def size_multiple(self) -> int:
        """H and W of inputs must be multiples of this (one halving per extra level)."""
        multiple: int = 2 ** (len(self.channel_mult) - 1)
        return multiple


@dataclass(frozen=True)
class DiffusionConfig:
    """The Gaussian diffusion process the network is trained for."""

    timesteps: int = 1000
    """T, the number of diffusion steps of training."""
    schedule: Literal["linear", "cosine"] = "linear"
    """β schedule: DDPM's linear one or the cosine one of improved DDPM."""
    learn_sigma: bool = True
    """Learned-range variance (Σ_θ interpolates β_t and β̃_t); must match the U-Net."""
    lambda_vlb: float = 0.001
    """λ of the hybrid loss L_simple + λ·L_vlb (Eq. 11)."""
    prediction: Literal["eps", "x0", "v"] = "eps"
    """What the network's first C output channels predict (the paper: ε)."""
    sar_noise: Literal["same_t", "clean"] = "same_t"
    """How the SAR condition enters: "same_t" diffuses it with the optical step's t (Eq. 18,
    the paper); "clean" gives the network the clean SAR at every t (a conditional DDPM in the
    SR3/Palette sense). With "same_t" the SAR is as noisy as the sample exactly when the
    sample's structure is decided, so a gap's layout comes from the chain's own noise: on the
    fill test's structured data "clean" fills 4x closer to the truth (see model/README.md)."""

    def __post_init__(self) -> None:
        if self.timesteps < 2:
            raise BadInputError("DiffusionConfig: timesteps must be >= 2")
        if self.schedule not in ("linear", "cosine"):
            raise BadInputError(
                f"DiffusionConfig: schedule {self.schedule!r} unknown; use 'linear' or 'cosine'"
            )
        if self.sar_noise not in ("same_t", "clean"):
            raise BadInputError(
                f"DiffusionConfig: sar_noise {self.sar_noise!r} unknown; use 'same_t' or 'clean'"
            )
        if self.prediction not in ("eps", "x0", "v"):
            raise BadInputError(
                f"DiffusionConfig: prediction {self.prediction!r} unknown; use 'eps', 'x0' or 'v'"
            )


@dataclass(frozen=True)
class ScalingConfig:
    """A per-band affine map from the paper's [-1, 1] data scale to the diffusion space.

    x_diffusion = (x_paper - shift_b) / scale_b. Sentinel-2 reflectance fills only a narrow
    band of [-1, 1] (land at 0.02-0.4 reflectance is -0.96..-0.2; a demo tile's per-band std
    is 0.09), so with unit-variance noise the image is drowned after a fifth of the chain.
    Standardising each band gives the data unit-scale variance. Empty tuples: the identity
    (the paper, and every checkpoint written before this field existed).
    """

    s2_shift: tuple[float, ...] = ()
    """Per optical band: subtracted from the [-1, 1] value (typically the band's mean)."""
    s2_scale: tuple[float, ...] = ()
    """Per optical band: the divisor after the shift (typically twice the band's std)."""

    def __post_init__(self) -> None:
        if len(self.s2_shift) != len(self.s2_scale):
            raise BadInputError("ScalingConfig: s2_shift and s2_scale need one value per band each")
        if any(v <= 0 for v in self.s2_scale):
            raise BadInputError("ScalingConfig: every s2_scale must be > 0")

    @property
    def is_identity(self) -> bool:
        """True when no scaling is applied (the paper's convention)."""
        return not self.s2_shift


@dataclass(frozen=True)
class ConsistencyConfig:
    """A consistency student distilled from a SeqDMs teacher (CM-CR; model/consistency.py).

    The student is the teacher's network shape; what makes it a consistency function
    f(y, σ) = c_skip(σ)·y + c_out(σ)·F(c_in(σ)·y, t(σ), SAR) lives here. σ is the teacher's noise
    level in variance-exploding form, σ_t = √((1 − ᾱ_t)/ᾱ_t), and y = x_t/√ᾱ_t.
    """

    sigma_data: float = 0.5
    """σ_d of the boundary coefficients: the RMS of the training targets in diffusion space
    (measured by ``clearcube distill``; the reference's 0.5 assumed RGB in [-1, 1])."""
    sigma_min: float = 0.002
    """σ at which f is the identity (the teacher's σ at its first step)."""
    grid: tuple[int, ...] = ()
    """Teacher steps of the N distillation grid points, ascending (the Karras grid snapped to
    the teacher's discrete steps); the last one is σ_max, where sampling starts."""
    rho: float = 7.0
    """ρ of the Karras grid."""
    ladder_low: float = 0.5
    """Lowest σ of the default PDMSR ladder (K calls: K points Karras-spaced from σ_max down
    to this, snapped to the grid)."""
    teacher_sha256: str = ""
    """SHA-256 of the teacher checkpoint the student was distilled from."""

    def __post_init__(self) -> None:
        if self.sigma_data <= 0 or self.sigma_min <= 0 or self.ladder_low <= 0:
            raise BadInputError("consistency: sigma_data, sigma_min and ladder_low must be > 0")
        if list(self.grid) != sorted(set(self.grid)):
            raise BadInputError("consistency: grid must be distinct teacher steps, ascending")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a trained SeqDMs model, stored inside its checkpoint."""

    unet: UNetConfig = field(default_factory=UNetConfig)
    """The network's shape."""
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    """The diffusion process it was trained for."""
    s2_bands: tuple[str, ...] = S2_BANDS
    """Sentinel-2 bands, in the order of the network's optical channels."""
    s1_bands: tuple[str, ...] = S1_BANDS
    """Sentinel-1 polarisations, in the order of the network's SAR channels."""
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    """Map from the [-1, 1] data scale to the diffusion space (identity: the paper)."""
    consistency: ConsistencyConfig | None = None
    """Set on a distilled consistency student (samplers ``consistency`` and ``pdmsr``); None
    on a diffusion model (samplers ``ddim`` and ``ddpm``)."""

    @property
    def is_consistency(self) -> bool:
        """True for a distilled consistency student."""
        return self.consistency is not None

    def __post_init__(self) -> None:
        if not self.scaling.is_identity and len(self.scaling.s2_shift) != len(self.s2_bands):
            raise BadInputError(
                f"ModelConfig: scaling has {len(self.scaling.s2_shift)} bands for "
                f"{len(self.s2_bands)} s2_bands; give one shift and scale per band"
            )
        if len(self.s2_bands) != self.unet.in_channels:
            raise BadInputError(
                f"ModelConfig: {len(self.s2_bands)} s2_bands but unet.in_channels="
                f"{self.unet.in_channels}; make them agree"
            )
        if len(self.s1_bands) != self.unet.cond_channels:
            raise BadInputError(
                f"ModelConfig: {len(self.s1_bands)} s1_bands but unet.cond_channels="
                f"{self.unet.cond_channels}; make them agree"
            )
        if self.unet.learn_sigma != self.diffusion.learn_sigma:
            raise BadInputError("ModelConfig: unet.learn_sigma and diffusion.learn_sigma differ")

    def to_dict(self) -> dict[str, Any]:
        """Plain-type dict (lists, not tuples) that :meth:`from_dict` reads back."""
        plain: dict[str, Any] = _plain(dataclasses.asdict(self))
        if plain["consistency"] is None:  # a diffusion model's dict stays as it always was
            del plain["consistency"]
        return plain

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """Build from a dict (YAML, a checkpoint); unknown keys raise :class:`BadInputError`."""
        _check_keys(cls, data, "model")
        kwargs: dict[str, Any] = {}
        if "unet" in data:
            kwargs["unet"] = dataclass_from_dict(UNetConfig, data["unet"], "model.unet")
        if "diffusion" in data:
            kwargs["diffusion"] = dataclass_from_dict(
                DiffusionConfig, data["diffusion"], "model.diffusion"
            )
        if "scaling" in data:
            kwargs["scaling"] = dataclass_from_dict(ScalingConfig, data["scaling"], "model.scaling")
        if data.get("consistency") is not None:
            kwargs["consistency"] = dataclass_from_dict(
                ConsistencyConfig, data["consistency"], "model.consistency"
            )
        for key in ("s2_bands", "s1_bands"):
            if key in data:
                kwargs[key] = tuple(str(b) for b in data[key])
        return cls(**kwargs)


def dataclass_from_dict(cls: type[_T], data: Mapping[str, Any], where: str) -> _T:
    """Build a flat frozen dataclass from a mapping; lists become tuples; unknown keys raise."""
    if not isinstance(data, Mapping):
        raise BadInputError(f"{where}: expected a mapping, got {type(data).__name__}")
    _check_keys(cls, data, where)
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return cls(**kwargs)


def _check_keys(cls: type, data: Mapping[str, Any], where: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise BadInputError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}"
        )


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


#: Named model configurations. "paper" is §4.4 of the SeqDMs paper on ADM's 256x256 layout.
PRESETS: Final[Mapping[str, ModelConfig]] = MappingProxyType(
    {
        "paper": ModelConfig(
            unet=UNetConfig(
                model_channels=128,
                channel_mult=(1, 1, 2, 2, 4, 4),
                num_res_blocks=2,
                attention_ds=(8, 16, 32),
                num_heads=4,
                image_size=256,
            )
        ),
        "small": ModelConfig(
            unet=UNetConfig(
                model_channels=64,
                channel_mult=(1, 2, 2, 4),
                num_res_blocks=2,
                attention_ds=(8,),
                num_heads=4,
                image_size=256,
            )
        ),
        "cpu-tiny": ModelConfig(
            unet=UNetConfig(
                model_channels=32,
                channel_mult=(1, 2, 2, 2),
                num_res_blocks=1,
                attention_ds=(8,),
                num_heads=2,
                norm_groups=16,
                image_size=256,
            )
        ),
    }
)


def preset(name: str) -> ModelConfig:
    """Return the named preset; an unknown name raises :class:`BadInputError` listing them."""
    try:
        return PRESETS[name]
    except KeyError:
        raise BadInputError(
            f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}"
        ) from None
