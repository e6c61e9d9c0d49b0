"""Thresholds of the audit findings: documented defaults, changed per project.

A reviewer gating models in CI needs to tune what counts as "wrong" without
patching code, and to see in the report which thresholds were applied. The
values come from, in order (later wins per key):

1. the defaults below (documented in ``docs/findings.md``);
2. ``[tool.reportgen]`` in ``./pyproject.toml`` (the working directory), if present;
3. ``--config FILE``: a TOML file holding the keys at its top level, or in a
   ``[tool.reportgen]`` table (so another project's ``pyproject.toml`` works too).

Example::

    [tool.reportgen]
    duplicate_cosine = 0.95
    untrained_ks = 0.03

    [tool.reportgen.severity]
    duplicate_filters = "error"   # info | warning | error | off
    pattern_not_rising = "off"

Unknown keys and bad values raise :class:`UserError` naming the key and the fix,
so a typo never silently leaves a default in force.
"""

from __future__ import annotations

import difflib
import math
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from reportgen.errors import UserError

from reportgen.finding_kinds import DEFAULT_SEVERITY, SEVERITIES  # noqa: E402  (the registry of kinds)


def default_severities() -> dict[str, str]:
    """Every finding kind with its default severity (the registry: reportgen.finding_kinds)."""
    return dict(DEFAULT_SEVERITY)


def __getattr__(name: str):
    if name == "KINDS":  # the kinds and their default severities, for code that reads config.KINDS
        return default_severities()
    raise AttributeError(name)


