"""Probes on recorded Pi 4, Pi 5 and Jetson Orin outputs, through their real subprocess code.

The tools themselves (vcgencmd, nvpmodel, jetson_clocks, tegrastats) cannot run here, so small
stand-in scripts on PATH print what the real boards printed (tests/agent/recorded/).
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from device_agents.probes import device_facts, jetson, linux, raspberry_pi, thermal_snapshot
from device_agents.probes.tools import run_tool
from device_agents.protocol import LatencySummary, Measurement
from device_agents.run_conditions import noise_warnings, throttling_seen

from .conftest import RECORDED

PI4, PI5, ORIN = RECORDED / "pi4", RECORDED / "pi5", RECORDED / "jetson-orin"


def _script(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def board_tools(tmp_path, monkeypatch):
    """Put stand-ins for one board's tools on PATH (and nothing else of that name)."""

    def install(board: Path) -> Path:
        tools = board / "tools"
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir(exist_ok=True)
        _script(
            bin_dir / "vcgencmd",
            f"""case "$1 $2" in
  "measure_temp ") cat {tools}/vcgencmd_measure_temp.txt ;;
  "get_throttled ") cat {tools}/vcgencmd_get_throttled.txt ;;
  "measure_clock arm") cat {tools}/vcgencmd_measure_clock_arm.txt ;;
  *) echo "error=1 error_msg=\\"Command not registered\\"" >&2; exit 255 ;;
esac
""",
        )
        _script(bin_dir / "nvpmodel", f'[ "$1" = "-q" ] && cat {tools}/nvpmodel_q.txt\n')
        _script(
            bin_dir / "jetson_clocks",
            f'[ "$1" = "--show" ] && cat {tools}/jetson_clocks_show.txt\n',
        )
        # The real tegrastats prints a line per interval until it is stopped.
        _script(
            bin_dir / "tegrastats",
            f"while true; do head -n 1 {tools}/tegrastats.txt; sleep 0.2; done\n",
        )
        monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
        return bin_dir

    return install


# ------------------------------------------------------------------ parsers on recorded text


def test_cpuinfo_of_each_board():
    pi4 = linux.parse_cpuinfo((PI4 / "root/proc/cpuinfo").read_text())
    assert pi4["cores"] == 4 and pi4["core_types"] == ["Cortex-A72"]
    assert "fphp" not in pi4["features"] and pi4["board_model"] == "Raspberry Pi 4 Model B Rev 1.4"
    pi5 = linux.parse_cpuinfo((PI5 / "root/proc/cpuinfo").read_text())
    assert pi5["core_types"] == ["Cortex-A76"] and {"fphp", "asimdhp"} <= set(pi5["features"])
    orin = linux.parse_cpuinfo((ORIN / "root/proc/cpuinfo").read_text())
    assert orin["cores"] == 12 and orin["core_types"] == ["Cortex-A78AE"]
    assert orin["model"] == "ARMv8 Processor rev 1 (v8l)"


def test_vcgencmd_parsers():
    assert (
        raspberry_pi.parse_measure_temp((PI4 / "tools/vcgencmd_measure_temp.txt").read_text())
        == 48.7
    )
    assert raspberry_pi.parse_measure_clock("frequency(48)=600117184\n") == 600117184
    assert raspberry_pi.parse_measure_clock("frequency(0)=2400029952\n") == 2400029952
    pi4 = raspberry_pi.parse_get_throttled("throttled=0x50005\n")
    assert pi4["now"] == {
        "under_voltage": True,
        "frequency_capped": False,
        "throttled": True,
        "soft_temperature_limit": False,
    }
    assert pi4["since_boot"]["under_voltage"] and pi4["since_boot"]["throttled"]
    assert not pi4["since_boot"]["frequency_capped"]
    quiet = raspberry_pi.parse_get_throttled("throttled=0x0")
    assert not any(quiet["now"].values()) and not any(quiet["since_boot"].values())
    capped = raspberry_pi.parse_get_throttled("throttled=0x80008")
    assert (
        capped["now"]["soft_temperature_limit"] and capped["since_boot"]["soft_temperature_limit"]
    )
    for junk in ("", 'error=1 error_msg="Command not registered"', "temp=hot"):
        assert raspberry_pi.parse_measure_temp(junk) is None
        assert raspberry_pi.parse_get_throttled(junk) is None
        assert raspberry_pi.parse_measure_clock(junk) is None


