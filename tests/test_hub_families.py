"""Every keras-hub vision family of this keras-hub version, in a tiny configuration, gets every section (issue
32).

One report each (JSON only: the PDF's layout is tested in test_pages.py), computed once for the module. The
truths are independent of reportgen: keras-hub's own ``predict`` (its converter, then the network) on the same
pixels, each family's token layout as keras-hub documents it (a class token for ViT, CLIP, MetaCLIP 2 and
BLIP-2, class + distillation for DeiT, class + 4 registers for DINOv2 and DINOv3, none for SigLIP and Gemma 3,
whose encoders pool their tokens, and none for ViTDet, whose tokens stay a map), each model's own attention
layers (Swin's windows, MiT's spatial reduction, ViTDet's windowed and global blocks), and the warnings Keras
raises while a report runs. The families not swept are named in NOT_SWEPT, each with its reason.
"""

from __future__ import annotations

import reportgen  # noqa: F401  (quiets TensorFlow before it is imported)

import contextlib
import io
import warnings

import numpy as np
import pytest

keras_hub = pytest.importorskip("keras_hub", reason="keras-hub is an optional extra (reportgen[hub])")
import keras  # noqa: E402

import hub_models  # noqa: E402
from reportgen import Report, graph  # noqa: E402

SECTIONS = "findings,overview,layers,weights,kernels,features,gradcam,patterns"
# Small settings: every section runs, on one image, with one CAM method and a few ascent steps.
SMALL = dict(
    top_k=1, faithfulness_steps=0, pattern_steps=2, pattern_filters=2, max_filters=4, feature_channels=4
)

TRANSFORMERS = {
    "vit",
    "deit",
    "dinov2",
    "dinov3",
    "swin",
    "siglip",
    "clip",
    "mit",
    "metaclip2",
    "blip2",
    "gemma3",
    "vitdet",
}
# Tokens before the patches, as keras-hub builds each family.
PREFIX = {
    "vit": 1,
    "deit": 2,
    "dinov2": 5,
    "dinov3": 5,
    "clip": 1,
    "siglip": 0,
    "metaclip2": 1,
    "blip2": 1,
    "gemma3": 0,
}
# Attention layers of their own (not Keras MultiHeadAttention): no rollout, and a note that names them.
OWN_ATTENTION = {"dinov3": "DINOV3Attention", "gemma3": "Gemma3VisionAttention"}
# ViTDet's tokens are no sequence: they stay an (H, W, C) map (test_vitdet_is_a_transformer_whose_...).
FAMILIES = list(hub_models.FAMILIES) + ["resnet_any_size"]


# The vision families of this keras-hub that the sweep does not report on, and why: none has an
# image-classifier head, and each is one of these -- its image encoder is a family swept above, or it is not
# a network from an image to a vector.
NOT_SWEPT = {
    # Segmenters, detectors and depth: a per-pixel or per-box output, on an encoder swept above.
    "basnet": "a segmenter (a ResNet backbone, swept, and a refinement decoder)",
    "deeplabv3": "a segmenter (a ResNet backbone, swept, and an ASPP decoder)",
    "segformer": "a segmenter (a MiT encoder, swept, and an all-MLP decoder)",
    "sam": "a promptable segmenter (a ViTDet image encoder, swept, a prompt encoder and a mask decoder)",
    "sam3": "a promptable segmenter (text and box prompts, a detector and a mask decoder)",
    "retinanet": "an object detector (a ResNet backbone, swept, with a feature pyramid and box heads)",
    "dfine": "an object detector (an HGNetV2 backbone, swept, and a DETR decoder)",
    "depthanything": "a depth estimator (a DINOv2 encoder, swept, and a DPT head)",
    # Vision-language and generative models: the image goes into a language model or comes out of one.
    "gemma3n": "a vision-language model; its vision encoder is MobileNetV5, swept",
    "gemma4": (
        "a vision-language model whose vision encoder takes flattened patches and their positions, cut by "
        "its converter outside the network: there is no image input to feed"
    ),
    "paligemma": "a vision-language model; its vision encoder is its own copy of SigLIP's ViT (swept)",
    "qwen3_5": "a vision-language model; its vision tower takes flattened patches cut by its converter",
    "qwen3_5moe": "a vision-language model; its vision tower takes flattened patches cut by its converter",
    "t5gemma2": "an encoder-decoder language model; its image encoder is Gemma 3's, swept as gemma3",
    "parseq": "a text recogniser (a ViT encoder and a character decoder): its output is a string",
    "videoprism": "a video encoder: its input is a clip of frames",
    "flux": "an image generator (text to image)",
    "stablediffusion3": "an image generator (text to image, image to image)",
}


def _family(name: str, suffix: str) -> str:
    """``SwinTransformerImageClassifier`` -> ``swin``: a keras-hub class's family, as the sweep names it."""
    f = name[: -len(suffix)].lower()
    return {"swintransformer": "swin", "sam3promptableconcept": "sam3"}.get(f, f)


