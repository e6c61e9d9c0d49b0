"""Figures are specs the describe stage builds and only the present stage draws: every figure of a full
report draws an image, once, and the page shows it."""

from __future__ import annotations

import reportgen  # noqa: F401

import base64
import io
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from conftest import small_cnn
from reportgen import Report, figures


@pytest.fixture(scope="module")
def labelled_folder(tmp_path_factory):
    """Three classes, each brighter in its own colour channel, four images each."""
    root = tmp_path_factory.mktemp("colours")
    rng = np.random.default_rng(0)
    for c, name in enumerate(("red", "green", "blue")):
        (root / name).mkdir()
        for k in range(4):
            px = rng.integers(0, 128, (16, 16, 3), dtype=np.uint8)
            px[..., c] += 100
            Image.fromarray(px).save(root / name / f"{k}.png")
    return root


def _image(uri: str) -> str:
    """The format of a data URI's image, checked by decoding it ("png", "jpeg" or "svg")."""
    head, _, body = uri.partition(",")
    assert head in ("data:image/png;base64", "data:image/jpeg;base64", "data:image/svg+xml;base64"), head[:40]
    raw = base64.b64decode(body, validate=True)
    if head.startswith("data:image/svg"):
        assert b"<svg" in raw[:2000]
        return "svg"
    img = Image.open(io.BytesIO(raw))
    img.load()
    assert img.width > 10 and img.height > 10
    return img.format.lower()


def test_every_figure_of_a_full_report_draws_an_image_once_and_the_page_shows_it(
    monkeypatch, labelled_folder
):
    calls: Counter = Counter()

    def counted(name, paint):
        def wrapper(*a, **k):
            calls[name] += 1
            return paint(*a, **k)

        return wrapper

    for name, paint in list(figures.PAINTERS.items()):
        monkeypatch.setitem(figures.PAINTERS, name, counted(name, paint))
    r = Report(
        small_cnn(classes=3),
        images=[str(labelled_folder)],
        pattern_steps=2,
        pattern_filters=2,
        robustness_sample=3,
        corruptions="contrast",
        epsilons="8",
        pgd_steps=1,
    )
    _ctx, _data, variables = r._build()
    found = list(figures.find(variables))
    assert calls == Counter()  # describing drew nothing
    sections = {f.painter.split(".")[0] for f in found}
    assert {
        "weights",
        "kernels",
        "features",
        "gradcam",
        "patterns",
        "findings",
        "dataset",
        "robustness",
    } <= sections
    assert all(f.painter in figures.PAINTERS for f in found)
    uris = [f.draw() for f in found]
    assert {_image(u) for u in uris} <= {"png", "jpeg", "svg"}
    html = r.html()
    html_again = r.html()
    assert sum(calls.values()) == len(found)  # each drawn once, though two pages were rendered
    assert html == html_again
    for f, uri in zip(found, uris):
        assert f.drawn and f.draw() is uri and uri in html, f
