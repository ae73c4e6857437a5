// A region drawn in the plot (box or lasso): every cell pixel inside it, also those the plot does
// not draw. A box keeps x0 <= intensity <= x1 and y0 <= B <= y1; a lasso keeps the points inside
// the polygon by the even-odd rule (a ray to +x crosses its edges an odd number of times).
if (!cb_obj.final) return;
const g = cb_obj.geometry;
const xs = N.intensity, ys = N.apparent_brightness, chosen = [];
let outline_x, outline_y, what;
if (g.type === "rect") {
  const x0 = Math.min(g.x0, g.x1), x1 = Math.max(g.x0, g.x1), y0 = Math.min(g.y0, g.y1), y1 = Math.max(g.y0, g.y1);
  for (let i = 0; i < xs.length; i++) {
    if (xs[i] >= x0 && xs[i] <= x1 && ys[i] >= y0 && ys[i] <= y1) chosen.push(i);
  }
  outline_x = [x0, x1, x1, x0]; outline_y = [y0, y0, y1, y1];
  what = `Box in the plot: intensity ${format(x0)} to ${format(x1)}, B ${format(y0)} to ${format(y1)}`;
} else if (g.type === "poly") {
  const px = Array.from(g.x), py = Array.from(g.y), m = px.length;
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i], y = ys[i];
    if (!(Number.isFinite(x) && Number.isFinite(y))) continue;
    let inside = false;
    for (let a = 0, b = m - 1; a < m; b = a++) {
      if ((py[a] > y) !== (py[b] > y) && x < (px[b] - px[a]) * (y - py[a]) / (py[b] - py[a]) + px[a]) inside = !inside;
    }
    if (inside) chosen.push(i);
  }
  outline_x = px; outline_y = py;
  what = "Lasso in the plot";
} else {
  return;
}
region.data = {x: outline_x, y: outline_y};
cell_select.value = "";
show(chosen, what);
