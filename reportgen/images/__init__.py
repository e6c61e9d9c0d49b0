"""Input images for the feature-map and Grad-CAM sections: load, fit, preprocess.

Everything an image goes through before it reaches the model happens here and
in :mod:`reportgen.preprocessing`, so the report can state it exactly:

1. **Load** (:func:`~reportgen.images.decode.load_pixels`): PNG, JPEG, BMP, GIF (first frame) and ``.npy``
   arrays. The result is always 8-bit pixels, grey (H x W x 1) or RGB (H x W x 3):

   - 16-bit images are scaled to 8 bits (``value / 257``, so 65535 -> 255);
   - an alpha channel (RGBA, grey + alpha, palette transparency) is composited
     over white -- transparent areas are white, as a viewer shows them;
   - palette, CMYK and other modes are converted to RGB;
   - ``.npy`` arrays (H x W, H x W x 1/3/4, or a batch of one) are taken as
     pixels: ``uint8`` as they are, ``uint16`` scaled like a 16-bit PNG, floats in
     0..1 multiplied by 255, floats in 0..255 as they are; anything else is refused.

2. **Fit** (:func:`~reportgen.images.fit.fit_to_input`) to the model's input height x width **keeping
   the aspect ratio**: the image is scaled (bicubic, antialiased) until it
   covers the target, then the centre is cropped -- as torchvision's
   ``Resize`` + ``CenterCrop``, and unlike ``load_img(target_size=...)``, which
   squashes the picture. Grey images are repeated to RGB for RGB models; RGB
   images are converted to grey (ITU-R 601 luma) for one-channel models. A model
   whose input size is not fixed (``None``) gets 224 x 224.

3. **Preprocess** with :class:`reportgen.preprocessing.Preprocessor`
   (``--preprocess``); the value range that reached the model is recorded.

Each step is recorded in :attr:`~reportgen.images.prepared.PreparedImage.steps` and shown in the report.
Bad input raises :class:`UserError` naming the file and the fix.

The modules, each importing only those above it:

- :mod:`~reportgen.images.decode`: image files to 8-bit pixels (:func:`load_pixels`), every format;
- :mod:`~reportgen.images.fit`: the model's image input (:class:`InputSpec`) and fitting pixels to it;
- :mod:`~reportgen.images.labels`: class names from a file, ImageNet's, a class's label;
- :mod:`~reportgen.images.folders`: ``--images`` folders: files, labels from class sub-folders, batches;
- :mod:`~reportgen.images.prepared`: the images a report analyses (:class:`PreparedImage`), prepared.

Nothing here knows the model's classifier head: which names its outputs get is
:mod:`reportgen.analyses.labels`.
"""

from reportgen.images.decode import load_pixels
from reportgen.images.fit import DEFAULT_SIZE, InputSpec, fit_to_input, image_input_spec, require_image_input
from reportgen.images.labels import imagenet_class_names, label_for, load_class_names
from reportgen.images.prepared import PreparedImage, load_image, prepare, prepare_inputs, sample_photo_path

__all__ = [
    "DEFAULT_SIZE",
    "InputSpec",
    "PreparedImage",
    "fit_to_input",
    "image_input_spec",
    "imagenet_class_names",
    "label_for",
    "load_class_names",
    "load_image",
    "load_pixels",
    "prepare",
    "prepare_inputs",
    "require_image_input",
    "sample_photo_path",
]
