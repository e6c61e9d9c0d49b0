"""The report's data-set pass: every image of the ``--images`` folders once
(:func:`reportgen.analyses.dataset.run_pass`), then the review over the pass' per-image arrays
(:mod:`reportgen.analyses.review`) and the CAMs of its label-issue gallery."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from reportgen.analyses.cam.head import Head
from reportgen.analyses.dataset import (
    DatasetStats,
    PixelFacts,
    batch_size,
    embedding_layer,
    run_pass,
)


def for_report(
    model: Any,
    options: Any,
    folder: Any,
    preprocessor: Any,
    head: Head,
    feeds: Any,
    t: Any,
    progress: Callable[..., Any] | None = None,
) -> DatasetStats:
    """The report's pass over every image of ``folder``, with the data-set review
    (:mod:`reportgen.analyses.review`) and the CAMs of the label-issue gallery."""
    from reportgen.analyses.cam import resolve_layer
    from reportgen.errors import BadInput, UserError
    from reportgen.images import folders, require_image_input

    spec = require_image_input(model, "--images")
    try:
        layer = resolve_layer(model, options.gradcam_layer, options.output).path
    except UserError:
        if options.gradcam_layer:
            raise  # a layer the user named and cannot have: exit 2, not a silent mean CAM of none
        layer = None
    skipped: list = []
    facts = PixelFacts()
    try:
        embed = embedding_layer(model, head)
    except Exception:  # noqa: BLE001  (no embedding: duplicates by the hash alone, and the page says so)
        embed = None
    bar = progress(total=len(folder), desc="images") if progress else None
    try:
        stats = run_pass(
            model,
            head,
            layer,
            folders.batches(folder, spec, preprocessor, batch_size(model), skipped, facts),
            len(folder.class_names) if folder.class_names else None,
            feeds,
            t.dead_activation,
            t.saturation_margin,
            tick=(lambda n: bar.update(n)) if bar is not None else None,
            embed=embed,
        )
    finally:
        if bar is not None:
            bar.close()
    if stats.images == 0:
        raise BadInput(
            f"--images: none of the {len(folder)} files could be read as an image "
            f"(first: {skipped[0].path}: {skipped[0].reason}){folder.type_note()}; "
            "give a folder of PNG or JPEG images"
        )
    stats.skipped = skipped
    facts.attach(stats)
    if stats.indices is not None and folder.roots:
        stats.roots = np.asarray(folder.roots, dtype=np.int64)[stats.indices]
    _review(model, options, folder, stats, spec, preprocessor, head, feeds, layer, t)
    return stats


def _review(
    model: Any,
    options: Any,
    folder: Any,
    stats: DatasetStats,
    spec: Any,
    preprocessor: Any,
    head: Head,
    feeds: Any,
    layer: str | None,
    t: Any,
) -> None:
    """The data-set review over the pass' per-image arrays, and the suggested classes' CAMs for the
    label-issue gallery."""
    from reportgen.analyses import review
    from reportgen.images import folders

    stats.review = review.build(
        stats.probs,
        stats.labels,
        stats.confusion if stats.labelled else None,
        stats.hashes,
        stats.embeddings,
        stats.properties,
        sigmoid=head.kind == "sigmoid" and not head.is_binary,
        top_k=options.top_k,
        t=t,
    )
    shown = stats.review.label_issues[: review.GALLERY]
    if shown and layer is not None:
        from reportgen.analyses.cam import explain

        x = folders.load_inputs(folder, [int(stats.indices[i.index]) for i in shown], spec, preprocessor)
        maps = explain(
            model, layer, x, classes=[i.suggested for i in shown], head=head, feeds=feeds
        ).heatmaps[:, 0]
        for issue, m in zip(shown, maps):
            issue.cam = np.asarray(m, dtype=np.float64)
