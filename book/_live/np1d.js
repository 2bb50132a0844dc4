// The neural-processes chapter's live widget: the shipped 1-D CNP, NP and ANP (ONNX exports of
// ifanp/weights/np1d-*, run by onnxruntime-web) and the GP oracle (exact posterior in JavaScript,
// gp.js), on context points you place. Click to add a context point, drag to move it, double-click to
// remove it; choose the test functions' kernel (which models: each was trained on one kernel), the model
// and the number of draws of z.
import { el, field, select, normals, arr } from "./common.js";
import { kernel as gpKernel, posterior } from "./gp.js";
import { manifest, session, run } from "./runtime.js";

// The task distribution the models were trained on (ifanp.data.functions.GPFunctionSampler defaults).
const TASKS = { rbf: { lengthscale: 0.6, period: 1 }, matern52: { lengthscale: 0.6, period: 1 }, periodic: { lengthscale: 1, period: 1 } };
const NOISE_VAR = 1e-4;
const MODELS = [["cnp", "CNP"], ["np", "NP"], ["anp", "ANP"], ["gp", "GP oracle (the true kernel)"]];
const KLABEL = { rbf: "RBF", matern52: "Matérn 5/2", periodic: "periodic" };

export async function mount(root, cfg) {
  const man = await manifest();
  const graphs = man.np1d || [];
  const kernels = [...new Set(graphs.map((g) => g.kernel))];
  if (!kernels.length) throw new Error("no 1-D model was exported");
  const xr = [-2, 2], yr = [-3, 3], M = 161;
  const xs = Float32Array.from({ length: M }, (_, i) => xr[0] + (i * (xr[1] - xr[0])) / (M - 1));
  const initial = (cfg.points || []).map((p) => p.slice());
  let points = initial.map((p) => p.slice());

  const kernSel = select(kernels.map((k) => [k, KLABEL[k] || k]), kernels.includes(cfg.kernel) ? cfg.kernel : kernels[0]);
  const modelSel = select(MODELS, cfg.model || "anp");
  const draws = el("input", { type: "range", min: 0, max: 10, step: 1, value: cfg.samples ?? 5 });
  const drawsOut = el("output");
  const reset = el("button", { type: "button" }, "reset points"), clear = el("button", { type: "button" }, "remove all");
  const controls = el("div", { class: "ifanp-controls" }, field("test functions", kernSel), field("model", modelSel),
    field("draws of z", draws, drawsOut), el("div", { class: "ifanp-buttons" }, reset, clear));

  const W = 640, H = 340, pad = { l: 44, r: 10, t: 10, b: 28 };
  const sx = (x) => pad.l + ((x - xr[0]) / (xr[1] - xr[0])) * (W - pad.l - pad.r);
  const sy = (y) => pad.t + ((yr[1] - y) / (yr[1] - yr[0])) * (H - pad.t - pad.b);
  const NS = "http://www.w3.org/2000/svg";
  const svgEl = (tag, attrs = {}) => { const e = document.createElementNS(NS, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); return e; };
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, class: "ifanp-plot", role: "img" });
  const band = svgEl("path", { class: "band-y" }), gpLine = svgEl("path", { class: "truth" }), meanLine = svgEl("path", { class: "mean" });
  const drawG = svgEl("g"), dots = svgEl("g");
  const axes = svgEl("g", { class: "axes" });
  for (let t = xr[0]; t <= xr[1]; t++) { const l = svgEl("text", { x: sx(t), y: H - 8, "text-anchor": "middle" }); l.textContent = t; axes.append(l); }
  for (let t = yr[0]; t <= yr[1]; t++) { const l = svgEl("text", { x: pad.l - 7, y: sy(t) + 4, "text-anchor": "end" }); l.textContent = t; axes.append(l); }
  axes.append(svgEl("rect", { x: pad.l, y: pad.t, width: W - pad.l - pad.r, height: H - pad.t - pad.b, class: "frame" }));
  svg.append(axes, band, drawG, gpLine, meanLine, dots);
  const title = el("p", { class: "ifanp-title" });
  const legend = el("p", { class: "ifanp-legend" }, el("span", { class: "sw mean" }), " the model's mean (z at the mean of q)  ",
    el("span", { class: "sw band-y" }), " ±2σ  ", el("span", { class: "sw truth" }), " the GP oracle's mean  ", el("span", { class: "sw draw" }), " draws of z");
  const help = el("p", { class: "ifanp-help" }, "Click the plot to add a context point, drag one to move it, double-click one to remove it.");
  root.replaceChildren(el("div", { class: "ifanp-gp" }, controls, el("div", { class: "ifanp-figure" }, title, svg, legend, help)));
  const path = (ys) => Array.from(xs, (t, i) => `${i ? "L" : "M"}${sx(t)},${sy(ys[i])}`).join("");

  let busy = false, dirty = false;
  const schedule = () => { dirty = true; if (!busy) loop(); };
  async function loop() {
    busy = true;
    try { while (dirty) { dirty = false; await draw(); } } catch (err) {
      title.textContent = `The model could not run: ${err.message || err}`; root.dataset.error = String(err.message || err);
    } finally { busy = false; }
  }

  async function draw() {
    const kname = kernSel.value, task = TASKS[kname] || TASKS.rbf, K = Number(draws.value);
    drawsOut.textContent = String(K);
    const x = points.map((p) => p[0]), y = points.map((p) => p[1]);
    const k = gpKernel(kname, task.lengthscale, 1, task.period);
    const gp = posterior(x, y, Array.from(xs), k, NOISE_VAR);
    gpLine.setAttribute("d", path(gp.mean));
    let mean, sd, drawn = [], state = { kernel: kname, model: modelSel.value, points, x: arr(xs), gp_mean: arr(gp.mean) };
    const t0 = performance.now();
    if (modelSel.value === "gp" || points.length === 0) {
      mean = gp.mean; sd = gp.varF.map((v) => Math.sqrt(v + NOISE_VAR));
    } else {
      const info = graphs.find((g) => g.name === `np1d-${modelSel.value}-${kname}`);
      const sess = await session(info.file);
      const rows = 1 + (info.latent ? K : 0), zd = info.z_dim, n = points.length;
      const eps = new Float32Array(rows * zd);
      eps.set(normals((rows - 1) * zd, 4242), zd);  // row 0: z at the mean of q(z | context)
      const out = await run(sess, { xc: [Float32Array.from(x), [1, n, 1]], yc: [Float32Array.from(y), [1, n, 1]],
        xt: [xs, [1, M, 1]], eps: [eps, [rows, 1, zd]] });
      const m = out.y_mean.data, s = out.y_std.data;
      mean = m.subarray(0, M); sd = s.subarray(0, M);
      for (let r = 1; r < rows; r++) drawn.push(m.subarray(r * M, (r + 1) * M));
      Object.assign(state, { eps: arr(eps), rows, z_dim: zd, mean: arr(m), std: arr(s) });
    }
    state.run_ms = performance.now() - t0;
    band.setAttribute("d", path(Array.from(mean, (v, i) => v + 2 * sd[i])) + Array.from(xs).reverse().map((t, j) => {
      const i = M - 1 - j; return `L${sx(t)},${sy(mean[i] - 2 * sd[i])}`; }).join("") + "Z");
    meanLine.setAttribute("d", path(mean));
    drawG.replaceChildren(...drawn.map((d) => svgEl("path", { d: path(d), class: "draw" })));
    while (dots.children.length > points.length) dots.lastChild.remove();
    while (dots.children.length < points.length) dots.append(svgEl("circle", { r: 5, class: "dot" }));
    points.forEach((p, i) => { dots.children[i].setAttribute("cx", sx(p[0])); dots.children[i].setAttribute("cy", sy(p[1])); });
    const label = MODELS.find((mm) => mm[0] === modelSel.value)[1];
    title.textContent = `${label} trained on ${KLABEL[kname]} functions; ${points.length} context points`
      + (modelSel.value === "gp" ? "" : ` (${state.run_ms.toFixed(0)} ms in this browser)`);
    root.dataset.state = JSON.stringify(state);
    root.dataset.updates = String(Number(root.dataset.updates || 0) + 1);
  }

  const toData = (ev) => {
    const p = new DOMPoint(ev.clientX, ev.clientY).matrixTransform(svg.getScreenCTM().inverse());
    const c = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
    return [c(xr[0] + ((p.x - pad.l) / (W - pad.l - pad.r)) * (xr[1] - xr[0]), xr[0], xr[1]),
      c(yr[1] - ((p.y - pad.t) / (H - pad.t - pad.b)) * (yr[1] - yr[0]), yr[0], yr[1])];
  };
  const nearest = (ev) => {
    const p = new DOMPoint(ev.clientX, ev.clientY).matrixTransform(svg.getScreenCTM().inverse());
    let best = -1, bestD = 81;
    points.forEach((q, i) => { const d = (sx(q[0]) - p.x) ** 2 + (sy(q[1]) - p.y) ** 2; if (d < bestD) { best = i; bestD = d; } });
    return best;
  };
  let dragging = null;
  svg.addEventListener("pointerdown", (ev) => {
    const hit = nearest(ev);
    svg.setPointerCapture(ev.pointerId); ev.preventDefault();
    if (hit >= 0) { dragging = hit; return; }
    points.push(toData(ev)); dragging = points.length - 1; schedule();
  });
  svg.addEventListener("pointermove", (ev) => { if (dragging !== null) { points[dragging] = toData(ev); schedule(); } });
  svg.addEventListener("pointerup", () => { dragging = null; });
  svg.addEventListener("pointercancel", () => { dragging = null; });
  svg.addEventListener("dblclick", (ev) => { const i = nearest(ev); if (i >= 0) { points.splice(i, 1); schedule(); } });
  for (const c of [kernSel, modelSel, draws]) c.addEventListener("input", schedule);
  reset.addEventListener("click", () => { points = initial.map((p) => p.slice()); schedule(); });
  clear.addEventListener("click", () => { points = []; schedule(); });
  schedule();
}
