"""Small keras-hub image models built offline from their configurations (no preset download).

The backbones reviewers bring in 2026 -- ViT, DeiT, DINOv2, Swin and a hub CNN
-- at sizes that build and run in a second or two on 2 cores, each with an
image-classifier head where keras-hub has one (a pooled dense head on the
backbone where it does not), so that every section has an output to explain.
"""

from __future__ import annotations

from typing import Any, Callable

import keras

SIZE = 32


def vit(classes: int = 2, **kw: Any) -> Any:
    import keras_hub

    bb = keras_hub.models.ViTBackbone(
        image_shape=(SIZE, SIZE, 3), patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64, **kw
    )
    return keras_hub.models.ViTImageClassifier(backbone=bb, num_classes=classes, activation="softmax")


def deit(classes: int = 2) -> Any:
    import keras_hub

    bb = keras_hub.models.DeiTBackbone(
        image_shape=(SIZE, SIZE, 3),
        patch_size=8,
        num_layers=2,
        num_heads=2,
        hidden_dim=32,
        intermediate_dim=64,
    )
    return keras_hub.models.DeiTImageClassifier(backbone=bb, num_classes=classes, activation="softmax")


def _pooled_head(backbone: Any, classes: int, name: str) -> keras.Model:
    """A classifier on a backbone that keras-hub ships without one: mean over the tokens, then softmax."""
    x = keras.Input((SIZE, SIZE, 3), name="images")
    y = backbone(x)
    if len(y.shape) == 3:
        y = keras.layers.GlobalAveragePooling1D(name="pool")(y)
    elif len(y.shape) == 4:
        y = keras.layers.GlobalAveragePooling2D(name="pool")(y)  # (SigLIP's encoder pools its tokens itself)
    return keras.Model(x, keras.layers.Dense(classes, activation="softmax", name="predictions")(y), name=name)


def dinov2(classes: int = 2) -> Any:
    import keras_hub

    bb = keras_hub.models.DINOV2Backbone(
        patch_size=8,
        num_layers=2,
        hidden_dim=32,
        num_heads=2,
        intermediate_dim=64,
        num_register_tokens=4,
        layer_scale_init_value=1e-5,
        image_shape=(SIZE, SIZE, 3),
        position_embedding_shape=(SIZE, SIZE, 3),
    )
    return _pooled_head(bb, classes, "dinov2_classifier")


def swin(classes: int = 2) -> Any:
    import keras_hub

    bb = keras_hub.models.SwinTransformerBackbone(
        image_shape=(SIZE, SIZE, 3),
        embed_dim=16,
        depths=[2, 2],
        num_heads=[2, 2],
        window_size=4,
        patch_size=2,
        drop_path=0.0,
    )
    return keras_hub.models.SwinTransformerImageClassifier(
        backbone=bb, num_classes=classes, activation="softmax"
    )


def resnet(classes: int = 3, preprocessor: bool = False) -> Any:
    import keras_hub

    bb = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 32],
        stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2],
        block_type="basic_block",
        image_shape=(SIZE, SIZE, 3),
    )
    pre = None
    if preprocessor:
        conv = keras_hub.layers.ResNetImageConverter(image_size=(SIZE, SIZE), scale=1 / 127.5, offset=-1)
        pre = keras_hub.models.ResNetImageClassifierPreprocessor(image_converter=conv)
    return keras_hub.models.ResNetImageClassifier(
        backbone=bb, num_classes=classes, preprocessor=pre, activation="softmax"
    )


BUILDERS: dict[str, Callable[[], Any]] = {
    "vit": vit,
    "deit": deit,
    "dinov2": dinov2,
    "swin": swin,
    "resnet": resnet,
}


# ------------------------------------------------------------------------------------------------------------
# Every keras-hub vision family of this keras-hub version (issue 32): a tiny configuration each, with the
# family's own image converter where it has one, so that the report's predictions can be held against
# keras-hub's own ``predict``.


def _hub():
    import keras_hub

    return keras_hub


