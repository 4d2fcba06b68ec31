"""Jobs the front ends run, planned before they start: which model, which training data,
where the model goes (``planning``); images segmented into files and label files scored
(``file_jobs``: the command line's ``predict`` and ``evaluate``)."""
