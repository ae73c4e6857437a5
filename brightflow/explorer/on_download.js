// The selected pixels as CSV, sorted by cell, y, x (as brightness_intensity_values.csv); an
// undefined value is an empty field, as pandas writes NaN. Numbers are written in JavaScript's
// shortest round-trip form, so they read back as the exact float64 values.
const N = pixels.data;
const chosen = Array.from(pixels.selected.indices);
chosen.sort((a, b) => (N.cell[a] - N.cell[b]) || (N.y[a] - N.y[b]) || (N.x[a] - N.x[b]));
const names = Object.keys(columns);
const lines = [["Cell ID", "y", "x", ...names.map((name) => columns[name])].join(",")];
for (const i of chosen) {
  const values = names.map((name) => Number.isFinite(N[name][i]) ? String(N[name][i]) : "");
  lines.push([N.cell[i], N.y[i], N.x[i], ...values].join(","));
}
const text = lines.join("\n") + "\n";
const link = document.createElement("a");
link.href = URL.createObjectURL(new Blob([text], {type: "text/csv"}));
link.download = file_name;
document.body.appendChild(link);
link.click();
link.remove();
setTimeout(() => URL.revokeObjectURL(link.href), 10000);
