"""Settings of the IEM segmenter: one frozen dataclass holding the paper's defaults.

Every number the algorithm uses lives here. Presets reproduce the paper (``IEMConfig.paper()``)
and the authors' released code (``IEMConfig.released()``); each ablation of the paper's Table 4
and each objective variant of Table 5 is a field, so a variant is ``dataclasses.replace`` away.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import re
import typing
from dataclasses import dataclass
from typing import Any, Dict, Literal, Mapping, Tuple

#: Side of the working image the initial square sizes are expressed for (paper section 4.2).
REFERENCE_SIZE = 128

NumeratorNorm = Literal["l1", "l2"]
Normalizer = Literal["size", "marginal"]
SmoothingRule = Literal["code", "paper"]
BoxRule = Literal["union", "energy"]
EnergySpace = Literal["rgb", "lab"]
PolishRule = Literal["always", "union"]


@dataclass(frozen=True)
class IEMConfig:
    """All settings of IEM phase 1; the defaults are the paper's (section 4.2, appendices B-C).

    Attributes:
        iterations: Number of projected steps (Eq. 9). Paper: 150.
        kernel_size: Taps of the 1-D Gaussian of the inpainter psi_K (Eq. 6). Paper: 11.
        sigma: Standard deviation of that Gaussian, in pixels. Paper: 5.
        filter_repeats: How many times the 2-D filter is applied in a row; two 11x11 passes stand
            in for the paper's 21x21 kernel.
        scale_factor: Inpainter speed-up of the released code: average-pool by this factor
            before filtering and nearest-upsample after. 1 disables it.
        epsilon: Weight of the per-channel sum added to every filtered channel, which keeps
            psi_K finite where the source region is out of the filter's reach (docs/reference.md, "Phase 1").
        lambda_: Weight of the diversity regulariser (Eq. 10), applied as ``L_inp - lambda_ *
            div`` like the released code (the paper writes lambda/2; ``lambda_=0.002`` is the
            paper's literal reading).
        init_sizes: Sides of the centered initial squares for a 128 px image; scaled with the
            image's shorter side. Paper: (44, 78, 92); the released code: (78,).
        smoothing: Smooth the mask after each step (Table 4 ablation when False).
        smoothing_rule: ``"code"``: a pixel becomes 1 when its 3x3 window, itself included,
            holds >= 4 ones (the released code, which produced the tables). ``"paper"``: when
            its 8 neighbours, itself excluded, hold more than 4 ones (section 3.2's prose).
        boundary_only: Restrict updates to the mask boundary (Table 4 ablation when False).
        numerator_norm: Norm of the inpainting residual, ``"l1"`` (Eq. 7) or ``"l2"``
            (Table 5, assumption 1).
        normalizer: Denominator of each term: ``"size"`` = region size |M| (Eq. 7) or
            ``"marginal"`` = the same norm of the region's pixels, ``||X * M||`` (Table 5,
            assumptions 2 and 3).
        early_exit: Stop spending work on an image whose mask has reached a fixed point or a
            2-cycle; the result is identical to running every iteration.
        grabcut: Refine IEM's mask with a GrabCut graph cut and colour models started from it,
            the image border taken as certain background (beyond the paper, docs/beyond.md;
            needs OpenCV).
        grabcut_iterations: GrabCut iterations of that refinement.
        grabcut_border: Width in pixels, at 128 px and scaled with the shorter side, of the ring
            along the image border that the refinement takes as certain background (0: none).
        grabcut_box_union: With ``grabcut``, also run GrabCut from the box just inside that
            ring (all other pixels probable foreground) and keep the union of the two masks:
            the two starts fail on different images (docs/beyond.md). Alone it loses on
            small objects; ``best`` keeps the union by ``grabcut_box_rule="energy"``. The photo
            path's second pass starts from the kept mask and does not run the box again.
        grabcut_box_iterations: With ``grabcut_box_union``, GrabCut iterations of the cut from
            the box (0: ``grabcut_iterations``, as the cut from IEM's mask).
        grabcut_box_rule: With ``grabcut_box_union``, ``"union"``: always keep the union;
            ``"energy"``: keep it only where GrabCut's own energy (colour mixtures fitted to
            each labelling plus the contrast-sensitive boundary term) is lower for the union
            than for the cut from IEM's mask, which is kept otherwise (docs/beyond.md).
        grabcut_energy_space: The colours that rule measures both energies in: ``"rgb"`` as
            the cuts see them, or ``"lab"`` (CIELAB, where distances follow perceived colour
            differences); the cuts themselves always run on RGB. ``best`` keeps ``"rgb"``:
            ``"lab"`` gains at 128 px but loses at the photo's size (docs/beyond.md).
        grabcut_reject_empty: With ``grabcut``, a cut from IEM's mask (or, in the photo pass,
            from the working mask) that leaves fewer foreground pixels than a colour mixture has
            components is not taken: GrabCut gave the whole frame to the border's colour model,
            and the mask it started from is kept instead (docs/beyond.md).
        grabcut_polish_iterations: With ``grabcut``, GrabCut iterations run once more from the
            mask kept by the steps above, its colour mixtures fitted afresh to that mask (0:
            none); the union of two cuts is not a labelling GrabCut would stop at
            (docs/beyond.md). With ``grabcut_reject_empty``, a pass that empties the foreground
            keeps its start.
        grabcut_polish_rule: Which kept masks that pass polishes: ``"always"`` every one;
            ``"union"`` only a union to which the box's cut added pixels, the cut from IEM's
            mask having run its own iterations already. ``best`` polishes only unions, which pays
            for the box's cut at all ``grabcut_iterations`` within its cost budget
            (docs/beyond.md).
        grabcut_photo_size: Photo path only (``iem.segment``, ``iem.segment_files``, ``iem
            segment``): with ``grabcut``, GrabCut runs a second time on the photo brought to
            this shorter side (never enlarged), from the working-size mask, before the mask is
            brought to the photo's size; 0 (or not above the working size): no second pass.
    """

    iterations: int = 150
    kernel_size: int = 11
    sigma: float = 5.0
    filter_repeats: int = 2
    scale_factor: int = 1
    epsilon: float = 1e-8
    lambda_: float = 0.001
    init_sizes: Tuple[int, ...] = (44, 78, 92)
    smoothing: bool = True
    smoothing_rule: SmoothingRule = "code"
    boundary_only: bool = True
    numerator_norm: NumeratorNorm = "l1"
    normalizer: Normalizer = "size"
    early_exit: bool = True
    grabcut: bool = False
    grabcut_iterations: int = 5
    grabcut_border: int = 2
    grabcut_box_union: bool = False
    grabcut_box_iterations: int = 0
    grabcut_box_rule: BoxRule = "union"
    grabcut_energy_space: EnergySpace = "rgb"
    grabcut_reject_empty: bool = False
    grabcut_polish_iterations: int = 0
    grabcut_polish_rule: PolishRule = "always"
    grabcut_photo_size: int = 0

    def __post_init__(self) -> None:
        for name, hint in field_types().items():
            object.__setattr__(self, name, _typed(name, hint, getattr(self, name)))
        checks = [
            (isinstance(self.iterations, int) and self.iterations >= 0, "iterations must be an integer >= 0"),
            (
                isinstance(self.kernel_size, int) and self.kernel_size >= 1 and self.kernel_size % 2 == 1,
                "kernel_size must be a positive odd integer",
            ),
            (math.isfinite(self.sigma) and self.sigma > 0, "sigma must be a finite number > 0"),
            (isinstance(self.filter_repeats, int) and self.filter_repeats >= 1, "filter_repeats must be an integer >= 1"),
            (isinstance(self.scale_factor, int) and self.scale_factor >= 1, "scale_factor must be an integer >= 1"),
            (math.isfinite(self.epsilon) and self.epsilon >= 0, "epsilon must be a finite number >= 0"),
            (math.isfinite(self.lambda_) and self.lambda_ >= 0, "lambda_ must be a finite number >= 0"),
            (len(self.init_sizes) >= 1, "init_sizes must hold at least one square size"),
            (all(s >= 1 for s in self.init_sizes), "init_sizes must be positive"),
            (all(s <= REFERENCE_SIZE for s in self.init_sizes), f"init_sizes must be <= {REFERENCE_SIZE}"),
            (self.smoothing_rule in ("code", "paper"), "smoothing_rule must be 'code' or 'paper'"),
            (self.numerator_norm in ("l1", "l2"), "numerator_norm must be 'l1' or 'l2'"),
            (self.normalizer in ("size", "marginal"), "normalizer must be 'size' or 'marginal'"),
            (self.grabcut_box_rule in ("union", "energy"), "grabcut_box_rule must be 'union' or 'energy'"),
            (self.grabcut_energy_space in ("rgb", "lab"), "grabcut_energy_space must be 'rgb' or 'lab'"),
            (self.grabcut_polish_rule in ("always", "union"), "grabcut_polish_rule must be 'always' or 'union'"),
            (
                isinstance(self.grabcut_iterations, int) and self.grabcut_iterations >= 1,
                "grabcut_iterations must be an integer >= 1",
            ),
            (
                isinstance(self.grabcut_border, int) and 0 <= self.grabcut_border < REFERENCE_SIZE // 2,
                f"grabcut_border must be an integer in [0, {REFERENCE_SIZE // 2})",
            ),
            (
                isinstance(self.grabcut_box_iterations, int) and self.grabcut_box_iterations >= 0,
                "grabcut_box_iterations must be an integer >= 0",
            ),
            (
                isinstance(self.grabcut_polish_iterations, int) and self.grabcut_polish_iterations >= 0,
                "grabcut_polish_iterations must be an integer >= 0",
            ),
            (
                isinstance(self.grabcut_photo_size, int) and self.grabcut_photo_size >= 0,
                "grabcut_photo_size must be an integer >= 0",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"IEMConfig: {message}")

    @classmethod
    def paper(cls, **overrides: Any) -> "IEMConfig":
        """The paper's protocol: three initial squares (44, 78, 92), keep the highest error."""
        return cls(**overrides)

    @classmethod
    def released(cls, **overrides: Any) -> "IEMConfig":
        """The authors' released code: a single centered square of side 78 (at 128 px)."""
        return cls(**{"init_sizes": (78,), **overrides})

    @classmethod
    def best(cls, **overrides: Any) -> "IEMConfig":
        """The most accurate learning-free settings found (docs/beyond.md); may change between
        versions, unlike :meth:`paper` and :meth:`released`: IEM from the paper's smallest
        square (44) alone, then GrabCut (3 iterations, the image border as background) from its mask
        (IEM's mask kept where that cut empties the foreground) and from the box inside the
        border (3 iterations too), keeping their union where GrabCut's energy is lower for it than
        for the cut from IEM's mask, then one more GrabCut iteration from a kept union; in the
        photo path a second GrabCut pass on the photo at 384 px (shorter side)."""
        return cls(**{
            "init_sizes": (44,),
            "grabcut": True,
            "grabcut_iterations": 3,
            "grabcut_box_union": True,
            "grabcut_box_rule": "energy",
            "grabcut_reject_empty": True,
            "grabcut_polish_iterations": 1,
            "grabcut_polish_rule": "union",
            "grabcut_photo_size": 384,
            **overrides,
        })

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "IEMConfig":
        """A preset by name: ``"paper"``, ``"released"`` or ``"best"``."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return getattr(cls, name)(**overrides)

    @property
    def closed_form(self) -> bool:
        """Whether the objective has the closed-form gradient (Eq. 7 with the L1/size terms)."""
        return self.numerator_norm == "l1" and self.normalizer == "size"

    def replace(self, **changes: Any) -> "IEMConfig":
        """A copy with some fields changed (validated like a new config)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """The settings as a JSON-friendly dictionary."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "IEMConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"IEMConfig: unknown fields {sorted(unknown)}")
        return cls(**dict(values))


PRESETS = ("paper", "released", "best")
#: The preset of the photo path (``iem segment``, ``iem serve``) when none is named.
DEFAULT_PRESET = "best"

#: The ablations of the paper's Table 4, as changes to a config.
ABLATIONS: Mapping[str, Mapping[str, Any]] = {
    "no_regularizer": {"lambda_": 0.0},
    "no_smoothing": {"smoothing": False},
    "no_boundary": {"boundary_only": False},
}

#: The objective variants of the paper's Table 5, as changes to a config.
VARIANTS: Mapping[str, Mapping[str, Any]] = {
    "l1_size": {"numerator_norm": "l1", "normalizer": "size"},
    "l2_size": {"numerator_norm": "l2", "normalizer": "size"},
    "l1_marginal": {"numerator_norm": "l1", "normalizer": "marginal"},
    "l2_marginal": {"numerator_norm": "l2", "normalizer": "marginal"},
}


# --------------------------------------------------------------------------------------------
# Field types: every value is checked against its field's annotation, and text (command-line
# options, ``iem bench --set FIELD=VALUE``) is parsed in one way derived from the same
# annotation.
# --------------------------------------------------------------------------------------------

#: Words read as a bool from text (case does not matter).
TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")
_INTEGER = re.compile(r"[+-]?\d+")


@functools.lru_cache(maxsize=None)
def field_types() -> Dict[str, Any]:
    """``{field name: annotation}`` of :class:`IEMConfig` (``typing.Literal`` for choices); read only."""
    return typing.get_type_hints(IEMConfig)


def describe_type(hint: Any) -> str:
    """What a field holds, in words, for error messages and help."""
    if hint is bool:
        return "true or false"
    if hint is int:
        return "an integer"
    if hint is float:
        return "a number"
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(hint))
    if typing.get_origin(hint) is tuple:
        return "a list of integers"
    return repr(hint)


def _typed(name: str, hint: Any, value: Any) -> Any:
    """``value`` in its field's type (an int for a float field becomes a float, a list of
    integers a tuple); anything else raises, so that a truthy string never stands for True."""
    ok = False
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        value = int(value) if ok else value
    elif hint is float:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif typing.get_origin(hint) is Literal:
        ok = isinstance(value, str)  # which names are allowed is checked with the ranges
    elif typing.get_origin(hint) is tuple:
        ok = isinstance(value, (tuple, list)) and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value
        )
        value = tuple(int(v) for v in value) if ok else value
    if not ok:
        raise ValueError(f"IEMConfig: {name} must be {describe_type(hint)}, got {value!r} ({type(value).__name__})")
    return value


def parse_setting(name: str, text: str) -> Any:
    """The value of field ``name`` written as ``text``, as every command line reads it.

    bool: ``true/yes/on/1`` or ``false/no/off/0``; int: digits; float: any Python float
    literal; choices: one of the names; integer lists: comma-separated, e.g. ``44,78,92``
    (brackets around them are allowed, empty items are not).

    Raises:
        ValueError: unknown field, or text that does not spell a value of its type. The range
            of the value is checked when the config is built.
    """
    types = field_types()
    if name not in types:
        raise ValueError(f"unknown IEM setting {name!r}; choose from {', '.join(types)}")
    hint, word = types[name], text.strip()
    bad = ValueError(f"{name}: {text!r} is not {describe_type(hint)}")
    if hint is bool:
        if word.lower() not in TRUE_WORDS + FALSE_WORDS:
            raise bad
        return word.lower() in TRUE_WORDS
    if hint is int:
        if not _INTEGER.fullmatch(word):
            raise bad
        return int(word)
    if hint is float:
        try:
            return float(word)
        except ValueError:
            raise bad from None
    if typing.get_origin(hint) is Literal:
        if word not in typing.get_args(hint):
            raise bad
        return word
    if typing.get_origin(hint) is tuple:
        inner = word[1:-1] if word[:1] + word[-1:] in ("[]", "()") else word
        items = [item.strip() for item in inner.split(",")]
        if not all(_INTEGER.fullmatch(item) for item in items):
            raise ValueError(f"{name}: {text!r} is not a comma-separated list of integers (e.g. 44,78,92)")
        return tuple(int(item) for item in items)
    raise ValueError(f"{name}: no text form for {hint!r}")
