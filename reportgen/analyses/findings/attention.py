"""The check that reads a transformer's attention: heads that look everywhere alike, or only at themselves."""

from __future__ import annotations

from typing import Any

from reportgen.analyses.findings.core import Finding, finding
from reportgen.config import Thresholds


def check_attention(found: Any, t: Thresholds) -> list[Finding]:
    """Heads whose attention, on the given images, is uniform over every token or stays on each token itself.

    A uniform head (normalised entropy at least ``attention_uniform_entropy``)
    averages every token alike: in a trained model it contributes no
    position-specific information, and every head of a freshly initialised
    transformer looks like this. A self-only head (each token keeps at least
    ``attention_self_mass`` of its attention) passes each token through
    unchanged. Both are measured on the report's images only.
    """
    out: list[Finding] = []
    for h in getattr(found, "stats", None) or []:
        if h.entropy >= t.attention_uniform_entropy:
            out.append(
                finding(
                    "attention_uniform",
                    h.layer,
                    h.head,
                    h.entropy,
                    t.attention_uniform_entropy,
                    f"head {h.head} of {h.layer} attends almost uniformly to every token on the given images "
                    f"(normalised entropy {h.entropy:.3f}): it mixes all "
                    "tokens alike, as a freshly initialised head does",
                )
            )
        if h.self_mass >= t.attention_self_mass:
            out.append(
                finding(
                    "attention_self",
                    h.layer,
                    h.head,
                    h.self_mass,
                    t.attention_self_mass,
                    f"head {h.head} of {h.layer} keeps {100 * h.self_mass:.0f}% "
                    "of each token's attention on the token "
                    "itself on the given images: it passes tokens through without mixing them",
                )
            )
    return out
