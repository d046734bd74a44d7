"""The terminal progress line: elapsed time and ETA per run, also when one bar counts two fits."""

from __future__ import annotations

import io
import re

from ssc_edge.progress import TerminalProgress, stage


class _Clock:
    """A clock the test moves by hand (seconds)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _lines(stream: io.StringIO) -> list[tuple[int, float, str, str]]:
    """(done, elapsed s, eta text, message) of every printed line."""
    found = re.findall(r"epoch (\d+)/\d+ \[[#-]+\]\s+([\d.]+)s eta\s+(\S+) ?(.*)", stream.getvalue())
    return [(int(d), float(e), eta, message) for d, e, eta, message in found]


def test_eta_of_a_single_run_counts_from_the_start():
    clock, stream = _Clock(), io.StringIO()
    bar = TerminalProgress("epoch", stream=stream, interval=0.0, clock=clock)
    for epoch in range(1, 5):
        clock.now += 2.0
        bar(epoch, 10, "loss")
    done, elapsed, eta, _ = _lines(stream)[-1]
    assert (done, elapsed, eta) == (4, 8.0, "12.0s")  # 2 s per epoch, 6 epochs left


def test_second_run_on_the_same_bar_has_its_own_clock_and_label():
    """The report's held-out fit runs on the fit's bar: its ETA must not carry the first fit's time."""
    clock, stream = _Clock(), io.StringIO()
    bar = TerminalProgress("epoch", stream=stream, interval=0.0, clock=clock)
    for epoch in range(1, 11):  # the model's fit: 10 epochs of 5 s
        clock.now += 5.0
        bar(epoch, 10, "loss")
    clock.now += 30.0  # evaluation, sampling the second pair
    held_out = stage(bar, "held-out fit")
    for epoch in range(1, 11):  # the held-out fit: 10 epochs of 1 s
        clock.now += 1.0
        held_out(epoch, 10, "loss")
    lines = _lines(stream)
    assert lines[9][:3] == (10, 50.0, "0.0s")
    first, third = lines[10], lines[12]
    assert first[:3] == (1, 0.0, "?") and first[3] == "held-out fit: loss"  # no rate yet: no guess
    assert third[:3] == (3, 2.0, "7.0s")  # 1 s per epoch from its own start; the old bar said 50.0 s+ of ETA
    assert all(line[3].startswith("held-out fit: ") for line in lines[10:])


def test_a_count_that_goes_back_starts_a_new_run():
    clock, stream = _Clock(), io.StringIO()
    bar = TerminalProgress("epoch", stream=stream, interval=0.0, clock=clock)
    for epoch in (1, 2, 3):
        clock.now += 10.0
        bar(epoch, 10)
    for epoch in (1, 2):  # interrupted run, then a new one
        clock.now += 1.0
        bar(epoch, 10)
    assert _lines(stream)[-1][:3] == (2, 1.0, "8.0s")


def test_non_terminal_stream_is_throttled_but_prints_the_last_line():
    clock, stream = _Clock(), io.StringIO()
    bar = TerminalProgress("epoch", stream=stream, interval=5.0, clock=clock)
    for epoch in range(1, 11):
        clock.now += 1.0
        bar(epoch, 10)
    assert [line[0] for line in _lines(stream)] == [1, 6, 10]


def test_stage_of_no_progress_is_none_and_keeps_an_empty_message_short():
    assert stage(None, "held-out fit") is None
    seen = []
    stage(lambda done, total, message="": seen.append(message), "held-out fit")(1, 2)
    assert seen == ["held-out fit"]
