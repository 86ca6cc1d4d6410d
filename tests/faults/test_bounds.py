"""Bounded memory against hostile and careless input: floods, bombs and oversized values.

A device whose `python:` floods stdout, a YAML alias bomb in a recipe or an inventory, a
`.keras` zip bomb: each is refused with one line naming what is wrong, and the host's
memory stays bounded (measured: the real CLI's RSS, or tracemalloc's peak in-process).
"""

from __future__ import annotations

import json
import time
import tracemalloc
import zipfile
from pathlib import Path

import pytest
import yaml
from support.sshd import DeviceSpec

from edgeprune.errors import UserError
from edgeprune.fleet.agent_client import AgentClient
from edgeprune.fleet.local_transport import LocalTransport
from edgeprune.fleet.transport import OutputTooLarge

from .harness import finished, rss_kb, start_edgeprune, time_limit

MB = 1 << 20
RSS_CEILING_KB = 1_500_000  # the test stops a run past this: far above the bound, far below harm
RSS_BOUND_KB = 600_000  # the CLI with its imports plus the capped output

# ----------------------------------------------------------------------- item 5: floods


def flooder(tmp_path: Path) -> str:
    """An "interpreter" that ignores its arguments and prints `y` lines forever (GNU yes
    refuses the agent's `-m`)."""
    script = tmp_path / "flood"
    script.write_text("#!/bin/sh\nexec /usr/bin/yes\n")
    script.chmod(0o755)
    return str(script)


