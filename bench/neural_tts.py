"""Neural TTS benchmark: a 15-word sentence with the "heart" voice, resample to 8 kHz included.

    .venv/bin/python bench/neural_tts.py [--runs 30]

Platform: ``cpaas.telephony.tts.render_text`` with ``tts_engine_type: neural`` (voice
Joanna, so hibari's "heart"): the engine choice, hibari, one sox run (resample to
8 kHz, level) and the atomic write of the telephone WAV. Baseline, in the same
process, interleaved run by run: the bare library call ``Hibari()(text)`` (24 kHz
float samples in memory, no resample, no file). The model is loaded and warmed once
before timing, as the worker does at start-up. Target (issue 10): <= 300 ms. When the
GPL extra is installed, the male voice (piper "joe", Matthew) is timed too, for
information. Nothing here touches the network.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import cpu_probe_ms, percentile, print_table, workdir  # noqa: E402
from cpaas.telephony import audio, neural, tts  # noqa: E402
from cpaas.telephony.tts import Prosody  # noqa: E402

SENTENCE = ("Listen carefully, your account balance is due today and payment must reach us "
            "by Friday.")
TARGET_MS = 300.0


def _timed(action) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def _row(name: str, samples: list[float]) -> list[object]:
    return [name, percentile(samples, 50), percentile(samples, 95), max(samples)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--no-male", action="store_true", help="skip piper joe even if installed")
    args = parser.parse_args()
    assert len(SENTENCE.split()) == 15
    female = Prosody(voice="Joanna", engine_type="neural")
    if not tts.engine_used(female, "espeak") == "neural":
        sys.exit("hibari-tts is not installed: pip install -r requirements.txt")
    from hibari import Hibari

    bare = Hibari(threads=neural.ORT_THREADS)
    bare("Warm up.")
    tts.warm_up()
    male = Prosody(voice="Matthew", engine_type="neural")
    with_male = not args.no_male and tts.engine_used(male, "espeak") == "neural"
    platform_ms: list[float] = []
    bare_ms: list[float] = []
    male_ms: list[float] = []
    with workdir("cpaas-bench-tts-") as folder:
        dst = folder / "heart.wav"
        for _ in range(args.runs):
            bare_ms.append(_timed(lambda: bare(SENTENCE)))
            platform_ms.append(_timed(lambda: tts.render_text(SENTENCE, female, dst)))
            if with_male:
                male_ms.append(_timed(lambda: tts.render_text(SENTENCE, male, folder / "joe.wav")))
        fmt = audio.info(dst)
        assert fmt.is_telephone
        speech_s = fmt.duration
    rows = [_row("platform: render_text, heart, 8 kHz WAV", platform_ms),
            _row("baseline: bare Hibari()(text), 24 kHz", bare_ms)]
    if with_male:
        rows.append(_row("platform: render_text, joe (piper)", male_ms))
    print(f"15-word sentence, {speech_s:.2f} s of speech; {args.runs} runs each, interleaved; "
          f"CPU probe {cpu_probe_ms():.0f} ms (about 175 quiet)")
    print_table("Neural TTS (ms)", ["path", "p50", "p95", "max"], rows)
    ratio = percentile(platform_ms, 50) / percentile(bare_ms, 50)
    verdicts = ", ".join(f"p{pct} {'met' if percentile(platform_ms, pct) <= TARGET_MS else 'MISSED'}"
                         for pct in (50, 95))
    print(f"\nplatform / bare library (p50): {ratio:.2f}x; target {TARGET_MS:.0f} ms: {verdicts}")


if __name__ == "__main__":
    main()
