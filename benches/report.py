"""Prints criterion results side by side with the ratio to the named peer,
from the saved estimates (target/criterion/<group>/<name>/new/estimates.json).

    python3 report.py            # every group below that has results
    python3 report.py lines      # one group
"""
import json
import pathlib
import sys

root = pathlib.Path(__file__).parent / "target" / "criterion"

# group -> (peer the ratios are taken against, members in display order)
GROUPS = {
    "lines": ("tokio_util_LinesCodec",
              ["twill", "twill_decode_each", "tokio_util_LinesCodec", "memchr_scan"]),
    "http_head_short": ("httparse", ["httparse", "twill_decode", "twill_machine_round_trip"]),
    "http_head_long": ("httparse", ["httparse", "twill_decode", "twill_machine_round_trip"]),
    "irc_parse": ("irc-proto", ["irc-proto", "twill"]),
    "irc_parse_tags": ("irc-proto", ["irc-proto", "twill"]),
    "smtp_commands": ("smtp_proto", ["smtp_proto", "twill"]),
    "smtp_unstuff": ("memchr_scan", ["memchr_scan", "twill", "smtp_proto"]),
    "ws_frames_20B": ("tungstenite", ["tungstenite", "fastwebsockets", "twill"]),
    "ws_frames_16KiB": ("tungstenite", ["tungstenite", "fastwebsockets", "twill"]),
}


def mean_ns(group, name):
    p = root / group / name / "new" / "estimates.json"
    return json.loads(p.read_text())["mean"]["point_estimate"]


def report(group):
    peer, names = GROUPS[group]
    try:
        base = mean_ns(group, peer)
    except FileNotFoundError:
        print(f"{group}: no results (run its cargo bench first)")
        return
    print(f"{group}  (time relative to {peer}; < 1 is faster)")
    for name in names:
        try:
            t = mean_ns(group, name)
        except FileNotFoundError:
            continue
        print(f"  {name:28} {t:12.1f} ns  {t / base:6.2f}× the time")


for g in sys.argv[1:] or GROUPS:
    report(g)
