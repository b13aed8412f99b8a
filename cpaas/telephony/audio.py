"""Audio helpers on top of sox: telephone format, levels, joining, measuring.

Every helper runs ``sox`` with an argument list (never through a shell), so a file name
is only ever a file name. Telephone audio throughout the platform is WAV, 8 kHz, mono,
16-bit signed PCM. sox's automatic dither is turned off (``-D``): it would put ±1 LSB
noise into digital silence, which ``normalise`` would then amplify into a roar.
Channels are numbered from 1, as sox numbers them (1 = left, 2 = right).
"""
from __future__ import annotations

import logging
import math
import os
import re
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

log = logging.getLogger(__name__)

SOX = "sox"
TELEPHONE_RATE = 8000
SOX_TIMEOUT = 120  # seconds; a recording of a long call takes a few
#: sox output options for telephone audio.
TELEPHONE_FORMAT = ["-t", "wav", "-r", str(TELEPHONE_RATE), "-c", "1", "-b", "16", "-e", "signed-integer"]
#: Peaks below this (about -80 dBFS, a few LSBs at 16 bits) are silence: never amplify them.
SILENCE_PEAK = 1e-4
#: Mode of written files (what ``open`` gives under the usual umask 022), so a media
#: server running as another user can play them: except in a private folder (no access
#: for group or others, where per-call secrets such as OTP audio go), whose files keep
#: the 0600 they are created with.
FILE_MODE = 0o644
_INFO_RE = re.compile(r"^([A-Za-z ]+?)\s*:\s*(.+?)\s*$", re.M)
_STAT_RE = re.compile(r"^(?P<key>[A-Za-z ()]+?):\s+(?P<value>-?[0-9.]+(?:e-?[0-9]+)?)\s*$", re.M)

PathLike = str | os.PathLike[str]


class AudioError(RuntimeError):
    """sox failed, or a file is not the audio it should be."""


@dataclass(frozen=True)
class AudioInfo:
    """Format facts sox reports for a file."""

    rate: int
    channels: int
    bits: int  # bits per stored sample (8 for A-law, 16 for telephone PCM)
    encoding: str  # e.g. "Signed Integer PCM"
    samples: int  # per channel

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.samples / self.rate

    @property
    def is_telephone(self) -> bool:
        """8 kHz, mono, 16-bit signed PCM."""
        return (self.rate, self.channels, self.bits, self.encoding) == (
            TELEPHONE_RATE, 1, 16, "Signed Integer PCM",
        )


def sox_arg(path: PathLike) -> str:
    """``path`` as a sox argument: a relative name starting with ``-`` would read as an option."""
    text = os.fspath(path)
    return f"./{text}" if text.startswith("-") else text


def _run(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Run sox with ``args``; raise :class:`AudioError` with its stderr on failure."""
    try:
        proc = subprocess.run(
            [SOX, *args], capture_output=True, text=True, errors="replace", timeout=SOX_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AudioError(f"sox {' '.join(args)} failed: {exc}") from exc
    if proc.returncode != 0:
        raise AudioError(f"sox {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def replace_atomically(dst: PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)`` and move the result onto ``dst``.

    Readers (an engine about to play the file) never see a half-written file, and a
    failure leaves neither a partial ``dst`` nor a stray temporary behind. The file is
    created 0600 (``O_CREAT|O_EXCL``) and opened up to :data:`FILE_MODE` only as far as
    its folder is: read for the group if the folder's group may read it, for others if
    they may (a private folder keeps it 0600, a group's keeps it 0640).
    """
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.stem}.", suffix=".wav", dir=dst.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        folder = os.stat(dst.parent).st_mode
        mode = FILE_MODE & (0o600 | (folder & 0o040) | (folder & 0o004))
        if mode != 0o600:
            os.chmod(tmp, mode)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dst


def info(path: PathLike) -> AudioInfo:
    """Sample rate, channels, bit depth, encoding and length of an audio file."""
    out = _run(["--i", sox_arg(path)]).stdout
    fields = dict(_INFO_RE.findall(out))
    try:
        samples = re.search(r"= (\d+) samples", fields["Duration"])
        bits, encoding = re.match(r"(\d+)-bit (.+)", fields["Sample Encoding"]).groups()
        return AudioInfo(
            rate=int(float(fields["Sample Rate"])),
            channels=int(fields["Channels"]),
            bits=int(bits),
            encoding=encoding.strip(),
            samples=int(samples.group(1)),
        )
    except (KeyError, AttributeError, ValueError) as exc:
        raise AudioError(f"cannot read the format of {path}: {out.strip()!r}") from exc


def duration(path: PathLike) -> float:
    """Length of an audio file in seconds."""
    return float(_run(["--i", "-D", sox_arg(path)]).stdout.strip())


def _stat(path: PathLike, channel: int | None = None) -> dict[str, float]:
    """sox ``stat`` figures for the whole file, or for one channel (1-based) of it."""
    args = ["-D", sox_arg(path), "-n"]
    if channel is not None:
        channels = info(path).channels
        if not 1 <= channel <= channels:
            raise ValueError(f"channel {channel} out of range 1..{channels} for {path}")
        args += ["remix", str(channel)]
    stderr = _run([*args, "stat"]).stderr
    return {m["key"].strip(): float(m["value"]) for m in _STAT_RE.finditer(stderr)}