def _families_of_this_keras_hub() -> set[str]:
    """Every vision family this keras-hub exposes (lower-cased): an ``ImageClassifier`` subclass, a vision
    encoder, an image converter (what a model that takes images ships), or a backbone built on an image
    shape, size or encoder."""
    import inspect

    found = set()
    for space in (keras_hub.models, keras_hub.layers):
        for n in dir(space):
            for suffix in ("ImageClassifier", "VisionEncoder", "ImageConverter"):
                if n.endswith(suffix) and n != suffix:
                    found.add(_family(n, suffix))
            if n.endswith("Backbone") and n != "Backbone":
                takes = set(inspect.signature(getattr(space, n).__init__).parameters)
                if takes & {"image_shape", "image_size", "image_encoder", "vision_encoder", "input_shape"}:
                    found.add(_family(n, "Backbone"))
    return found


def _build(name: str):
    if name == "resnet_any_size":  # a backbone of no fixed size whose converter says 64 px (a preset's case)
        return hub_models.resnet_any_size()
    return hub_models.FAMILIES[name]()


def _pixels(name: str, model) -> np.ndarray:
    size = graph.image_input(model).shape[1] or 64  # resnet_any_size: its converter's 64 px
    rng = np.random.default_rng(len(name))
    return rng.integers(0, 256, (size, size, 3)).astype(np.uint8)


@pytest.fixture(scope="module")
def reports():
    """{family: (model, pixels, report json, page variables, warnings raised while it ran, stderr)}."""
    out = {}
    for name in FAMILIES:
        keras.utils.set_random_seed(0)
        model = _build(name)
        pixels = _pixels(name, model)
        err = io.StringIO()
        with warnings.catch_warnings(record=True) as raised, contextlib.redirect_stderr(err):
            # What a plain ``python3 -m reportgen`` shows: every warning once, deprecations only to
            # developers.
            warnings.simplefilter("default")
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
            report = Report(model, images=[pixels], sections=SECTIONS, name=name, quiet=True, **SMALL)
            data = report.json
            variables = report._build()[2]
        out[name] = (model, pixels, data, variables, [str(w.message) for w in raised], err.getvalue())
    return out


def test_the_sweep_covers_every_vision_family_of_this_keras_hub():
    """A family keras-hub adds is a family this sweep has to add, or to name in NOT_SWEPT with the reason."""
    families = _families_of_this_keras_hub()
    missing = families - set(FAMILIES) - set(NOT_SWEPT)
    assert not missing, (
        f"keras-hub vision families neither in tests/hub_models.py nor in NOT_SWEPT: {missing}"
    )
    assert not set(FAMILIES) & set(NOT_SWEPT)
    # Every image-classifier task is swept.
    tasks = {_family(n, "ImageClassifier") for n in dir(keras_hub.models) if n.endswith("ImageClassifier")}
    assert tasks - {""} <= set(FAMILIES)


@pytest.mark.parametrize("name", FAMILIES)
def test_every_section_runs_quietly(reports, name):
    _model, _pixels, data, _v, raised, err = reports[name]
    assert data["section_errors"] == []
    assert set(SECTIONS.split(",")) <= set(data["sections"])
    assert data["kernels"] and data["feature_maps"]["layers"] and data["patterns"]
    assert data["gradcam"]["layer"] and data["images"][0]["gradcam"]
    assert raised == [], (
        raised
    )  # Keras' input-structure and WindowAttention mask warnings are known, and caught
    assert err == ""
    assert not [n for n in data["notes"] if n["kind"] == "keras_warning"]


@pytest.mark.parametrize("name", FAMILIES)
def test_predictions_equal_keras_hubs_own(reports, name):
    """A task's ``predict`` runs its own converter; a bare encoder has none, and the report says it guessed
    /255."""
    model, pixels, data, _v, _r, _e = reports[name]
    if getattr(model, "preprocessor", None) is not None:
        want = model.predict(pixels[None].astype("float32"), verbose=0)[0]
    else:
        assert "preprocess_guessed" in {n["kind"] for n in data["notes"]}
        want = keras.ops.convert_to_numpy(model(pixels[None].astype("float32") / 255.0))[0]
    # A head that is not a softmax (keras-hub's MobileNet ignores ``activation``) gives values, not
    # probabilities.
    got = {
        p["index"]: p["probability"] if p.get("probability") is not None else p["value"]
        for p in data["images"][0]["predictions"]
    }
    top = int(np.argmax(want))
    assert max(got, key=got.get) == top
    np.testing.assert_allclose(got[top], want[top], atol=1e-5)


@pytest.mark.parametrize("name", FAMILIES)
def test_the_title_names_the_models_kind(reports, name):
    assert reports[name][3]["model_kind"] == ("vision transformer" if name in TRANSFORMERS else "CNN")


