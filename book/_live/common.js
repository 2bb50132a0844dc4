// Small helpers shared by the live widgets: DOM building, a seeded random generator, colour maps.

/** el("div", {class: "x", onclick: f}, child, "text") -> HTMLElement */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) node.append(c);
  return node;
}

/** A labelled control: <label><span>text</span> control <output></label>. */
export function field(text, control, readout) {
  const lab = el("label", { class: "ifanp-field" }, el("span", {}, text), control);
  if (readout) lab.append(readout);
  return lab;
}

export function select(options, value) {
  const s = el("select");
  for (const [v, text] of options) s.append(el("option", { value: v, selected: v === value }, text));
  return s;
}

/** A deterministic generator of uniform numbers in [0, 1) (mulberry32). */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n standard normals from a seeded generator (Box-Muller), as a Float32Array. */
export function normals(n, seed) {
  const u = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - u())), t = 2 * Math.PI * u();
    out[i] = r * Math.cos(t);
    if (i + 1 < n) out[i + 1] = r * Math.sin(t);
  }
  return out;
}

// magma colour map, 9 stops (matplotlib), for the std maps; grey for images.
const MAGMA = [[0, 0, 4], [28, 16, 68], [79, 18, 123], [129, 37, 129], [181, 54, 122],
  [229, 80, 100], [251, 135, 97], [254, 194, 135], [252, 253, 191]];
export function magma(t) {
  t = Math.min(1, Math.max(0, t)) * (MAGMA.length - 1);
  const i = Math.min(MAGMA.length - 2, Math.floor(t)), f = t - i;
  return MAGMA[i].map((c, k) => Math.round(c + f * (MAGMA[i + 1][k] - c)));
}

/**
 * Paint a size x size map into a canvas. values: array-like; colour(v) -> [r, g, b] or null (transparent).
 */
export function paint(canvas, size, values, colour) {
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(size, size);
  for (let i = 0; i < size * size; i++) {
    const c = colour(values[i], i);
    img.data.set(c ? [c[0], c[1], c[2], 255] : [0, 0, 0, 0], 4 * i);
  }
  ctx.putImageData(img, 0, 0);
}

export const grey = (v) => { const g = Math.round(255 * Math.min(1, Math.max(0, v))); return [g, g, g]; };
export const MISSING = [70, 110, 190];  // the blue of the book's figures for missing pixels

/** Round numbers for the data attributes that tests read (full float32 precision is kept). */
export const arr = (a) => Array.from(a, (v) => Number(v.toPrecision(8)));
