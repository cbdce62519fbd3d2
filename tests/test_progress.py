from absl import logging

from liquid_jax.progress import Progress, clock


def test_clock_keeps_days():
    assert clock(0) == "0:00:00"
    assert clock(3 * 3600 + 62) == "3:01:02"
    assert clock(3 * 86400 + 5 * 3600 + 7) == "3d 05:00:07"  # a 3-day run's ETA
    assert clock(float("inf")) == "?"


def test_progress_line_rate_eta_label_and_note(monkeypatch):
    now = [100.0]
    monkeypatch.setattr("liquid_jax.progress.time.perf_counter", lambda: now[0])
    p = Progress(total=10_000, start=1000, unit="step", label="train", note="x 4 rows")
    now[0] += 100.0  # 1000 steps in 100 s: 10 steps/s, 8000 left
    assert p.line(2000, "loss 1.5") == (
        "train: 2000/10000 steps (20%) 10.00 step/s ETA 0:13:20 x 4 rows loss 1.5"
    )
    now[0] += 1e6  # a slow host: 7999 steps at 1001 per 1000100 s, 92 days left
    assert "ETA 92d 11:56:48" in p.line(2001)


def test_progress_as_a_sampler_callback_logs_every_interval_and_the_end(monkeypatch):
    now, lines = [0.0], []
    monkeypatch.setattr("liquid_jax.progress.time.perf_counter", lambda: now[0])
    monkeypatch.setattr(logging, "info", lambda fmt, line: lines.append(line))
    p = Progress(0, unit="token", every_s=5.0, label="T2I cfg")
    for done in range(1, 11):
        now[0] += 1.0
        p(done, 10)
    assert [x.split(" tokens")[0] for x in lines] == [
        "T2I cfg: 1/10",
        "T2I cfg: 6/10",
        "T2I cfg: 10/10",
    ]