def _task(family: str, backbone: Any, classes: int = 2, size: int = SIZE, **kw: Any) -> Any:
    """``<Family>ImageClassifier`` with its own preprocessor (the family's converter at ``size``)."""
    kh = _hub()
    conv = getattr(kh.layers, f"{family}ImageConverter")(image_size=(size, size), scale=1 / 255.0)
    pre = getattr(kh.models, f"{family}ImageClassifierPreprocessor")(image_converter=conv)
    return getattr(kh.models, f"{family}ImageClassifier")(
        backbone=backbone, num_classes=classes, preprocessor=pre, activation="softmax", **kw
    )


VGG_SIZE = 64


def vgg(classes: int = 2) -> Any:
    """keras-hub's VGG at 64 px: its backbone ends on an 8x8 map, its head's 7x7 ``fc1`` conv makes it 2x2."""
    bb = _hub().models.VGGBackbone(
        stackwise_num_repeats=[1, 1, 1], stackwise_num_filters=[4, 8, 8], image_shape=(VGG_SIZE, VGG_SIZE, 3)
    )
    return _task("VGG", bb, classes, size=VGG_SIZE, pooling_hidden_dim=8)


def densenet(classes: int = 2) -> Any:
    bb = _hub().models.DenseNetBackbone(
        stackwise_num_repeats=[1, 1], growth_rate=4, image_shape=(SIZE, SIZE, 3)
    )
    return _task("DenseNet", bb, classes)


def xception(classes: int = 2) -> Any:
    bb = _hub().models.XceptionBackbone(
        stackwise_conv_filters=[[4, 8], [8, 8]], stackwise_pooling=[True, False], image_shape=(SIZE, SIZE, 3)
    )
    return _task("Xception", bb, classes)


def cspnet(classes: int = 2) -> Any:
    bb = _hub().models.CSPNetBackbone(
        stem_filters=8,
        stem_kernel_size=3,
        stem_strides=1,
        stackwise_depth=[1, 1],
        stackwise_strides=[2, 2],
        stackwise_num_filters=[8, 16],
        block_type="dark_block",
        stage_type="dark",
        image_shape=(SIZE, SIZE, 3),
    )
    return _task("CSPNet", bb, classes)


def hgnetv2(classes: int = 2) -> Any:
    bb = _hub().models.HGNetV2Backbone(
        depths=[1, 1],
        embedding_size=8,
        hidden_sizes=[16, 16],
        stem_channels=[3, 8, 8],
        hidden_act="relu",
        use_learnable_affine_block=False,
        stackwise_stage_filters=[(8, 8, 16, 1, 1, 3), (16, 8, 16, 1, 1, 3)],
        apply_downsample=[False, True],
        use_lightweight_conv_block=[False, True],
        image_shape=(SIZE, SIZE, 3),
    )
    return _task("HGNetV2", bb, classes)


def efficientnet(classes: int = 2) -> Any:
    bb = _hub().models.EfficientNetBackbone(
        stackwise_width_coefficients=[1.0, 1.0],
        stackwise_depth_coefficients=[1.0, 1.0],
        stackwise_kernel_sizes=[3, 3],
        stackwise_num_repeats=[1, 1],
        stackwise_input_filters=[8, 8],
        stackwise_output_filters=[8, 16],
        stackwise_expansion_ratios=[1, 2],
        stackwise_squeeze_and_excite_ratios=[0.25, 0.25],
        stackwise_strides=[1, 2],
        stackwise_block_types=["v1", "v1"],
        stackwise_force_input_filters=[0, 0],
        stackwise_nores_option=[False, False],
        num_features=32,
        input_shape=(SIZE, SIZE, 3),
        dropout=0.0,
    )
    return _task("EfficientNet", bb, classes)


def mobilenet(classes: int = 2) -> Any:
    bb = _hub().models.MobileNetBackbone(
        stackwise_expansion=[[16], [24]],
        stackwise_num_blocks=[1, 1],
        stackwise_num_filters=[[8], [16]],
        stackwise_kernel_size=[[3], [3]],
        stackwise_num_strides=[[2], [1]],
        stackwise_se_ratio=[[None], [0.25]],
        stackwise_activation=[["relu"], ["hard_swish"]],
        stackwise_padding=[[1], [1]],
        output_num_filters=32,
        depthwise_filters=8,
        depthwise_stride=2,
        depthwise_residual=False,
        last_layer_filter=32,
        squeeze_and_excite=0.5,
        input_num_filters=8,
        image_shape=(SIZE, SIZE, 3),
    )
    return _task("MobileNet", bb, classes)


