// The image chapters' live widget: complete a test digit (or your own) with a shipped model, in the page.
// Draw or erase context pixels with the mouse or a finger, or set them with the context ratio and the
// structured masks; choose the model; see the mean completion, the standard deviation of y and draws
// of z. The model is the package's own, exported to ONNX at book-build time (ifanp/onnx_export.py):
// (image, mask, eps) -> (mean, std) per row of eps, with z = mu + sigma * eps, q(z | context) = N(mu, sigma^2).
import { el, field, select, normals, paint, grey, magma, rng, MISSING, arr } from "./common.js";
import { manifest, digits, session, run } from "./runtime.js";

const LABELS = { "mnist-vae": "VAE", "mnist-np": "NP (pixel set)", "mnist-anp": "ANP (pixel set)",
  "mnist-ifnp": "IFNP", "mnist-ifanp-gca": "IFANP (GCA only)", "mnist-ifanp": "IFANP", "mnist-ifanp-plus": "IFANP+" };
const KINDS = [["random", "random pixels"], ["top", "top half observed"], ["bottom", "bottom half observed"],
  ["left", "left half observed"], ["right", "right half observed"], ["centre", "centre box missing"],
  ["random_box", "a random box missing"], ["none", "none (draw it)"]];
const TOOLS = [["reveal", "reveal pixels"], ["hide", "hide pixels"], ["ink", "draw ink (1)"], ["paper", "draw paper (0)"]];

/** The structured masks of ifanp.data.masks.structured_mask (1 = observed), plus random pixels. */
function structured(kind, S, ratio, u, boxU) {
  const m = new Uint8Array(S * S), h = Math.floor(S / 2);
  for (let r = 0; r < S; r++) {
    for (let c = 0; c < S; c++) {
      let on;
      switch (kind) {
        case "random": on = u[r * S + c] < ratio; break;
        case "top": on = r < h; break;
        case "bottom": on = r >= S - h; break;
        case "left": on = c < h; break;
        case "right": on = c >= S - h; break;
        case "centre": { const r0 = Math.floor((S - h) / 2); on = !(r >= r0 && r < r0 + h && c >= r0 && c < r0 + h); break; }
        case "random_box": {
          const lo = Math.max(Math.floor(S / 4), 1), hi = Math.max(h, lo);
          const bh = lo + Math.floor(boxU[0] * (hi - lo + 1)), bw = lo + Math.floor(boxU[1] * (hi - lo + 1));
          const r0 = Math.floor(boxU[2] * (S - bh + 1)), c0 = Math.floor(boxU[3] * (S - bw + 1));
          on = !(r >= r0 && r < r0 + bh && c >= c0 && c < c0 + bw); break;
        }
        default: on = false;
      }
      m[r * S + c] = on ? 1 : 0;
    }
  }
  return m;
}

