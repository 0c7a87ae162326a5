"""PNG plots for BENCHMARKS.md (matplotlib, installed by `make bench`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PLOTS = Path(__file__).resolve().parent / "plots"


@contextmanager
def _figure(name: str, title: str, xlabel: str, ylabel: str) -> Iterator[Any]:
    """Axes to draw on; on exit, labelled, with a legend, saved as PLOTS/name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    PLOTS.mkdir(exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 4), dpi=110)
    try:
        yield ax
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.legend()
        ax.set_title(title)
        fig.tight_layout()
        fig.savefig(PLOTS / name)
    finally:
        plt.close(fig)


def calls_over_time(results: dict, budget: int, name: str = "designs-calls.png") -> Path:
    """Calls per minute as the server counted them, in 10 s bins, one line per design."""
    title = "Calls counted by the protocol server, per design"
    axes = ("seconds into the steady stretch", "calls/min (server, 10 s bins)")
    with _figure(name, title, *axes) as ax:
        for design, r in results.items():
            times = sorted(t for arrivals in r["arrivals"].values() for t in arrivals)
            if not times:
                continue
            bins = [i * 10.0 for i in range(int(max(times) // 10) + 1)]
            counts = [sum(1 for t in times if b <= t < b + 10) * 6 for b in bins]
            ax.plot([b + 5 for b in bins], counts, marker="o", label=design)
        ax.axhline(budget, color="grey", linestyle="--", label=f"budget {budget}/min")
    return PLOTS / name


def memory_over_time(series: dict, title: str, name: str = "fullmarket-memory.png") -> Path:
    """Resident memory of each process over a whole run, sampled from outside (psutil)."""
    with _figure(name, title, "seconds since `neo start`", "resident memory (MB)") as ax:
        for process, points in series.items():
            if points:
                ax.plot([t for t, _ in points], [mb for _, mb in points], label=process)
    return PLOTS / name


def calls_per_interface(
    arrivals: dict[str, list[float]], title: str, name: str = "fullmarket-calls.png"
) -> Path:
    """Calls per minute the server counted for each interface, in 60 s bins, over a run."""
    with _figure(name, title, "seconds since `neo start`", "calls in each minute (server)") as ax:
        for api, times in sorted(arrivals.items()):
            if len(times) < 10:  # stock_basic, trade_cal: a handful of calls
                continue
            bins = [0] * (int(max(times) // 60) + 1)
            for t in times:
                if t >= 0:
                    bins[int(t // 60)] += 1
            ax.step([60 * i for i in range(len(bins))], bins, where="post", label=api)
    return PLOTS / name


def cpu_over_time(series: dict, title: str, name: str = "fullmarket-cpu.png") -> Path:
    """Cores each process kept busy between samples, from its CPU seconds (psutil) over a run;
    `series`: process -> [(seconds since start, CPU seconds used so far)]."""
    with _figure(name, title, "seconds since `neo start`", "cores busy") as ax:
        for process, points in series.items():
            pairs = [(a, b) for a, b in zip(points, points[1:], strict=False) if b[0] > a[0]]
            if pairs:
                ax.plot(
                    [b[0] for _, b in pairs],
                    [(b[1] - a[1]) / (b[0] - a[0]) for a, b in pairs],
                    label=process,
                )
    return PLOTS / name