def test_a_device_flooding_stdout_fails_with_one_line_and_bounded_host_memory(
    sshd_fleet, tmp_path, figures
):
    fleet = sshd_fleet(devices=[DeviceSpec(name="dev1", extra={"python": flooder(tmp_path)})])
    proc = start_edgeprune(
        "devices", "check", "dev1", "--inventory", fleet.inventory_path, out_dir=tmp_path / "run"
    )
    peak = 0
    deadline = time.monotonic() + 300
    while proc.poll() is None:
        rss = rss_kb(proc.pid) or 0
        peak = max(peak, rss)
        if rss > RSS_CEILING_KB or time.monotonic() > deadline:
            proc.kill()
            break
        time.sleep(0.05)
    run = finished(proc, tmp_path / "run", timeout=60)
    figures("memory-caps", flooding_devices=1, host_rss_peak_mb=peak // 1024)
    assert peak < RSS_BOUND_KB, f"host RSS reached {peak // 1024} MB under a flooding device"
    assert run.code != 0
    text = run.out + run.err
    assert "dev1" in text and "more than" in text, text[-2000:]
    assert "Traceback" not in text


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_the_local_transport_caps_a_flood_on_either_stream(stream, figures):
    transport = LocalTransport()
    transport.max_output_bytes = 4 * MB
    script = f"import sys\nwhile True: sys.{stream}.write('y\\n' * 4096)"
    tracemalloc.start()
    try:
        with time_limit(60), pytest.raises(OutputTooLarge) as caught:
            transport.run(["python3", "-c", script], timeout=50)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    figures("memory-caps", flooding_commands=1, survived=1)
    assert stream in str(caught.value) and "local" in str(caught.value)
    assert peak < 40 * MB


def test_one_endless_line_is_refused_long_before_the_total_cap(figures):
    transport = LocalTransport()
    with time_limit(60), pytest.raises(OutputTooLarge, match="line longer than"):
        transport.run(
            ["python3", "-c", "import sys\nwhile 1: sys.stdout.write('x' * 65536)"], timeout=50
        )
    figures("memory-caps", endless_lines=1, survived=1)


def test_an_agent_client_on_a_flooding_interpreter_names_the_device(tmp_path):
    client = AgentClient(LocalTransport("flood"), flooder(tmp_path), "/nonexistent-spool")
    client.transport.max_output_bytes = 2 * MB  # type: ignore[attr-defined]
    with time_limit(60), pytest.raises(OutputTooLarge, match=r"^device flood: .*more than 2\.0 MB"):
        client.doctor()


def test_normal_output_is_untouched():
    result = LocalTransport().run(
        ["python3", "-c", "print('a' * 1000); import sys; print('e', file=sys.stderr)"], timeout=30
    )
    assert result.stdout == "a" * 1000 + "\n" and result.stderr == "e\n"


# ------------------------------------------------------------------- item 7: alias bombs


def alias_bomb(levels: int = 9) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_in_a_recipe_is_refused_with_file_and_line(tmp_path, figures):
    from edgeprune.recipes.loader import load_recipe

    recipe = tmp_path / "bomb.yaml"
    recipe.write_text("name: bomb\n" + alias_bomb() + "devices: [local]\n")
    tracemalloc.start()
    try:
        with time_limit(30), pytest.raises(UserError) as caught:
            load_recipe(recipe)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    figures("yaml-bombs", injected=1, refused=1, peak_mb=peak // MB)
    assert "\n" not in message
    assert message.startswith(f"{recipe}:") and "alias" in message
    assert peak < 50 * MB


def test_a_yaml_alias_bomb_in_an_inventory_is_refused_with_file_and_line(tmp_path, figures):
    from edgeprune.fleet.inventory import load_inventory

    inventory = tmp_path / "devices.yaml"
    inventory.write_text(alias_bomb() + "devices: []\n")
    tracemalloc.start()
    try:
        with time_limit(30), pytest.raises(UserError) as caught:
            load_inventory(inventory)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    figures("yaml-bombs", injected=1, refused=1, peak_mb=peak // MB)
    assert "\n" not in message and "alias" in message and f"{inventory}:" in message
    assert peak < 50 * MB


def test_a_few_honest_aliases_still_load(tmp_path):
    from edgeprune.fleet.inventory import load_inventory

    inventory = tmp_path / "devices.yaml"
    inventory.write_text(
        "devices:\n"
        "  - &first {name: a, host: a.lan, user: pi, tags: &tags [arm64, lab]}\n"
        "  - {<<: *first, name: b, host: b.lan, tags: *tags}\n"
    )
    devices = load_inventory(inventory).devices
    assert devices["b"].user == "pi" and list(devices["b"].tags) == ["arm64", "lab"]


# ------------------------------------------------------------------ item 8: zip bombs


def keras_zip(path: Path, members: dict[str, int | bytes]) -> Path:
    """A `.keras`-shaped zip: each member is bytes, or a size in zero bytes (compressed)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, content in members.items():
            if isinstance(content, bytes):
                archive.writestr(name, content)
                continue
            with archive.open(name, "w", force_zip64=True) as handle:
                block = b"\0" * MB
                for _ in range(content // MB):
                    handle.write(block)
    return path


def test_a_keras_zip_bomb_is_refused_before_loading(tmp_path, figures):
    from edgeprune.models import load_keras_model

    bomb = keras_zip(tmp_path / "bomb.keras", {"config.json": 400 * MB, "metadata.json": b"{}"})
    assert bomb.stat().st_size < 3 * MB
    tracemalloc.start()
    try:
        with time_limit(60), pytest.raises(UserError) as caught:
            load_keras_model(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    figures("zip-bombs", injected=1, refused=1, peak_mb=peak // MB)
    assert "\n" not in message and "config.json" in message and "bomb.keras" in message
    assert peak < 50 * MB


def test_the_total_size_limit_is_a_parameter_and_an_environment_variable(tmp_path, monkeypatch):
    from edgeprune.models import MAX_MODEL_BYTES_ENV, check_keras_archive

    model = keras_zip(tmp_path / "big.keras", {"config.json": b"{}", "model.weights.h5": 64 * MB})
    with pytest.raises(UserError, match=r"max_uncompressed_bytes.*" + MAX_MODEL_BYTES_ENV):
        check_keras_archive(model, max_uncompressed_bytes=32 * MB)
    check_keras_archive(model, max_uncompressed_bytes=128 * MB)
    monkeypatch.setenv(MAX_MODEL_BYTES_ENV, str(32 * MB))
    with pytest.raises(UserError, match="64.0 MB"):
        check_keras_archive(model)
    monkeypatch.setenv(MAX_MODEL_BYTES_ENV, "lots")
    with pytest.raises(UserError, match=MAX_MODEL_BYTES_ENV):
        check_keras_archive(model)


# ---------------------------------------------------------------- item 16: small things


def test_an_hdf5_file_named_keras_says_what_it_is(tmp_path):
    from edgeprune.models import load_keras_model

    fake = tmp_path / "model.keras"
    fake.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(UserError) as caught:
        load_keras_model(fake)
    message = str(caught.value)
    assert "File not found" not in message
    assert "HDF5" in message and ".h5" in message


def test_a_lambda_layer_is_refused_with_a_whole_sentence(tmp_path):
    from edgeprune.models import load_keras_model

    config = {
        "class_name": "Functional",
        "config": {"layers": [{"class_name": "Lambda", "config": {"name": "lam"}}]},
    }
    model = keras_zip(
        tmp_path / "lam.keras", {"config.json": json.dumps(config).encode(), "metadata.json": b"{}"}
    )
    with pytest.raises(UserError) as caught:
        load_keras_model(model)
    message = str(caught.value)
    assert "Lambda" in message and message.rstrip().endswith((".", ")"))
    assert "If you trust the" not in message or message.endswith("loading.")


def test_a_huge_field_value_is_not_echoed_whole(tmp_path):
    from edgeprune.fleet.inventory import load_inventory
    from edgeprune.recipes.loader import load_recipe

    huge = "9" * MB
    inventory = tmp_path / "devices.yaml"
    inventory.write_text(f"devices:\n  - {{name: a, host: a.lan, port: 'x{huge}'}}\n")
    with pytest.raises(UserError) as caught:
        load_inventory(inventory)
    assert len(str(caught.value)) < 1000 and "port" in str(caught.value)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"name: r\nmodel: {{demo: true}}\ndata: digits\nbench: {{runs: 'x{huge}'}}\n")
    with pytest.raises(UserError) as caught:
        load_recipe(recipe)
    assert len(str(caught.value)) < 1000 and "runs" in str(caught.value)


def test_a_huge_key_is_not_echoed_whole(tmp_path):
    from edgeprune.fleet.inventory import load_inventory
    from edgeprune.recipes.loader import load_recipe

    huge = "k" * MB  # past YAML's 1024-character simple keys: written as `? key`
    inventory = tmp_path / "devices.yaml"
    inventory.write_text(yaml.safe_dump({"devices": [{"name": "a", "host": "a.lan", huge: 1}]}))
    with pytest.raises(UserError, match="unknown field") as caught:
        load_inventory(inventory)
    assert len(str(caught.value)) < 1000
    documents = [
        {"name": "r", huge: 1},
        {"name": "r", "model": {"demo": True}, "data": "digits", "bench": {huge: 1}},
    ]
    for document in documents:
        recipe = tmp_path / "recipe.yaml"
        recipe.write_text(yaml.safe_dump(document))
        with pytest.raises(UserError) as caught:
            load_recipe(recipe)
        assert len(str(caught.value)) < 1000, str(caught.value)[:300]
    recipe.write_text(f"name: r\nbench:\n  ? {huge}\n  : 1\n  ? {huge}\n  : 2\n")
    with pytest.raises(UserError, match="given twice") as caught:
        load_recipe(recipe)
    assert len(str(caught.value)) < 1000


@pytest.mark.parametrize("command", ["wait", "result"])
def test_the_agent_names_its_positional_job_id_without_a_flag(command, tmp_path, capsys):
    from device_agents.cli import run

    code = run([command, "../bad", "--spool", str(tmp_path / "spool")])
    err = capsys.readouterr().err
    assert code != 0
    assert "--id" not in err and "job id" in err.lower()


def test_alias_bomb_text_is_what_it_claims():
    data = yaml.safe_load(alias_bomb(3))
    assert len(data["a2"]) == 10 and len(data["a2"][0]) == 10
