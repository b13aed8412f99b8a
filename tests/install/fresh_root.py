"""A fresh Debian 12 machine as a chroot: built by mmdebstrap, cached under /tmp.

A new machine of the kind `make run` is promised to work on has git, make, python3 and
curl, plus what the machine's provisioning gives every system here: the apt
configuration, the CA bundle, the pip configuration and the ``PIP_*`` / ``SSL_*`` /
``REQUESTS_CA_BUNDLE`` variables, with the files and folders these name. No mirror is
named anywhere: mmdebstrap takes it from this machine's apt sources.
"""
from __future__ import annotations

import fcntl
import os
import re
import shlex
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

CACHE = Path("/tmp/cpaas-fresh-root")
BASE_TAR = CACHE / "base.tar"
#: What the fresh machine has beyond Debian's minimal base.
PACKAGES = ("git", "make", "python3", "curl", "ca-certificates")
PIP_CONFIGS = (Path("/etc/pip.conf"), Path("/etc/xdg/pip"),
               Path.home() / ".config/pip/pip.conf", Path.home() / ".pip/pip.conf")
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
LOCAL_CAS = Path("/usr/local/share/ca-certificates")
_NAMED_PATH = re.compile(r"(?:file://)?(/[\w.+@%~-][^\s'\",;]*)")


def carried_env() -> dict[str, str]:
    """The machine's pip and TLS variables, passed into the root unchanged."""
    return {k: v for k, v in os.environ.items()
            if k.startswith(("PIP_", "SSL_")) or k == "REQUESTS_CA_BUNDLE"}


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _apt_install(package: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=300)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
                   check=True, env=env, timeout=300, stdout=subprocess.DEVNULL)


def base_tarball() -> Path:
    """The Debian 12 base root as a tarball, built once (under a minute) and reused."""
    with _locked(CACHE / "base.lock"):
        if BASE_TAR.exists():
            return BASE_TAR
        if shutil.which("mmdebstrap") is None:
            _apt_install("mmdebstrap")
        partial = CACHE / f"base.{os.getpid()}.tar"
        subprocess.run(["mmdebstrap", "--quiet", "--variant=minbase",
                        "--include=" + ",".join(PACKAGES), "bookworm", str(partial)],
                       check=True, timeout=900)
        partial.rename(BASE_TAR)
        return BASE_TAR


def unpack(into: Path) -> Path:
    """A new root from the cached base, under ``into``."""
    root = into / "root"
    root.mkdir(parents=True)
    subprocess.run(["tar", "-xf", str(base_tarball()), "-C", str(root)], check=True, timeout=300)
    return root


def _copy(src: Path, root: Path) -> None:
    dst = root / src.relative_to("/")
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)
    else:
        shutil.copy2(src, dst)


def _named_paths(texts: list[str]) -> set[Path]:
    return {Path(m) for text in texts for m in _NAMED_PATH.findall(text) if Path(m).exists()}


def carry_over(root: Path) -> list[Path]:
    """Give ``root`` this machine's apt, CA and pip setup; return folders to bind-mount.

    A file named by the pip configuration or the variables is copied; a folder the root
    lacks (a local wheel store, a local index) is returned, from its highest ancestor the
    root lacks, to be bind-mounted read-only.
    """
    for conf in sorted(Path("/etc/apt/apt.conf.d").iterdir()):
        _copy(conf, root)
    for extra in (CA_BUNDLE, LOCAL_CAS):
        if extra.exists():
            _copy(extra, root)
    for name in ("resolv.conf", "hosts"):  # the chroot shares this machine's network
        target = root / "etc" / name
        target.unlink(missing_ok=True)
        target.write_bytes(Path("/etc", name).read_bytes())
    texts = list(carried_env().values())
    for conf in PIP_CONFIGS:
        if conf.exists():
            # The tests run as root, whose home is /root in the chroot too.
            _copy(conf, root)
            files = sorted(conf.rglob("*")) if conf.is_dir() else [conf]
            texts += [f.read_text(errors="replace") for f in files if f.is_file()]
    folders: set[Path] = set()
    for path in sorted(_named_paths(texts)):
        if path.is_file():
            _copy(path, root)
            continue
        # The whole tree the root lacks: a local index's pages link to files beside them.
        while not (root / path.parent.relative_to("/")).exists():
            path = path.parent
        if not (root / path.relative_to("/")).exists():
            folders.add(path)
    return sorted(folders)


