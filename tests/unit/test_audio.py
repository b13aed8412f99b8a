"""Audio helpers, run against real sox-made files."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cpaas.telephony import audio


def tone(path: Path, seconds: float, freq: int = 440, rate: int = 8000, channels: int = 1, level: float = 0.5) -> Path:
    """A sine tone written by sox (real audio, no fixtures on disk)."""
    subprocess.run(
        ["sox", "-D", "-n", "-r", str(rate), "-c", str(channels), "-b", "16", str(path),
         "synth", str(seconds), "sine", str(freq), "vol", str(level)],
        check=True, capture_output=True,
    )
    return path


def test_to_telephone_converts_rate_channels_and_depth(tmp_path):
    src = tone(tmp_path / "hifi.wav", 1.0, rate=44100, channels=2)
    dst = audio.to_telephone(src, tmp_path / "out" / "tel.wav")
    fmt = audio.info(dst)
    assert (fmt.rate, fmt.channels, fmt.bits, fmt.encoding) == (8000, 1, 16, "Signed Integer PCM")
    assert fmt.is_telephone
    assert audio.duration(dst) == pytest.approx(1.0, abs=0.01)
    assert audio.rms(dst) > 0.1


def test_rms_of_silence_is_zero(tmp_path):
    quiet = audio.silence(1.5, tmp_path / "quiet.wav")
    assert audio.rms(quiet) == pytest.approx(0.0, abs=1e-6)
    assert audio.peak(quiet) == 0.0
    assert audio.duration(quiet) == pytest.approx(1.5, abs=0.001)
    assert audio.info(quiet).is_telephone


def test_normalise_sets_the_peak_without_clipping(tmp_path):
    path = tone(tmp_path / "t.wav", 0.5, level=0.2)
    audio.normalise(path, peak_db=-1.0)
    assert audio.peak_dbfs(path) == pytest.approx(-1.0, abs=0.1)
    audio.normalise(path, peak_db=-12.0)
    assert audio.peak_dbfs(path) == pytest.approx(-12.0, abs=0.1)
    with pytest.raises(ValueError):
        audio.normalise(path, peak_db=3.0)


def test_normalise_leaves_silence_silent(tmp_path):
    quiet = audio.silence(0.5, tmp_path / "quiet.wav")
    audio.normalise(quiet)
    assert audio.peak(quiet) == 0.0


def test_concat_joins_and_converts(tmp_path):
    first = tone(tmp_path / "a.wav", 0.5)
    second = tone(tmp_path / "b.wav", 0.75, rate=16000, channels=2)  # needs converting first
    joined = audio.concat([first, second, audio.silence(0.25, tmp_path / "s.wav")], tmp_path / "ab.wav")
    assert audio.info(joined).is_telephone
    assert audio.duration(joined) == pytest.approx(1.5, abs=0.01)
    with pytest.raises(ValueError):
        audio.concat([], tmp_path / "none.wav")


def test_merge_stereo_keeps_each_side_on_its_channel(tmp_path):
    left = tone(tmp_path / "left.wav", 1.0)
    right = audio.silence(1.0, tmp_path / "right.wav")
    stereo = audio.merge_stereo(left, right, tmp_path / "lr.wav")
    assert audio.info(stereo).channels == 2
    assert audio.rms(stereo, channel=1) > 0.1
    assert audio.rms(stereo, channel=2) == pytest.approx(0.0, abs=1e-6)

    swapped = audio.merge_stereo(right, left, tmp_path / "rl.wav")
    assert audio.rms(swapped, channel=1) == pytest.approx(0.0, abs=1e-6)
    assert audio.rms(swapped, channel=2) > 0.1


def test_merge_stereo_pads_the_shorter_side(tmp_path):
    short = tone(tmp_path / "short.wav", 1.0, freq=300)
    long = tone(tmp_path / "long.wav", 2.0, freq=500, rate=16000)
    stereo = audio.merge_stereo(short, long, tmp_path / "padded.wav")
    assert audio.duration(stereo) == pytest.approx(2.0, abs=0.01)
    # The short side's energy is spread over twice its length: RMS drops by about √2.
    assert audio.rms(stereo, channel=1) == pytest.approx(audio.rms(short) / 2 ** 0.5, rel=0.05)
    assert audio.rms(stereo, channel=2) > 0.1


def test_rms_rejects_a_channel_that_does_not_exist(tmp_path):
    mono = tone(tmp_path / "m.wav", 0.2)
    with pytest.raises(ValueError):
        audio.rms(mono, channel=2)
    with pytest.raises(ValueError):
        audio.rms(mono, channel=0)


def test_is_audio_wav(tmp_path):
    assert audio.is_audio_wav(tone(tmp_path / "ok.wav", 0.1))
    alaw = tmp_path / "alaw.wav"
    subprocess.run(["sox", "-D", str(tmp_path / "ok.wav"), "-e", "a-law", str(alaw)], check=True)
    assert audio.is_audio_wav(alaw)

    (tmp_path / "text.wav").write_text("hello, not audio")
    fake = tmp_path / "fake.wav"
    fake.write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunkjunkjunk")
    raw = tmp_path / "raw.au"
    subprocess.run(["sox", "-D", str(tmp_path / "ok.wav"), str(raw)], check=True)
    empty = audio.silence(0, tmp_path / "empty.wav")
    for path in (tmp_path / "text.wav", fake, raw, empty, tmp_path / "missing.wav", tmp_path):
        assert not audio.is_audio_wav(path), path


def test_failed_conversion_raises_and_leaves_nothing(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    with pytest.raises(audio.AudioError):
        audio.to_telephone(bad, tmp_path / "out.wav")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.wav"]


def test_odd_file_names_are_just_names(tmp_path):
    weird = tone(tmp_path / "-n; rm -rf $HOME `x`.wav", 0.2)
    out = audio.to_telephone(weird, tmp_path / "--out $(id).wav")
    assert audio.is_audio_wav(out)


def test_written_files_are_readable_by_a_media_server(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    out = audio.silence(0.1, shared / "mode.wav")
    assert out.stat().st_mode & 0o777 == audio.FILE_MODE


def test_files_in_a_private_folder_stay_private(tmp_path):
    private = tmp_path / "private"
    private.mkdir()
    private.chmod(0o700)
    out = audio.silence(0.1, private / "mode.wav")
    assert out.stat().st_mode & 0o777 == 0o600


def test_relative_names_starting_with_a_dash_are_not_options(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tone(tmp_path / "-n.wav", 0.2)
    out = audio.to_telephone(Path("-n.wav"), Path("-out.wav"))
    assert audio.is_audio_wav(out) and audio.rms(Path("-out.wav")) > 0.1
