"""Build (once, cached) an arm64 Debian userland that runs as an emulated Raspberry Pi or Jetson.

No board is needed to run the real arm64 code a board runs: Debian bookworm's arm64
Python 3.11, the aarch64 wheels of tflite-runtime and ai-edge-litert, and XNNPACK's NEON
kernels, under qemu user-mode on an x86 host. This is how the project proves what x86
cannot show (XNNPACK's sparse path is off on x86 with AVX). The recipe is `build` below;
the measurements are in tests/arm.

    python tools/emulated_board.py build [--profile pi4|pi5|jetson-nano|all]
    python tools/emulated_board.py python pi5 ai-edge-litert   # prints the wrapper's path
    python tools/emulated_board.py run pi5 ai-edge-litert -- -c "import platform; print(platform.machine())"

Each (profile, runtime) gets a wrapper script `python` that a device in the inventory can
use as its interpreter, so `edgeprune agent install/deploy/bench` run the agent as arm64
code over a real sshd. Without binfmt_misc an emulated process cannot exec an arm64
binary, only a host script; so the wrapper hands qemu its own name as argv[0] (`-0 "$0"`).
Python then reports the wrapper as sys.executable (the agent starts its benchmark
children through it), and a venv made from it links back to the wrapper and is found
through that link, as a venv on a board is.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

DEBIAN_PACKAGES = [
    "libc6",
    "libgcc-s1",
    "libstdc++6",
    "zlib1g",
    "libexpat1",
    "libffi8",
    "libbz2-1.0",
    "liblzma5",
    "libssl3",
    "libcrypt1",
    "libuuid1",
    "libpython3.11-minimal",
    "python3.11-minimal",
    "libpython3.11-stdlib",
    "libsqlite3-0",
    "libncursesw6",
    "libtinfo6",
    "libreadline8",
    "libdb5.3",
    "libgdbm6",
    "libnsl2",
    "libtirpc3",
    "libgssapi-krb5-2",
    "libkrb5-3",
    "libk5crypto3",
    "libcom-err2",
    "libkrb5support0",
    "libkeyutils1",
]

WHEEL_PLATFORMS = (
    "manylinux_2_34_aarch64",
    "manylinux_2_28_aarch64",
    "manylinux_2_27_aarch64",
    "manylinux_2_17_aarch64",
    "manylinux2014_aarch64",
)

# runtime name -> the pip requirements installed into its own site dir
RUNTIMES: dict[str, tuple[str, ...]] = {
    "tflite-runtime": ("tflite-runtime==2.14.0", "numpy==1.26.4"),
    "ai-edge-litert": (
        "ai-edge-litert==2.3.0",
        "numpy>=2,<2.4",
        "ml-dtypes",
        "flatbuffers",
        "protobuf",
        "tqdm",
        "typing-extensions",
        "backports.strenum",
    ),
}


@dataclass(frozen=True)
class BoardProfile:
    name: str
    qemu_cpu: str
    model: str  # device-tree model string
    cpu_part: str
    cpu_variant: str
    cpu_revision: str
    features: str
    cores: int
    bogomips: str = "108.00"

    def cpuinfo(self) -> str:
        blocks = []
        for index in range(self.cores):
            blocks.append(
                f"processor\t: {index}\n"
                f"BogoMIPS\t: {self.bogomips}\n"
                f"Features\t: {self.features}\n"
                "CPU implementer\t: 0x41\n"
                "CPU architecture: 8\n"
                f"CPU variant\t: {self.cpu_variant}\n"
                f"CPU part\t: {self.cpu_part}\n"
                f"CPU revision\t: {self.cpu_revision}\n"
            )
        text = "\n".join(blocks) + "\n"
        if self.model.startswith("Raspberry Pi"):
            text += f"Revision\t: {'d04170' if '5' in self.model else 'c03115'}\nModel\t\t: {self.model}\n"
        return text


PROFILES: dict[str, BoardProfile] = {
    "pi4": BoardProfile(
        name="pi4",
        qemu_cpu="cortex-a72",
        model="Raspberry Pi 4 Model B Rev 1.5",
        cpu_part="0xd08",
        cpu_variant="0x0",
        cpu_revision="3",
        features="fp asimd evtstrm crc32 cpuid",
        cores=4,
    ),
    "pi5": BoardProfile(
        name="pi5",
        qemu_cpu="cortex-a76",
        model="Raspberry Pi 5 Model B Rev 1.0",
        cpu_part="0xd0b",
        cpu_variant="0x4",
        cpu_revision="1",
        features="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp",
        cores=4,
    ),
    "jetson-nano": BoardProfile(
        name="jetson-nano",
        qemu_cpu="cortex-a57",
        model="NVIDIA Jetson Nano Developer Kit",
        cpu_part="0xd07",
        cpu_variant="0x1",
        cpu_revision="1",
        features="fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid",
        cores=4,
    ),
}


def cache_root() -> Path:
    base = os.environ.get("EDGEPRUNE_ARM_CACHE")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "edgeprune" / "arm64"


def qemu_binary() -> str:
    found = shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")
    if not found:
        raise SystemExit(
            "error: qemu-aarch64-static is not installed; run: apt-get install -y qemu-user-static"
        )
    return found


def _run(cmd: list[str], **kwargs) -> None:
    subprocess.run(cmd, check=True, **kwargs)


def build_base(root: Path) -> Path:
    """The profile-independent rootfs: Debian arm64 libraries and Python 3.11 (~9 s, cached)."""
    base = root / "base"
    if (base / ".complete").exists():
        return base
    work = Path(tempfile.mkdtemp(prefix="apt-", dir=root))
    try:
        (work / "lists" / "partial").mkdir(parents=True)
        (work / "cache" / "archives" / "partial").mkdir(parents=True)
        (work / "debs").mkdir()
        options = [
            "-oAPT::Architecture=arm64",
            "-oAPT::Architectures=arm64",
            f"-oDir::State::Lists={work / 'lists'}",
            f"-oDir::Cache={work / 'cache'}",
            "-oDir::State::status=/dev/null",
            "-oDebug::NoLocking=1",
            "-qq",
        ]
        _run(["apt-get", *options, "update"])
        _run(["apt-get", *options, "download", *DEBIAN_PACKAGES], cwd=work / "debs")
        staging = root / "base.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        for deb in sorted((work / "debs").glob("*.deb")):
            _run(["dpkg-deb", "-x", str(deb), str(staging)])
        python = staging / "usr" / "bin" / "python3.11"
        if not python.exists():
            raise SystemExit("error: the arm64 python3.11 package did not unpack")
        (staging / "usr" / "bin" / "python3").unlink(missing_ok=True)
        (staging / "usr" / "bin" / "python3").symlink_to("python3.11")
        (staging / ".complete").write_text("ok\n")
        shutil.rmtree(base, ignore_errors=True)
        staging.rename(base)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return base


def build_site(root: Path, runtime: str) -> Path:
    """aarch64 wheels of one runtime (and its numpy), unzipped into a site dir (cached)."""
    site = root / "site" / runtime
    if (site / ".complete").exists():
        return site
    wheels = root / "wheels" / runtime
    wheels.mkdir(parents=True, exist_ok=True)
    platforms = [arg for plat in WHEEL_PLATFORMS for arg in ("--platform", plat)]
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            *platforms,
            "-d",
            str(wheels),
            *RUNTIMES[runtime],
        ]
    )
    staging = site.with_name(site.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for wheel in sorted(wheels.glob("*.whl")):
        shutil.unpack_archive(str(wheel), str(staging), "zip")
    (staging / ".complete").write_text("ok\n")
    shutil.rmtree(site, ignore_errors=True)
    staging.rename(site)
    return site


def build_profile(root: Path, profile: BoardProfile) -> Path:
    """A rootfs for one board: hard links to the base plus its own /proc/cpuinfo and model."""
    base = build_base(root)
    target = root / "boards" / profile.name
    marker = target / ".complete"
    if marker.exists() and marker.read_text() == profile.cpuinfo():
        return target
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    _run(["cp", "-al", str(base), str(staging)])
    (staging / ".complete").unlink()
    (staging / "proc" / "device-tree").mkdir(parents=True, exist_ok=True)
    (staging / "proc" / "cpuinfo").write_text(profile.cpuinfo())
    (staging / "proc" / "device-tree" / "model").write_bytes(profile.model.encode() + b"\0")
    dt_base = staging / "sys" / "firmware" / "devicetree" / "base"
    dt_base.mkdir(parents=True, exist_ok=True)
    (dt_base / "model").write_bytes(profile.model.encode() + b"\0")
    if profile.name.startswith("jetson"):
        (staging / "etc").mkdir(exist_ok=True)
        (staging / "etc" / "nv_tegra_release").write_text(
            "# R32 (release), REVISION: 7.4, GCID: 33514132, BOARD: t210ref, EABI: aarch64, "
            "DATE: Fri Jun  9 04:25:08 UTC 2023\n"
        )
    site_root = staging / "opt"
    site_root.mkdir(exist_ok=True)
    for runtime in RUNTIMES:
        link = site_root / f"site-{runtime}"
        link.symlink_to(build_site(root, runtime))
    (staging / ".complete").write_text(profile.cpuinfo())
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def wrapper_path(root: Path, profile: str, runtime: str) -> Path:
    return root / "bin" / f"{profile}-{runtime}" / "python"


def build_wrapper(root: Path, profile: BoardProfile, runtime: str) -> Path:
    """A host script that runs the board's arm64 python with one runtime on its path."""
    if runtime not in RUNTIMES:
        raise SystemExit(f"error: unknown runtime {runtime!r}; choose {', '.join(RUNTIMES)}")
    rootfs = build_profile(root, profile)
    site = build_site(root, runtime)
    wrapper = wrapper_path(root, profile.name, runtime)
    wrapper.parent.mkdir(parents=True, exist_ok=True)
    script = f"""#!/bin/sh
# Emulated {profile.model} ({profile.qemu_cpu}) with {runtime}; generated by tools/emulated_board.py
export QEMU_LD_PREFIX={rootfs}
export QEMU_CPU={profile.qemu_cpu}
export PYTHONPATH={site}${{PYTHONPATH:+:$PYTHONPATH}}
export PYTHONDONTWRITEBYTECODE=1
exec {qemu_binary()} -0 "$0" -cpu {profile.qemu_cpu} {rootfs}/usr/bin/python3.11 "$@"
"""
    tmp = wrapper.with_name("python.tmp")
    tmp.write_text(script)
    tmp.chmod(0o755)
    tmp.replace(wrapper)
    return wrapper