export async function mount(root, cfg) {
  const [man, digitSet] = await Promise.all([manifest(), digits()]);
  const wanted = cfg.models || man.models.map((m) => m.name);
  const models = man.models.filter((m) => wanted.includes(m.name));
  if (!models.length) throw new Error("none of this widget's models were exported");
  const S = digitSet.size, N = S * S;
  const state = {
    model: models.some((m) => m.name === cfg.model) ? cfg.model : models[models.length - 1].name,
    digit: cfg.digit || 0, kind: cfg.kind || "random", ratio: cfg.ratio ?? 0.2, samples: cfg.samples ?? 3, seed: 1,
    image: new Float32Array(N), truth: null, mask: new Uint8Array(N), u: null,
  };

  // --- controls
  const digitSel = select([...digitSet.digits.map((d, i) => [String(i), `test digit ${i + 1} (a ${d.label})`]),
    ["blank", "a blank canvas: draw your own"]], String(state.digit));
  const modelSel = select(models.map((m) => [m.name, LABELS[m.name] || m.name]), state.model);
  const kindSel = select(KINDS, state.kind);
  const ratio = el("input", { type: "range", min: 0, max: 1, step: 0.01, value: state.ratio });
  const ratioOut = el("output");
  const toolSel = select(TOOLS, "reveal");
  const brush = select([["1", "1 pixel"], ["2", "2 x 2"], ["3", "3 x 3"]], "2");
  const samples = el("input", { type: "range", min: 0, max: 8, step: 1, value: state.samples });
  const samplesOut = el("output");
  const redraw = el("button", { type: "button" }, "new draws of z");
  const controls = el("div", { class: "ifanp-controls" },
    field("image", digitSel), field("model", modelSel), field("mask", kindSel),
    field("context ratio", ratio, ratioOut), field("pen", toolSel), field("pen size", brush),
    field("draws of z", samples, samplesOut), el("div", { class: "ifanp-buttons" }, redraw));

  // --- canvases: 28 x 28 pixels each, scaled up by CSS (pixelated)
  const canvas = () => el("canvas", { width: S, height: S, class: "ifanp-px" });
  const ctxCanvas = canvas(), meanCanvas = canvas(), stdCanvas = canvas(), truthCanvas = canvas();
  const panel = (c, label) => el("figure", { class: "ifanp-panel" }, c, el("figcaption", {}, label));
  const stdCaption = el("figcaption", {});
  const drawsBox = el("div", { class: "ifanp-draws" });
  const status = el("p", { class: "ifanp-title" });
  const grid = el("div", { class: "ifanp-panels" },
    panel(ctxCanvas, "context (draw here)"), panel(meanCanvas, "mean"),
    el("figure", { class: "ifanp-panel" }, stdCanvas, stdCaption), panel(truthCanvas, "truth"));
  const help = el("p", { class: "ifanp-help" },
    "Draw on the context with the mouse or a finger: the pen reveals or hides pixels of the test digit, "
    + "or writes ink or paper. Missing pixels are blue. The draws use fixed noise until you press “new draws”.");
  root.replaceChildren(el("div", { class: "ifanp-image" }, controls,
    el("div", { class: "ifanp-figure" }, status, grid, drawsBox, help)));

  // --- state changes
  function loadDigit() {
    const blank = digitSel.value === "blank";
    state.digit = blank ? "blank" : Number(digitSel.value);
    const px = blank ? null : digitSet.digits[state.digit].pixels;
    for (let i = 0; i < N; i++) state.image[i] = blank ? 0 : px[i] / 255;
    state.truth = blank ? null : Float32Array.from(state.image);
    const g = rng(1000 + (blank ? 999 : state.digit));
    state.u = Float32Array.from({ length: N }, g);
    state.boxU = [g(), g(), g(), g()];
    if (blank && kindSel.value !== "none") kindSel.value = "none";
    applyMask();
  }
  function applyMask() {
    state.kind = kindSel.value; state.ratio = Number(ratio.value);
    state.mask = structured(state.kind, S, state.ratio, state.u, state.boxU);
    ratio.disabled = state.kind !== "random";
    schedule();
  }
  const pixelAt = (ev) => {
    const r = ctxCanvas.getBoundingClientRect();
    return [Math.floor(((ev.clientY - r.top) / r.height) * S), Math.floor(((ev.clientX - r.left) / r.width) * S)];
  };
  function pen(ev) {
    const [r0, c0] = pixelAt(ev), b = Number(brush.value), tool = toolSel.value;
    for (let r = r0; r < r0 + b; r++) {
      for (let c = c0; c < c0 + b; c++) {
        if (r < 0 || c < 0 || r >= S || c >= S) continue;
        const i = r * S + c;
        if (tool === "reveal") state.mask[i] = 1;
        else if (tool === "hide") state.mask[i] = 0;
        else { state.mask[i] = 1; state.image[i] = tool === "ink" ? 1 : 0; }
      }
    }
    drawContext();
    schedule();
  }
  let drawing = false;
  ctxCanvas.addEventListener("pointerdown", (ev) => { drawing = true; ctxCanvas.setPointerCapture(ev.pointerId); ev.preventDefault(); pen(ev); });
  ctxCanvas.addEventListener("pointermove", (ev) => { if (drawing) pen(ev); });
  ctxCanvas.addEventListener("pointerup", () => { drawing = false; });
  ctxCanvas.addEventListener("pointercancel", () => { drawing = false; });
  digitSel.addEventListener("change", loadDigit);
  kindSel.addEventListener("change", applyMask);
  ratio.addEventListener("input", applyMask);
  modelSel.addEventListener("change", () => { state.model = modelSel.value; schedule(); });
  samples.addEventListener("input", () => { state.samples = Number(samples.value); schedule(); });
  redraw.addEventListener("click", () => { state.seed += 1; schedule(); });

  function drawContext() {
    paint(ctxCanvas, S, state.image, (v, i) => (state.mask[i] ? grey(v) : MISSING));
  }

  // --- running the model: one run at a time; changes made meanwhile trigger one more run
  let busy = false, dirty = false;
  function schedule() { dirty = true; if (!busy) loop(); }
  async function loop() {
    busy = true;
    try {
      while (dirty) { dirty = false; await complete(); }
    } catch (err) {
      status.textContent = `The model could not run: ${err.message || err}`;
      root.dataset.error = String(err.message || err);
    } finally { busy = false; }
  }

  async function complete() {
    const info = models.find((m) => m.name === state.model);
    const t0 = performance.now();
    const sess = await session(info.file);
    const t1 = performance.now();
    const K = state.samples, rows = 1 + K, zd = info.z_dim;
    const eps = new Float32Array(rows * zd);
    eps.set(normals(K * zd, 7919 * state.seed), zd);  // row 0 stays zero: z at the mean of q(z | context)
    const image = Float32Array.from(state.image, (v, i) => v * state.mask[i]);  // missing pixels carry no value
    const mask = Float32Array.from(state.mask);
    const out = await run(sess, { image: [image, [1, 1, S, S]], mask: [mask, [1, 1, S, S]], eps: [eps, [rows, 1, zd]] });
    const t2 = performance.now();
    const mean = out.mean.data, std = out.std.data;
    const row = (a, k) => a.subarray(k * N, (k + 1) * N);
    // std of y: the decoder's sigma at z = mean of q, or the mixture over the K draws (as the chapters' figures)
    let stdY = row(std, 0);
    if (K > 0) {
      stdY = new Float32Array(N);
      for (let i = 0; i < N; i++) {
        let m = 0, v = 0;
        for (let k = 1; k < rows; k++) m += mean[k * N + i] / K;
        for (let k = 1; k < rows; k++) v += (std[k * N + i] ** 2 + (mean[k * N + i] - m) ** 2) / K;
        stdY[i] = Math.sqrt(v);
      }
    }
    drawContext();
    paint(meanCanvas, S, row(mean, 0), grey);
    let top = 0;
    for (const v of stdY) top = Math.max(top, v);
    paint(stdCanvas, S, stdY, (v) => magma(v / (top || 1)));
    stdCaption.textContent = K > 0 ? `std of y over ${K} draws (max ${top.toFixed(2)})` : `decoder σ (max ${top.toFixed(2)})`;
    if (state.truth) paint(truthCanvas, S, state.truth, grey);
    else paint(truthCanvas, S, state.truth || new Float32Array(N), () => [235, 235, 235]);
    drawsBox.replaceChildren(...Array.from({ length: K }, (_, k) => {
      const c = canvas(); paint(c, S, row(mean, k + 1), grey);
      return el("figure", { class: "ifanp-panel small" }, c, el("figcaption", {}, `draw ${k + 1}`));
    }));
    const observed = state.mask.reduce((s, v) => s + v, 0);
    let text = `${LABELS[state.model] || state.model}: ${observed} of ${N} pixels observed`;
    if (state.truth) {
      let se = 0, seMiss = 0, nMiss = 0;
      for (let i = 0; i < N; i++) {
        const d = (mean[i] - state.truth[i]) ** 2; se += d;
        if (!state.mask[i]) { seMiss += d; nMiss++; }
      }
      text += `; PSNR ${(10 * Math.log10(N / se)).toFixed(2)} dB whole image`;
      if (nMiss) text += `, ${(10 * Math.log10(nMiss / seMiss)).toFixed(2)} dB missing pixels`;
    }
    status.textContent = `${text} (${(t2 - t1).toFixed(0)} ms in this browser)`;
    ratioOut.textContent = `${Math.round(state.ratio * 100)} %`;
    samplesOut.textContent = String(K);
    root.dataset.state = JSON.stringify({ model: state.model, digit: state.digit, kind: state.kind, ratio: state.ratio,
      size: S, image: arr(image), mask: Array.from(state.mask).join(""), eps: arr(eps), rows, z_dim: zd,
      mean: arr(mean), std: arr(std), std_y: arr(stdY), load_ms: t1 - t0, run_ms: t2 - t1 });
    root.dataset.updates = String(Number(root.dataset.updates || 0) + 1);
  }

  loadDigit();
}
