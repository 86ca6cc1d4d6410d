"""Hostile and careless ssh_config files: nothing is executed, and hosts resolve as `ssh -G`.

- `Match exec "…"` in an inventory's `ssh_config:` never runs (not at load, not at a recipe's
  --dry-run, not at `devices list`), and a host of `x<({touch,Y})` is refused with one line
  naming the inventory and the field.
- `Include`, `Host`/`Match` blocks and first-value-wins resolve host, port, user, identity
  files and known-hosts files exactly as the real `ssh -G` does, on a set of configs.
- `ProxyJump` tunnels through the bastion (a real sshd) and a dead bastion fails the device
  instead of a direct connection; `ProxyCommand` is refused with one line.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from edgeprune.errors import UserError
from edgeprune.fleet.inventory import load_inventory
from edgeprune.fleet.ssh_config import DEFAULT_IDENTITY_FILES, SshConfig

RECIPE = Path(__file__).resolve().parents[2] / "configs" / "recipes" / "demo.yaml"


def _inventory(tmp_path: Path, config: Path, host: str = "board", **fields) -> Path:
    path = tmp_path / "devices.yaml"
    entry = {"name": "pi", "host": host, **fields}
    path.write_text(yaml.safe_dump({"ssh_config": str(config), "devices": [entry]}))
    return path


# ------------------------------------------------------------------ no command execution


def test_match_exec_in_an_inventory_ssh_config_never_runs(tmp_path, run_cli, figures):
    marks = [tmp_path / f"ran{i}" for i in range(3)]
    config = tmp_path / "ssh_config"
    config.write_text(
        f'Match exec "touch {marks[0]}"\n  Port 2201\n'
        f'Match host board exec "touch {marks[1]}"\n  Port 2202\n'
        f'Match !exec "touch {marks[2]}"\n  Port 2203\n'
        "Host board\n  HostName 10.0.0.7\n"
    )
    inventory = _inventory(tmp_path, config)
    device = load_inventory(inventory).devices["pi"]
    assert (device.hostname, device.port) == ("10.0.0.7", 22)
    assert run_cli("devices", "list", "--inventory", inventory).code == 0
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        RECIPE.read_text().replace("devices: [local]", f"devices: [pi]\ninventory: {inventory}")
    )
    outcome = run_cli("run", recipe, "--dry-run", "--workdir", tmp_path / "w")
    assert outcome.code == 0, outcome.err
    ran = [m for m in marks if m.exists()]
    assert ran == []
    figures("config-exec", injected=len(marks) * 3, commands_run=len(ran))


def test_match_exec_in_the_users_own_config_never_runs(tmp_path, monkeypatch, run_cli, figures):
    monkeypatch.setenv("HOME", str(tmp_path))
    mark = tmp_path / "ran"
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text(
        f'Match exec "test %h = board && touch {mark}"\n  Port 2201\n'
    )
    path = tmp_path / "devices.yaml"
    path.write_text(yaml.safe_dump({"devices": [{"name": "pi", "host": "board"}]}))
    assert load_inventory(path).devices["pi"].port == 22
    assert run_cli("devices", "list", "--inventory", path).code == 0
    hostile = tmp_path / "hostile.yaml"
    hostile.write_text(yaml.safe_dump({"devices": [{"name": "pi", "host": "x<({touch,Y})"}]}))
    outcome = run_cli("devices", "list", "--inventory", hostile)
    assert outcome.code != 0 and "field 'host'" in outcome.err
    assert not mark.exists() and not (tmp_path / "Y").exists()
    figures("config-exec", injected=3, commands_run=0)


@pytest.mark.parametrize(
    "host",
    ["x<({touch,Y})", "a>b", "a(b)", "{a,b}", "a,b", "h*", "h?", "[h]", "a\\b", "-oProxy=x", "a b"],
)
def test_a_host_with_shell_or_glob_characters_is_refused(tmp_path, host, figures):
    path = tmp_path / "devices.yaml"
    path.write_text(yaml.safe_dump({"devices": [{"name": "pi", "host": host}]}))
    with pytest.raises(UserError) as caught:
        load_inventory(path)
    message = str(caught.value)
    assert str(path) in message and "field 'host'" in message and "\n" not in message
    figures("config-exec", hostile_hosts=1, refused=1)


def test_a_hostname_from_ssh_config_with_shell_characters_is_refused(tmp_path):
    config = tmp_path / "ssh_config"
    config.write_text("Host board\n  HostName a$(touch${IFS}x)\n")
    with pytest.raises(UserError) as caught:
        load_inventory(_inventory(tmp_path, config))
    assert "HostName" in str(caught.value) and str(config) in str(caught.value)


@pytest.mark.parametrize(
    "host", ["pi4-lab", "board_1.local", "10.0.0.4", "::1", "fe80::1%eth0", "Pi4.Example.COM."]
)
def test_host_names_and_ip_literals_are_accepted(tmp_path, host):
    path = tmp_path / "devices.yaml"
    path.write_text(yaml.safe_dump({"devices": [{"name": "pi", "host": host}]}))
    assert load_inventory(path).devices["pi"].host == host


# ------------------------------------------------------------------ agreement with ssh -G


def _ssh_g(config: Path, host: str, user: str | None, port: int | None) -> dict[str, list[str]]:
    argv = ["ssh", "-G", "-F", str(config)]
    argv += ["-l", user] if user else []
    argv += ["-p", str(port)] if port else []
    done = subprocess.run(
        [*argv, host], capture_output=True, text=True, check=True, env={**os.environ}
    )
    out: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition(" ")
        out.setdefault(key, []).append(value)
    return out


def _configs(root: Path) -> list[tuple[str, str, str | None, int | None]]:
    """(config text, host, -l user, -p port) cases; files under `root` for Include."""
    inc = root / "inc"
    inc.mkdir()
    (inc / "10-lab.conf").write_text(
        "Host lab-*\n  HostName %h.lab.example\n  Port 2022\n  IdentityFile ~/keys/lab\n"
    )
    (inc / "20-more.conf").write_text(
        "Host lab-b\n  Port 9999\n  User late\nHost *\n  IdentityFile /k/wild_%r\n"
    )
    (root / "nested.conf").write_text(f"Include {inc}/20-*.conf\nHost deep\n  HostName d.example\n")
    return [
        ("Host a\n  HostName 10.1.1.1\n  Port 2200\n  User pi\n", "a", None, None),
        ("Host a\n  HostName 10.1.1.1\n  Port 2200\n  User pi\n", "b", None, None),
        ("Host a b\n  Port 1\nHost a\n  Port 2\n  User x\nHost *\n  User y\n", "a", None, None),
        ("Host * !secret\n  User open\nHost secret\n  HostName s\n", "secret", None, None),
        ("Host web?\n  HostName %h.example.org\n", "web1", None, None),
        ("Host ALIAS\n  Port 7\n", "alias", None, None),
        ("Host ALIAS\n  Port 7\n  HostName MixedCase.Example\n", "ALIAS", None, None),
        (f"Include {inc}/*.conf\n", "lab-a", None, None),
        (f"Include {inc}/*.conf\n", "lab-b", None, None),
        (f"Host x\n  Include {inc}/*.conf\n", "lab-a", None, None),
        (f"Host lab-a\n  Include {root}/nested.conf\n", "lab-a", None, None),
        (f"Include {root}/nested.conf\n", "deep", None, None),
        ("Host a\n  Port 2200\n  User pi\n", "a", "cli", 3300),
        ("Match host 10.*\n  User m\nHost a\n  HostName 10.2.2.2\n", "a", None, None),
        ("Host a\n  HostName 10.2.2.2\nMatch host 10.*\n  User m\n", "a", None, None),
        ("Match originalhost a,b user u1\n  Port 5\nHost *\n  User u1\n", "a", "u1", None),
        ("Match all\n  Port 6\n", "any", None, None),
        (
            "Host a\n  HostName real.example\nMatch final host real.example\n  Port 9\n"
            "Host real.example\n  User viafinal\n  IdentityFile /k/one\nHost *\n"
            "  IdentityFile /k/one\n  IdentityFile /k/two\n",
            "a",
            None,
            None,
        ),
        ("Match canonical\n  Port 8\nHost b\n  User bb\n", "b", None, None),
        ("Match !final\n  Port 7\nMatch final\n  User late\n", "c", None, None),
        (
            "Host a\n  IdentityFile ~/.ssh/one\n  IdentityFile /two/%h_%r\n"
            "  UserKnownHostsFile ~/kh/%h-%p /kh2/%r\n  User bob\n",
            "a",
            None,
            None,
        ),
        (
            "Host a\n  HostName B.example\n  User u\n"
            "  UserKnownHostsFile /kh/%C /kh/%k-%L-%l-%i-%n-%u-%d %%x\n",
            "a",
            None,
            2,
        ),
        ("Host a\n  UserKnownHostsFile=/k1\n  UserKnownHostsFile /k2\n", "a", None, None),
        ("Port = 2345\nUser=eq\n", "a", None, None),
        (
            "Host a\n  GlobalKnownHostsFile /g/%h /g2\n  GlobalKnownHostsFile /late\n",
            "a",
            None,
            None,
        ),
        ('Host a\n  IdentityFile "/with space/key"\n', "a", None, None),
        ("Host a # comment\n  Port 44 # trailing\n", "a", None, None),
    ]


@pytest.mark.skipif(shutil.which("ssh") is None, reason="OpenSSH client not installed")
def test_resolution_equals_ssh_dash_g(tmp_path, monkeypatch, figures):
    import pwd

    monkeypatch.setenv("HOME", pwd.getpwuid(os.getuid()).pw_dir)  # ssh's ~ is the passwd home
    differences: list[str] = []
    cases = _configs(tmp_path)
    for index, (text, host, user, port) in enumerate(cases):
        config = tmp_path / f"config{index}"
        config.write_text(text)
        expected = _ssh_g(config, host, user, port)
        resolved = SshConfig.from_path(str(config)).resolve(host, user=user, port=port)
        got = {
            "hostname": [resolved.hostname],
            "port": [str(resolved.port)],
            "user": [resolved.user],
            "identityfile": resolved.identity_files or list(DEFAULT_IDENTITY_FILES),
            "userknownhostsfile": [" ".join(resolved.known_hosts)],
            "globalknownhostsfile": [" ".join(resolved.global_known_hosts)],
        }
        for key, value in got.items():
            if expected.get(key) != value:
                differences.append(f"config{index} {host}: {key} {value} != {expected.get(key)}")
    assert differences == []
    figures("ssh -G agreement", configs=len(cases), differences=len(differences))


def test_an_include_loop_is_refused_with_one_line(tmp_path):
    config = tmp_path / "ssh_config"
    config.write_text(f"Include {config}\n")
    with pytest.raises(UserError, match="Include nested too deeply"):
        load_inventory(_inventory(tmp_path, config))


def test_include_defines_an_alias_the_inventory_resolves(tmp_path):
    (tmp_path / "lab.conf").write_text("Host pi4-lab\n  HostName 192.168.7.4\n  Port 2200\n")
    config = tmp_path / "ssh_config"
    config.write_text(f"Include {tmp_path}/lab.conf\nHost *\n  User pi\n")
    device = load_inventory(_inventory(tmp_path, config, host="pi4-lab")).devices["pi"]
    assert (device.hostname, device.port, device.user) == ("192.168.7.4", 2200, "pi")


def test_proxy_command_is_refused_with_one_line(tmp_path):
    config = tmp_path / "ssh_config"
    config.write_text("Host board\n  ProxyCommand nc -X connect %h %p\n")
    with pytest.raises(UserError) as caught:
        load_inventory(_inventory(tmp_path, config))
    message = str(caught.value)
    assert "ProxyCommand" in message and "ProxyJump" in message and "\n" not in message


def test_identity_files_expand_tokens(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    config = tmp_path / "ssh_config"
    config.write_text("Host board\n  User pi\n  IdentityFile ~/keys/%r@%h\n")
    device = load_inventory(_inventory(tmp_path, config)).devices["pi"]
    assert device.identity_files == (f"{tmp_path}/keys/pi@board",)
    assert getpass.getuser()  # the local user is known (the %u token)


# ------------------------------------------------------------------ ProxyJump over real sshd


def _behind_bastion(fleet, jump: str, bastion_port: int) -> Path:
    """An inventory whose device `behind` (dev2) is reached with `ProxyJump {jump}`."""
    dev1, dev2 = fleet["dev1"], fleet["dev2"]
    user = getpass.getuser()
    config = fleet.root / "ssh_config"
    config.write_text(
        f"Host bastion\n  HostName 127.0.0.1\n  Port {bastion_port}\n  User {user}\n"
        f"  IdentityFile {dev1.user_key}\n"
        f"Host hop2\n  HostName 127.0.0.1\n  Port {dev2.port}\n  User {user}\n"
        f"  IdentityFile {dev2.user_key}\n"
        f"Host board\n  HostName 127.0.0.1\n  Port {dev2.port}\n  ProxyJump {jump}\n"
    )
    entry = {**dev2.inventory_entry(), "name": "behind", "host": "board"}
    del entry["port"]
    return fleet.write_inventory([entry], ssh_config=str(config))


def test_proxy_jump_goes_through_the_bastion_and_a_dead_one_fails(ready_fleet, run_cli, figures):
    from support.sshd import free_port

    fleet = ready_fleet(2)
    proxy = fleet.proxy("dev1")  # the bastion's every connection is counted
    inventory = _behind_bastion(fleet, "bastion", free_port())  # nothing listens there
    outcome = run_cli("devices", "check", "behind", "--inventory", inventory)
    assert outcome.code != 0  # not a direct connection that bypasses the bastion
    assert "jump host bastion" in outcome.err and "Traceback" not in outcome.err
    assert "cannot connect" in outcome.err
    inventory = _behind_bastion(fleet, "bastion", fleet["dev1"].public_port)
    device = load_inventory(inventory).devices["behind"]
    assert [hop.port for hop in device.jumps] == [fleet["dev1"].public_port]
    assert device.describe().endswith(f" via {device.user}@127.0.0.1:{fleet['dev1'].public_port}")
    outcome = run_cli("devices", "check", "behind", "--inventory", inventory)
    assert outcome.code == 0, outcome.err
    through = proxy.stats.connections
    assert through >= 1
    inventory = _behind_bastion(fleet, "bastion,hop2", fleet["dev1"].public_port)
    assert len(load_inventory(inventory).devices["behind"].jumps) == 2
    outcome = run_cli("devices", "check", "behind", "--inventory", inventory)
    assert outcome.code == 0, outcome.err
    assert proxy.stats.connections > through
    fleet.write_known_hosts([fleet["dev2"]])  # the bastion's key is no longer known
    outcome = run_cli("devices", "check", "behind", "--inventory", inventory)
    assert outcome.code != 0
    assert "jump host bastion" in outcome.err and "is not in known_hosts" in outcome.err
    figures(
        "proxy-jump", chains=2, dead_bastion_refused=1, unknown_bastion_refused=1, direct_bypasses=0
    )


def test_a_relative_include_is_read_from_dot_ssh(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh" / "conf.d").mkdir(parents=True)
    (tmp_path / ".ssh" / "conf.d" / "lab.conf").write_text("Host board\n  Port 2022\n")
    config = tmp_path / "elsewhere.conf"
    config.write_text("Include conf.d/*.conf\n")
    assert load_inventory(_inventory(tmp_path, config)).devices["pi"].port == 2022
