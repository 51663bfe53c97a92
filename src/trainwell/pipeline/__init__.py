"""The one place that wires the parts: config -> data -> preprocess -> model -> init -> trainer -> run dir.

The CLI, the sweep and the lab call :func:`fit` (one model) or :func:`fit_population` (M members trained at once by
the same loop); nothing else builds or initializes models, optimizers, penalties, augmentation or callbacks. Both
write each model's run directory with the same writer (:func:`write_run`), so a sweep member's run directory is
a fit's run directory. Callers customize a model through a general hook, ``setup(model)``, called after
initialization and before training (the lottery passes its starting weights and masks that way).

Example:
    >>> from trainwell.config import load_config
    >>> cfg = load_config(None, ["data.name=xor", "model.kind=mlp", "model.hidden=[8]", "train.epochs=2"])
    >>> result = fit(cfg, out="/tmp/trainwell-doctest", force=True, quiet=True)  # doctest: +SKIP

The package is laid out by job; this face only re-exports:

- :mod:`~trainwell.pipeline.build`: config -> parts (data, the initialized model, optimizer, schedule, penalties,
  augmentation, the trainer and its callbacks);
- :mod:`~trainwell.pipeline.write`: pre-flight, post-flight, summary.json and the run directory;
- :mod:`~trainwell.pipeline.fit`: one run (one process or a torchrun group), and reading a run's config to resume;
- :mod:`~trainwell.pipeline.population`: many configs trained as one vmapped population;
- :mod:`~trainwell.pipeline.lr_find`: ``optim.lr = "find"`` and ``trainwell lr-find``.
"""

from trainwell.errors import DataError
from trainwell.pipeline.build import (
    THREADS_FLOP_THRESHOLD,
    Prepared,
    build_initialized,
    initialize,
    load_data,
    prepare,
    resolve_device,
    set_threads,
    step_flops,
    summarize,
)
from trainwell.pipeline.fit import RESUME_KEYS, FitResult, config_of_run, fit
from trainwell.pipeline.population import (
    POPULATION_KEYS,
    PopulationResult,
    fit_population,
    inert_model_keys,
    population_blocker,
)
from trainwell.pipeline.write import geometry_verdict, postflight, preflight, write_run

__all__ = ["POPULATION_KEYS", "RESUME_KEYS", "THREADS_FLOP_THRESHOLD", "DataError", "FitResult", "PopulationResult",
           "Prepared", "build_initialized", "config_of_run", "fit", "fit_population", "geometry_verdict",
           "inert_model_keys", "initialize", "load_data", "population_blocker", "postflight", "preflight", "prepare",
           "resolve_device", "set_threads", "step_flops", "summarize", "write_run"]
