"""Transcription benchmark: one 8 kHz 2-channel call, the platform's job against bare
faster-whisper on the same file.

    .venv/bin/python bench/transcription.py [--seconds 60] [--runs 5] [--threads 2]

The call: sentences in the neural voice, the agent (left) and the customer (right)
taking turns with pauses, padded to ``--seconds`` (telephone format, as the engine
stores it). Platform: :func:`cpaas.transcription.job.run` with the Whisper backend, as
the transcriber process runs a job: fetch from local object storage, decode and split
the channels, VAD, tiny.en int8 at temperature 0 on each channel, merge the turns,
store them and move the CDR (SQLite here) to ``done``. Baseline, in the same process
and interleaved run by run: faster-whisper called directly on the same file with the
same decoding options (``decode_audio(split_stereo=True)``, ``model.transcribe`` per
channel), its own model loaded with the same threads. Each model is loaded and warmed
once before timing, as the worker does at start-up. Target (issue 10): <= 0.2x real
time per channel on 2 cores. Nothing here touches the network.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import cpu_probe_ms, init_platform, machine_notes, percentile, print_table, workdir  # noqa: E402
from cpaas.cdr.writer import CdrRecord, write  # noqa: E402
from cpaas.db import database  # noqa: E402
from cpaas.storage import LocalStorage  # noqa: E402
from cpaas.telephony import audio, tts  # noqa: E402
from cpaas.transcription import job as transcription  # noqa: E402
from cpaas.transcription.queueing import TranscriptionJob  # noqa: E402
from cpaas.transcription.whisper import OPTIONS, WhisperBackend, channels_of, load_model  # noqa: E402
from cpaas.validation import utcnow  # noqa: E402

TARGET = 0.2
LINES = [
    ("agent", "Thank you for calling, this is Anna from the billing team."),
    ("customer", "Hello, I was charged twice for my last order."),
    ("agent", "I am sorry to hear that. Can you give me the order number please?"),
    ("customer", "Yes, it is four five seven two one."),
    ("agent", "Thank you. I can see both payments, and I will refund the second one today."),
    ("customer", "Great, how long will the refund take?"),
    ("agent", "It should reach your card within three to five working days."),
    ("customer", "That is fine. Thank you for your help."),
]


def build_call(folder: Path, seconds: float) -> Path:
    """A 2-channel 8 kHz call of ``seconds``: LINES spoken in turn, repeated as needed."""
    prosody = tts.Prosody(voice="Joanna", engine_type="neural")
    sides: dict[str, list[str]] = {"agent": [], "customer": []}
    at, n = 0.5, 0
    while at < seconds - 6:
        speaker, text = LINES[n % len(LINES)]
        wav = tts.render_text(text, prosody, folder / f"line{n}.wav")
        length = audio.duration(wav)
        other = "customer" if speaker == "agent" else "agent"
        silent = folder / f"gap{n}.wav"
        subprocess.run(["sox", "-V1", "-n", "-r", "8000", "-c", "1", "-b", "16", str(silent), "trim", "0",
                        f"{length + 0.8:.3f}"], check=True)
        padded = folder / f"pad{n}.wav"
        subprocess.run(["sox", "-V1", str(wav), str(padded), "pad", "0", "0.8"], check=True)
        sides[speaker].append(str(padded))
        sides[other].append(str(silent))
        at, n = at + length + 0.8, n + 1
    channels = []
    for name, parts in sides.items():
        out = folder / f"{name}.wav"
        subprocess.run(["sox", "-V1", *parts, str(out), "pad", "0.5", "0", "trim", "0", str(seconds)],
                       check=True)
        channels.append(str(out))
    call = folder / "call.wav"
    subprocess.run(["sox", "-V1", "-M", *channels, str(call)], check=True)
    return call


def bare(model, path: Path) -> int:
    """faster-whisper called directly: both channels, the same options; segment count."""
    count = 0
    for samples in channels_of(path, 2):
        segments, _info = model.transcribe(samples, **OPTIONS)
        count += len(list(segments))
    return count


def _cdr(account: str, request_id: str) -> None:
    write(CdrRecord(account_id=account, request_id=request_id, uniqueid=f"1.{request_id}",
                    dial_status="ANSWER", call_date=utcnow(), destination_context="click2call",
                    call_direction="outbound-api", caller_id="15168148111",
                    dialed_number="918000680102", transcript_status="pending"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of each model")
    args = parser.parse_args()
    probe = cpu_probe_ms()
    with workdir("cpaas-bench-transcribe-") as folder:
        accounts = init_platform(f"sqlite:///{folder / 'cpaas.sqlite3'}", folder)
        call = build_call(folder, args.seconds)
        length = audio.duration(call)
        storage = LocalStorage(folder / "bucket")
        storage.put_file("accounts/account_1/recordings/call.wav", call)
        backend = WhisperBackend(storage, threads=args.threads)
        backend.warm_up()
        model = load_model(args.threads)
        bare(model, call)
        platform_s: list[float] = []
        bare_s: list[float] = []
        turns = 0
        for run in range(args.runs):
            started = time.perf_counter()
            bare(model, call)
            bare_s.append(time.perf_counter() - started)
            request_id = f"{run:010x}"
            with database.connection_context():
                _cdr(accounts["account_1"], request_id)
                job = TranscriptionJob(request_id, accounts["account_1"],
                                       "accounts/account_1/recordings/call.wav")
                started = time.perf_counter()
                turns = len(transcription.run(backend, storage, job))
                platform_s.append(time.perf_counter() - started)
    per_channel = 2 * length
    rows = []
    for name, samples in (("platform: transcription job (whisper)", platform_s),
                          ("baseline: faster-whisper called directly", bare_s)):
        median = percentile(samples, 50)
        rows.append([name, median, max(samples), median / per_channel])
    ratio = percentile(platform_s, 50) / percentile(bare_s, 50)
    print(f"{length:.1f} s call, 2 channels, 8 kHz; {turns} turns; {args.runs} runs each, "
          f"interleaved; {args.threads} thread(s) per model; cpu probe {probe:.0f} ms")
    print(machine_notes())
    print_table("Transcription of one call", ["", "median s", "max s", "x real time per channel"],
                rows)
    print(f"\nplatform / baseline (medians): {ratio:.2f}; target <= {TARGET}x real time per "
          f"channel: {'met' if rows[0][3] <= TARGET else 'NOT met'}")


if __name__ == "__main__":
    main()