@pytest.mark.parametrize("name", sorted(PREFIX))
def test_attention_notes_are_true_of_each_model(reports, name):
    """Rollout on the grid after the model's own prefix tokens, read from the class token exactly where there
    is one; DINOv3's attention is its own layer: no rollout, and no other family's wording about it."""
    model, _p, data, _v, _r, _e = reports[name]
    att = data["attention"]
    grid = graph.token_blocks(model)[-1].grid
    assert grid.prefix == PREFIX[name]
    selection = data["feature_maps"]["selection"]
    assert ("left out" in selection) == (PREFIX[name] > 0)
    assert ("the class token left out" in selection) == (PREFIX[name] == 1)
    if name in OWN_ATTENTION:
        assert att["read_from"] is None and att["layers"] == []
        assert OWN_ATTENTION[name] in att["note"]
        assert not any(w in att["note"] for w in ("Swin", "window", "class token", "strided"))
        return
    assert att["note"] is None
    assert np.shape(data["images"][0]["attention_rollout"]) == (grid.height, grid.width)
    assert ("class token's row" in att["read_from"]) == (PREFIX[name] > 0)


def test_vitdet_is_a_transformer_whose_tokens_stay_a_map(reports):
    """ViTDet (SAM's image encoder) keeps its patch tokens as a (4, 4, 16) map through its blocks: they are
    its transformer blocks, shown as the maps they are; its own attention layer is named, with the windows
    its blocks hold (the first 2x2, the second global); the CAM is a CNN's, on the last map of its neck,
    which hands every token on to the head."""
    model, _p, data, _v, _r, _e = reports["vitdet"]
    blocks = graph.token_blocks(model)
    assert [b.class_name for b in blocks] == ["WindowedTransformerEncoder"] * 2
    assert all(b.grid is None and tuple(b.output_shape[1:]) == (4, 4, 16) for b in blocks)
    paths = [b.path for b in blocks]
    bb = next(layer for layer in model.layers if type(layer).__name__ == "ViTDetBackbone")
    patches = next(layer for layer in bb.layers if type(layer).__name__ == "ViTDetPatchingAndEmbedding")
    assert data["feature_maps"]["layers"] == [f"{bb.name}/{patches.name}/{patches.projection.name}"] + paths
    selection = data["feature_maps"]["selection"]
    assert "2 of 2 transformer blocks" in selection and "4x4 map" in selection
    assert "class token" not in selection and "left out" not in selection
    assert list(data["patterns"]) == paths
    att = data["attention"]
    assert att["read_from"] is None and att["layers"] == [] and att["grid"] is None
    assert "attention_rollout" not in data["images"][0]
    assert "MultiHeadAttentionWithRelativePE" in att["note"]
    assert "within its 2x2 window in 1 of the 2 blocks" in att["note"]
    assert "to every token in 1 of the 2 blocks" in att["note"]
    assert not any(w in att["note"] for w in ("Swin", "strided", "class token"))
    assert data["gradcam"]["layer"] == f"{bb.name}/{bb.neck.name}/{bb.neck.layers[-1].name}"
    assert data["gradcam"]["layer_resolution"] == [4, 4]


def test_swin_and_mit_notes_say_how_they_attend(reports):
    swin, mit = reports["swin"][2]["attention"]["note"], reports["mit"][2]["attention"]["note"]
    window = reports["swin"][0].backbone.get_config()["window_size"]
    assert f"within its {window}x{window} window" in swin and "strided" not in swin
    ratios = reports["mit"][0].backbone.get_config()["layerwise_sr_ratios"]
    assert "window" not in mit and "Swin" not in mit
    assert all(f"{r}x{r}" in mit for r in ratios) and "strided conv" in mit


def test_siglip_runs_on_the_token_count_it_makes(reports):
    """SigLIP's embedding declares 17 tokens (a class token it never makes); 16 come out of its blocks."""
    model, _p, data, _v, _r, _e = reports["siglip"]
    block = graph.token_blocks(model)[0]
    seen = keras.ops.convert_to_numpy(
        model.get_layer("sig_lip_vision_encoder").embedding(np.zeros((1, 32, 32, 3)))
    )
    assert block.output_shape[1] == seen.shape[1] == 16
    assert data["patterns"]


def test_the_cam_of_a_task_with_a_backbone_is_in_the_backbone(reports):
    """keras-hub's VGG head is a 7x7 conv and a 1x1 conv: on 64 px they hold a 2x2 map. The CAM goes in the
    backbone, at its last conv's 16x16 (two 2x2 poolings before the third block)."""
    model, _p, data, _v, _r, _e = reports["vgg"]
    assert data["gradcam"]["layer"].startswith("vgg_backbone/")
    assert data["gradcam"]["layer_resolution"] == [hub_models.VGG_SIZE // 4] * 2


def test_a_backbone_of_any_size_gets_its_converters_size(reports):
    """The network takes any size; its converter says 64 px: the report feeds 64 px and says where that came
    from (the predictions test holds them against keras-hub's predict at that size)."""
    model, _p, data, _v, _r, _e = reports["resnet_any_size"]
    assert graph.image_input(model).shape[1] is None
    assert tuple(model.preprocessor.image_converter.image_size) == (64, 64)
    note = next(n for n in data["notes"] if n["kind"] == "input_size")
    assert "64x64 px" in note["message"] and "converter" in note["message"]
    assert "input_size" not in {
        n["kind"] for n in reports["resnet"][2]["notes"]
    }  # a fixed input says nothing