def test_jetson_parsers():
    release = jetson.parse_nv_tegra_release((ORIN / "root/etc/nv_tegra_release").read_text())
    assert release == {"l4t": "35.4.1", "release": "R35", "revision": "4.1", "board": "t186ref"}
    assert jetson.parse_nvpmodel((ORIN / "tools/nvpmodel_q.txt").read_text()) == {
        "name": "MAXN",
        "id": 0,
    }
    assert jetson.parse_nvpmodel("NVPM WARN: fan mode is not set!\nNV Power Mode: 15W\n2\n") == {
        "name": "15W",
        "id": 2,
    }
    clocks = jetson.parse_jetson_clocks((ORIN / "tools/jetson_clocks_show.txt").read_text())
    assert clocks["soc_family"] == "tegra234" and clocks["online_cpus"] == "0-11"
    assert len(clocks["cpus"]) == 12 and {c["governor"] for c in clocks["cpus"]} == {"schedutil"}
    assert clocks["gpu"] == {"min_hz": 306000000, "max_hz": 1300500000, "cur_hz": 306000000}
    assert clocks["power_mode"] == "MAXN" and clocks["clocks_pinned"] is False
    sample = jetson.parse_tegrastats((ORIN / "tools/tegrastats.txt").read_text().splitlines()[0])
    assert sample["ram_used_mb"] == 3052 and sample["ram_total_mb"] == 30536
    assert len(sample["cpu"]) == 12 and sample["cpu"][8] is None
    assert sample["cpu"][4] == {"load_pct": 97, "mhz": 2201}
    assert sample["gpu"] == {"load_pct": 0, "mhz": [306, 306]}
    assert sample["emc"] == {"load_pct": 3, "mhz": 2133}
    assert sample["temperatures_c"]["tj"] == 45.968 and "cv0" not in sample["temperatures_c"]
    assert sample["power_mw"]["VDD_CPU_CV"] == {"now": 1990, "avg": 1802}


def test_tegrastats_older_formats():
    """Jetson Nano (JetPack 4): one frequency for all cores and no GPU frequency."""
    nano = (
        "RAM 1689/3825MB (lfb 339x4MB) SWAP 0/1913MB (cached 0MB) CPU [3%@345,off,off,0%@345] "
        "EMC_FREQ 0% GR3D_FREQ 0% PLL@50.5C CPU@50.5C PMIC@50C GPU@50C thermal@50.3C"
    )
    sample = jetson.parse_tegrastats(nano)
    assert sample["cpu"] == [{"load_pct": 3, "mhz": 345}, None, None, {"load_pct": 0, "mhz": 345}]
    assert sample["gpu"] == {"load_pct": 0, "mhz": []} and sample["emc"]["mhz"] is None
    assert sample["temperatures_c"]["cpu"] == 50.5 and sample["power_mw"] == {}
    tx1 = "RAM 3468/3983MB (lfb 48x4MB) cpu [17%,13%,29%,5%]@408 EMC 1%@408 GR3D 3%@76"
    assert jetson.parse_tegrastats(tx1)["temperatures_c"] == {}
    assert jetson.parse_nv_tegra_release("garbage") is None
    assert jetson.parse_nvpmodel("") is None


# ------------------------------------------------------------------ whole probes, real subprocesses


def test_raspberry_pi_4_probe(board_tools):
    board_tools(PI4)
    root = str(PI4 / "root")
    facts = raspberry_pi.raspberry_pi_facts(root)
    assert facts["model"] == "Raspberry Pi 4 Model B Rev 1.4"
    assert facts["temperature_c"] == 48.7 and facts["arm_clock_hz"] == 600117184
    assert facts["throttled"]["now"]["under_voltage"] is True
    assert "error" not in facts
    assert raspberry_pi.raspberry_pi_facts(str(ORIN / "root")) is None


def test_linux_facts_of_recorded_boards():
    pi4 = linux.linux_facts(str(PI4 / "root"))
    assert pi4["kernel"] == "6.6.31+rpt-rpi-v8"
    assert pi4["distribution"] == "Debian GNU/Linux 12 (bookworm)"
    assert pi4["memory"]["total_kb"] == 3880020
    assert [c["governor"] for c in pi4["clocks"]] == ["ondemand"] * 4
    assert pi4["clocks"][0]["cur_mhz"] == 600.0 and pi4["clocks"][0]["max_mhz"] == 1800.0
    assert pi4["thermal_zones"] == [
        {"zone": "thermal_zone0", "type": "cpu-thermal", "temp_c": 48.7}
    ]
    assert pi4["load_average"] == [0.52, 0.31, 0.12]
    assert pi4["cpu_features"] == ["asimd"]
    orin = linux.linux_facts(str(ORIN / "root"))
    assert orin["board_model"] == "NVIDIA Jetson AGX Orin Developer Kit"
    assert len(orin["clocks"]) == 12 and orin["cores"] == 12
    assert {"fphp", "asimdhp", "asimddp"} <= set(orin["cpu_features"])


def test_jetson_probe(board_tools):
    board_tools(ORIN)
    facts = jetson.jetson_facts(str(ORIN / "root"))
    assert facts["model"] == "NVIDIA Jetson AGX Orin Developer Kit"
    assert facts["l4t"]["l4t"] == "35.4.1"
    assert facts["power_mode"] == {"name": "MAXN", "id": 0}
    assert facts["clocks"]["soc_family"] == "tegra234"
    assert facts["tegrastats"]["ram_used_mb"] == 3052 and facts["errors"] == []
    assert jetson.jetson_facts(str(PI5 / "root")) is None


