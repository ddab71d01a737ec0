"""What a run reports: ``summary.json``, tables, test metrics and figures.

Both the outer-loop Callback (``loop/``) and the LightningModules (``models/modules.py``) report
through this package, so neither imports the other's internals and no lower layer imports the loop.
Nothing here decides anything: it records and draws what the loop and the models computed.
"""
