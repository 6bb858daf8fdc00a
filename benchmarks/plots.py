"""PNG plots of a benchmark report (``--plots``; needs matplotlib).

Three kinds: the per-step time of every implementation on each main workload (bars, with
the min-max range), the scaling curves of each sweep (time and time relative to hand, log
axes), and the loss curves of every implementation overlaid, one plot per main workload.
A WRONG or failing implementation is marked on the bars.
"""

from __future__ import annotations

from pathlib import Path

from .config import REFERENCE
from .workloads import SWEEP_TITLES, SWEEPS

_STYLES = ["-", "--", ":", "-.", (0, (5, 1)), (0, (1, 1)), (0, (3, 1, 1, 1))]


def _save(plt, fig, path: Path, written: list) -> None:
    """Write a figure to ``path``, close it, and note the file."""
    fig.tight_layout()
    written.append(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _time_bars(ax, w: dict, color: dict) -> None:
    """One workload's median per-step time by implementation, min-max as error bars."""
    results = w["results"]
    names = [n for n, e in results.items() if e["time"]]
    med = [results[n]["time"]["median_s"] * 1e6 for n in names]
    lo = [m - results[n]["time"]["min_s"] * 1e6 for n, m in zip(names, med)]
    hi = [results[n]["time"]["max_s"] * 1e6 - m for n, m in zip(names, med)]
    bars = ax.bar(names, med, yerr=[lo, hi], color=[color[n] for n in names], capsize=3)
    for i, (bar, n) in enumerate(zip(bars, names)):
        if results[n]["status"] != "OK":
            bar.set_hatch("xx")
            bar.set_edgecolor("tab:red")
            ax.annotate(results[n]["status"], (i, med[i]), ha="center", va="bottom",
                        color="tab:red")
    ax.set_yscale("log")
    ax.set_title(w["name"])
    ax.set_ylabel("µs per step (median, min-max)")
    ax.tick_params(axis="x", rotation=30)


def _sweep_lines(ax, ax2, points: list, color: dict) -> None:
    """Per implementation: median time (``ax``) and time / hand (``ax2``) over a sweep."""
    xs = [w["sweep"]["value"] for w in points]
    for name in points[0]["results"]:
        ys = [(w["results"][name]["time"] or {}).get("median_s") for w in points]
        pts = [(x, y * 1e6) for x, y in zip(xs, ys) if y]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=name, color=color[name])
        rs = [(x, w["results"][name]["ratio_to_hand"]) for x, w in zip(xs, points)
              if w["results"][name]["ratio_to_hand"]]
        if rs and name != REFERENCE:
            ax2.plot(*zip(*rs), marker="o", label=name, color=color[name])


def _sweep_figure(plt, axis: str, points: list, color: dict):
    """The figure of one sweep: time per step, and time relative to hand."""
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    _sweep_lines(ax, ax2, points, color)
    for a in (ax, ax2):
        a.set_xscale("log", base=2)
        a.set_yscale("log")
        a.set_xlabel(axis)
        a.legend()
        a.grid(True, which="both", alpha=0.3)
    ax.set_ylabel("µs per step (median)")
    ax2.set_ylabel("time / hand")
    ax2.axhline(1.0, color="gray", lw=0.8)
    fig.suptitle(f"Scaling: {SWEEP_TITLES[axis]} (float32)")
    return fig


def _loss_figure(plt, w: dict, color: dict):
    """The loss curves of every implementation on one workload, overlaid."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (name, e) in enumerate(w["results"].items()):
        if e["loss_curve"]:
            ax.plot(e["loss_curve"], linestyle=_STYLES[i % len(_STYLES)], lw=1.5,
                    color=color[name], label=f"{name} ({e['status']})")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (before the update)")
    ax.set_title(f"{w['name']}: loss curves, all implementations")
    ax.legend()
    return fig


def write_plots(report: dict, directory: Path) -> list:
    """Write the PNG plots of a report.

    Parameters
    ----------
    report : dict
        The report of :func:`benchmarks.suite.run`.
    directory : Path
        Created when missing.

    Returns
    -------
    list of Path
        The files written: ``time_per_step.png``, ``scaling_<axis>.png`` per sweep,
        ``loss_<workload>.png`` per main workload.

    Raises
    ------
    ImportError
        Without matplotlib.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    color = {n: palette[i % len(palette)] for i, n in enumerate(report["implementations"])}
    main = [w for w in report["workloads"] if w["sweep"] is None]
    if main:
        fig, axes = plt.subplots(1, len(main), figsize=(4 * len(main), 3.6), squeeze=False)
        for ax, w in zip(axes[0], main):
            _time_bars(ax, w, color)
        _save(plt, fig, directory / "time_per_step.png", written)
    for axis in SWEEPS:
        points = [w for w in report["workloads"] if w["group"] == axis]
        if points:
            _save(plt, _sweep_figure(plt, axis, points, color),
                  directory / f"scaling_{axis}.png", written)
    for w in main:
        _save(plt, _loss_figure(plt, w, color), directory / f"loss_{w['name']}.png", written)
    return written
