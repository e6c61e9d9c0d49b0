"""The model as a reader of the report sees it: every layer with its path, in call order.

Keras models come in two shapes, and reportgen takes both:

- **Functional and Sequential models** have a graph. :func:`flat_graph`
  re-traces it once on fresh symbolic inputs, descending into nested
  Sequential and functional models, so that every layer -- nested or not --
  has a symbolic output connected to the outer input. Keras 3 graphs also
  hold *operations* that are not layers (``x + y``, ``ops.hard_swish``): they
  are walked and listed like layers, with no weights.
- **Subclassed models** (a ``call`` method written in Python) have no graph to
  cut. Their layers are found in the layer tree (attributes, ``keras.Sequential``
  blocks, nested models) and their call order and output shapes are recorded
  during one forward pass on a zero input, the way forward hooks work in other
  frameworks (:mod:`reportgen.graph.hooks`). Custom layers with sublayers inside
  a functional model are recorded the same way.

Either way a layer is named by its path (``vgg16/block1_conv1``,
``block2/conv``): the names of the models and blocks that hold it, then its
own. :func:`walk` gives every layer with its path, depth, input and output
shape; :class:`Anatomy` adds the model's inputs and outputs. Every layer
selection (kernel layers, conv layers, feature-map layers, stages) lives here
and nowhere else.

The package, one module per idea, each importing only those above it:

- :mod:`~reportgen.graph.trace`: a functional model's graph re-traced on fresh symbolic inputs
  (:class:`LayerRef`, :func:`flat_graph`), the layer tree by path;
- :mod:`~reportgen.graph.kinds`: what a layer is (conv, pooling, kernel, activation);
- :mod:`~reportgen.graph.hooks`: forward hooks on layer instances (taps, recording a subclassed model's
  calls);
- :mod:`~reportgen.graph.anatomy`: every layer by path with its shapes, the inputs and outputs;
- :mod:`~reportgen.graph.forward`: ONE forward pass with taps, built on the trace and the hooks;
- :mod:`~reportgen.graph.probe`: sizes found by running the model (shapes at a size, minimum input size);
- :mod:`~reportgen.graph.selection`: which layers each section shows (stages, defaults, the layers findings
  point at).

This ``__init__`` re-exports the names of all but ``hooks`` and ``forward``
(``reportgen.graph.forward`` is imported as a module).
"""

from reportgen.graph.tokens import TokenGrid  # noqa: F401
from reportgen.graph.trace import (  # noqa: F401
    DEFAULT_SIZE,
    FlatGraph,
    LayerRef,
    StopTrace,
    TensorSpec,
    _FLAT_CACHE,
    _functional_inputs,
    _inference,
    _run_graph,
    _shape,
    _trace,
    children,
    flat_graph,
    is_traceable,
    layer_tree,
    weights_of,
)

from reportgen.graph.kinds import (  # noqa: F401
    CONV_TYPES,
    KERNEL_TYPES,
    POOLING_TYPES,
    activation_name,
    is_conv,
    is_pooling,
    kernel_variables,
    main_kernel,
)

from reportgen.graph.anatomy import (  # noqa: F401
    Anatomy,
    _ANATOMY_CACHE,
    _DECLARED,
    _flatten,
    _functional_anatomy,
    _output_names,
    _single_pixel,
    _subclassed_anatomy,
    anatomy,
    conv_layers,
    declare_input_shape,
    declared_input_shapes,
    feature_map_layers,
    has_spatial_output,
    image_input,
    image_input_index,
    kernel_layers,
    one_pixel,
    spatial_layers,
    token_grid,
    spatial_part,
    spatial_size,
    walk,
    weighted_layers,
)

from reportgen.graph.probe import (  # noqa: F401
    _all_sublayers,
    _nodes_kept,
    _with_concrete_sizes,
    ancestors,
    even_batches,
    images_per_batch,
    images_within,
    map_elements,
    min_input_size,
    shapes_at,
)

from reportgen.graph.axes import off_axes_message, on_image_axes  # noqa: F401
from reportgen.graph.selection import (  # noqa: F401
    FULL_DETAIL_LAYERS,
    MAX_ALL_PATTERN_LAYERS,
    MAX_DEFAULT_FEATURE_LAYERS,
    default_feature_layers,
    default_pattern_layers,
    detail_layers,
    find_layers,
    last_map_conv,
    cam_layer,
    model_kind,
    token_blocks,
    evenly,
    model_stage_starts,
    model_stages,
    pattern_candidates,
    stage_starts,
    stages,
)
