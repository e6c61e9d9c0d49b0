"""Class names from a file (``--class-names``), the shipped ImageNet names, and a class's label.

Which names a model's outputs get (they depend on its classifier head) is
:func:`reportgen.analyses.labels.class_names`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from reportgen.errors import UserError

IMAGENET_CLASSES = Path(__file__).parent.parent / "data" / "imagenet_classes.txt"


def load_class_names(path: str | os.PathLike) -> list[str]:
    """Class names from a file: a JSON list, or one name per line (blank lines ignored).

    A Keras ``imagenet_class_index.json`` (``{"0": ["n01440764", "tench"], ...}``)
    is accepted too.
    """
    from reportgen import guard

    p = Path(path)
    if guard.present(p) and not os.path.isdir(
        p
    ):  # a FIFO, /dev/zero or a huge file: refused before it is read
        guard.check_file(p, "--class-names:", "pass a text file with one class name per line", guard.TEXT_CAP)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(
            f"--class-names: '{p}' does not exist; pass a text file with one class name per line"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(
            f"--class-names: '{p}' cannot be read ({exc}); pass a UTF-8 text or JSON file"
        ) from None
    stripped = text.strip()
    if stripped.startswith("[") or stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise UserError(
                f"--class-names: '{p}' is not valid JSON ({exc.msg}, line {exc.lineno}); "
                "write a JSON list of names or one name per line"
            ) from None
        if isinstance(data, dict):
            try:
                items = sorted(((int(k), v) for k, v in data.items()), key=lambda kv: kv[0])
            except ValueError:
                raise UserError(
                    f"--class-names: '{p}' is a JSON object with non-integer keys; write a JSON list of names"
                ) from None
            if [k for k, _ in items] != list(range(len(items))):
                raise UserError(
                    f"--class-names: '{p}' does not number its classes 0..{len(items) - 1}; "
                    "write a JSON list of names"
                )
            data = [v[-1] if isinstance(v, list) and v else v for _, v in items]
        if not isinstance(data, list) or not all(isinstance(n, (str, int, float)) for n in data):
            raise UserError(f"--class-names: '{p}' must hold a JSON list of names")
        names = [str(n) for n in data]
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise UserError(f"--class-names: '{p}' holds no names; write one class name per line")
    return names


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet class names in Keras' ``imagenet_class_index.json`` order (shipped)."""
    return [
        line.strip() for line in IMAGENET_CLASSES.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def label_for(index: int, names: Sequence[str] | None) -> str:
    if names is not None and 0 <= index < len(names):
        return str(names[index])
    return f"class {index}"