def mit(classes: int = 2) -> Any:
    bb = _hub().models.MiTBackbone(
        layerwise_depths=[1, 1],
        num_layers=2,
        layerwise_num_heads=[1, 2],
        layerwise_sr_ratios=[2, 1],
        max_drop_path_rate=0.0,
        layerwise_patch_sizes=[7, 3],
        layerwise_strides=[4, 2],
        hidden_dims=[8, 16],
        image_shape=(SIZE, SIZE, 3),
    )
    return _task("MiT", bb, classes)


def dinov3(classes: int = 2) -> Any:
    bb = _hub().models.DINOV3Backbone(
        patch_size=8,
        num_layers=2,
        hidden_dim=32,
        num_heads=2,
        intermediate_dim=64,
        num_register_tokens=4,
        image_shape=(SIZE, SIZE, 3),
    )
    return _pooled_head(bb, classes, "dinov3_classifier")


def siglip(classes: int = 2) -> Any:
    from keras_hub.src.models.siglip.siglip_vision_encoder import SigLIPVisionEncoder

    enc = SigLIPVisionEncoder(
        patch_size=8,
        hidden_dim=32,
        num_layers=2,
        num_heads=2,
        intermediate_dim=64,
        image_shape=(SIZE, SIZE, 3),
    )
    return _pooled_head(enc, classes, "siglip_classifier")


def clip(classes: int = 2) -> Any:
    from keras_hub.src.models.clip.clip_vision_encoder import CLIPVisionEncoder

    enc = CLIPVisionEncoder(
        patch_size=8,
        hidden_dim=32,
        num_layers=2,
        num_heads=2,
        intermediate_dim=64,
        image_shape=(SIZE, SIZE, 3),
    )
    return _pooled_head(enc, classes, "clip_classifier")


def mobilenetv5(classes: int = 2) -> Any:
    """keras-hub's MobileNetV5 (Gemma 3n's vision encoder) at 32 px: an edge-residual stage, two universal
    inverted residual stages, a mobile multi-query attention block on the last one, and the multi-scale
    fusion adapter over the last two stages (4x4 out). Its task takes no ``activation``: the head gives
    logits."""
    kh = _hub()
    bb = kh.models.MobileNetV5Backbone(
        stackwise_block_types=[["er"], ["uir", "uir"], ["uir", "mqa"]],
        stackwise_num_blocks=[1, 2, 2],
        stackwise_num_filters=[[8], [16, 16], [16, 16]],
        stackwise_strides=[[2], [2, 1], [2, 1]],
        stackwise_act_layers=[["relu"], ["gelu", "gelu"], ["gelu", "gelu"]],
        stackwise_exp_ratios=[[2.0], [2.0, 2.0], [2.0, 0.0]],
        stackwise_se_ratios=[[0.0], [0.0, 0.0], [0.0, 0.0]],
        stackwise_dw_kernel_sizes=[[0], [3, 0], [3, 0]],
        stackwise_dw_start_kernel_sizes=[[0], [3, 0], [3, 0]],
        stackwise_dw_end_kernel_sizes=[[0], [0, 0], [0, 0]],
        stackwise_exp_kernel_sizes=[[3], [0, 0], [0, 0]],
        stackwise_pw_kernel_sizes=[[1], [0, 0], [0, 0]],
        stackwise_num_heads=[[0], [0, 0], [0, 2]],
        stackwise_key_dims=[[0], [0, 0], [0, 8]],
        stackwise_value_dims=[[0], [0, 0], [0, 8]],
        stackwise_kv_strides=[[0], [0, 0], [0, 1]],
        stackwise_use_cpe=[[False], [False, False], [False, False]],
        stem_size=8,
        num_features=32,
        use_msfa=True,
        msfa_indices=(-2, -1),
        msfa_output_resolution=4,
        layer_scale_init_value=1e-5,
        image_shape=(SIZE, SIZE, 3),
    )
    conv = kh.layers.MobileNetV5ImageConverter(image_size=(SIZE, SIZE), scale=1 / 255.0)
    pre = kh.models.MobileNetV5ImageClassifierPreprocessor(image_converter=conv)
    return kh.models.MobileNetV5ImageClassifier(backbone=bb, num_classes=classes, preprocessor=pre)