@dataclass(frozen=True)
class Thresholds:
    """Every threshold of the findings, with its default and why (see docs/findings.md)."""

    # Dead filters / units: a kernel (one output filter or Dense unit) whose L2 norm is
    # at most this fraction of the layer's median filter norm ignores its input.
    dead_kernel_norm: float = 1e-3
    # A unit whose largest absolute activation over every input image and position is
    # at most this is inactive on the data (needs images; info per unit) ...
    dead_activation: float = 1e-6
    # ... and a layer with more than this fraction of inactive units, on at least
    # ``inactive_min_images`` images, is a warning. Many silent units are normal after
    # dropout training: the demo's 100-unit dense layer has 55 silent on all 1,797
    # digits and the model is 98% accurate; a layer 80% silent has lost its capacity.
    inactive_fraction: float = 0.8
    inactive_min_images: int = 8
    # Untrained layer: the two-sample Kolmogorov-Smirnov test between the trained kernel
    # and a fresh initialisation of the same layer cannot tell them apart: statistic
    # below ``untrained_ks`` AND p-value above ``untrained_p``. The p-value condition
    # keeps briefly trained small layers (statistic ~0.06 on 5k weights) from being
    # flagged; the statistic condition keeps tiny samples from being called untrained.
    untrained_ks: float = 0.1
    untrained_p: float = 0.01
    # ... and its largest singular value is within this factor of the fresh one's: training
    # builds structure (a dominant direction) even where the weight histogram barely moves,
    # as in a small classifier head (the demo's 100x10 output layer: 1.13; re-initialised: ~1.0).
    untrained_sv_ratio: float = 1.1
    # Layers with fewer kernel weights than this are not KS-tested (too few samples for
    # the test to tell a trained layer from a fresh one).
    untrained_min_weights: int = 1000
    # Near-duplicate filters: cosine similarity of two flattened kernels above this.
    duplicate_cosine: float = 0.98
    # Exploding / vanishing scale: trained std over the fresh initialiser's std above
    # this, or below its inverse.
    scale_ratio: float = 10.0
    # Spectral alpha (the power-law exponent of the eigenvalues of WᵀW, reportgen.analyses.spectral):
    # WeightWatcher calls a layer over-trained below ``alpha_over_trained`` and under-trained above
    # ``alpha_under_trained``; well-trained layers of good models sit in between (Martin & Mahoney).
    alpha_over_trained: float = 2.0
    alpha_under_trained: float = 6.0
    # Saturation: fraction of a sigmoid/tanh layer's outputs within ``saturation_margin``
    # of the function's limits (0/1 for sigmoid, -1/1 for tanh) above this.
    saturation_fraction: float = 0.9
    saturation_margin: float = 0.01
    # BatchNormalization: |gamma| at most this (the channel is switched off) ...
    bn_gamma: float = 1e-3
    # ... or a moving variance at most this (the channel's input is constant).
    bn_variance: float = 1e-6
    # Grad-CAM sanity check: the mean Spearman rank correlation between the original
    # heatmaps and those of the randomised model stays above this at every step.
    sanity_correlation: float = 0.5
    # Cost bounds of the sanity check: randomisation steps (groups of layers, top
    # down, by stage) and the number of images.
    sanity_steps: int = 6
    sanity_images: int = 2
    # CAM faithfulness (docs/findings.md): a method's mean (insertion AUC - deletion AUC) over the
    # images, for each image's first explained class, must exceed the random map's and the edge
    # map's by more than this. On the bright-spot detector of the tests Grad-CAM leads the random
    # map by 0.67 and LayerCAM by 0.35, and an inverted Grad-CAM trails it by 0.59.
    faithfulness_margin: float = 0.05
    # ... but only where the test can tell: replacing every pixel must move the explained score (in [0, 1])
    # by at least this, or the next replacement is tried (blur, mean colour, noise), and where none does
    # the verdict is "uninformative" (the fully blurred face that keeps its class, 0.778 of 0.785) ...
    faithfulness_informative: float = 0.1
    # ... and where every AUC, the map's and both baselines', lies within this band, likewise.
    faithfulness_flat_band: float = 0.02
    # Patterns, measured relative to each filter's activation scale max(|start|, |end|) of
    # its mean objective (reportgen.analyses.patterns.rise, the one definition): a filter
    # whose objective rose by at most this fraction is *flat* (did not rise at all; float
    # round-off aside) ...
    pattern_min_rise: float = 1e-6
    # ... and one that rose by at least this fraction *rose*; in between it *barely moved*.
    # 0.5: for a positive start, the end is at least twice the start. The demo's first
    # conv layer at the old 20 steps of one pixel unit gained 5-32% (its mosaic was the
    # start noise): 0 of 32 rose.
    pattern_rise_margin: float = 0.5
    # Attention heads of a transformer, on the given images: a head whose rows have a normalised
    # entropy of at least this attends uniformly to every token (the last block's heads of a fresh
    # ViT: > 0.995, its first block's 0.95; the trained spot ViT of the tests: 0.11-0.97) ...
    attention_uniform_entropy: float = 0.99
    # ... and one whose tokens keep at least this share of their attention on themselves mixes nothing.
    attention_self_mass: float = 0.9
    # The data-set review (--images, labelled folders; docs/findings.md). A model whose expected calibration
    # error (15 bins, Guo et al. 2017) exceeds this is overconfident (mean confidence above accuracy) or
    # underconfident (below): the digits CNN of the tests, trained 8 epochs, has 0.02.
    calibration_ece: float = 0.05
    # Gates (warnings that --fail-on stops on), off by default: accuracy below ``min_accuracy``, ECE above
    # ``max_ece``, a share of label issues above ``max_label_issue_rate``, and more than ``max_leaked_images``
    # images of one --images folder reappearing in another (0: any leak is a warning).
    min_accuracy: float = 0.0
    max_ece: float = 1.0
    max_label_issue_rate: float = 1.0
    max_leaked_images: int = 0
    # Near-duplicates: at most ``duplicate_hash_bits`` of the 64 perceptual-hash bits differ AND the model
    # embeddings lie within ``duplicate_distance`` cosine distance. On 8x8 digits re-encoded as JPEG (quality
    # 75; the tests' plant) 2-8 bits differ and the distance is 1.5e-4 to 1.6e-3; of the 127,000 pairs of
    # different digits, 7 are that close in hash with a distance of 2.6e-3 to 4.5e-3, and none below 2e-3.
    duplicate_hash_bits: int = 8
    duplicate_distance: float = 0.002
    # Image outliers: a property (brightness, contrast, sharpness, aspect, area) with a robust z-score
    # (0.6745 (x - median) / MAD) above this (Iglewicz & Hoaglin's 3.5).
    outlier_z: float = 3.5
    # Weak segments: a property bin whose accuracy is at least ``segment_drop`` below the overall one, on at
    # least ``segment_min_images`` labelled images.
    segment_drop: float = 0.1
    segment_min_images: int = 20
    # Robustness (docs/findings.md): a corruption whose severity-3 accuracy lies more than this below the
    # clean accuracy (absolute, 0-1; without labels 1 - agreement with the clean prediction) is fragile. The
    # paper's ResNet-50 loses ~0.4 on the noises at severity 3, ~0.1 on brightness.
    corruption_drop: float = 0.25
    # ... and PGD at ``adversarial_epsilon`` pixel units (0-255) leaving less than this accuracy is
    # adversarially fragile. A model not trained against attacks keeps almost none at eps = 2 (ImageNet
    # models: < 0.05).
    adversarial_accuracy: float = 0.5
    adversarial_epsilon: float = 2.0
    # No verdict on fewer images than this (the numbers are shown, the findings not judged).
    robustness_min_images: int = 8
    # At most this many findings of one kind in one layer are listed one by one; the
    # rest are summed up in one finding.
    max_per_layer: int = 10
    # A kind found in more layers than this becomes one finding that lists the layers
    # (an untrained model gets one "untrained" finding, not one per layer).
    rollup_layers: int = 3
    # Severity of each finding kind: info | warning | error | off.
    severity: dict = field(default_factory=default_severities)
    # Where the values came from, for the report ("defaults", a file name).
    source: str = "defaults"

    def as_dict(self) -> dict:
        """The thresholds as report.json shows them."""
        return {
            f.name: (dict(getattr(self, f.name)) if f.name == "severity" else getattr(self, f.name))
            for f in fields(self)
        }


