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

    bb = keras_hub.models.ViTBackbone(image_shape=(SIZE, SIZE, 3), patch_size=8, num_layers=2, num_heads=2,
                                      hidden_dim=32, mlp_dim=64, **kw)
    return keras_hub.models.ViTImageClassifier(backbone=bb, num_classes=classes, activation="softmax")


def deit(classes: int = 2) -> Any:
    import keras_hub

    bb = keras_hub.models.DeiTBackbone(image_shape=(SIZE, SIZE, 3), patch_size=8, num_layers=2, num_heads=2,
                                       hidden_dim=32, intermediate_dim=64)
    return keras_hub.models.DeiTImageClassifier(backbone=bb, num_classes=classes, activation="softmax")


def _pooled_head(backbone: Any, classes: int, name: str) -> keras.Model:
    """A classifier on a backbone that keras-hub ships without one: mean over the tokens, then softmax."""
    x = keras.Input((SIZE, SIZE, 3), name="images")
    y = backbone(x)
    if len(y.shape) == 3:
        y = keras.layers.GlobalAveragePooling1D(name="pool")(y)
    else:
        y = keras.layers.GlobalAveragePooling2D(name="pool")(y)
    return keras.Model(x, keras.layers.Dense(classes, activation="softmax", name="predictions")(y), name=name)


def dinov2(classes: int = 2) -> Any:
    import keras_hub

    bb = keras_hub.models.DINOV2Backbone(patch_size=8, num_layers=2, hidden_dim=32, num_heads=2,
                                         intermediate_dim=64, num_register_tokens=4, layer_scale_init_value=1e-5,
                                         image_shape=(SIZE, SIZE, 3), position_embedding_shape=(SIZE, SIZE, 3))
    return _pooled_head(bb, classes, "dinov2_classifier")


def swin(classes: int = 2) -> Any:
    import keras_hub

    bb = keras_hub.models.SwinTransformerBackbone(image_shape=(SIZE, SIZE, 3), embed_dim=16, depths=[2, 2],
                                                  num_heads=[2, 2], window_size=4, patch_size=2, drop_path=0.0)
    return keras_hub.models.SwinTransformerImageClassifier(backbone=bb, num_classes=classes, activation="softmax")


def resnet(classes: int = 3, preprocessor: bool = False) -> Any:
    import keras_hub

    bb = keras_hub.models.ResNetBackbone(input_conv_filters=[64], input_conv_kernel_sizes=[3],
                                         stackwise_num_filters=[64, 32], stackwise_num_blocks=[1, 1],
                                         stackwise_num_strides=[1, 2], block_type="basic_block",
                                         image_shape=(SIZE, SIZE, 3))
    pre = None
    if preprocessor:
        conv = keras_hub.layers.ResNetImageConverter(image_size=(SIZE, SIZE), scale=1 / 127.5, offset=-1)
        pre = keras_hub.models.ResNetImageClassifierPreprocessor(image_converter=conv)
    return keras_hub.models.ResNetImageClassifier(backbone=bb, num_classes=classes, preprocessor=pre,
                                                  activation="softmax")


BUILDERS: dict[str, Callable[[], Any]] = {"vit": vit, "deit": deit, "dinov2": dinov2, "swin": swin,
                                          "resnet": resnet}
