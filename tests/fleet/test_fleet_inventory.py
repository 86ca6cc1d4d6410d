"""The inventory: validation names file, device and field; selection by name and tag."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from edgeprune.errors import UserError
from edgeprune.fleet.inventory import load_inventory


def write(path: Path, document: object) -> Path:
    path.write_text(yaml.safe_dump(document) if not isinstance(document, str) else document)
    return path


def test_local_device_always_exists_and_honours_xdg(tmp_path: Path):
    inventory = load_inventory()
    local = inventory.devices["local"]
    assert local.is_local
    assert local.spool == str(tmp_path / "xdg-data" / "edgeprune" / "local-spool")
    assert [d.name for d in inventory.select(["local"])] == ["local"]


def test_fields_defaults_and_relative_paths(tmp_path: Path):
    (tmp_path / "keys").mkdir()
    path = write(
        tmp_path / "devices.yaml",
        {
            "known_hosts": "kh",
            "defaults": {"user": "pi", "python": "/usr/bin/python3.9", "tags": ["lab"]},
            "devices": [
                {
                    "name": "pi4",
                    "host": "10.0.0.4",
                    "kind": "raspberry_pi",
                    "identity_file": "keys/id",
                },
                {
                    "name": "nano",
                    "host": "10.0.0.5",
                    "port": 2222,
                    "user": "ubuntu",
                    "kind": "jetson",
                    "tags": ["jetson"],
                    "spool": "/srv/spool",
                },
            ],
        },
    )
    inventory = load_inventory(path)
    pi4, nano = inventory.devices["pi4"], inventory.devices["nano"]
    assert (pi4.user, pi4.port, pi4.python, pi4.tags) == ("pi", 22, "/usr/bin/python3.9", ("lab",))
    assert pi4.identity_files == (str(tmp_path / "keys" / "id"),)
    assert pi4.known_hosts == str(tmp_path / "kh")
    assert pi4.spool == "~/.edgeprune"
    assert (nano.user, nano.port, nano.tags, nano.spool) == (
        "ubuntu",
        2222,
        ("jetson",),
        "/srv/spool",
    )
    assert [d.name for d in inventory.select(tags=["lab"])] == ["pi4"]
    assert [d.name for d in inventory.select(["nano,pi4"])] == ["nano", "pi4"]
    assert {d.name for d in inventory.select(all_=True)} == {"local", "pi4", "nano"}


def test_host_resolves_through_ssh_config(tmp_path: Path):
    config = tmp_path / "ssh_config"
    config.write_text(
        "Host pi4-lab\n  HostName 192.168.7.4\n  Port 2200\n  User pi\n"
        f"  IdentityFile {tmp_path}/id_lab\n  UserKnownHostsFile {tmp_path}/kh_lab\n"
    )
    path = write(
        tmp_path / "d.yaml",
        {"ssh_config": str(config), "devices": [{"name": "pi", "host": "pi4-lab"}]},
    )
    device = load_inventory(path).devices["pi"]
    assert (device.hostname, device.port, device.user) == ("192.168.7.4", 2200, "pi")
    assert device.identity_files == (f"{tmp_path}/id_lab",)
    assert device.known_hosts == f"{tmp_path}/kh_lab"
    # the inventory's own fields win over ~/.ssh/config
    path = write(
        tmp_path / "d2.yaml",
        {
            "ssh_config": str(config),
            "devices": [{"name": "pi", "host": "pi4-lab", "port": 22, "user": "me"}],
        },
    )
    device = load_inventory(path).devices["pi"]
    assert (device.hostname, device.port, device.user) == ("192.168.7.4", 22, "me")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"devices": [{"name": "pi4", "host": "h", "prot": 22}]},
            r"device 'pi4': unknown field 'prot' \(did you mean 'port'\?\)",
        ),
        ({"devices": [{"name": "pi4", "host": "h", "port": 70000}]}, r"device 'pi4': field 'port'"),
        (
            {"devices": [{"name": "pi4", "host": "h", "kind": "arduino"}]},
            r"device 'pi4': field 'kind'",
        ),
        ({"devices": [{"name": "pi4"}]}, r"device 'pi4': field 'host' is required"),
        ({"devices": [{"host": "h"}]}, r"device #1: field 'name' is required"),
        (
            {"devices": [{"name": "../etc", "host": "h"}]},
            r"device '../etc': field 'name': use 1-63 letters",
        ),
        ({"devices": [{"name": "pi", "host": "h; rm -rf /"}]}, r"device 'pi': field 'host'"),
        ({"devices": [{"name": "pi", "host": "h", "user": "x y"}]}, r"device 'pi': field 'user'"),
        (
            {"devices": [{"name": "pi", "host": "h", "tags": ["ok", "bad tag"]}]},
            r"device 'pi': field 'tags'.*'bad tag'",
        ),
        (
            {"devices": [{"name": "a", "host": "h"}, {"name": "a", "host": "h2"}]},
            r"device 'a': field 'name': 'a' is used twice",
        ),
        ({"devices": [{"name": "local", "host": "h"}]}, r"'local' is reserved"),
        (
            {"devices": [{"name": "x", "host": "h", "kind": "local"}]},
            r"field 'kind': 'local' is the built-in",
        ),
        ({"devcies": []}, r"unknown field 'devcies' \(did you mean 'devices'\?\)"),
        (
            {"defaults": {"pyhton": "p"}},
            r"unknown field 'defaults.pyhton' \(did you mean 'python'\?\)",
        ),
        ({"devices": ["just-a-name"]}, r"device #1 must be a mapping"),
        ("devices: [\n  {name: a", r"not valid YAML at line"),
        ("- a\n- b\n", r"must be a mapping"),
        ({"devices": [{"name": "pi", "host": "h", "retries": -1}]}, r"field 'retries'"),
    ],
)
def test_bad_inventory_names_file_device_and_field(tmp_path: Path, document, message):
    path = write(tmp_path / "devices.yaml", document)
    with pytest.raises(UserError, match=message) as info:
        load_inventory(path)
    assert str(path) in str(info.value)


def test_unknown_device_and_tag_are_clear(tmp_path: Path):
    path = write(
        tmp_path / "d.yaml", {"devices": [{"name": "pi4", "host": "h", "tags": ["arm64"]}]}
    )
    inventory = load_inventory(path)
    with pytest.raises(
        UserError, match=r"unknown device 'pi5' \(did you mean 'pi4'\?\).*has: local, pi4"
    ):
        inventory.select(["pi5"])
    with pytest.raises(UserError, match=r"no device has tag 'x86'; tags in .*: arm64, local"):
        inventory.select(tags=["x86"])
    with pytest.raises(UserError, match="choose devices"):
        inventory.select()


def test_missing_inventory_file_and_env_variable(tmp_path: Path, monkeypatch):
    with pytest.raises(UserError, match="does not exist; copy configs/devices.example.yaml"):
        load_inventory(tmp_path / "nope.yaml")
    path = write(tmp_path / "env.yaml", {"devices": [{"name": "envdev", "host": "h"}]})
    monkeypatch.setenv("EDGEPRUNE_INVENTORY", str(path))
    assert "envdev" in load_inventory().devices


def test_example_inventory_is_valid():
    example = Path(__file__).resolve().parents[2] / "configs" / "devices.example.yaml"
    inventory = load_inventory(example)
    assert {"pi4-lab", "pi5-desk", "jetson-nano", "local"} <= set(inventory.devices)
    assert inventory.devices["jetson-nano"].python == "/usr/bin/python3.8"


def test_cli_lists_devices_and_reports_bad_input(run_cli, tmp_path: Path):
    path = write(
        tmp_path / "d.yaml",
        {"devices": [{"name": "pi4", "host": "10.1.1.1", "user": "pi", "tags": ["arm64"]}]},
    )
    outcome = run_cli("devices", "list", "--inventory", path, "--json")
    assert outcome.code == 0, outcome.err
    names = [d["name"] for d in json.loads(outcome.out)["devices"]]
    assert names == ["local", "pi4"]
    bad = write(tmp_path / "bad.yaml", {"devices": [{"name": "pi4", "hots": "x"}]})
    outcome = run_cli("devices", "list", "--inventory", bad)
    assert outcome.code == 2
    assert (
        outcome.err.startswith("error: inventory")
        and "hots" in outcome.err
        and "Traceback" not in outcome.err
    )
    outcome = run_cli("deploy", tmp_path / "missing.tflite", "--device", "local")
    assert outcome.code == 2 and "does not exist" in outcome.err
    fake = tmp_path / "fake.tflite"
    fake.write_bytes(b"not a model at all")
    outcome = run_cli("deploy", fake, "--device", "local")
    assert outcome.code == 2 and "not a TFLite flatbuffer" in outcome.err


def test_fleet_commands_start_without_tensorflow_or_matplotlib(tmp_path: Path):
    import subprocess
    import sys

    code = (
        "import sys; from edgeprune.cli.app import run;"
        "codes = [run(['devices', 'list']), run(['results', 'list', '--db', sys.argv[1]])];"
        "heavy = [m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules];"
        "print(codes, heavy); sys.exit(1 if heavy else 0)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "none.db")], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[0, 2] []" in proc.stdout


def test_systemd_unit_is_filled_from_the_agent_template():
    from edgeprune.errors import DeviceError
    from edgeprune.fleet.systemd import render_unit, unit_template

    unit = render_unit(unit_template(), "/home/pi/.edgeprune/venv/bin/python", "/home/pi/my spool")
    assert (
        'ExecStart=/home/pi/.edgeprune/venv/bin/python -m device_agents serve --spool "/home/pi/my spool"'
        in unit
    )
    assert "@PYTHON@" not in unit and "@SPOOL@" not in unit
    with pytest.raises(DeviceError, match="cannot go into a systemd unit"):
        render_unit(unit_template(), "/usr/bin/python3", 'bad"path')