def no_services(root: Path) -> None:
    """Keep package scripts from starting daemons (redis-server on 6379) in the chroot.

    On a real machine systemd would start them in a network of their own; here they
    would share this machine's. Debian's documented switch for chroots.
    """
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)


def clone(repo: Path, root: Path, dest: str = "/root/cpaas") -> Path:
    """A clone of the checkout's committed HEAD, as a user's `git clone` makes it."""
    target = root / dest.lstrip("/")
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(repo), str(target)],
                   check=True, timeout=120)
    return target


#: What a login shell on the fresh machine has, before the carried variables.
LOGIN_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
             "HOME": "/root", "USER": "root", "LANG": "C.UTF-8", "TERM": "xterm"}


def namespace_command(root: Path, folders: list[Path], env: dict[str, str], command: str) -> list[str]:
    """argv that runs the shell line ``command`` in ``root`` as on a machine of its own.

    A pid namespace of its own (its /proc, this machine's /dev and /sys), the ``folders``
    bind-mounted read-only, only ``env`` in the environment, and a new session whose
    controlling terminal is our stdin (so Ctrl-C works as at a keyboard). Mounts live in
    the namespace's own mount table and vanish with it. Once ``command`` ends, every
    process still alive in the namespace is printed as ``left running: <stat>``.
    """
    r = shlex.quote(str(root))
    lines = ["set -e", f"mount --rbind /dev {r}/dev", f"mount --rbind /sys {r}/sys"]
    for folder in folders:
        src, dst = shlex.quote(str(folder)), shlex.quote(str(root / folder.relative_to("/")))
        lines += [f"mkdir -p {dst}", f"mount --bind {src} {dst}", f"mount -o remount,bind,ro {dst}"]
    variables = " ".join(shlex.quote(f"{k}={v}") for k, v in env.items())
    lines += ["set +e",
              f"chroot {r} /usr/bin/env -i {variables} setsid --ctty /bin/sh -c {shlex.quote(command)}",
              "code=$?",
              # Shell builtins only: a forked helper would list itself. Pid 1 is this shell.
              f"for d in {r}/proc/[0-9]*; do",
              '  [ "${d##*/}" = 1 ] && continue',
              '  read -r stat < "$d/stat" 2>/dev/null || continue',
              '  case "$stat" in *") Z "*) continue;; esac',
              '  echo "left running: $stat"',
              "done",
              "exit $code"]
    return ["unshare", "--pid", "--fork", "--kill-child", f"--mount-proc={root}/proc",
            "/bin/sh", "-c", "\n".join(lines)]


def mounted_under(path: Path) -> list[str]:
    """Mount points under ``path`` visible from here (there must be none to delete it)."""
    prefix = str(path.resolve()) + "/"
    with open("/proc/self/mountinfo") as info:
        return [line.split()[4] for line in info if line.split()[4].startswith(prefix)]


def processes_in(root: Path) -> list[int]:
    """Pids of processes whose root directory is ``root``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "root") == str(root.resolve()):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def remove(run_dir: Path) -> None:
    """Delete a run's root, refusing while anything is still mounted inside it."""
    leftover = mounted_under(run_dir)
    if leftover:
        raise RuntimeError(f"still mounted, not deleting {run_dir}: {leftover}")
    subprocess.run(["rm", "-rf", "--one-file-system", str(run_dir)], check=True, timeout=300)
