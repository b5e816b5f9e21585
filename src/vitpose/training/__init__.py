"""Experiments: typed configs, optimiser and schedule, training loop, evaluation runs, logging.

* ``config``: ``ExperimentConfig`` dataclasses, YAML files with ``_base_``, ``--set`` overrides;
* ``optim``: AdamW with layer-wise lr decay, warm-up + step schedule, AMP / clipping step;
* ``loss``: joints MSE with target weights and its multi-head (ViTPose+) form;
* ``train``: build model / data / loader from a config, ``train_one_epoch``, ``fit`` (DDP,
  resume, validation, checkpoints);
* ``checkpoint``: atomic training checkpoints with optimiser, scaler and RNG states;
* ``evaluate``: a benchmark split through the one test-time path to metrics;
* ``logging``: smoothed meters, JSON-lines log, rank-0 progress bar.
"""