def test_probes_degrade_without_tools(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing there
    pi = raspberry_pi.raspberry_pi_facts(str(PI5 / "root"))
    assert pi["temperature_c"] is None and pi["throttled"] is None
    assert "vcgencmd is not installed" in pi["error"]
    orin = jetson.jetson_facts(str(ORIN / "root"))
    assert orin["power_mode"] is None and orin["clocks"] is None
    assert orin["l4t"]["l4t"] == "35.4.1"  # files still read
    assert any("nvpmodel is not installed" in e for e in orin["errors"])
    assert "not installed" in orin["tegrastats"]["error"]
    empty = linux.linux_facts(str(tmp_path))
    assert empty["clocks"] == [] and empty["thermal_zones"] == [] and empty["memory"] is None


def test_failing_or_hanging_tools_become_errors(tmp_path, monkeypatch):
    _script(tmp_path / "vcgencmd", 'echo "VCHI initialization failed" >&2; exit 1\n')
    _script(tmp_path / "nvpmodel", "sleep 30\n")
    _script(tmp_path / "jetson_clocks", 'echo "Error: Run jetson_clocks as root" >&2; exit 1\n')
    _script(tmp_path / "tegrastats", "sleep 30\n")
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    state = raspberry_pi.throttle_state()
    assert "VCHI initialization failed" in state["error"] and state["throttled"] is None
    slow = run_tool(["nvpmodel", "-q"], timeout=0.5)
    assert not slow.ok and "did not answer within 0.5 s" in slow.error
    clocks = run_tool(["jetson_clocks", "--show"])
    assert "Run jetson_clocks as root" in clocks.error
    sample = jetson.sample_tegrastats(timeout_s=0.5)
    assert "printed nothing" in sample["error"]


# ------------------------------------------------------------------ thermal state and warnings


def test_pi4_run_conditions_raise_named_warnings(board_tools):
    board_tools(PI4)
    root = str(PI4 / "root")
    before = thermal_snapshot(root)
    after = thermal_snapshot(root)
    assert before["temperature_c"] == 48.7
    seen = throttling_seen(before, [], after)
    assert seen["throttled"] and seen["under_voltage"]
    summary = LatencySummary.of([10.0] * 8 + [20.0, 20.0])
    measurement = Measurement(threads=4, xnnpack=True, summary=summary)
    conditions = {"governors": {"ondemand": [0, 1, 2, 3]}, "throttling": seen}
    codes = [w.code for w in noise_warnings(conditions, [measurement], threads_cap=2)]
    assert codes == [
        "governor_not_performance",
        "under_voltage",
        "throttled",
        "high_spread",
        "threads_exceed_cpus",
    ]


def test_pi5_quiet_board_has_no_warnings(board_tools):
    board_tools(PI5)
    root = str(PI5 / "root")
    seen = throttling_seen(thermal_snapshot(root), [], thermal_snapshot(root))
    assert seen == {"throttled": False, "under_voltage": False, "evidence": []}
    summary = LatencySummary.of([10.0, 10.1, 10.2, 10.3])
    conditions = {"governors": {"performance": [0, 1, 2, 3]}, "throttling": seen}
    assert (
        noise_warnings(conditions, [Measurement(threads=1, xnnpack=True, summary=summary)], 4) == []
    )


def test_throttling_that_starts_during_the_run_is_seen():
    def pi(raw: int) -> dict:
        return {"raspberry_pi": {"throttled": raspberry_pi.decode_throttled(raw)}}

    seen = throttling_seen(pi(0x0), [pi(0x0)], pi(0x40000))  # "throttling has occurred" appears
    assert seen["throttled"] and "throttled first happened during this run" in seen["evidence"]
    old = throttling_seen(pi(0x40000), [], pi(0x40000))  # since before the run: not ours
    assert not old["throttled"]


def test_x86_throttle_counter(tmp_path):
    for cpu in (0, 1):
        base = tmp_path / f"sys/devices/system/cpu/cpu{cpu}/thermal_throttle"
        base.mkdir(parents=True)
        (base / "core_throttle_count").write_text("3\n")
        (base / "package_throttle_count").write_text("1\n")
    assert linux.x86_throttle_count(str(tmp_path)) == 8
    seen = throttling_seen({"x86_throttle_count": 8}, [], {"x86_throttle_count": 11})
    assert seen["throttled"] and "rose by 3" in seen["evidence"][0]


def test_device_facts_of_this_machine():
    facts = device_facts()
    assert facts["cores"] and facts["kernel"] and facts["board"]
    assert facts["raspberry_pi"] is None and facts["jetson"] is None