def rms(path: PathLike, channel: int | None = None) -> float:
    """RMS amplitude (0..1 of full scale) of one channel (1-based), or over all samples."""
    return _stat(path, channel)["RMS     amplitude"]


def peak(path: PathLike, channel: int | None = None) -> float:
    """Largest absolute sample value (0..1 of full scale; 1.0 means clipped)."""
    figures = _stat(path, channel)
    return max(figures["Maximum amplitude"], -figures["Minimum amplitude"])


def peak_dbfs(path: PathLike) -> float:
    """Peak level in dBFS (``-inf`` for digital silence)."""
    level = peak(path)
    return 20 * math.log10(level) if level > 0 else -math.inf


def to_telephone(src: PathLike, dst: PathLike) -> Path:
    """Convert any audio sox reads into telephone WAV (8 kHz, mono, 16-bit signed PCM).

    ``--guard`` lowers the gain if resampling or down-mixing would otherwise clip.
    """
    return replace_atomically(
        dst, lambda tmp: _run(["-D", "--guard", sox_arg(src), *TELEPHONE_FORMAT, sox_arg(tmp)])
    )


def normalise(path: PathLike, peak_db: float = -1.0) -> Path:
    """Scale ``path`` in place so its peak sits at ``peak_db`` dBFS (never clipping).

    Silence (and near-silence) is left alone rather than amplified into noise.
    """
    if peak_db > 0:
        raise ValueError("peak_db must be <= 0 dBFS, or the result would clip")
    if peak(path) < SILENCE_PEAK:
        log.debug("not normalising %s: it is silence", Path(path).name)
        return Path(path)
    return replace_atomically(
        path, lambda tmp: _run(["-D", sox_arg(path), "-t", "wav", sox_arg(tmp), "gain", "-n", f"{peak_db:g}"])
    )


def _as_telephone(paths: Iterable[PathLike], workdir: Path) -> list[str]:
    """The inputs as telephone WAVs wherever they are not already, so sox can join them."""
    out = []
    for index, path in enumerate(paths):
        if info(path).is_telephone:
            out.append(sox_arg(path))
        else:
            converted = workdir / f"{index}.wav"
            to_telephone(path, converted)
            out.append(str(converted))
    return out


def concat(paths: Sequence[PathLike], dst: PathLike) -> Path:
    """Join audio files one after another into a telephone WAV at ``dst``."""
    if not paths:
        raise ValueError("concat needs at least one input")
    with tempfile.TemporaryDirectory(prefix="cpaas-concat-") as workdir:
        inputs = _as_telephone(paths, Path(workdir))
        return replace_atomically(
            dst, lambda tmp: _run(["-D", "--combine", "concatenate", *inputs, *TELEPHONE_FORMAT, sox_arg(tmp)])
        )


def merge_stereo(left: PathLike, right: PathLike, dst: PathLike) -> Path:
    """Two recordings side by side: ``left`` on channel 1, ``right`` on channel 2.

    Inputs are first brought to telephone format (mono, 8 kHz); sox's merge pads the
    shorter one with silence at its end, so both channels last as long as the longer.
    """
    with tempfile.TemporaryDirectory(prefix="cpaas-merge-") as workdir:
        inputs = _as_telephone([left, right], Path(workdir))
        stereo = ["-t", "wav", "-r", str(TELEPHONE_RATE), "-c", "2", "-b", "16", "-e", "signed-integer"]
        return replace_atomically(
            dst, lambda tmp: _run(["-D", "--combine", "merge", *inputs, *stereo, sox_arg(tmp)])
        )


def trim(src: PathLike, dst: PathLike, start: float, end: float) -> Path:
    """The part of ``src`` between ``start`` and ``end`` seconds, channels kept."""
    if not 0 <= start < end:
        raise ValueError("need 0 <= start < end")
    return replace_atomically(
        dst, lambda tmp: _run(["-D", sox_arg(src), "-t", "wav", sox_arg(tmp), "trim",
                               f"{start:.3f}", f"={end:.3f}"])
    )


def silence(seconds: float, dst: PathLike) -> Path:
    """A telephone WAV of digital silence lasting ``seconds``."""
    if seconds < 0:
        raise ValueError("seconds must be >= 0")
    return replace_atomically(
        dst, lambda tmp: _run(["-D", "-n", *TELEPHONE_FORMAT, sox_arg(tmp), "trim", "0", f"{seconds:.6f}"])
    )


def riff_size(path: PathLike) -> int | None:
    """The size a RIFF/WAVE header declares (file size - 8 when complete); None if
    ``path`` is unreadable or not RIFF/WAVE."""
    try:
        with open(path, "rb") as fh:
            header = fh.read(12)
    except OSError:
        return None
    if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
        return None
    return struct.unpack("<I", header[4:8])[0]


def is_audio_wav(path: PathLike) -> bool:
    """Whether ``path`` is a RIFF/WAVE file sox can read, holding at least one sample."""
    if riff_size(path) is None:
        return False
    try:
        fmt = info(path)
    except AudioError:
        return False
    return fmt.channels >= 1 and fmt.samples > 0
