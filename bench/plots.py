"""PNG plots for BENCHMARKS.md (matplotlib, installed by `make bench`)."""

from __future__ import annotations

from pathlib import Path

PLOTS = Path(__file__).resolve().parent / "plots"


def calls_over_time(results: dict, budget: int, name: str = "designs-calls.png") -> Path:
    """Calls per minute as the server counted them, in 10 s bins, one line per design."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    PLOTS.mkdir(exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 4), dpi=110)
    for design, r in results.items():
        times = sorted(t for arrivals in r["arrivals"].values() for t in arrivals)
        if not times:
            continue
        end = max(times)
        bins = [i * 10.0 for i in range(int(end // 10) + 1)]
        counts = [sum(1 for t in times if b <= t < b + 10) * 6 for b in bins]
        ax.plot([b + 5 for b in bins], counts, marker="o", label=design)
    ax.axhline(budget, color="grey", linestyle="--", label=f"budget {budget}/min")
    ax.set_xlabel("seconds into the steady stretch")
    ax.set_ylabel("calls/min (server, 10 s bins)")
    ax.set_ylim(bottom=0)
    ax.legend()
    ax.set_title("Calls counted by the protocol server, per design")
    fig.tight_layout()
    path = PLOTS / name
    fig.savefig(path)
    plt.close(fig)
    return path


def memory_over_time(series: dict, title: str, name: str = "fullmarket-memory.png") -> Path:
    """Resident memory of each process over a whole run, sampled from outside (psutil)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    PLOTS.mkdir(exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 4), dpi=110)
    for process, points in series.items():
        if points:
            ax.plot([t for t, _ in points], [mb for _, mb in points], label=process)
    ax.set_xlabel("seconds since `neo start`")
    ax.set_ylabel("resident memory (MB)")
    ax.set_ylim(bottom=0)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    path = PLOTS / name
    fig.savefig(path)
    plt.close(fig)
    return path


def calls_per_interface(
    arrivals: dict[str, list[float]], title: str, name: str = "fullmarket-calls.png"
) -> Path:
    """Calls per minute the server counted for each interface, in 60 s bins, over a run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    PLOTS.mkdir(exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 4), dpi=110)
    for api, times in sorted(arrivals.items()):
        if len(times) < 10:  # stock_basic, trade_cal: a handful of calls
            continue
        bins = [0] * (int(max(times) // 60) + 1)
        for t in times:
            if t >= 0:
                bins[int(t // 60)] += 1
        ax.step([60 * i for i in range(len(bins))], bins, where="post", label=api)
    ax.set_xlabel("seconds since `neo start`")
    ax.set_ylabel("calls in each minute (server)")
    ax.set_ylim(bottom=0)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    path = PLOTS / name
    fig.savefig(path)
    plt.close(fig)
    return path


def cpu_over_time(series: dict, title: str, name: str = "fullmarket-cpu.png") -> Path:
    """Cores each process kept busy between samples, from its CPU seconds (psutil) over a run;
    `series`: process -> [(seconds since start, CPU seconds used so far)]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    PLOTS.mkdir(exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 4), dpi=110)
    for process, points in series.items():
        pairs = list(zip(points, points[1:], strict=False))
        if pairs:
            ax.plot(
                [b[0] for a, b in pairs],
                [(b[1] - a[1]) / (b[0] - a[0]) if b[0] > a[0] else 0 for a, b in pairs],
                label=process,
            )
    ax.set_xlabel("seconds since `neo start`")
    ax.set_ylabel("cores busy")
    ax.set_ylim(bottom=0)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    path = PLOTS / name
    fig.savefig(path)
    plt.close(fig)
    return path
