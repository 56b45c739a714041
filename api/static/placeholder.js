"use strict";
// BlurHash decoding (woltapp's reference algorithm), to paint an image's placeholder from
// its facts until the thumbnail arrives.
const B83 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~";

function b83(text) {
  let value = 0;
  for (const c of text) value = value * 83 + B83.indexOf(c);
  return value;
}

function toLinear(v) {
  const x = v / 255;
  return x <= 0.04045 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4);
}

function toSrgb(v) {
  const x = Math.max(0, Math.min(1, v));
  return Math.round((x <= 0.0031308 ? x * 12.92 : 1.055 * Math.pow(x, 1 / 2.4) - 0.055) * 255);
}

function blurhashColors(hash) {
  const size = b83(hash[0]);
  const nx = (size % 9) + 1, ny = Math.floor(size / 9) + 1;
  const maxAc = (b83(hash[1]) + 1) / 166;
  const dc = b83(hash.substring(2, 6));
  const colors = [[toLinear(dc >> 16), toLinear((dc >> 8) & 255), toLinear(dc & 255)]];
  for (let i = 1; i < nx * ny; i++) {
    const v = b83(hash.substring(4 + i * 2, 6 + i * 2));
    colors.push([Math.floor(v / 361), Math.floor(v / 19) % 19, v % 19]
      .map(q => Math.sign(q - 9) * Math.pow((q - 9) / 9, 2) * maxAc));
  }
  return { nx, ny, colors };
}

function paintBlurhash(canvas, hash) {
  const { nx, ny, colors } = blurhashColors(hash);
  const w = canvas.width, h = canvas.height;
  const context = canvas.getContext("2d");
  const pixels = context.createImageData(w, h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let r = 0, g = 0, b = 0;
      for (let j = 0; j < ny; j++) {
        for (let i = 0; i < nx; i++) {
          const basis = Math.cos(Math.PI * x * i / w) * Math.cos(Math.PI * y * j / h);
          const c = colors[i + j * nx];
          r += c[0] * basis; g += c[1] * basis; b += c[2] * basis;
        }
      }
      const p = 4 * (x + y * w);
      pixels.data.set([toSrgb(r), toSrgb(g), toSrgb(b), 255], p);
    }
  }
  context.putImageData(pixels, 0, 0);
}

// A canvas painted from the facts, sized like the image; the caller drops it once the
// thumbnail has loaded.
function placeholderFor(facts, width, height) {
  const canvas = document.createElement("canvas");
  canvas.className = "placeholder";
  canvas.width = 32;
  canvas.height = width && height ? Math.max(1, Math.round(32 * height / width)) : 24;
  canvas.dataset.blurhash = facts.blurhash;
  paintBlurhash(canvas, facts.blurhash);
  return canvas;
}
