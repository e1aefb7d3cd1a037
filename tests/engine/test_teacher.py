"""The LLM teacher with the real default model from PyPI, and the model registry's refusals."""

import numpy as np
import pytest

from workers.situation import Situation
from workers import teachers
from workers.teachers import DEFAULT_TEACHER, HOW_TO_REACH, LLMTeacher, TeacherError, available_models, gpu_layers, resolve_model

NAV = ("left", "right", "forward")
AHEAD = Situation("k-ahead", "Your mission: go to the red ball. The red ball is 2 steps straight ahead.", NAV)
HIDDEN = Situation("k-hidden", "Your mission: go to the red ball. In front of you: a wall. You do not see the red ball.", NAV)


@pytest.fixture(scope="module")
def teacher():
    t = LLMTeacher(DEFAULT_TEACHER, NAV, timeout_s=30)
    yield t
    t.close()


def test_distribution_is_a_real_distribution_over_the_actions(teacher):
    probs = teacher.ask(AHEAD, None)
    assert probs.shape == (3,) and np.isclose(probs.sum(), 1.0) and (probs > 0).all()
    other = teacher.ask(HIDDEN, None)
    assert not np.allclose(probs, other), "the logits read must depend on the prompt"


def test_answers_are_cached_by_situation_and_feedback(teacher):
    teacher.ask(AHEAD, None)
    calls = teacher.stats.calls
    assert teacher.current(AHEAD, None) is not None
    assert teacher.stats.calls == calls and teacher.stats.hits >= 1
    feedback = "Feedback from the student: in this situation, right worked best."
    with_feedback = teacher.ask(AHEAD, feedback)
    assert teacher.stats.calls == calls + 1, "new feedback must re-ask the LLM"
    assert not np.allclose(with_feedback, teacher.ask(AHEAD, None))


def test_prefix_cache_gives_the_same_answer_as_a_cold_pass(teacher):
    warm = teacher._compute(AHEAD, None)
    teacher._llm.n_tokens = 0  # forget the KV cache
    cold = teacher._compute(AHEAD, None)
    # Evaluated in other batches, Q4_K_M weights round differently: a few 0.001 at most.
    assert np.argmax(warm) == np.argmax(cold) and np.allclose(warm, cold, atol=0.01)


@pytest.mark.parametrize("model", sorted(available_models()))
def test_the_prompt_renders_for_every_installed_model(model):
    t = LLMTeacher(model, NAV, timeout_s=60)
    try:
        prompt = t.prompt(AHEAD, "Feedback from the student: in this situation, forward worked best.")
        assert HOW_TO_REACH in prompt and AHEAD.text in prompt and prompt.endswith("Best action:")
        assert "worked best." in prompt.split(AHEAD.text)[1], "the feedback follows the situation"
        assert np.isclose(t.ask(AHEAD, None).sum(), 1.0)
    finally:
        t.close()


def test_on_a_cpu_with_amx_the_model_loads_without_extra_buffer_types_and_answers(monkeypatch):
    """On an AMX machine (this project's CI machine, 2026-12-07) llama.cpp's AMX buffer type crashed
    the process at the first evaluation; the teacher loads without it there, and elsewhere as
    before. Here AMX is claimed, so that any machine takes that path."""
    from llama_cpp import llama as llama_module

    # A ctypes structure takes any attribute: the setting only works while the binding has the field.
    assert "use_extra_bufts" in {name for name, *_ in llama_module.llama_cpp.llama_model_params._fields_}
    defaults = llama_module.llama_cpp.llama_model_default_params
    monkeypatch.setattr(teachers, "cpu_uses_amx", lambda: True)
    t = LLMTeacher(DEFAULT_TEACHER, NAV, timeout_s=60)
    try:
        assert t._llm.model_params.use_extra_bufts is False
        assert np.isclose(t.ask(AHEAD, None).sum(), 1.0)
    finally:
        t.close()
    assert llama_module.llama_cpp.llama_model_default_params is defaults, "the library's defaults are put back"
    assert defaults().use_extra_bufts is True


@pytest.mark.slow  # two fresh answers from the 0.5B model
def test_warm_up_answers_each_situation_once(teacher):
    calls = teacher.stats.calls
    fresh = [Situation(f"warm-{i}", AHEAD.text.replace("2 steps", f"{i} steps"), NAV) for i in (1, 3)]
    teacher.prepare(fresh + fresh, threads=2)
    assert teacher.stats.calls == calls + 2 and all(teacher.cached(s.key, None) is not None for s in fresh)


def test_a_stop_ends_the_warm_up_between_two_answers(teacher):
    calls = teacher.stats.calls
    fresh = [Situation(f"stop-{i}", AHEAD.text.replace("2 steps", f"{i} steps"), NAV) for i in (4, 5, 6)]
    asked = iter([False, True])  # one answer, then a Stop
    teacher.prepare(fresh, threads=2, should_stop=lambda: next(asked))
    assert teacher.stats.calls == calls + 1 and teacher.cached("stop-5", None) is None


