"""keras-hub image backbones at realistic sizes: one default report each (HTML, PDF, JSON), built offline.

For each architecture, the model is built from its published configuration (random weights: no preset
download), given a classifier head where keras-hub has none, saved as .keras, and reported on by the CLI
in a child process at default settings. Printed per model: wall seconds, peak RSS of the child, PDF
pages, findings, section errors, the stage seconds of ``analysis_timings``. The goal is the zoo's: at
most 3 GB and 5 minutes each on 2 cores.

    python3 bench/hub.py                 # all
    python3 bench/hub.py vit_s16 swin_t  # some
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def build(name: str):
    import keras
    import keras_hub

    m = keras_hub.models
    keras.utils.set_random_seed(0)
    if name == "vit_s16":  # ViT-S/16 (22M): 12 blocks of 384, 6 heads
        bb = m.ViTBackbone(
            image_shape=(224, 224, 3), patch_size=16, num_layers=12, num_heads=6, hidden_dim=384, mlp_dim=1536
        )
        return m.ViTImageClassifier(backbone=bb, num_classes=1000, activation="softmax")
    if name == "deit_s16":  # DeiT-S/16 with its distillation token
        bb = m.DeiTBackbone(
            image_shape=(224, 224, 3),
            patch_size=16,
            num_layers=12,
            num_heads=6,
            hidden_dim=384,
            intermediate_dim=1536,
        )
        return m.DeiTImageClassifier(backbone=bb, num_classes=1000, activation="softmax")
    if name == "dinov2_s14":  # DINOv2-S/14 with 4 register tokens, pooled head
        bb = m.DINOV2Backbone(
            patch_size=14,
            num_layers=12,
            hidden_dim=384,
            num_heads=6,
            intermediate_dim=1536,
            num_register_tokens=4,
            layer_scale_init_value=1e-5,
            image_shape=(224, 224, 3),
        )
        x = keras.Input((224, 224, 3))
        y = keras.layers.GlobalAveragePooling1D()(bb(x))
        return keras.Model(
            x, keras.layers.Dense(1000, activation="softmax", name="predictions")(y), name="dinov2_s14"
        )
    if name == "swin_t":  # Swin-T: 96, depths 2-2-6-2, window 7
        bb = m.SwinTransformerBackbone(
            image_shape=(224, 224, 3),
            embed_dim=96,
            depths=[2, 2, 6, 2],
            num_heads=[3, 6, 12, 24],
            window_size=7,
            patch_size=4,
            drop_path=0.0,
        )
        return m.SwinTransformerImageClassifier(backbone=bb, num_classes=1000, activation="softmax")
    if name == "resnet50_hub":  # keras-hub's ResNet50 (bottleneck blocks 3-4-6-3)
        bb = m.ResNetBackbone(
            input_conv_filters=[64],
            input_conv_kernel_sizes=[7],
            stackwise_num_filters=[64, 128, 256, 512],
            stackwise_num_blocks=[3, 4, 6, 3],
            stackwise_num_strides=[1, 2, 2, 2],
            block_type="bottleneck_block",
            image_shape=(224, 224, 3),
        )
        return m.ResNetImageClassifier(backbone=bb, num_classes=1000, activation="softmax")
    raise SystemExit(f"unknown architecture {name!r}")


NAMES = ["vit_s16", "deit_s16", "dinov2_s14", "swin_t", "resnet50_hub"]


def pages(pdf: Path) -> int | None:
    try:
        import pypdfium2

        return len(pypdfium2.PdfDocument(str(pdf)))
    except Exception:  # noqa: BLE001
        return None


def main(argv: list[str]) -> None:
    names = argv or NAMES
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            path = Path(tmp) / f"{name}.keras"
            build(name).save(path)
            rss = Path(tmp) / f"{name}.rss"
            started = time.perf_counter()
            proc = subprocess.run(
                [
                    "/usr/bin/time",
                    "-f",
                    "%M",
                    "-o",
                    str(rss),
                    sys.executable,
                    "-m",
                    "reportgen",
                    str(path),
                    "--out",
                    tmp,
                    "--quiet",
                ],
                capture_output=True,
                text=True,
            )
            wall = time.perf_counter() - started
            peak_kb = int(rss.read_text().split()[-1]) if rss.exists() else None
            report = Path(tmp) / name / "report.json"
            r = json.loads(report.read_text()) if report.exists() else {}
            row = {
                "model": name,
                "exit": proc.returncode,
                "seconds": round(wall, 1),
                "peak_rss_gb": round(peak_kb / 1024 / 1024, 2) if peak_kb else None,
                "pages": pages(Path(tmp) / name / "report.pdf"),
                "findings": len(r.get("findings", [])),
                "errors": [e["section"] for e in r.get("section_errors", [])],
                "stages": r.get("analysis_timings", {}),
                "stderr": proc.stderr.strip().splitlines()[-1:],
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| model | exit | seconds | peak RSS (GB) | PDF pages | findings | slowest stages (s) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        slow = ", ".join(f"{k} {v:.0f}" for k, v in sorted(r["stages"].items(), key=lambda kv: -kv[1])[:3])
        print(
            f"| {r['model']} | {r['exit']} | {r['seconds']} | "
            f"{r['peak_rss_gb']} | {r['pages']} | {r['findings']} "
            f"| {slow} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