def ensure(profile: str, runtime: str) -> Path:
    """Build what is missing (under a lock, so parallel test workers share one build)."""
    if profile not in PROFILES:
        raise SystemExit(f"error: unknown profile {profile!r}; choose {', '.join(PROFILES)}")
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return build_wrapper(root, PROFILES[profile], runtime)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tools/emulated_board.py", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build (or check) the cached userland and wrappers")
    build.add_argument("--profile", default="all", choices=[*PROFILES, "all"])
    build.add_argument("--runtime", default="all", choices=[*RUNTIMES, "all"])
    python = sub.add_parser("python", help="print the wrapper path for a profile and runtime")
    python.add_argument("profile", choices=list(PROFILES))
    python.add_argument("runtime", choices=list(RUNTIMES))
    run = sub.add_parser("run", help="run the emulated python with arguments")
    run.add_argument("profile", choices=list(PROFILES))
    run.add_argument("runtime", choices=list(RUNTIMES))
    run.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    if args.command == "build":
        profiles = list(PROFILES) if args.profile == "all" else [args.profile]
        runtimes = list(RUNTIMES) if args.runtime == "all" else [args.runtime]
        for profile in profiles:
            for runtime in runtimes:
                print(ensure(profile, runtime))
        return 0
    wrapper = ensure(args.profile, args.runtime)
    if args.command == "python":
        print(wrapper)
        return 0
    extra = args.args[1:] if args.args[:1] == ["--"] else args.args
    return subprocess.call([str(wrapper), *extra])


if __name__ == "__main__":
    sys.exit(main())
