// The page's behaviour: send a request, poll its job for progress, show the result.
"use strict";

const $ = (id) => document.getElementById(id);
let info = null;

// fetch -> {status, data}; data is the JSON answer, or {error} when there is none.
async function api(path, options) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (e) {
    return { status: 0, data: { error: "the server did not answer (" + e.message + ")" } };
  }
  let data;
  try {
    data = await response.json();
  } catch (e) {
    data = { error: "unexpected answer (HTTP " + response.status + ")" };
  }
  return { status: response.status, data };
}

function showStatus(name, text, isError) {
  const el = $(name + "-status");
  el.textContent = text;
  el.classList.toggle("error", Boolean(isError));
}

function showProgress(name, done, total) {
  const bar = $(name + "-progress");
  bar.hidden = false;
  bar.max = Math.max(total, 1);
  bar.value = done;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Polls /api/jobs/ID until it finishes; returns its result or throws its error.
async function follow(name, job, unit) {
  for (;;) {
    if (job.status === "queued") {
      showStatus(name, job.ahead ? `queued: ${job.ahead} request(s) ahead` : "queued");
    } else if (job.status === "running") {
      showProgress(name, job.done, job.total);
      showStatus(name, job.total ? `sampling: ${job.done} / ${job.total} ${unit}` : "starting…");
    } else if (job.status === "done") {
      showProgress(name, 1, 1);
      showStatus(name, `done in ${job.seconds.toFixed(1)} s`);
      return job.result;
    } else {
      throw new Error(job.error || "the request failed");
    }
    await sleep(200);
    const { status, data } = await api("/api/jobs/" + encodeURIComponent(job.id));
    if (status !== 200) throw new Error(data.error);
    job = data;
  }
}

// Runs one request: disables the button, shows errors in the status line.
async function submit(name, path, options, unit, onResult) {
  const button = $(name + "-go");
  button.disabled = true;
  $(name + "-progress").hidden = true;
  showStatus(name, "sending…");
  try {
    const { status, data } = await api(path, options);
    if (status !== 202) throw new Error(data.error);
    onResult(await follow(name, data, unit));
  } catch (e) {
    showStatus(name, e.message, true);
  } finally {
    button.disabled = false;
  }
}

const number = (id) => Number($(id).value);
const json = (value) => ({
  method: "POST",
  headers: { "Content-Type": "application/json" },
  body: JSON.stringify(value),
});

$("t2i-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const request = {
    prompt: $("t2i-prompt").value,
    cfg: number("t2i-cfg"),
    temperature: number("t2i-temperature"),
    top_k: number("t2i-top-k"),
    seed: number("t2i-seed"),
    num_images: number("t2i-num-images"),
  };
  $("t2i-images").replaceChildren();
  submit("t2i", "/api/t2i", json(request), "image tokens", (result) => {
    for (const [i, src] of result.images.entries()) {
      const img = document.createElement("img");
      img.addEventListener("load", () => img.classList.toggle("small", img.naturalWidth < 128));
      img.src = src;
      img.alt = `${result.prompt} (${i + 1})`;
      const link = document.createElement("a"); // click to save the PNG
      link.href = src;
      link.download = `liquid_seed${result.seed}_${i + 1}.png`;
      link.append(img);
      $("t2i-images").append(link);
    }
  });
});

$("i2t-file").addEventListener("change", () => {
  const file = $("i2t-file").files[0];
  const preview = $("i2t-preview");
  preview.hidden = !file || !file.type.startsWith("image/");
  if (!preview.hidden) preview.src = URL.createObjectURL(file);
});
$("i2t-preview").addEventListener("error", () => {
  $("i2t-preview").hidden = true; // a file named like an image that is not one
});

$("i2t-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const file = $("i2t-file").files[0];
  $("i2t-answer").textContent = "";
  if (!file) return showStatus("i2t", "choose an image first", true);
  const cap = info ? info.limits.max_body_bytes : Infinity;
  if (file.size > cap) {
    return showStatus("i2t", `the file is ${file.size} bytes; at most ${cap}`, true);
  }
  const query = new URLSearchParams();
  const question = $("i2t-question").value.trim();
  if (question) query.set("question", question);
  const options = { method: "POST", body: file, headers: { "Content-Type": "application/octet-stream" } };
  submit("i2t", "/api/i2t?" + query, options, "tokens", (result) => {
    $("i2t-answer").textContent = result.text;
  });
});

function say(role, text) {
  const p = document.createElement("p");
  p.className = role;
  p.textContent = text;
  $("chat-log").append(p);
  $("chat-log").scrollTop = $("chat-log").scrollHeight;
}

$("chat-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const message = $("chat-input").value;
  say("user", message);
  $("chat-input").value = "";
  const request = { message, temperature: number("chat-temperature") };
  submit("chat", "/api/chat", json(request), "tokens", (result) => say("model", result.text));
});

// Defaults and limits from the server.
(async () => {
  const { status, data } = await api("/api/info");
  if (status !== 200) return;
  info = data;
  const d = data.t2i;
  $("t2i-cfg").value = d.cfg;
  $("t2i-temperature").value = d.temperature;
  $("t2i-top-k").value = d.top_k;
  $("t2i-top-k").max = data.image_codes;
  $("t2i-seed").value = d.seed;
  $("t2i-num-images").value = d.num_images;
  $("t2i-num-images").max = data.limits.max_images;
  const [w, h] = data.image_size;
  const mib = (data.limits.max_body_bytes / 2 ** 20).toFixed(1);
  const px = data.limits.max_pixels;
  const pixels = px >= 1e6 ? `${(px / 1e6).toFixed(1)} M` : `${px}`;
  $("info").textContent =
    `Images are ${w}×${h} pixels. Uploads up to ${mib} MiB and ${pixels} pixels. ` +
    `Requests run one at a time on one model.`;
  if (!data.can_draw) {
    $("t2i-go").disabled = $("i2t-go").disabled = true;
    showStatus("t2i", "no VQGAN loaded: images are off", true);
  }
})();
