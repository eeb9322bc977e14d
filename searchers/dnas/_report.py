"""``report.md`` of :func:`raynas.searchers.dnas.explain`: the scores next to their baselines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Rows of the headline table: key in ``scores["codes"]`` and label.
ROWS = (
    ("trained", "trained code"),
    ("rotated", "rotated code (random orthogonal matrix)"),
    ("beta0", "beta = 0 autoencoder (same cells and schedule)"),
)
#: Columns of the headline table: key in a row of ``scores["codes"]`` and label.
COLUMNS = (
    ("mig", "MIG (independent factors)"),
    ("dci_disentanglement", "DCI disentanglement"),
    ("dci_completeness", "DCI completeness"),
    ("dci_informativeness", "DCI informativeness"),
)


def _fmt(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, (int, float)) else str(x)


def headline_table(scores: dict[str, Any]) -> list[str]:
    """Markdown lines: one row per code (trained, rotated, beta = 0), one column per score."""
    lines = ["| code | " + " | ".join(label for _, label in COLUMNS) + " |", "|---|" + "---|" * len(COLUMNS)]
    for key, label in ROWS:
        row = scores["codes"].get(key)
        cells = [_fmt(row[k]) for k, _ in COLUMNS] if row else ["not trained (baselines off)"] + [""] * (len(COLUMNS) - 1)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def report_markdown(file, s, base_arch, scores: dict[str, Any], figures: dict, tables: dict) -> str:
    """The whole ``report.md`` of one explained study."""
    factors = scores["factors"]
    trained = scores["codes"]["trained"]
    lines = [
        f"# DNAS controller explained: {file}",
        "",
        f"- space: {s.space.name}; latent size {s.ctrl_config.latent_size}; "
        f"{len(s.evaluated)} evaluated cells; decoding validity {scores['validity_rate']:.3f}",
        f"- base cell of the traversals: `{s.space.to_string(base_arch)}`",
        f"- figures: {', '.join(Path(p).name for p in figures.values())}; "
        f"traversal table: {Path(tables['traversals']).name}",
        "",
        f"## Disentanglement over the {len(factors)} independent factors: MIG {scores['mig']:.3f}",
        "",
        "The independent factors are the tokens at the sequence positions that vary over the cells "
        f"({', '.join(factors) if len(factors) <= 12 else ', '.join(factors[:12]) + ', ...'}). "
        "MIG (Chen et al., 2018) is the mean over factors of (top MI - second MI) / H(factor), "
        "the mutual information of each discretised latent dimension with the factor. A score means "
        "something only next to its baselines, scored the same way on the same cells: the rotated "
        "code keeps all the information but none of the axis alignment, and the beta = 0 "
        "autoencoder shows what training without the KL term gives.",
        "",
        *headline_table(scores),
        "",
        "DCI (Eastwood & Williams, 2018) comes from one multinomial logistic probe per factor on the "
        "standardised code; informativeness is its mean held-out accuracy "
        f"(chance, always guessing the most frequent token: {trained['chance']:.3f}). "
        f"Modularity (Ridgeway & Mozer, 2018): trained {trained['modularity']:.3f}, rotated "
        f"{scores['codes']['rotated']['modularity']:.3f} (in scores.json only: it hardly penalises "
        "a rotation).",
    ]
    b0 = scores.get("baseline", {}).get("beta0")
    if b0:
        lines.append(f"The beta = 0 autoencoder replayed {b0['rounds']} training round(s), "
                     f"{b0['epochs']} epochs, seed {b0['seed']}, in {b0['seconds']:.1f} s.")
    lines += [
        "",
        "### Per factor (trained code)",
        "",
        "| factor | H (nats) | MIG gap | top dims | top MI | DCI completeness | probe accuracy | chance |",
        "|---|---|---|---|---|---|---|---|",
    ]
    items = scores["attributes"].items()
    for name, a in ((n, a) for n, a in items if a["kind"] == "factor"):
        lines.append(
            f"| {name} | {a['entropy']:.3f} | {a['gap']:.3f} | {', '.join(map(str, a['dims']))} "
            f"| {max(a['mi']):.3f} | {_fmt(a.get('completeness', '-'))} | {a['accuracy']:.3f} | {a['chance']:.3f} |"
        )
    derived = [(n, a) for n, a in items if a["kind"] == "derived"]
    if derived:
        lines += [
            "",
            "### Derived attributes (functions of several factors: no single dimension can capture "
            "them; not in the headline)",
            "",
            "| attribute | H (nats) | gap | top dims | top MI |",
            "|---|---|---|---|---|",
        ]
        for name, a in derived:
            lines.append(
                f"| {name} | {a['entropy']:.3f} | {a['gap']:.3f} | {', '.join(map(str, a['dims']))} "
                f"| {max(a['mi']):.3f} |"
            )
    if scores["skipped"]:
        lines += ["", f"constant over these cells (skipped): {', '.join(scores['skipped'])}"]
    lines += ["", "## Correlation of each latent dimension with accuracy (Pearson r)", ""]
    ranked = sorted(scores["pearson"].items(), key=lambda kv: -abs(kv[1]))
    lines += [f"- z{d}: {r:+.3f}" for d, r in ranked[:10]]
    lines.append("")
    lines.append(Path(tables["traversals"]).read_text())
    return "\n".join(lines)
