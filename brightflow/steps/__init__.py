"""The workflow's steps: one function per rule, from file paths and settings to files.

Each function composes the file layer (brightflow.io: reading stacks block by block, writing
maps, masks, tables and figures) with the science modules (pure functions on arrays). A rule
script hands a step its rule's inputs, outputs and parameters as keyword arguments and runs it
with brightflow.io.run; nothing here imports snakemake.

- :mod:`~brightflow.steps.demo`: the simulated demo recordings (rule simulate_demo);
- :mod:`~brightflow.steps.projection`: the mean projection (projection);
- :mod:`~brightflow.steps.segmentation`: masks, their exports and the analysis mask
  (segmentation, segmentation_exports, analysis_mask);
- :mod:`~brightflow.steps.bleach`: the bleach-correction model (bleach_correction);
- :mod:`~brightflow.steps.maps`: the N&B maps, their time series and cross-correlation
  (nb_maps, nb_timeseries, nb_cross);
- :mod:`~brightflow.steps.figures`: the previews, the B x I plot and the bleach figure (figures);
- :mod:`~brightflow.steps.tables`: the per-pixel and per-cell tables and the record of settings
  (tables, settings);
- :mod:`~brightflow.steps.explorer`: the brightness explorer page (brightness_explorer);
- :mod:`~brightflow.steps.aggregate`: the folder table and figure (aggregate).
"""
