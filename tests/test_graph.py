"""Layer selections that live in reportgen.graph: stages, Grad-CAM target, defaults."""

from __future__ import annotations

import keras

from reportgen import graph
from reportgen.analyses.cam import find_target_layer


def se_model() -> keras.Model:
    """Two resolution stages, each with a squeeze-and-excitation block (1x1-pixel convs)."""
    inp = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="s1_conv")(inp)
    s = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
    s = keras.layers.Conv2D(2, 1, name="s1_se_reduce")(s)
    s = keras.layers.Conv2D(8, 1, activation="sigmoid", name="s1_se_expand")(s)
    x = keras.layers.Multiply()([x, s])
    x = keras.layers.Conv2D(8, 3, padding="same", name="s1_project")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", name="s2_conv")(x)
    s = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
    s = keras.layers.Conv2D(4, 1, name="s2_se_reduce")(s)
    s = keras.layers.Conv2D(16, 1, activation="sigmoid", name="s2_se_expand")(s)
    x = keras.layers.Multiply()([x, s])
    x = keras.layers.Conv2D(16, 3, padding="same", name="s2_project")(x)
    x = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
    x = keras.layers.Conv2D(5, 1, name="logits")(x)  # a conv classifier on one pixel, as in MobileNetV3
    out = keras.layers.Activation("softmax")(keras.layers.Flatten()(x))
    return keras.Model(inp, out)


def test_squeeze_excitation_convs_neither_start_nor_split_a_stage():
    model = se_model()
    starts = [r.path for r in graph.stage_starts(graph.conv_layers(model))]
    assert starts == ["s1_conv", "s2_conv"]


def test_gradcam_target_is_the_last_conv_that_still_has_a_map():
    assert find_target_layer(se_model()).path == "s2_project"


def test_vgg16_stages_are_the_tutorials_layers(vgg16):
    vgg = vgg16  # conftest: VGG16(weights=None), built once a session
    assert [r.path for r in graph.default_pattern_layers(vgg)] == [f"block{i}_conv1" for i in range(1, 6)]
    assert find_target_layer(vgg).path == "block5_conv3"
    assert len(graph.default_feature_layers(vgg)) == 18  # 13 conv + 5 pooling, all of them


def test_unknown_spatial_sizes_are_traced_at_a_concrete_size():
    model = keras.applications.MobileNetV3Small(weights=None, input_shape=(None, None, 3), include_top=True)
    # The last spatial output before the head: conv_1's hard-swish activation, after the last conv itself.
    target = find_target_layer(model)
    paths = [r.path for r in graph.walk(model)]
    assert type(target.layer).__name__ == "Activation" and paths.index(target.path) > paths.index("conv_1")
    assert target.output_shape[-1] == graph.anatomy(model).ref("conv_1").output_shape[-1]
    starts = [r.path for r in graph.default_pattern_layers(model)]
    assert len(starts) == 5 and starts[0] == "conv"


class ChannelAttention(keras.layers.Layer):
    """CBAM's channel gate: a Dense bottleneck on the pooled map, a sigmoid weight per channel."""

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.reduce = keras.layers.Dense(channels // 2, activation="relu")
        self.expand = keras.layers.Dense(channels, activation="sigmoid")

    def call(self, x):
        return x * self.expand(self.reduce(keras.ops.mean(x, axis=(1, 2), keepdims=True)))


class GatedBlock(keras.layers.Layer):
    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv2D(channels, 3, padding="same")
        self.gate = ChannelAttention(channels)

    def call(self, x):
        return x + self.gate(self.conv(x))


def test_a_cnn_with_attention_gates_after_a_patchify_stem_is_a_cnn():
    """A ConvNeXt-like 4x4 stride-4 stem and blocks with a channel-attention gate: the gate's Dense layers
    act on the pooled map, not on each token, so these are no transformer blocks (ViTDet's are: its attention
    projects every token of its map)."""
    inp = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 4, strides=4, name="stem")(inp)
    x = GatedBlock(8, name="block_1")(x)
    x = GatedBlock(8, name="block_2")(x)
    out = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inp, out)
    assert "ChannelAttention" in {r.class_name for r in graph.walk(model)}
    assert graph.token_blocks(model) == []
    assert graph.model_kind(model) == "CNN"
