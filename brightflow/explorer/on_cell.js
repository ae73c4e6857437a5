if (cell_select.value === "") return;
const cell = Number(cell_select.value), chosen = [];
for (let i = 0; i < N.cell.length; i++) if (N.cell[i] === cell) chosen.push(i);
region.data = {x: [], y: []};
show(chosen, `Cell ${cell}`);
