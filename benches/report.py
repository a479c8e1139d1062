"""Prints the ratios of the criterion benchmarks from their saved estimates
(target/criterion/<group>/<name>/new/estimates.json): each peer beside twill
in the same run."""
import json
import pathlib
import sys

root = pathlib.Path(__file__).parent / "target" / "criterion"


def mean_ns(group, name):
    p = root / group / name / "new" / "estimates.json"
    return json.loads(p.read_text())["mean"]["point_estimate"]


def main():
    group = "lines"
    size = 1 << 20
    try:
        twill = mean_ns(group, "twill")
    except FileNotFoundError:
        sys.exit("run `cargo bench --bench lines` first")
    print(f"{'':26} {'time/MiB':>12} {'MB/s':>8} {'vs twill decode':>16}")
    for name in ("twill", "twill_decode_each", "tokio_util_LinesCodec", "memchr_scan"):
        t = mean_ns(group, name)
        print(f"{name:26} {t / 1e6:10.3f} ms {size / t * 1e3:8.0f} {t / twill:13.2f}×")


main()
