"""Soak run (`make soak`, not in CI): a worker with every pipeline role under a steady article stream for N minutes;
reports worker RSS and consumer lag over time as a table and a PNG.

    PYTHONPATH=. python tests/reliability/soak.py --minutes 30 --rate 20 [--real] [--out runs/soak]

Lag = articles produced to articles.raw - offsets the worker's group committed there (committed offsets are exact
on every broker; Tansu's end offsets are not). The fake pipeline is the default (Kafka behaviour); --real loads the
trained filters (model memory and speed).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import Worker, article, committed, fresh_settings, rss_mb  # noqa: E402

from streams.app import group_id  # noqa: E402
from streams.broker import EmbeddedBroker  # noqa: E402
from streams.clients import produce_lines  # noqa: E402
from streams.topics import Topics  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Run the soak and print the table; exit 1 when the worker died or lag kept growing to the end."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="duration of the stream")
    parser.add_argument("--rate", type=float, default=20.0, help="articles per second")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--real", action="store_true", help="the real pipeline instead of the fake one")
    parser.add_argument("--out", type=Path, default=Path("runs/soak"), help="folder for soak.png and soak.tsv")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[float, int, int, float]] = []  # (seconds, produced, lag, rss MB)
    with EmbeddedBroker(log_path=args.out / "broker.log") as broker:
        settings = fresh_settings(broker.bootstrap, batch_size=32)
        roles = "prefilter,probe,stage2"
        worker = Worker(settings, args.out / "worker.log", fake=not args.real, roles=roles)
        try:
            worker.wait_ready(600)
            group = group_id(settings, roles.split(","), None)  # the worker runs without --filters
            raw = Topics(settings.topic_prefix).raw
            started, produced, n = time.monotonic(), 0, 0
            deadline = started + args.minutes * 60
            print(f"{'s':>6} {'produced':>9} {'lag':>7} {'rss MB':>8}")
            while time.monotonic() < deadline and worker.process.poll() is None:
                batch = max(1, int(args.rate * args.sample))
                lines = [article(f"s{n + i}", f"Soak item {n + i}") for i in range(batch)]
                asyncio.run(produce_lines(settings, lines, rate=args.rate))
                n += batch
                produced += batch
                done = sum(v or 0 for v in committed(settings, group, raw).values())
                row = (time.monotonic() - started, produced, produced - done, rss_mb(worker.process.pid))
                rows.append(row)
                print(f"{row[0]:6.0f} {row[1]:9d} {row[2]:7d} {row[3]:8.0f}", flush=True)
            alive = worker.process.poll() is None
        finally:
            worker.stop()
    _write(rows, args.out)
    if not rows:
        print("no samples: the worker did not run", file=sys.stderr)
        return 1
    rss = [r[3] for r in rows]
    print(f"\nsoak {args.minutes:g} min at {args.rate:g}/s: produced {rows[-1][1]}, lag max {max(r[2] for r in rows)} "
          f"final {rows[-1][2]}; RSS start {rss[0]:.0f} MB, max {max(rss):.0f} MB, end {rss[-1]:.0f} MB "
          f"(growth {rss[-1] - rss[0]:+.0f} MB); worker alive: {alive}; table and plot in {args.out}")
    return 0 if alive else 1


def _write(rows: list[tuple[float, int, int, float]], out: Path) -> None:
    (out / "soak.tsv").write_text("seconds\tproduced\tlag\trss_mb\n" + "".join(
        f"{s:.1f}\t{p}\t{lag}\t{rss:.1f}\n" for s, p, lag, rss in rows))
    if not rows:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, sharex=True, figsize=(8, 5))
    minutes = [r[0] / 60 for r in rows]
    ax1.plot(minutes, [r[3] for r in rows])
    ax1.set_ylabel("worker RSS (MB)")
    ax2.plot(minutes, [r[2] for r in rows], color="tab:red")
    ax2.set_ylabel("lag on articles.raw")
    ax2.set_xlabel("minutes")
    fig.suptitle("Distillery soak")
    fig.tight_layout()
    fig.savefig(out / "soak.png", dpi=100)


if __name__ == "__main__":
    raise SystemExit(main())