def metaclip2(classes: int = 2) -> Any:
    enc = _hub().models.MetaCLIP2VisionEncoder(
        patch_size=8,
        hidden_dim=32,
        num_layers=2,
        num_heads=2,
        intermediate_dim=64,
        image_shape=(SIZE, SIZE, 3),
    )
    return _pooled_head(enc, classes, "metaclip2_classifier")


def blip2(classes: int = 2) -> Any:
    """BLIP-2's vision encoder (an EVA ViT with a class token)."""
    enc = _hub().models.BLIP2VisionEncoder(
        image_size=SIZE,
        patch_size=8,
        num_layers=2,
        num_heads=2,
        hidden_dim=32,
        intermediate_dim=64,
        use_patch_bias=True,
        use_class_token=True,
        use_mha_bias=True,
        use_mlp_bias=True,
        dropout_rate=0.0,
        layer_norm_epsilon=1e-6,
        initializer_range=0.02,
    )
    return _pooled_head(enc, classes, "blip2_classifier")


def gemma3(classes: int = 2) -> Any:
    """Gemma 3's vision encoder (a SigLIP ViT, then an average pool of its 4x4 patch grid to 2x2 tokens for
    the language model). It takes a stack of images per example, ``(batch, images, H, W, 3)``: one image each
    here."""
    enc = _hub().models.Gemma3VisionEncoder(
        image_size=SIZE,
        patch_size=8,
        num_heads=2,
        hidden_dim=32,
        num_layers=2,
        intermediate_dim=64,
        output_dim=16,
        pool_size=2,
    )
    x = keras.Input((SIZE, SIZE, 3), name="images")
    y = enc(keras.layers.Reshape((1, SIZE, SIZE, 3), name="one_image")(x))
    y = keras.layers.GlobalAveragePooling1D(name="pool")(y)
    out = keras.layers.Dense(classes, activation="softmax", name="predictions")(y)
    return keras.Model(x, out, name="gemma3_classifier")


def vitdet(classes: int = 2) -> Any:
    """keras-hub's ViTDet (SAM's image encoder) at 32 px: 8-px patches on a 4x4 grid, kept as a (4, 4, 16)
    map through its blocks, the first attending within 2x2 windows, the second globally, then its neck's two
    convs (8 channels). It has no classifier: a pooled dense head on its map."""
    bb = _hub().models.ViTDetBackbone(
        hidden_size=16,
        num_layers=2,
        intermediate_dim=32,
        num_heads=2,
        global_attention_layer_indices=[1],
        image_shape=(SIZE, SIZE, 3),
        patch_size=8,
        num_output_channels=8,
        window_size=2,
    )
    return _pooled_head(bb, classes, "vitdet_classifier")


FAMILIES: dict[str, Callable[[], Any]] = {
    "vit": vit,
    "deit": deit,
    "dinov2": dinov2,
    "dinov3": dinov3,
    "swin": swin,
    "siglip": siglip,
    "clip": clip,
    "mit": mit,
    "resnet": lambda: resnet(classes=2, preprocessor=True),
    "vgg": vgg,
    "densenet": densenet,
    "xception": xception,
    "cspnet": cspnet,
    "hgnetv2": hgnetv2,
    "efficientnet": efficientnet,
    "mobilenet": mobilenet,
    "mobilenetv5": mobilenetv5,
    "metaclip2": metaclip2,
    "blip2": blip2,
    "gemma3": gemma3,
    "vitdet": vitdet,
}


def resnet_any_size(classes: int = 2) -> Any:
    """A ResNet whose network takes any size and whose converter resizes to 64 px: a preset's usual shape."""
    kh = _hub()
    bb = kh.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 8],
        stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2],
        block_type="basic_block",
        image_shape=(None, None, 3),
    )
    conv = kh.layers.ResNetImageConverter(image_size=(64, 64), scale=1 / 127.5, offset=-1)
    pre = kh.models.ResNetImageClassifierPreprocessor(image_converter=conv)
    return kh.models.ResNetImageClassifier(
        backbone=bb, num_classes=classes, preprocessor=pre, activation="softmax"
    )
