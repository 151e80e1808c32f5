"""Tables of the equal-budget comparison (issue 16, docs/results.md) from the runs, the benches and one evaluation.

    python scripts/compare_report.py --runs ~/runs/compare --eval ~/runs/compare/eval > ~/runs/compare/tables.md

Reads, for each row of ``presets.COMPARE_ROWS`` (and ``<row>_seed<k>`` repeats when present):
  RUNS/<row>/summary.json, config.json   the run: steps, seconds, images/s (``inpaintlab train``)
  RUNS/bench_<row>.json                  one-thread training images/s (``inpaintlab bench --train``)
  RUNS/cost_<row>.json                   params, MACs, CPU latency at 256 (``inpaintlab bench --checkpoint``)
  EVAL/<label>/metrics.json              per-bin metrics and per-image values (``inpaintlab eval``)
and writes Markdown: the cost table, the claim table (each paper's pair: its difference, the paired standard
error over the same images and masks, the seed spread, and the verdict) and the seed table; with ``--curves
PNG`` also the validation PSNR of every run against the training images it had seen (RUNS/<row>/metrics.jsonl).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from inpaintlab.presets import COMPARE_ROWS

PAPER = {
    "lgnet": "LGNet",
    "msanet": "MSA-Net",
    "pconv_unet": "PConv U-Net (MSA-Net's backbone)",
    "cstfnet": "CSTFNet",
    "srpnet": "SRPNet",
    "pennet": "PEN-Net (SRPNet's baseline)",
    "pennet_lg": "PEN_LG (LGNet Table VIII)",
    "unet_cicm": "UNet-CICM",
    "unet15": "U-Net (CICM's backbone)",
}
# (method, baseline, the paper's claim): each paper's own comparison, reproduced at our scale
CLAIMS = [
    ("unet_cicm", "unet15", "CICM Table 3: CICM improves its U-Net backbone"),
    ("srpnet", "pennet", "SRPNet Table 5: SRPNet improves on PEN-Net"),
    ("pennet_lg", "pennet", "LGNet Table VIII: LG refinement improves PEN-Net"),
    ("msanet", "pconv_unet", "MSA-Net: multi-scale attention improves the PConv U-Net"),
    ("cstfnet", "lgnet", "CSTFNet Table 1: CSTFNet beats LGNet"),
]


def load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def paired(eval_dir: Path, a: str, b: str, metric: str = "psnr") -> tuple[float, float, dict[str, float]]:
    """(mean difference a - b, its standard error, per-bin mean differences) over the pairs both scored."""
    rows = [load(eval_dir / label / "metrics.json")["per_image"] for label in (a, b)]
    values = [{r["name"]: (r["bin_label"], r["values"][metric]) for r in row} for row in rows]
    common = sorted(set(values[0]) & set(values[1]))
    diffs = [values[0][n][1] - values[1][n][1] for n in common]
    mean = sum(diffs) / len(diffs)
    se = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1) / len(diffs))
    by_bin: dict[str, list[float]] = {}
    for n, d in zip(common, diffs):
        by_bin.setdefault(values[0][n][0], []).append(d)
    return mean, se, {label: sum(v) / len(v) for label, v in by_bin.items()}


def plot_curves(runs: Path, rows: list[str], path: Path) -> None:
    """Validation PSNR (the trainer's held-out windows) against training images seen, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for row in rows:
        log = runs / row / "metrics.jsonl"
        if not log.is_file():
            continue
        points = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        batch = COMPARE_ROWS[row.split("_seed")[0]].batch_size
        xs = [p["step"] * batch for p in points if "val/psnr" in p]
        ys = [p["val/psnr"] for p in points if "val/psnr" in p]
        ax.plot(xs, ys, "--" if "_seed" in row else "-", marker="o", markersize=3, label=row)
    ax.set_xlabel("training images seen (128 px crops)")
    ax.set_ylabel("validation PSNR (dB), 32 held-out photos")
    ax.set_title("Equal wall-clock budget: validation PSNR during training")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--eval", type=Path, required=True)
    parser.add_argument("--curves", type=Path, help="also write the validation curves of every run as this PNG")
    args = parser.parse_args()
    runs, evals = args.runs, args.eval
    if args.curves:
        seeds = sorted(p.name for p in runs.iterdir() if "_seed" in p.name and p.is_dir())
        plot_curves(runs, [*COMPARE_ROWS, *seeds], args.curves)

    print(
        "| row | paper | params | GMACs at 256 | CPU ms at 256 (2 threads) | train img/s (bench, 1 thread) | steps | images | "
        "run wall-clock (min) | held-out PSNR (dB) | SSIM | L1 (%) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in [*COMPARE_ROWS, "telea", "navier_stokes"]:
        cost, bench = load(runs / f"cost_{row}.json"), load(runs / f"bench_{row}.json")
        summary, report = load(runs / row / "summary.json"), load(evals / row / "metrics.json")
        cells = [f"`{row}`", PAPER.get(row, "classical (OpenCV)")]
        if cost:
            cells += [f"{cost['params']['total'] / 1e6:.2f} M", f"{cost['true_macs']['total'] / 1e9:.1f}",
                      f"{cost['cpu_latency']['median_ms']:.0f}"]  # fmt: skip
        else:
            cells += ["0", "-", "-"]
        cells.append(f"{bench['variants']['bf16']['images_per_s']:.1f}" if bench else "-")
        if summary:
            steps = summary["steps"]
            cells += [str(steps), f"{steps * COMPARE_ROWS[row].batch_size:,}", f"{summary['seconds'] / 60:.1f}"]
        else:
            cells += ["-", "-", "-"]
        overall = report["overall"] if report else {}
        cells += [
            f"{overall.get('psnr', math.nan):.2f}",
            f"{overall.get('ssim', math.nan):.4f}",
            f"{overall.get('l1', math.nan):.2f}",
        ]
        print("| " + " | ".join(cells) + " |")

    seeds = sorted(p.name for p in evals.iterdir() if p.name.startswith("lgnet_seed"))
    spread = 0.0
    print("\n| seed pair | PSNR difference (dB) | paired SE | per bin |")
    print("|---|---:|---:|---|")
    for other in seeds:
        mean, se, by_bin = paired(evals, "lgnet", other)
        spread = max(spread, abs(mean))
        bins = " / ".join(f"{v:+.2f}" for v in by_bin.values())
        print(f"| `lgnet` seed 0 - `{other}` | {mean:+.3f} | {se:.3f} | {bins} |")

    print("\n| claim | method - baseline PSNR (dB) | paired SE | per bin (0-10 ... 50-60 %) | verdict |")
    print("|---|---:|---:|---|---|")
    for method, baseline, claim in CLAIMS:
        if not all((evals / label / "metrics.json").is_file() for label in (method, baseline)):
            print(f"| {claim} | - | - | - | not evaluated |")
            continue
        mean, se, by_bin = paired(evals, method, baseline)
        threshold = max(2 * se, spread)
        verdict = "supports" if mean > threshold else "contradicts" if mean < -threshold else "too small to tell"
        bins = " / ".join(f"{v:+.2f}" for v in by_bin.values())
        print(f"| {claim} | {mean:+.3f} | {se:.3f} | {bins} | {verdict} (threshold {threshold:.2f} dB) |")


if __name__ == "__main__":
    main()
