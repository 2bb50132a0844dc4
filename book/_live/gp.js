// The GP regression chapter's live widget: exact GP posterior in the page (no kernel, no model file).
// Click to add an observation, drag it to move it, double-click it to remove it; choose the kernel,
// the lengthscale and the noise. The same maths as ifanp.gp.GPRegression (tests/test_browser.py
// compares the numbers this page writes into data-state with ifanp.gp for the same points).
import { el, field, select, arr } from "./common.js";

const KERNELS = [["rbf", "RBF"], ["matern12", "Matérn 1/2"], ["matern32", "Matérn 3/2"],
  ["matern52", "Matérn 5/2"], ["periodic", "periodic"]];

/** k(x, x') for the named kernel with variance s2, lengthscale l and period p (as ifanp.gp). */
export function kernel(name, l, s2, p) {
  const S3 = Math.sqrt(3), S5 = Math.sqrt(5);
  switch (name) {
    case "rbf": return (a, b) => s2 * Math.exp(-0.5 * ((a - b) / l) ** 2);
    case "matern12": return (a, b) => s2 * Math.exp(-Math.abs(a - b) / l);
    case "matern32": return (a, b) => { const r = S3 * Math.abs(a - b) / l; return s2 * (1 + r) * Math.exp(-r); };
    case "matern52": return (a, b) => {
      const r = Math.abs(a - b) / l;
      return s2 * (1 + S5 * r + (5 / 3) * r * r) * Math.exp(-S5 * r);
    };
    case "periodic": return (a, b) => s2 * Math.exp(-2 * Math.sin(Math.PI * (a - b) / p) ** 2 / (l * l));
    default: throw new Error(`unknown kernel ${name}`);
  }
}

/** Lower Cholesky factor of the n x n matrix A (array of rows); null when A is not positive definite. */
function cholesky(A) {
  const n = A.length, L = A.map(() => new Float64Array(n));
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = A[i][j];
      for (let k = 0; k < j; k++) s -= L[i][k] * L[j][k];
      if (i === j) { if (!(s > 0)) return null; L[i][i] = Math.sqrt(s); } else L[i][j] = s / L[j][j];
    }
  }
  return L;
}

/** Solve L v = b (forward substitution). */
function forward(L, b) {
  const v = Float64Array.from(b);
  for (let i = 0; i < v.length; i++) { for (let k = 0; k < i; k++) v[i] -= L[i][k] * v[k]; v[i] /= L[i][i]; }
  return v;
}

/**
 * Posterior of f on xs given observations (x, y): {mean, varF, lml} (eqs. gp-post-mean, gp-post-cov, gp-lml).
 * K + s_n^2 I is factorised as in ifanp.gp.cholesky: no jitter first, then 1e-10, 1e-9, ... times its mean
 * diagonal until the factorisation succeeds.
 */
export function posterior(x, y, xs, k, noiseVar) {
  const n = x.length;
  if (n === 0) return { mean: xs.map(() => 0), varF: xs.map((t) => k(t, t)), lml: null };
  const Ky = x.map((a, i) => x.map((b, j) => k(a, b) + (i === j ? noiseVar : 0)));
  const meanDiag = Ky.reduce((s, row, i) => s + row[i], 0) / n;
  let L = cholesky(Ky);
  for (let eps = 1e-10, tries = 0; !L && tries < 8; eps *= 10, tries++) {
    L = cholesky(Ky.map((row, i) => row.map((v, j) => v + (i === j ? eps * meanDiag : 0))));
  }
  if (!L) throw new Error("the kernel matrix could not be factorised");
  const w = forward(L, y);  // L w = y, alpha = L^T \ w
  const alpha = Float64Array.from(w);
  for (let i = n - 1; i >= 0; i--) { for (let k2 = i + 1; k2 < n; k2++) alpha[i] -= L[k2][i] * alpha[k2]; alpha[i] /= L[i][i]; }
  const mean = [], varF = [];
  for (const t of xs) {
    const ks = x.map((a) => k(a, t));
    mean.push(ks.reduce((s, v, i) => s + v * alpha[i], 0));
    const v = forward(L, ks);
    varF.push(Math.max(k(t, t) - v.reduce((s, e) => s + e * e, 0), 0));
  }
  let logdet = 0;
  for (let i = 0; i < n; i++) logdet += Math.log(L[i][i]);
  const lml = -0.5 * w.reduce((s, e) => s + e * e, 0) - logdet - 0.5 * n * Math.log(2 * Math.PI);
  return { mean, varF, lml };
}

