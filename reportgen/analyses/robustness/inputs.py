"""Which images the robustness pass uses, and the pass as a report runs it.

With ``--images`` folders: ``--robustness-sample`` of their images (by default
as many as fit :data:`~reportgen.analyses.robustness.BUDGET_MACS`), one per
class in turn, labelled by their class folders; each is known by its index
in the folder listing, which seeds its corruptions and PGD start -- the same
image gets the same draws however the images are split. Without folders: the
report's images (``--image``, the demo's held-out samples), labelled where
their label names a class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from reportgen.errors import UserError


@dataclass
class PassImages:
    pixels: np.ndarray  # (N, H, W, C) float32 0-255, fitted to the model's input
    labels: np.ndarray  # (N,) class index, -1 when unknown
    keys: list[int]  # each image's identity (folder index, or position among the report's images)
    source: str  # "folders" or "images"
    available: int  # images the source had
    skipped: int = 0


def _label_index(label: str | None, names: Sequence[str] | None) -> int:
    if label is None:
        return -1
    if names and label in names:
        return list(names).index(label)
    try:
        return int(label)
    except (TypeError, ValueError):
        return -1


def choose(
    folder: Any, images: Sequence[Any], spec: Any, sample: int, names: Sequence[str] | None
) -> PassImages:
    """The pass's images: ``sample`` of the folders', else the report's images."""
    from reportgen.images import fit_to_input, load_pixels
    from reportgen.images.folders import sample_indices

    if folder is not None:
        pixels, labels, keys, skipped = [], [], [], 0
        for i in sample_indices(folder, sample):
            try:
                px = fit_to_input(load_pixels(folder.files[i]), spec)
            except UserError:
                skipped += 1
                continue
            pixels.append(px.astype(np.float32))
            labels.append(-1 if folder.labels[i] is None else int(folder.labels[i]))
            keys.append(int(i))
        if not pixels:
            raise UserError("--images: none of the robustness section's images could be read")
        return PassImages(
            np.stack(pixels), np.asarray(labels, np.int64), keys, "folders", len(folder), skipped
        )
    if not images:
        raise UserError(
            "the robustness section needs images: give --images DIR (labelled class folders) or --image"
        )
    chosen = list(images)[:sample]
    return PassImages(
        np.stack([np.asarray(im.pixels, np.float32) for im in chosen]),
        np.asarray([_label_index(im.label, names) for im in chosen], np.int64),
        list(range(len(chosen))),
        "images",
        len(images),
    )


def sample_size(model: Any, spec: Any, options: Any) -> int:
    """``--robustness-sample``, else as many images as fit the budget for this model's cost."""
    from reportgen.analyses import robustness as R

    if options.robustness_sample is not None:
        return int(options.robustness_sample)
    from reportgen.analyses.patterns.cost import model_macs

    macs = model_macs(model, spec.height, spec.width) if spec.height and spec.width else None
    try:
        from reportgen import graph

        elements = sum(graph.map_elements(model))
    except Exception:  # noqa: BLE001  (a model whose maps cannot be sized: its MACs alone)
        elements = None
    return R.default_sample(
        R.forward_cost(macs, elements), len(options.corruptions), len(options.epsilons), options.pgd_steps
    )


def _shards(options: Any, feeds: Any, images: int) -> int:
    """Workers for the pass: ``--jobs`` when it is above 1, in the main process of a one-model run (the
    workers of a several-model run are the parallelism already), for a model with no other inputs; else 1."""
    import multiprocessing

    from reportgen.graph.inputs import other_inputs

    jobs = options.jobs or 1
    if jobs <= 1 or images < 2 or other_inputs(feeds):
        return 1
    if options.executor != "ray" and multiprocessing.parent_process() is not None:
        return 1
    return min(jobs, images)


def for_report(
    model: Any,
    head: Any,
    feeds: Any,
    preprocessor: Any,
    folder: Any,
    images: Sequence[Any],
    options: Any,
    names: Sequence[str] | None = None,
    progress: Callable[..., Any] | None = None,
) -> Any:
    """The robustness pass of a report (:func:`reportgen.analyses.robustness.measure`), with its inputs."""
    from reportgen.analyses import robustness as R
    from reportgen.analyses.cam import find_target_layer
    from reportgen.analyses.robustness.classifier import PixelClassifier
    from reportgen.images import require_image_input

    spec = require_image_input(model, "the robustness section")
    if head.units is None or head.is_map:
        raise UserError(
            "the robustness section needs a classifier (a vector of class scores); "
            f"this model's output is {head.kind}"
        )
    sample = sample_size(model, spec, options)
    chosen = choose(folder, images, spec, sample, names)
    clf = PixelClassifier(model, head, preprocessor, spec.channels, feeds)
    conditions = (
        1 + len(options.corruptions) * len(R.SEVERITIES) + len(options.epsilons) * (1 + options.pgd_steps)
    )
    bar = progress(total=conditions, desc="robustness") if progress else None
    tick = (lambda n: bar.update(n)) if bar is not None else None
    shards, note = _shards(options, feeds, len(chosen.pixels)), None
    try:
        out = None
        if shards > 1:
            from reportgen.analyses.robustness import shards as S

            try:
                out = S.run(
                    model,
                    head,
                    preprocessor,
                    spec.channels,
                    chosen.pixels,
                    chosen.labels,
                    chosen.keys,
                    options.corruptions,
                    options.epsilons,
                    options.pgd_steps,
                    options.seed,
                    shards,
                    options.executor,
                    options.ray_address,
                    tick,
                    conditions,
                )
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # noqa: BLE001  (a model that does not pickle, a worker that failed: one process)
                from reportgen.errors import one_line

                note = (
                    f"the {shards} shards could not run "
                    f"({one_line(exc, typed=True)}); the pass ran in one process"
                )
                shards = 1
        if out is None:
            out = R.measure(
                clf,
                chosen.pixels,
                chosen.labels,
                chosen.keys,
                options.corruptions,
                options.epsilons,
                options.pgd_steps,
                options.seed,
                tick=tick,
            )
    finally:
        if bar is not None:
            bar.close()
    out.shards, out.executor, out.shards_note = (
        shards,
        (options.executor if shards > 1 else "one process"),
        note,
    )
    out.source, out.available, out.skipped, out.sample = (
        chosen.source,
        chosen.available,
        chosen.skipped,
        sample,
    )
    out.chosen_by = "option" if options.robustness_sample is not None else "budget"
    try:
        layer = (
            find_target_layer(model, options.output).path
            if options.gradcam_layer is None
            else options.gradcam_layer
        )
        R.add_cams(out, model, head, feeds, preprocessor, layer)
    except Exception:  # noqa: BLE001  (a model without a map to explain: the flipped images are shown without CAMs)
        out.cam_layer = None
    return out
