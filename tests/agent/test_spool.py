"""The spool on real files: admission, the queue's states, rejection of bad names, acks."""

from __future__ import annotations

import hashlib
import os
import stat
import time

import numpy as np
import pytest

from device_agents.errors import AgentError, BadInput, NotFound
from device_agents.job_runner import result_for_job_text
from device_agents.protocol import UNKNOWN_SHA256, Job, error_result
from device_agents.spool import SUBDIRS, Spool


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def made(spool):
    old = os.umask(0)  # permissions must not depend on the caller's umask
    try:
        yield Spool(str(spool)).ensure()
    finally:
        os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_layout_is_private(made):
    assert mode(made.root) == 0o700
    for sub in SUBDIRS:
        assert mode(made.path(sub)) == 0o700, sub
    made.queue(Job(id="a1", model_sha256="a" * 64))
    assert mode(made.path("jobs", "queued", "a1.json")) == 0o600


def test_someone_elses_spool_is_refused(tmp_path):
    if os.getuid() != 0:
        pytest.skip("needs root to make a directory owned by another user")
    other = tmp_path / "theirs"
    other.mkdir()
    os.chown(other, 65534, 65534)
    with pytest.raises(AgentError, match="belongs to uid 65534"):
        Spool(str(other)).ensure()


def test_admit_a_verified_upload(made, agent_models):
    data = agent_models.dense.read_bytes()
    upload = made.path("incoming", "upload.part")
    with open(upload, "wb") as handle:
        handle.write(data)
    doc = made.admit(upload, sha(data))
    assert doc == {
        "sha256": sha(data),
        "path": made.model_path(sha(data)),
        "admitted": True,
        "already_present": False,
    }
    assert not os.path.exists(upload) and mode(doc["path"]) == 0o600
    with open(upload, "wb") as handle:
        handle.write(data)
    assert made.admit(upload, sha(data))["already_present"] is True
    assert not os.path.exists(upload)


def test_admit_refuses_what_it_must(made, tmp_path):
    upload = made.path("incoming", "bad.part")
    with open(upload, "wb") as handle:
        handle.write(b"half a model")
    with pytest.raises(AgentError, match="was deleted"):
        made.admit(upload, "b" * 64)
    assert not os.path.exists(upload)  # a mismatching upload is deleted
    outside = tmp_path / "elsewhere.tflite"
    outside.write_bytes(b"x")
    with pytest.raises(BadInput, match="not inside"):
        made.admit(str(outside), sha(b"x"))
    with pytest.raises(BadInput, match="not inside"):
        made.admit(made.path("incoming", "..", "models", "x"), "c" * 64)
    os.symlink(str(outside), made.path("incoming", "link.tflite"))
    with pytest.raises(BadInput, match="not a regular file"):
        made.admit(made.path("incoming", "link.tflite"), sha(b"x"))
    with pytest.raises(BadInput, match="does not exist"):
        made.admit(made.path("incoming", "nothing"), "d" * 64)
    with pytest.raises(BadInput, match="not a sha256"):
        made.admit(made.path("incoming", "nothing"), "../../etc/passwd")
    assert outside.exists()


def test_admit_inputs_by_their_magic(made, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 3), np.float32))
    data = (tmp_path / "x.npy").read_bytes()
    upload = made.path("incoming", "x.upload")
    with open(upload, "wb") as handle:
        handle.write(data)
    doc = made.admit(upload, sha(data), kind="inputs")
    assert doc["path"] == made.path("inputs", sha(data) + ".npy")
    with open(upload, "wb") as handle:
        handle.write(b"plain text")
    with pytest.raises(BadInput, match="neither a .npy nor a .npz"):
        made.admit(upload, sha(b"plain text"), kind="inputs")
    assert not os.path.exists(upload)


def test_import_model_is_keyed_by_content(made, agent_models, tmp_path):
    first, already = made.import_model(str(agent_models.dense))
    assert first == sha(agent_models.dense.read_bytes()) and already is False
    copy = tmp_path / "same.tflite"
    copy.write_bytes(agent_models.dense.read_bytes())
    assert made.import_model(str(copy)) == (first, True)
    assert os.listdir(made.path("incoming")) == []  # no temp copies left behind
    with pytest.raises(BadInput, match="does not exist"):
        made.import_model(str(tmp_path / "nope.tflite"))


