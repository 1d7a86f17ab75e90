"""The model store: a backdoored model trained from a scenario or read from a weights + card pair
(`backdoored`), weights files and their cards (`checkpoints`, `cards`), the shipped zoo (`zoo`), the
on-disk cache of models trained or uploaded here (`model_store`), and a user's weights checked byte by byte
and parsed in a child process (`uploads`, `weights_format`, `weights_sandbox`)."""