export async function mount(root, cfg) {
  const xr = cfg.x_range || [-3, 3], yr = cfg.y_range || [-3, 3];
  const period = cfg.period || 1, variance = cfg.variance || 1, M = cfg.grid || 201;
  const initial = (cfg.points || []).map((p) => [p[0], p[1]]);
  let points = initial.map((p) => p.slice());
  const xs = Array.from({ length: M }, (_, i) => xr[0] + (i * (xr[1] - xr[0])) / (M - 1));

  // --- controls
  const kern = select(KERNELS, cfg.kernel || "rbf");
  const logSlider = (lo, hi, v) => el("input", { type: "range", min: lo, max: hi, step: 0.01, value: Math.log10(v) });
  const ls = logSlider(-1.5, 1, cfg.lengthscale || 1), noise = logSlider(-3, 0, cfg.noise_std || 0.1);
  const lsOut = el("output"), noiseOut = el("output");
  const reset = el("button", { type: "button" }, "reset points");
  const clear = el("button", { type: "button" }, "remove all");
  const controls = el("div", { class: "ifanp-controls" },
    field("kernel", kern), field("lengthscale ℓ", ls, lsOut), field("noise std σₙ", noise, noiseOut),
    el("div", { class: "ifanp-buttons" }, reset, clear));

  // --- plot (SVG in data coordinates through a viewBox: W x H user units)
  const W = 640, H = 360, pad = { l: 44, r: 10, t: 10, b: 28 };
  const sx = (x) => pad.l + ((x - xr[0]) / (xr[1] - xr[0])) * (W - pad.l - pad.r);
  const sy = (y) => pad.t + ((yr[1] - y) / (yr[1] - yr[0])) * (H - pad.t - pad.b);
  const NS = "http://www.w3.org/2000/svg";
  const svgEl = (tag, attrs = {}) => { const e = document.createElementNS(NS, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); return e; };
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, class: "ifanp-plot", role: "img" });
  const clip = svgEl("clipPath", { id: `gpclip-${Math.random().toString(36).slice(2)}` });
  clip.append(svgEl("rect", { x: pad.l, y: pad.t, width: W - pad.l - pad.r, height: H - pad.t - pad.b }));
  svg.append(clip);
  const plotG = svgEl("g", { "clip-path": `url(#${clip.id})` });
  const bandY = svgEl("path", { class: "band-y" }), bandF = svgEl("path", { class: "band-f" });
  const meanLine = svgEl("path", { class: "mean" }), truth = svgEl("path", { class: "truth" });
  const dots = svgEl("g");
  plotG.append(bandY, bandF, truth, meanLine, dots);
  const axes = svgEl("g", { class: "axes" });
  for (let t = Math.ceil(xr[0]); t <= xr[1]; t++) {
    axes.append(svgEl("line", { x1: sx(t), x2: sx(t), y1: H - pad.b, y2: H - pad.b + 4 }));
    const lab = svgEl("text", { x: sx(t), y: H - 8, "text-anchor": "middle" }); lab.textContent = t; axes.append(lab);
  }
  for (let t = Math.ceil(yr[0]); t <= yr[1]; t++) {
    axes.append(svgEl("line", { x1: pad.l - 4, x2: pad.l, y1: sy(t), y2: sy(t) }));
    const lab = svgEl("text", { x: pad.l - 7, y: sy(t) + 4, "text-anchor": "end" }); lab.textContent = t; axes.append(lab);
  }
  axes.append(svgEl("rect", { x: pad.l, y: pad.t, width: W - pad.l - pad.r, height: H - pad.t - pad.b, class: "frame" }));
  svg.append(axes, plotG);
  if (cfg.f_true) truth.setAttribute("d", cfg.f_true.map((v, i) => `${i ? "L" : "M"}${sx(cfg.f_true_x[i])},${sy(v)}`).join(""));

  const title = el("p", { class: "ifanp-title" });
  const legend = el("p", { class: "ifanp-legend" },
    el("span", { class: "sw mean" }), " posterior mean  ", el("span", { class: "sw band-f" }), " ±2σ of f  ",
    el("span", { class: "sw band-y" }), " ±2σ of a new y  ", el("span", { class: "sw dot" }), " observations",
    cfg.f_true ? el("span", {}, "  ", el("span", { class: "sw truth" }), " the true f") : "");
  const help = el("p", { class: "ifanp-help" },
    "Click the plot to add an observation, drag a point to move it, double-click a point to remove it.");
  root.replaceChildren(el("div", { class: "ifanp-gp" }, controls, el("div", { class: "ifanp-figure" }, title, svg, legend, help)));

  // --- computing and drawing
  let pending = false;
  const update = () => { if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; draw(); }); } };
  function draw() {
    const t0 = performance.now();
    const l = 10 ** Number(ls.value), sn = 10 ** Number(noise.value);
    lsOut.textContent = l.toFixed(3); noiseOut.textContent = sn.toFixed(3);
    const k = kernel(kern.value, l, variance, period);
    const x = points.map((p) => p[0]), y = points.map((p) => p[1]);
    const { mean, varF, lml } = posterior(x, y, xs, k, sn * sn);
    const sdF = varF.map(Math.sqrt), sdY = varF.map((v) => Math.sqrt(v + sn * sn));
    const band = (sd) => xs.map((t, i) => `${i ? "L" : "M"}${sx(t)},${sy(mean[i] + 2 * sd[i])}`).join("")
      + xs.slice().reverse().map((t, j) => { const i = M - 1 - j; return `L${sx(t)},${sy(mean[i] - 2 * sd[i])}`; }).join("") + "Z";
    bandY.setAttribute("d", band(sdY)); bandF.setAttribute("d", band(sdF));
    meanLine.setAttribute("d", xs.map((t, i) => `${i ? "L" : "M"}${sx(t)},${sy(mean[i])}`).join(""));
    // keep the circles (a double-click must land on the same element twice); add or drop the extra ones
    while (dots.children.length > points.length) dots.lastChild.remove();
    while (dots.children.length < points.length) dots.append(svgEl("circle", { r: 5, class: "dot", "data-index": dots.children.length }));
    points.forEach((p, i) => { dots.children[i].setAttribute("cx", sx(p[0])); dots.children[i].setAttribute("cy", sy(p[1])); });
    const name = KERNELS.find((kk) => kk[0] === kern.value)[1];
    title.textContent = `${name}, ℓ = ${l.toPrecision(3)}, σₙ = ${sn.toPrecision(3)}; `
      + (lml === null ? "no observations: the prior" : `n = ${points.length}, log p(y)/n = ${(lml / points.length).toFixed(3)}`);
    root.dataset.state = JSON.stringify({ kernel: kern.value, lengthscale: l, noise_std: sn, variance, period,
      points, x: xs, mean: arr(mean), sd_f: arr(sdF), sd_y: arr(sdY), lml, ms: performance.now() - t0 });
    root.dataset.updates = String(Number(root.dataset.updates || 0) + 1);
  }

  // --- pointer interaction (mouse, pen and touch alike)
  const toData = (ev) => {
    const p = new DOMPoint(ev.clientX, ev.clientY).matrixTransform(svg.getScreenCTM().inverse());
    const clampv = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
    return [clampv(xr[0] + ((p.x - pad.l) / (W - pad.l - pad.r)) * (xr[1] - xr[0]), xr[0], xr[1]),
      clampv(yr[1] - ((p.y - pad.t) / (H - pad.t - pad.b)) * (yr[1] - yr[0]), yr[0], yr[1])];
  };
  let dragging = null;
  // pointer capture retargets the click events to the svg: find the point under the pointer by position
  const nearest = (ev) => {
    const p = new DOMPoint(ev.clientX, ev.clientY).matrixTransform(svg.getScreenCTM().inverse());
    let best = -1, bestD = 9 * 9;
    points.forEach((q, i) => { const d = (sx(q[0]) - p.x) ** 2 + (sy(q[1]) - p.y) ** 2; if (d < bestD) { best = i; bestD = d; } });
    return best;
  };
  svg.addEventListener("dblclick", (ev) => {
    const i = nearest(ev);
    if (i >= 0) { points.splice(i, 1); update(); }
  });
  svg.addEventListener("pointerdown", (ev) => {
    const hit = nearest(ev);
    svg.setPointerCapture(ev.pointerId);
    ev.preventDefault();
    if (hit >= 0) { dragging = hit; return; }
    points.push(toData(ev)); dragging = points.length - 1;
    update();
  });
  svg.addEventListener("pointermove", (ev) => { if (dragging !== null) { points[dragging] = toData(ev); update(); } });
  const stop = () => { dragging = null; };
  svg.addEventListener("pointerup", stop);
  svg.addEventListener("pointercancel", stop);
  for (const c of [kern, ls, noise]) c.addEventListener("input", update);
  reset.addEventListener("click", () => { points = initial.map((p) => p.slice()); update(); });
  clear.addEventListener("click", () => { points = []; update(); });
  draw();
}