_RANGES: dict[str, tuple[float, float, str]] = {
    # key: (lowest, highest, description of valid values)
    "dead_kernel_norm": (0.0, 1.0, "a number from 0 to 1"),
    "dead_activation": (0.0, math.inf, "a number >= 0"),
    "inactive_fraction": (0.0, 1.0, "a number from 0 to 1"),
    "inactive_min_images": (1, math.inf, "an integer >= 1"),
    "untrained_ks": (0.0, 1.0, "a number from 0 to 1"),
    "untrained_p": (0.0, 1.0, "a number from 0 to 1"),
    "untrained_sv_ratio": (1.0, math.inf, "a number >= 1"),
    "untrained_min_weights": (1, math.inf, "an integer >= 1"),
    "duplicate_cosine": (0.0, 1.0, "a number from 0 to 1"),
    "scale_ratio": (1.0, math.inf, "a number >= 1"),
    "alpha_over_trained": (1.0, math.inf, "a number >= 1"),
    "alpha_under_trained": (1.0, math.inf, "a number >= 1"),
    "saturation_fraction": (0.0, 1.0, "a number from 0 to 1"),
    "saturation_margin": (0.0, 0.5, "a number from 0 to 0.5"),
    "bn_gamma": (0.0, math.inf, "a number >= 0"),
    "bn_variance": (0.0, math.inf, "a number >= 0"),
    "sanity_correlation": (-1.0, 1.0, "a number from -1 to 1"),
    "sanity_steps": (0, 50, "an integer from 0 (skip the check) to 50"),
    "sanity_images": (1, 16, "an integer from 1 to 16"),
    "faithfulness_margin": (-1.0, 1.0, "a number from -1 to 1"),
    "faithfulness_informative": (0.0, 1.0, "a number from 0 to 1"),
    "faithfulness_flat_band": (0.0, 1.0, "a number from 0 to 1"),
    "pattern_min_rise": (-math.inf, math.inf, "a number"),
    "pattern_rise_margin": (0.0, 2.0, "a number from 0 to 2"),
    "attention_uniform_entropy": (0.0, 1.0, "a number from 0 to 1"),
    "attention_self_mass": (0.0, 1.0, "a number from 0 to 1"),
    "calibration_ece": (0.0, 1.0, "a number from 0 to 1"),
    "min_accuracy": (0.0, 1.0, "a number from 0 (off) to 1"),
    "max_ece": (0.0, 1.0, "a number from 0 to 1 (off)"),
    "max_label_issue_rate": (0.0, 1.0, "a number from 0 to 1 (off)"),
    "max_leaked_images": (0, math.inf, "an integer >= 0"),
    "duplicate_hash_bits": (0, 64, "an integer from 0 to 64"),
    "duplicate_distance": (0.0, 2.0, "a number from 0 to 2"),
    "outlier_z": (0.0, math.inf, "a number >= 0"),
    "segment_drop": (0.0, 1.0, "a number from 0 to 1"),
    "segment_min_images": (1, math.inf, "an integer >= 1"),
    "corruption_drop": (0.0, 1.0, "a number from 0 to 1"),
    "adversarial_accuracy": (0.0, 1.0, "a number from 0 to 1"),
    "adversarial_epsilon": (0.0, 255.0, "a number from 0 to 255 (pixel units)"),
    "robustness_min_images": (1, 1_000_000, "an integer >= 1"),
    "max_per_layer": (1, 10_000, "an integer >= 1"),
    "rollup_layers": (1, 100_000, "an integer >= 1"),
}
_INTEGER_KEYS = {
    "robustness_min_images",
    "max_leaked_images",
    "duplicate_hash_bits",
    "segment_min_images",
    "inactive_min_images",
    "untrained_min_weights",
    "sanity_steps",
    "sanity_images",
    "max_per_layer",
    "rollup_layers",
}
KEYS = tuple(_RANGES) + ("severity",)


