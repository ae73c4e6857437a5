// A click on the image chooses the cell under it (a click on the background changes nothing).
const column = Math.floor(cb_obj.x / pixel_width), line = Math.floor(cb_obj.y / pixel_height);
if (column < 0 || line < 0 || column >= image_width || line >= image_height) return;
for (let i = 0; i < N.cell.length; i++) {
  if (N.y[i] === line && N.x[i] === column) {
    const value = String(N.cell[i]);
    if (cell_select.value === value) cell_select.value = "";  // chosen again: show it anew
    cell_select.value = value;
    return;
  }
}
