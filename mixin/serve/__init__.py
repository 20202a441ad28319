"""``mixin-serve``: a local web app to separate songs and listen to the stems side by side.

:mod:`.app` (Starlette application: page, job API, server-sent events), :mod:`.jobs` (SQLite
store, the worker process, the queue), :mod:`.render` (waveform peaks, NSGT spectrogram PNGs),
``static/`` (the page: plain HTML/CSS/JS, no build step, nothing fetched from the internet).
The command is :mod:`mixin.cli.serve`.
"""
