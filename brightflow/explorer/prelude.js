const N = pixels.data;
function format(v) {
  if (!Number.isFinite(v)) return "undefined";
  const a = Math.abs(v);
  return (a !== 0 && (a < 1e-3 || a >= 1e5)) ? v.toExponential(3) : v.toPrecision(4);
}
function pixel_mean(name, indices) {
  let sum = 0, count = 0;
  for (const i of indices) { const v = N[name][i]; if (Number.isFinite(v)) { sum += v; count += 1; } }
  return count > 0 ? sum / count : NaN;
}
function evaluate(form, k, v) {
  // a ratio of polynomials in the mean intensity k and mean variance v (brightflow.nb.ratio_of_means_forms:
  // the N&B equations of Digman 2008, with Dalal 2008's analog detector, written once, in Python)
  const [top, bottom] = form.map((c) => c[0] + c[1] * k + c[2] * v + c[3] * k * k);
  return bottom !== 0 ? top / bottom : NaN;
}
function ratio_of_means(indices) {
  // brightflow.stats.cell_estimators: the N&B equations on the mean intensity and mean variance
  // over the pixels where both are defined
  let k = 0, v = 0, count = 0;
  for (const i of indices) {
    const ki = N.intensity[i], vi = N.variance[i];
    if (Number.isFinite(ki) && Number.isFinite(vi)) { k += ki; v += vi; count += 1; }
  }
  k /= count; v /= count;
  return {count: count, B: evaluate(forms.apparent_brightness, k, v), epsilon: evaluate(forms.brightness, k, v),
          n: evaluate(forms.number, k, v)};
}
function row(quantity, label, value, note) {
  return `<tr><th>${label}</th><td class="value" data-quantity="${quantity}" data-value="${value}">` +
         `${format(value)}</td><td class="note">${note}</td></tr>`;
}
function paint(indices) {
  const image = highlight.data.image[0];
  image.fill(0);
  for (const i of highlight.data.outline[0]) image[i] = outline_color;
  const width = image_width, color = selection_color;
  for (const i of indices) image[N.y[i] * width + N.x[i]] = color;
  highlight.change.emit();
}
function describe(indices, what) {
  if (indices.length === 0) { readout.text = nothing_selected; return; }
  const cells = [...new Set(Array.from(indices, (i) => N.cell[i]))].sort((a, b) => a - b);
  const rom = ratio_of_means(indices);
  const listed = cells.length <= 12 ? cells.join(", ") : cells.slice(0, 12).join(", ") + ", ...";
  let text = `<p><b>${what}</b>: <span data-quantity="pixels" data-value="${indices.length}">` +
             `${indices.length.toLocaleString("en-US")}</span> of ${N.cell.length.toLocaleString("en-US")} ` +
             `cell pixels, in ${cells.length} cell${cells.length === 1 ? "" : "s"} (${listed}).`;
  if (rom.count !== indices.length) text += ` ${rom.count} of them have a defined intensity and variance.`;
  text += '</p><div class="tables"><table><caption><b>Pixel means</b>: each map\'s mean over the selected ' +
    "pixels<br>(as the Intensity, Apparent brightness, Brightness, Number<br>columns of average_values_in_roi.csv)" +
    "</caption>" +
    row("mean_intensity", "intensity &lt;k&gt;", pixel_mean("intensity", indices), "counts per frame") +
    row("mean_apparent_brightness", "apparent brightness B", pixel_mean("apparent_brightness", indices), "") +
    row("mean_brightness", "brightness ε", pixel_mean("brightness", indices), brightness_unit) +
    row("mean_number", "number n", pixel_mean("number", indices), "molecules (biased high)") +
    '</table><table><caption><b>Ratio of means</b> (the values to quote): the N&amp;B equations<br>applied once ' +
    'to the selection\'s mean intensity and mean variance<br>(as the "(ratio of means)" columns)</caption>' +
    row("rom_apparent_brightness", "apparent brightness B", rom.B, "") +
    row("rom_brightness", "brightness ε", rom.epsilon, brightness_unit) +
    row("rom_number", "number n", rom.n, "molecules") +
    "</table></div>";
  readout.text = text;
}
function show(indices, what) {
  pixels.selected.indices = Array.from(indices);
  paint(indices);
  describe(indices, what);
}