def _unknown(key: str, valid: tuple[str, ...], where: str) -> UserError:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return UserError(f"{where}: unknown key '{key}'; {hint}valid keys: {', '.join(valid)}")


def _apply(values: dict, table: Any, where: str) -> None:
    """Check ``table`` (one TOML table) and merge it into ``values``."""
    if not isinstance(table, dict):
        raise UserError(f"{where} must be a table of thresholds; see docs/findings.md")
    for key, value in table.items():
        if key == "severity":
            if not isinstance(value, dict):
                raise UserError(
                    f"{where}: 'severity' must be a table like {{ duplicate_filters = \"error\" }}"
                )
            sev = dict(values["severity"])
            kinds = default_severities()
            for kind, level in value.items():
                if kind not in kinds:
                    raise _unknown(kind, tuple(kinds), f"{where}.severity")
                if level not in SEVERITIES + ("off",):
                    raise UserError(
                        f"{where}.severity.{kind}: '{level}' is not a severity; "
                        "use info, warning, error or off"
                    )
                sev[kind] = level
            values["severity"] = sev
            continue
        if key not in _RANGES:
            raise _unknown(key, KEYS, where)
        lo, hi, valid = _RANGES[key]
        ok_type = isinstance(value, int) if key in _INTEGER_KEYS else isinstance(value, (int, float))
        if (
            isinstance(value, bool)
            or not ok_type
            or not (lo <= value <= hi)
            or (isinstance(value, float) and math.isnan(value))
        ):
            raise UserError(
                f"{where}.{key} = {value!r} is not valid; use {valid} (default {getattr(Thresholds, key)})"
            )
        values[key] = float(value) if key not in _INTEGER_KEYS else int(value)


def _read_toml(path: Path, option: str) -> dict:
    from reportgen import guard

    if not guard.present(path):
        raise UserError(f"{option} '{path}' does not exist; give the path of a TOML file")
    if os.path.isdir(path):
        raise UserError(f"{option} '{path}' is a folder; give the path of a TOML file")
    # A FIFO, /dev/zero or a huge file: refused before it is read (docs/safety.md).
    guard.check_file(
        path,
        option,
        "give the path of a TOML file",
        guard.TEXT_CAP,
        "a thresholds file is a few lines of TOML; give the right file",
    )
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise UserError(f"{option} '{path}' does not exist; give the path of a TOML file") from None
    except IsADirectoryError:
        raise UserError(f"{option} '{path}' is a folder; give the path of a TOML file") from None
    except UnicodeDecodeError:
        raise UserError(
            f"{option} '{path}' is not text (not UTF-8, a binary file?); give the path of a TOML file"
        ) from None
    except OSError as exc:
        raise UserError(f"{option} '{path}' cannot be read ({exc.strerror}); check its permissions") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{option} '{path}' is not valid TOML ({exc}); fix the file") from None


def load(config_file: str | None = None, cwd: str | Path | None = None) -> Thresholds:
    """The thresholds in force: defaults, then ./pyproject.toml, then ``--config FILE``."""
    values: dict[str, Any] = {f.name: getattr(Thresholds(), f.name) for f in fields(Thresholds)}
    sources = []
    project = Path(cwd if cwd is not None else Path.cwd()) / "pyproject.toml"
    if project.is_file():
        data = _read_toml(project, "pyproject.toml")
        table = data.get("tool", {}).get("reportgen") if isinstance(data.get("tool"), dict) else None
        if table is not None:
            _apply(values, table, f"{project.name} [tool.reportgen]")
            sources.append(str(project.name))
    if config_file is not None:
        path = Path(config_file)
        data = _read_toml(path, "--config")
        tool = data.get("tool")
        if isinstance(tool, dict) and "reportgen" in tool:
            _apply(values, tool["reportgen"], f"--config {path.name} [tool.reportgen]")
        elif set(data) <= {"tool", "project", "build-system"} and data:
            raise UserError(
                f"--config '{path}' has no [tool.reportgen] table; add one with the "
                "thresholds to change (see docs/findings.md)"
            )
        else:
            _apply(values, data, f"--config {path.name}")
        sources.append(str(path))
    values["source"] = " + ".join(["defaults"] + sources)
    return Thresholds(**values)
