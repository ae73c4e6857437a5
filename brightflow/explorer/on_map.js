const chosen = map_switch.active;
for (let i = 0; i < renderers.length; i++) renderers[i].visible = i === chosen;
color_bar.color_mapper = renderers[chosen].glyph.color_mapper;
color_bar.title = titles[chosen];