def test_the_queue_moves_each_job_forward(made):
    for name in ("first", "second"):
        made.queue(Job(id=name, model_sha256="a" * 64))
        time.sleep(0.01)
    with pytest.raises(BadInput, match="already used"):
        made.queue(Job(id="first", model_sha256="a" * 64))
    assert made.state_of("first") == "queued"
    assert made.claim_next() == "first"
    assert made.state_of("first") == "running"
    made.write_result(error_result("first", "a" * 64, "x", error_kind="bad_job"))
    made.finish("first")
    assert made.state_of("first") == "done"
    made.ack("first")
    assert made.state_of("first") == "acked"
    made.ack("first")  # twice is fine
    assert "first" in made.read_result("first")  # still readable until pruned
    with pytest.raises(NotFound):
        made.ack("never")
    with pytest.raises(NotFound):
        made.read_result("never")
    assert made.claim_next() == "second"
    assert made.claim_next() is None


def test_misnamed_and_duplicate_job_files_are_moved_aside(made):
    queued = made.path("jobs", "queued")
    for name in ("no extension", "bad name!.json", "-dash.json", "x.txt"):
        with open(os.path.join(queued, name), "w") as handle:
            handle.write("{}")
    with open(os.path.join(queued, ".tmp-inprogress"), "w") as handle:
        handle.write("{}")  # an atomic write in progress: left alone
    made.write_result(error_result("done1", "a" * 64, "x"))
    with open(os.path.join(queued, "done1.json"), "w") as handle:
        handle.write("{}")
    assert made.claim_next() is None
    assert sorted(os.listdir(made.path("jobs", "rejected"))) == [
        "-dash.json",
        "bad name!.json",
        "done1.json",
        "no extension",
        "x.txt",
    ]
    assert os.listdir(queued) == [".tmp-inprogress"]


def test_unreadable_job_files_become_error_results(made, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text('{"schema": 1}')
    os.symlink(str(secret), made.path("jobs", "running", "linked.json"))
    text, problem = made.read_claimed("linked")
    assert text is None and "symlink" in problem
    big = made.path("jobs", "running", "big.json")
    with open(big, "w") as handle:
        handle.write(" " * (2 << 20))
    text, problem = made.read_claimed("big")
    result = result_for_job_text(made, "big", text, problem)
    assert result.error_kind == "bad_job" and "larger than" in result.error
    assert result.model_sha256 == UNKNOWN_SHA256


def test_old_acknowledged_results_are_pruned(made):
    made.write_result(error_result("old", "a" * 64, "x"))
    made.ack("old")
    path = made.result_file("old", acked=True)
    os.utime(path, (time.time() - 8 * 86400,) * 2)
    assert made.prune_acked() == 1 and not os.path.exists(path)


def test_claim_part_takes_the_longest_idle_part_and_drops_the_rest(made):
    data = os.urandom(300_000)
    digest = sha(data)
    incoming = made.path("incoming")
    for token, length in (("aaaaaa", 1000), ("bbbbbb", 200_000), ("cccccc", 50)):
        with open(os.path.join(incoming, f"{digest}.{token}.part"), "wb") as handle:
            handle.write(data[:length])
    other = os.path.join(incoming, f"{sha(b'other')}.dddddd.part")
    with open(other, "wb") as handle:
        handle.write(b"x")
    doc = made.claim_part(digest, "0123456789ab")
    mine = os.path.join(incoming, f"{digest}.0123456789ab.part")
    assert doc == {"path": mine, "length": 200_000, "sha256": sha(data[:200_000]), "discarded": 2}
    assert sorted(os.listdir(incoming)) == sorted([os.path.basename(mine), os.path.basename(other)])
    # claiming again with the same token is the same answer (a retried call after a drop)
    assert made.claim_part(digest, "0123456789ab") == dict(doc, discarded=0)


def test_claim_part_leaves_a_part_another_upload_is_writing(made):
    data = os.urandom(4096)
    digest = sha(data)
    busy = os.path.join(made.path("incoming"), f"{digest}.eeeeee.part")
    with open(busy, "wb") as writer:  # held open and fresh: an upload in progress
        writer.write(data[:1000])
        writer.flush()
        doc = made.claim_part(digest, "ffffff")
        assert doc["length"] == 0 and os.path.exists(busy)
    assert not os.path.exists(doc["path"])  # nothing is created for an empty claim
    assert made.claim_part(digest, "ffffff")["length"] == 1000  # closed: now it is taken
    assert not os.path.exists(busy)


def test_claim_part_refuses_bad_names(made):
    with pytest.raises(BadInput, match="part token"):
        made.claim_part(sha(b"x"), "../../x")
    with pytest.raises(Exception, match="sha256"):
        made.claim_part("nothex", "abcdef")