def test_default_models_come_from_installed_packages():
    models = available_models()
    assert DEFAULT_TEACHER in models and "gemma-3-270m-q4_k_m" in models
    assert resolve_model(DEFAULT_TEACHER).stat().st_size > 50_000_000


def test_paths_outside_the_model_directories_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("BIDIR_MODEL_DIRS", str(tmp_path / "models"))
    (tmp_path / "models").mkdir()
    with pytest.raises(TeacherError, match="neither an installed model"):
        resolve_model("../../etc/passwd")
    with pytest.raises(TeacherError, match="neither an installed model"):
        resolve_model(str(tmp_path / "models" / ".." / "evil.gguf"))


def test_missing_and_corrupt_gguf_fail_before_training(tmp_path, monkeypatch):
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("BIDIR_MODEL_DIRS", str(models))
    with pytest.raises(TeacherError, match="no .gguf file"):
        LLMTeacher(str(models / "missing.gguf"), NAV)
    (models / "corrupt.gguf").write_bytes(b"not a model at all" * 100)
    assert "corrupt" in available_models()
    with pytest.raises(TeacherError, match="not a GGUF model file"):
        LLMTeacher("corrupt", NAV)
    (models / "truncated.gguf").write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(TeacherError, match="could not load"):
        LLMTeacher("truncated", NAV)


def test_gpu_layers_come_from_the_environment_and_reach_llama_cpp(tmp_path, monkeypatch):
    import llama_cpp

    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("BIDIR_MODEL_DIRS", str(models))
    (models / "stub.gguf").write_bytes(b"GGUF" + b"\0" * 64)
    seen = {}

    def fake_llama(**kwargs):
        seen.update(kwargs)
        raise ValueError("not loaded")

    monkeypatch.setattr(llama_cpp, "Llama", fake_llama)
    monkeypatch.delenv("BIDIR_TEACHER_GPU_LAYERS", raising=False)
    assert gpu_layers() == 0
    monkeypatch.setenv("BIDIR_TEACHER_GPU_LAYERS", "-1")
    with pytest.raises(TeacherError, match="could not load"):
        LLMTeacher("stub", NAV)
    assert seen["n_gpu_layers"] == -1
    monkeypatch.setenv("BIDIR_TEACHER_GPU_LAYERS", "all")
    with pytest.raises(TeacherError, match="BIDIR_TEACHER_GPU_LAYERS must be a number"):
        LLMTeacher("stub", NAV)


def test_a_question_superseded_by_newer_feedback_is_dropped_unasked(teacher):
    busy = Situation("k-busy", "Your mission: go to the red ball. You are in a corridor.", NAV)
    older = "Feedback from the student: in this situation, left worked best."
    newer = "Feedback from the student: in this situation, forward worked best."
    teacher.ask(HIDDEN, None)
    calls = teacher.stats.calls
    teacher.latest(busy, None)  # occupies the LLM thread for a while
    assert teacher.latest(HIDDEN, older) is not None  # queued; meanwhile the last answer stands in
    teacher.latest(HIDDEN, newer)  # supersedes the queued question
    teacher.ask(HIDDEN, newer)
    teacher.ask(busy, None)
    assert teacher.stats.calls == calls + 2
    assert teacher.cached(HIDDEN.key, older) is None
    teacher.ask(HIDDEN, older)  # still answerable when asked for explicitly
    assert teacher.stats.calls == calls + 3


def test_training_questions_are_answered_before_measurement_questions(teacher, monkeypatch):
    busy = Situation("k-busy-2", "Your mission: go to the red ball. You face a wall.", NAV)
    measured = Situation("k-measured", "Your mission: go to the red ball. The red ball is on your left.", NAV)
    trained = Situation("k-trained", "Your mission: go to the red ball. The red ball is on your right.", NAV)
    order: list[str] = []
    compute = teacher._compute
    monkeypatch.setattr(teacher, "_compute", lambda s, f: (order.append(s.key), compute(s, f))[1])
    teacher.current(busy, None)  # first in line: the next two queue up behind it
    teacher.latest(measured, None)
    assert teacher.current(trained, None) is None
    teacher.ask(measured, None)
    assert order == ["k-busy-2", "k-trained", "k-measured"]


def test_dropped_questions_are_not_asked(teacher):
    busy = Situation("k-busy-3", "Your mission: go to the red ball. A wall is on your left.", NAV)
    queued = Situation("k-dropped", "Your mission: go to the red ball. A wall is on your right.", NAV)
    teacher.current(busy, None)
    teacher.current(queued, None)
    teacher.drop_queued()
    teacher.ask(busy, None)
    assert teacher.cached(queued.key, None) is None
