"""The evaluator's checks after a run (ACC and ASR themselves are `models.evaluate`): the re-activation check and its clean control
(`reactivate`, `clean_control`), and salience and TAC per neuron before vs after a run (`neuron_change`)."""
