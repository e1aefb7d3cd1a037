// The launch form. A preset button fills the form in place (without JavaScript it posts the
// form, and the server answers with the preset applied); the values the preset takes from the
// level (threshold, the study's budget) follow the level and mode while they are untouched;
// the run-time estimate follows the mode and the frames. Presets and speeds come from the
// server (experiments_app/presets.py, selectors.run_speeds); the estimate's arithmetic and
// wording are those of experiments_app/templatetags/launch.py.
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const data = JSON.parse($("launch-data").textContent);
  const form = $("launch-form");
  const level = $("id_env_id");
  const mode = $("id_mode");
  const frames = $("id_hp_total_timesteps");
  const seeds = $("id_seeds");
  const buttons = Array.from(form.querySelectorAll("button.preset"));

  const field = (name) => form.elements["hp_" + name];
  const holds = (input, value) => input.value === String(value) || (input.value !== "" && Number(input.value) === value);

  function valuesFor(key) {
    const preset = data.presets[key];
    return Object.assign({}, preset.values, (preset.levels[level.value] || {})[mode.value] || {});
  }

  let active = data.active;
  let applied = active ? valuesFor(active) : null; // what the active preset gives on the current level and mode

  function about(seconds) {
    if (seconds < 100) return "about " + Math.max(5, Math.round(seconds / 5) * 5) + " s";
    if (seconds < 90 * 60) return "about " + Math.round(seconds / 60) + " min";
    return "about " + (seconds / 3600).toFixed(1) + " h";
  }

  function duration(total) {
    const speed = data.speeds[mode.value];
    return speed && total > 0 ? about(speed.setup_s + total / speed.steps_per_s) : "";
  }

  function showEstimates() {
    const speed = data.speeds[mode.value];
    for (const button of buttons) {
      const total = valuesFor(button.dataset.preset).total_timesteps;
      button.querySelector("[data-frames]").textContent = total.toLocaleString("en-US");
      button.querySelector("[data-duration]").textContent = speed ? " · " + duration(total) + " a run" : "";
    }
    $("estimate-known").hidden = !speed;
    $("estimate-unknown").hidden = Boolean(speed);
    for (const span of document.querySelectorAll(".estimate-mode")) span.textContent = mode.value;
    if (speed) {
      $("estimate-duration").textContent = duration(Number.parseInt(frames.value, 10)) || "–";
      $("estimate-runs").textContent = String(speed.runs);
      $("estimate-steps").textContent = String(Math.round(speed.steps_per_s));
      $("estimate-setup").textContent = String(Math.round(speed.setup_s));
    }
  }

  function apply(key) {
    active = key;
    applied = valuesFor(key);
    for (const [name, value] of Object.entries(applied)) field(name).value = String(value);
    seeds.value = data.presets[key].seeds;
    for (const button of buttons) button.setAttribute("aria-pressed", String(button.dataset.preset === key));
    showEstimates();
  }

  function follow() {
    if (active) {
      const next = valuesFor(active);
      for (const [name, value] of Object.entries(next)) {
        if (applied[name] !== value && holds(field(name), applied[name])) field(name).value = String(value);
      }
      applied = next;
    }
    showEstimates();
  }

  for (const button of buttons) {
    button.addEventListener("click", (event) => {
      event.preventDefault();
      apply(button.dataset.preset);
    });
  }
  level.addEventListener("change", follow);
  mode.addEventListener("change", follow);
  frames.addEventListener("input", showEstimates);
  form.dataset.ready = "1";
})();
