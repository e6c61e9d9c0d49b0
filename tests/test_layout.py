"""The PDF laid out like a document (issue 32), checked on the rendered pages with pypdfium2
(tests/pdf_layout.py):

- no heading in the bottom fifth of a page without content after it on that page;
- no page under 40% filled unless a section ends there (the next page starts a section);
- no CAM prediction table at the top of a page without the CAM figure it belongs to.

A control first: the same checks on a page made to break those rules must fail, so that the checks can.
"""

from __future__ import annotations

import reportgen  # noqa: F401  (quiets TensorFlow before it is imported)

import numpy as np
import pytest

import pdf_layout as L

pytest.importorskip("weasyprint")


def _pdf_of(html: str, path) -> None:
    import weasyprint

    weasyprint.HTML(string=html).write_pdf(str(path))


def test_the_checks_catch_a_stranded_heading_and_a_half_empty_page(tmp_path):
    tall = '<div style="height: 215mm"></div>'
    figure = '<div style="height: 200mm; background: #888; break-inside: avoid"></div>'
    page = "<style>@page { size: A4; margin: 16mm 14mm 18mm 14mm } h3 { font-size: 11pt }</style>"
    _pdf_of(page + f"{tall}<h3>Image 1</h3>{figure}<p>after</p>", tmp_path / "bad.pdf")
    doc = L.pages(tmp_path / "bad.pdf")
    assert L.stranded_headings(doc) and L.underfilled(doc)
    _pdf_of(
        page + '<h2 style="font-size: 14pt">A section</h2><p>text</p>'
        '<h2 style="font-size: 14pt; break-before: page">The next</h2><p>text</p>',
        tmp_path / "ok.pdf",
    )
    doc = L.pages(tmp_path / "ok.pdf")
    assert not L.stranded_headings(doc) and not L.underfilled(doc)  # a section ends on a short page: allowed


def test_the_check_catches_a_table_parted_from_its_figure(tmp_path):
    page = "<style>@page { size: A4; margin: 16mm 14mm 18mm 14mm }</style>"
    image = (
        '<img style="display: block; width: 60mm; height: 255mm" src="data:image/png;base64,'
        'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg==">'
    )
    table = "<table><tr><th>rank</th><th>class</th></tr><tr><td>1</td><td>3</td></tr></table>"
    _pdf_of(page + image + table, tmp_path / "parted.pdf")
    assert L.orphaned_tables(tmp_path / "parted.pdf")
    _pdf_of(page + '<img style="height: 100mm" src="' + image.split('src="')[1] + table, tmp_path / "ok.pdf")
    assert not L.orphaned_tables(tmp_path / "ok.pdf")


def test_a_cam_figure_keeps_its_prediction_table(tmp_path):
    """Three images of five explained classes each: the third image's CAM figure ends near the foot of a
    page, where its table used to go on alone to the next one."""
    import keras

    from reportgen import Report

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(8, 3, activation="relu", name="c1"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(16, 3, activation="relu", name="c2"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (28, 28, 1)).astype(np.uint8) for _ in range(3)]
    out = tmp_path / "cams.pdf"
    Report(
        model, images=images, sections="findings,gradcam", quiet=True, top_k=5, faithfulness_steps=0
    ).to_file(out)
    doc = L.pages(out)
    assert not L.orphaned_tables(out)
    assert not L.stranded_headings(doc) and not L.underfilled(doc)


@pytest.fixture(scope="module")
def small_vit_pdf(tmp_path_factory):
    import keras

    import hub_models

    keras_hub = pytest.importorskip("keras_hub")  # noqa: F841
    from reportgen import Report

    keras.utils.set_random_seed(0)
    model = hub_models.vit()
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3)).astype(np.uint8)
    out = tmp_path_factory.mktemp("layout") / "small_vit.pdf"
    Report(
        model, images=[pixels], name="small_vit", quiet=True, pattern_steps=5, faithfulness_steps=0
    ).to_file(out)
    return out


def test_a_small_vit_report_keeps_headings_with_their_content_and_fills_its_pages(small_vit_pdf):
    doc = L.pages(small_vit_pdf)
    assert not L.stranded_headings(doc)
    assert not L.underfilled(doc)
    assert not L.orphaned_tables(small_vit_pdf)
    assert len(doc) <= 20


def test_pattern_mosaics_share_a_page(tmp_path):
    """A separable-conv model's 32- and 64-filter mosaics: at full width the 64's (8 rows) fills two thirds of
    a page, so the 32's was left alone on a page a third full; capped in print, they share one."""
    import keras

    from reportgen import Report

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(16, 3, activation="relu", padding="same", name="stem"),
            keras.layers.SeparableConv2D(32, 3, activation="relu", padding="same", name="sep1"),
            keras.layers.MaxPooling2D(name="pool1"),
            keras.layers.SeparableConv2D(
                64, 3, activation="relu", padding="same", depth_multiplier=2, name="sep2"
            ),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(5, activation="softmax", name="head"),
        ],
        name="sepconv",
    )
    out = tmp_path / "patterns.pdf"
    Report(model, sections="patterns", quiet=True, pattern_steps=5).to_file(out)
    doc = L.pages(out)
    assert not L.underfilled(doc) and not L.stranded_headings(doc)
