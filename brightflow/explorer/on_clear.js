region.data = {x: [], y: []};
cell_select.value = "";
show([], "");
