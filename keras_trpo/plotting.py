"""Learning-curve PNG from a training history (matplotlib, no display needed)."""
from __future__ import annotations

import io
from typing import Mapping, Sequence

from keras_trpo_serving.files import atomic_write_bytes


def plot_learning_curve(history: Mapping[str, Sequence[float]], path: str, title: str = "") -> None:
    """Mean episode return (last 100 episodes) against timesteps, and KL per iteration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = history.get("timesteps", [])
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax1.plot(steps, history.get("mean_return", []), color="tab:blue")
    ax1.set_ylabel("mean return (last 100 episodes)")
    ax1.set_title(title)
    ax1.grid(alpha=0.3)
    ax2.plot(steps, history.get("kl", []), color="tab:orange", lw=0.8)
    ax2.set_ylabel("KL of accepted step")
    ax2.set_xlabel("timesteps")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
