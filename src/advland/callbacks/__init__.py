"""Trainer callbacks that log a run elsewhere (one file per logger); landscape tracking lives in
``advland.landscape.track``. They follow the ``advland.train.Callback`` protocol."""
